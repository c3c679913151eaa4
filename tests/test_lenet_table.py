"""The LeNet table analysis end to end on a user's MNIST-style IDX folder (here: digits written as IDX)."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

ROOT = Path(__file__).resolve().parents[1]


def _load_table():
    spec = importlib.util.spec_from_file_location("lenet_table", ROOT / "analyses" / "lenet_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def digits_idx(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mnist")
    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:1437], order[1437:]
    _write_idx(folder / "train-images-idx3-ubyte", images[train])
    _write_idx(folder / "train-labels-idx1-ubyte", labels[train])
    _write_idx(folder / "t10k-images-idx3-ubyte", images[test])
    _write_idx(folder / "t10k-labels-idx1-ubyte", labels[test])
    return folder


def test_lenet_table_on_an_idx_folder(digits_idx, tmp_path, capsys):
    table = _load_table()
    out = tmp_path / "table.json"
    assert table.main(["--data", "idx", "--root", str(digits_idx), "--quick", "--quiet", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    summary = {(r["model"], r["method"].split(" (")[0]): r for r in result["summary"]}
    assert {model for model, _ in summary} == {"lenet300", "lenet5"}
    assert len(result["rows"]) == len(result["summary"]) == 20
    for model in ("lenet300", "lenet5"):
        base = summary[model, "baseline"]
        assert base["accuracy"] > 85 and base["ratio"] == 1.0
        pruned = summary[model, "magnitude pruning + retrain"]
        deep = summary[model, "Deep Compression"]
        assert pruned["param_reduction"] > 10 and pruned["accuracy"] > base["accuracy"] - 5
        assert deep["nonzero"] == pruned["nonzero"] and deep["accuracy"] > base["accuracy"] - 5
        assert deep["ratio"] > 2.5 * pruned["ratio"]  # sharing + Huffman on top of the same pruning
        assert summary[model, "BinaryConnect"]["weights_only_ratio"] == pytest.approx(32, rel=0.01)
    assert summary["lenet300", "Deep Compression"]["ratio"] > 30
    assert "Deep Compression" in printed and "lenet5" in printed


def test_lenet_table_rejects_bad_arguments(capsys):
    table = _load_table()
    with pytest.raises(SystemExit):
        table.main(["--data", "idx"])
    assert "--root" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        table.main(["--seeds", "0"])
