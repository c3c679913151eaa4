"""Files the workbench opens run no code: CIFAR-10 batches go through a restricted unpickler (or are read in
the binary layout, with no pickle at all), and no module of the workbench unpickles anything else."""

from __future__ import annotations

import builtins
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.datasets import load_dataset
from workbench.datasets.cifar import read_batch
from workbench.errors import DataError

SPLITS = ("train", "val", "test", "trainval")
NAMES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PACKAGE = Path(__file__).resolve().parents[1] / "workbench"


def images_and_labels(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.permutation(np.arange(n) % 10).astype(np.uint8)


def write_both_layouts(parent: Path, per_batch: int = 10, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    """The same images as ``cifar-10-batches-py`` and ``cifar-10-batches-bin`` folders under ``parent``."""
    python, binary = parent / "cifar-10-batches-py", parent / "cifar-10-batches-bin"
    python.mkdir(parents=True)
    binary.mkdir(parents=True)
    names = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for seed, name in enumerate(names):
        data, labels = images_and_labels(per_batch, seed)
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels], b"data": data}
        (python / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        (binary / f"{name}.bin").write_bytes(np.concatenate([labels[:, None], data], axis=1).tobytes())
    (python / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in NAMES]}, protocol))
    (binary / "batches.meta.txt").write_text("\n".join(NAMES) + "\n\n")


class RunsCommand:
    """Unpickling this runs ``function(argument)``: what a crafted batch would do."""

    def __init__(self, function, argument: str) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


@pytest.mark.parametrize("runner", ["os.system", "builtins.exec"])
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_a_crafted_batch_is_refused_before_it_runs_anything(tmp_path, runner, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    write_both_layouts(tmp_path)
    (tmp_path / "cifar-10-batches-bin").rename(tmp_path / "unused")
    marker = tmp_path / "marker"
    if runner == "os.system":
        payload, refused = RunsCommand(os.system, f"touch {marker}"), f"{os.system.__module__}.system"
    else:
        payload = RunsCommand(builtins.exec, f"open({str(marker)!r}, 'w').close()")
        refused = "__builtin__.exec" if protocol < 3 else "builtins.exec"  # Python 2 names in protocols 0-2
    data, labels = images_and_labels(10, 0)
    crafted = {b"labels": [int(v) for v in labels], b"data": data, b"run": payload}
    (folder / "test_batch").write_bytes(pickle.dumps(crafted, protocol=protocol))
    with pytest.raises(DataError, match=rf"test_batch: refused to unpickle {re.escape(refused)}") as error:
        load_dataset("cifar10", root=tmp_path, split="test")
    assert "numpy arrays" in str(error.value)
    assert not marker.exists()
    assert len(load_dataset("cifar10", root=tmp_path, split="val")) == 10  # the honest batches still load


def test_a_crafted_meta_file_is_refused(tmp_path):
    write_both_layouts(tmp_path)
    (tmp_path / "cifar-10-batches-bin").rename(tmp_path / "unused")
    marker = tmp_path / "marker"
    meta = {b"label_names": [n.encode() for n in NAMES], b"x": RunsCommand(os.system, f"touch {marker}")}
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps(meta))
    with pytest.raises(DataError, match="batches.meta: refused to unpickle"):
        load_dataset("cifar10", root=tmp_path, split="test")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_python_and_binary_layouts_give_identical_arrays(tmp_path, protocol):
    write_both_layouts(tmp_path, protocol=protocol)
    for split in SPLITS:
        python = load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py", split=split, normalize=True)
        binary = load_dataset("cifar10", root=tmp_path / "cifar-10-batches-bin", split=split, normalize=True)
        assert len(python) == len(binary) > 0
        assert torch.equal(python.inputs, binary.inputs) and torch.equal(python.targets, binary.targets)
        assert np.array_equal(python.indices, binary.indices)
        assert python.class_names == binary.class_names == list(NAMES)
    images, labels = read_batch(tmp_path / "cifar-10-batches-bin" / "test_batch.bin")
    expected_data, expected_labels = images_and_labels(10, 5)
    assert np.array_equal(images.reshape(10, -1), expected_data) and np.array_equal(labels, expected_labels)
    assert images.shape == (10, 3, 32, 32) and labels.dtype == np.int64


def test_the_layout_is_detected_from_the_parent(tmp_path):
    write_both_layouts(tmp_path)
    (tmp_path / "cifar-10-batches-py").rename(tmp_path / "elsewhere")
    assert len(load_dataset("cifar10", root=tmp_path, split="test")) == 10  # the binary subfolder
    (tmp_path / "cifar-10-batches-bin").rename(tmp_path / "bin-elsewhere")
    (tmp_path / "elsewhere").rename(tmp_path / "cifar-10-batches-py")
    assert len(load_dataset("cifar10", root=tmp_path, split="test")) == 10  # the python subfolder
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no CIFAR-10 batches found.*test_batch\.bin \(binary layout\)"):
        load_dataset("cifar10", root=tmp_path / "empty")


def test_binary_batches_that_are_truncated_or_mislabelled_name_the_file(tmp_path):
    write_both_layouts(tmp_path)
    folder = tmp_path / "cifar-10-batches-bin"
    path = folder / "test_batch.bin"
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(DataError, match=r"test_batch\.bin: 30630 bytes, not a whole number of 3073-byte"):
        load_dataset("cifar10", root=folder, split="test")
    path.write_bytes(b"\x0a" + raw[1:])
    with pytest.raises(DataError, match=r"test_batch\.bin: labels range over \d\.\.10, expected 0\.\.9"):
        load_dataset("cifar10", root=folder, split="test")
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match=r"missing CIFAR-10 file\(s\) data_batch_3\.bin"):
        load_dataset("cifar10", root=folder, split="train")
    (folder / "batches.meta.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"batches\.meta\.txt: 2 class names, expected 10"):
        load_dataset("cifar10", root=folder, split="train")


# ------------------------------------------------------------------------------- every file the workbench opens

UNSAFE = [
    (r"\bpickle\.(load|loads|Unpickler)\(", "pickle.load / loads / a plain Unpickler"),
    (r"\b(joblib|dill|cloudpickle|marshal|shelve)\.(load|loads|open)\b", "a pickle-based loader"),
    (r"allow_pickle\s*=\s*True", "np.load(allow_pickle=True)"),
    (r"weights_only\s*=\s*False", "torch.load(weights_only=False)"),
    (r"\b(yaml\.load|yaml\.unsafe_load|read_pickle)\b", "a loader that builds arbitrary objects"),
    (r"(?<![.\w])(eval|exec)\(", "eval / exec"),
]


def test_no_module_of_the_workbench_loads_files_in_a_way_that_runs_code():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern, what in UNSAFE:
            for match in re.finditer(pattern, text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {what}")
        if re.search(r"class \w+\(pickle\.Unpickler\)", text) and "def find_class" not in text:
            found.append(f"{path.relative_to(PACKAGE.parent)}: an Unpickler subclass that does not restrict find_class")
        for match in re.finditer(r"torch\.load\((?P<args>[^)]*)\)", text):
            if "weights_only=True" not in match.group("args"):
                found.append(f"{path.relative_to(PACKAGE.parent)}: torch.load without weights_only=True")
        for match in re.finditer(r"\bnp\.load\((?P<args>[^)]*)\)", text):
            if "allow_pickle=False" not in match.group("args"):
                found.append(f"{path.relative_to(PACKAGE.parent)}: np.load without allow_pickle=False")
    assert not found, "\n".join(found)
