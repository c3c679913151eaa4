"""Bad command-line input and damaged checkpoints get one clear error line, never a traceback, and
finished work is never thrown away."""

from __future__ import annotations

import io
import json

import pytest
import torch

from workbench.checkpoints import FORMAT, VERSION, load_checkpoint, save_checkpoint
from workbench.cli import main
from workbench.errors import CheckpointError
from workbench.zoo import create_model
from workbench.zoo import memory as zoo_memory

TRAIN = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--quiet"]


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_an_out_path_that_cannot_be_a_file_is_refused_before_training(tmp_path, capsys, where):
    blocker = tmp_path / "blocker"
    if where == "folder":
        blocker.mkdir()
        out = blocker
    else:
        blocker.write_text("a file")
        out = blocker / "model.pt"
    code, out_text, err = run([*TRAIN, "--out", str(out)], capsys)
    assert code == 2 and f"--out {out}" in err and ("folder" in err or "file" in err)
    assert out_text == ""  # refused before any training
    code, _, err = run(["compress", str(tmp_path / "missing.pt"), "--out", str(out)], capsys)
    assert code == 2 and f"--out {out}" in err


def test_a_finished_training_whose_out_cannot_be_written_is_saved_elsewhere(tmp_path, capsys, monkeypatch):
    import workbench.train

    out = tmp_path / "model.pt"
    real_fit = workbench.train.fit

    def fit_then_block(*args, **kwargs):  # the path becomes a folder while the model trains
        history = real_fit(*args, **kwargs)
        out.mkdir()
        return history

    monkeypatch.setattr(workbench.train, "fit", fit_then_block)
    monkeypatch.chdir(tmp_path)
    code, text, err = run([*TRAIN, "--out", str(out), "--json"], capsys)
    assert code == 1 and f"could not write {out}" in err
    saved = json.loads(text)["checkpoint"]
    assert saved != str(out) and saved in err
    model, meta = load_checkpoint(saved)
    assert meta["data"] == "digits" and isinstance(model, torch.nn.Module)


@pytest.mark.parametrize(
    "argv",
    [
        ["profile", "--model", "mlp", "--widths", "[1000000000,10]", "--no-latency"],
        ["profile", "--model", "mobilenet_v1", "--resolution", "50000", "--no-latency"],
        ["profile", "--model", "mobilenet_v1", "--batch-size", "100000", "--no-latency"],
        [*TRAIN, "--widths", "[64,1000000000,10]"],
    ],
    ids=["widths", "resolution", "batch-size", "train-widths"],
)
def test_absurd_sizes_are_refused_with_the_memory_they_need(capsys, monkeypatch, argv):
    monkeypatch.setattr(zoo_memory, "available_memory", lambda: 16 * 10**9)
    code, _, err = run(argv, capsys)
    assert code == 2 and "GB of memory" in err and "16.0 GB available" in err


def test_the_memory_estimate_follows_the_architecture():
    small = zoo_memory.estimate_memory("mlp", widths=[64, 100, 10])
    assert small.params == 4 * (64 * 100 + 100 + 100 * 10 + 10)
    wide = zoo_memory.estimate_memory("mlp", widths=[64, 1000, 10])
    assert wide.params > 9 * small.params
    one = zoo_memory.estimate_memory("mobilenet_v1", 1)
    many = zoo_memory.estimate_memory("mobilenet_v1", 8)
    assert many.activations == 8 * one.activations and many.params == one.params
    assert one.peak(training=True) > one.peak()


def _payload(tmp_path, **changes):
    model = create_model("mlp", widths=[4, 3, 2])
    path = save_checkpoint(tmp_path / "ok.pt", model, metadata={"data": "digits"})
    payload = torch.load(path, weights_only=True)
    payload.update(changes)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(buffer.getvalue())
    return bad, payload


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metadata": "[1, 2]"}, "metadata is a JSON list"),
        ({"metadata": "null"}, "metadata is a JSON NoneType"),
        ({"state_dict": {"layers.0.weight": "a string"}}, "not tensors: 'layers.0.weight' \\(str\\)"),
        ({"spec": json.dumps({"name": "mlp", "kwargs": {"widths": [4, 3, 2]}, "edits": ["x"]})}, "'edits'"),
    ],
    ids=["metadata-list", "metadata-null", "string-weight", "string-edit"],
)
def test_damaged_checkpoints_are_clear_errors(tmp_path, capsys, change, message):
    bad, _ = _payload(tmp_path, **change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(bad)
    code, _, err = run(["compress", str(bad), "--out", str(tmp_path / "out.pt")], capsys)
    assert code == 2 and "damaged workbench checkpoint" in err


def test_payload_helper_keeps_a_good_checkpoint_loadable(tmp_path):
    bad, payload = _payload(tmp_path)
    assert payload["format"] == FORMAT and payload["version"] == VERSION
    load_checkpoint(bad)


def test_a_checkpoint_of_absurd_size_is_refused_before_anything_is_allocated(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo_memory, "available_memory", lambda: 16 * 10**9)
    spec = json.dumps({"name": "mlp", "kwargs": {"widths": [64, 1_000_000_000, 10]}})
    bad, _ = _payload(tmp_path, spec=spec)
    with pytest.raises(CheckpointError, match=r"needs about .* GB of memory .* more than the 16.0 GB available"):
        load_checkpoint(bad)


def test_negative_fine_tuning_epochs_are_refused(tmp_path, capsys):
    model = create_model("mlp", widths=[64, 8, 10])
    ckpt = save_checkpoint(tmp_path / "m.pt", model, metadata={"data": "digits"})
    code, _, err = run(["compress", str(ckpt), "--finetune", "-1", "--out", str(tmp_path / "o.pt")], capsys)
    assert code == 2 and "--finetune is a number of epochs" in err and not (tmp_path / "o.pt").exists()
