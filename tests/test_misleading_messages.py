"""Messages that name the real problem: a Dask scheduler address that is invalid, unreachable or not a
scheduler; an empty CIFAR-10 batch; a study reference the study does not run; checkpoint weights of the wrong
kind and edits of unknown ops; layers surgery cannot rebuild (weight_norm, spectral_norm, other
parametrizations), which are not offered as prunable; a store path that is a device, a pipe or beside one."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import socket
import threading
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.datasets import load_dataset
from workbench.edits import EDIT_OPS, record_edit
from workbench.errors import CheckpointError, ConfigError, DataError, StudyError
from workbench.graph import from_model
from workbench.study import Store, load_study, run_study
from workbench.zoo import create_model

TINY = """
[study]
name = "tiny"
seeds = [0]
latency = false

[[models]]
label = "tiny MLP"
name = "mlp"
args = { widths = [64, 8, 10] }
data = "digits"
training = { epochs = 1, max_batches = 2 }

[selectors]
magnitude = {}
random = {}

[compression]
budgets = [0.5]

[finetune]
epochs = 0
"""


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


# -------------------------------------------------------------------------------- Dask scheduler addresses


@pytest.mark.parametrize(
    "address, said",
    [
        ("tcp://127.0.0.1:99999", "has port 99999, not in 1..65535"),
        ("tcp://:8786", "names no host"),
        ("foo://127.0.0.1:8786", "unknown address scheme 'foo'"),
        ("tcp://127.0.0.1:abc", "is not valid"),
    ],
)
def test_an_invalid_scheduler_address_is_refused_before_anything_runs(study, address, said):
    with pytest.raises(ConfigError, match="the Dask scheduler address") as caught:
        run_study(study, scheduler=address, timeout=1, quiet=True)
    assert said in str(caught.value) and "tcp://host:8786" in str(caught.value)
    assert not (study.parent / "tiny.sqlite").exists()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_address_where_nothing_listens_could_not_be_reached(study):
    port = _free_port()
    with pytest.raises(StudyError) as caught:
        run_study(study, scheduler=f"tcp://127.0.0.1:{port}", timeout=1, quiet=True)
    message = str(caught.value)
    assert "could not be reached" in message and f"nothing listens on port {port}" in message
    assert "Error)" not in message  # no exception class standing in for the reason


def test_a_server_that_is_not_a_dask_scheduler_is_named_as_such(study):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def answer():  # a server of another protocol: it greets every client with bytes Dask cannot read
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                continue
            with client:
                client.sendall(b"\xff" * 64 + b"SSH-2.0-OpenSSH_9.6\r\n")
                stop.wait(1.0)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(StudyError) as caught:
            run_study(study, scheduler=f"tcp://127.0.0.1:{server.getsockname()[1]}", timeout=2, quiet=True)
    finally:
        stop.set()
        thread.join()
        server.close()
    message = str(caught.value)
    assert "a server there answered in another protocol" in message and "8786" in message


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -1.0, 0.0])
def test_a_scheduler_timeout_that_is_no_duration_is_refused(study, timeout):
    with pytest.raises(ConfigError, match="timeout is a positive number of seconds"):
        run_study(study, scheduler="tcp://127.0.0.1:8786", timeout=timeout, quiet=True)


# -------------------------------------------------------------------------------- CIFAR-10 batches


def _cifar(folder, empty, binary=False):
    folder.mkdir()
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for name in names:
        if binary:
            records = np.zeros((10, 3073), np.uint8)
            data = records.tobytes()
        else:
            data = pickle.dumps({b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 10}, protocol=4)
        (folder / (name + (".bin" if binary else ""))).write_bytes(b"" if name == empty else data)
    return folder


@pytest.mark.parametrize("binary", [False, True])
def test_an_empty_cifar_batch_is_called_empty_not_crafted(tmp_path, binary):
    folder = _cifar(tmp_path / ("cifar-10-batches-bin" if binary else "cifar-10-batches-py"), "test_batch", binary)
    with pytest.raises(DataError) as caught:
        load_dataset("cifar10", root=folder, split="test")
    message = str(caught.value)
    assert "test_batch" in message and "is empty (0 bytes)" in message and "Download the data set again" in message
    assert "crafted" not in message and "pickle" not in message


# -------------------------------------------------------------------------------- study reference


def test_a_reference_the_study_does_not_run_is_refused_when_the_study_is_read(tmp_path):
    path = tmp_path / "ref.toml"
    path.write_text(TINY.replace('name = "tiny"', 'name = "tiny"\nreference = "dpp/drop"'))
    with pytest.raises(StudyError) as caught:
        load_study(path)
    message = str(caught.value)
    assert "'dpp/drop'" in message and "magnitude/drop" in message and "random/drop" in message
    assert not (tmp_path / "ref.sqlite").exists()


# -------------------------------------------------------------------------------- checkpoints


def _crafted(tmp_path, change):
    """A checkpoint of the zoo's small MLP, its payload changed by ``change`` (in place)."""
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "m.pt", create_model("mlp", widths=[8, 6, 3]))
    payload = torch.load(path, weights_only=True)
    change(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("dtype, kind", [(torch.complex64, "complex64"), (torch.int64, "int64"), (torch.bool, "bool")])
def test_weights_of_another_kind_are_refused_naming_the_tensor(tmp_path, dtype, kind):
    def change(payload):
        key = next(key for key in payload["state_dict"] if key.endswith("weight"))
        payload["state_dict"][key] = (payload["state_dict"][key] * 3).to(dtype)
        payload["key"] = key

    path = _crafted(tmp_path, change)
    key = torch.load(path, weights_only=True)["key"]
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert f"{key} is torch.{kind} where real floating-point values (torch.float32) are expected" in message


def test_an_edit_of_an_unknown_op_is_refused_naming_the_known_ones(tmp_path):
    def change(payload):
        spec = json.loads(payload["spec"])
        spec["edits"] = [{"op": "frobnicate", "layers": ["layers.1"]}]
        payload["spec"] = json.dumps(spec)

    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(_crafted(tmp_path, change))
    message = str(caught.value)
    assert "op 'frobnicate'" in message and "edit number 0" in message
    assert all(op in message for op in ("plan", "factorize", "prune", "fixed-point"))


def test_transforms_record_only_known_ops():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="EDIT_OPS"):
        record_edit(model, "frobnicate")
    assert record_edit(model, "prune", rate=0.5).workbench_spec["edits"] == [{"op": "prune", "rate": 0.5}]
    assert {"plan", "factorize", "prune", "share", "dct"} <= EDIT_OPS


# -------------------------------------------------------------------------------- layers surgery cannot rebuild


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


def _hooked(wrap):
    def make():
        model = _mlp()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated
            wrap(model[2])
        return model

    return make


@pytest.mark.parametrize(
    "make, said",
    [
        (_hooked(torch.nn.utils.parametrizations.weight_norm), "has parametrized weights (_WeightNorm)"),
        (_hooked(torch.nn.utils.parametrizations.spectral_norm), "has parametrized weights (_SpectralNorm)"),
        (_hooked(torch.nn.utils.weight_norm), "has a weight computed from weight_g, weight_v"),
        (_hooked(torch.nn.utils.spectral_norm), "has a weight computed from"),
    ],
    ids=["weight_norm", "spectral_norm", "old weight_norm", "old spectral_norm"],
)
def test_layers_with_computed_weights_are_not_offered_as_prunable(make, said):
    graph = from_model(make(), torch.randn(4, 16))
    assert [group.name for group in graph.prunable_groups()] == []  # both groups read or own layer 2
    reasons = {name: " ".join(group.reasons) for name, group in graph.groups.items() if name in ("0", "2")}
    assert f"its layer '2' {said}" in reasons["2"]
    assert f"its consumer '2' {said}" in reasons["0"]


def test_a_pruning_mask_does_not_make_a_layer_unprunable():
    from torch.nn.utils import parametrize

    from workbench.sparse import prune

    model = prune(_mlp(), rate=0.5)
    assert parametrize.is_parametrized(model[2])
    graph = from_model(model, torch.randn(4, 16))
    assert [group.name for group in graph.prunable_groups()] == ["0", "2"]


# -------------------------------------------------------------------------------- store paths


def test_a_store_that_is_a_device_or_a_pipe_is_refused_and_left_alone(tmp_path, study):
    pipe = tmp_path / "pipe.sqlite"
    os.mkfifo(pipe)
    link = tmp_path / "null.sqlite"
    link.symlink_to(os.devnull)
    for path in (os.devnull, pipe, link):
        with pytest.raises(StudyError, match="is a device, pipe or socket, not a file"):
            run_study(study, store=path, quiet=True)
    assert os.path.islink(link) and os.readlink(link) == os.devnull
    beside = tmp_path / "beside.sqlite"
    (tmp_path / "beside.sqlite-wal").symlink_to(os.devnull)  # SQLite would write its log through it
    with pytest.raises(StudyError, match="beside.sqlite-wal exists and is a device, pipe or socket"):
        Store(beside)
    assert not beside.exists()
    with pytest.raises(StudyError, match="--store is empty"):
        run_study(study, store="", quiet=True)
