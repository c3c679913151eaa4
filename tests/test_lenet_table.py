"""The LeNet table analysis: its protocol (equal budgets, tuning on val only, seeds with intervals) on tiny
runs, and end to end on a user's MNIST-style IDX folder (here: digits written as IDX)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from analysis_scripts import load_analysis
from sklearn.datasets import load_digits

from workbench.errors import ConfigError


def _load_table():
    return load_analysis("lenet_table")


@pytest.fixture
def table(monkeypatch):
    """The analysis module with a quick baseline (4 epochs) for every data set."""
    module = _load_table()
    for proto in module.PROTOCOLS.values():
        monkeypatch.setitem(proto, "base", {**proto["base"], "epochs": 4})
    return module


def _methods(table, *keys):
    """The rows named by ``keys``, each with its first two candidate settings (tuning still has a choice)."""
    return tuple(table.Method(**{**m.__dict__, "grid": m.grid[:2]}) for m in table.METHODS if m.key in keys)


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


def test_tuning_sees_val_only_and_every_row_gets_the_same_budget(table, monkeypatch, tmp_path):
    seen = []
    original = table.choose

    def spy(method, ctx, val, *args, **kwargs):
        seen.append((method.key, ctx.train.split, val.split))
        return original(method, ctx, val, *args, **kwargs)

    monkeypatch.setattr(table, "choose", spy)
    monkeypatch.setattr(table, "METHODS", _methods(table, "prune", "soft", "w8a8"))
    monkeypatch.setattr(table, "_models", lambda train: [("lenet300", {"inputs": 64, "classes": 10})])
    out = tmp_path / "table.json"
    args = ["--data", "digits", "--seeds", "2", "--budget-epochs", "2", "--quiet", "--json", str(out)]
    assert table.main(args) == 0
    result = json.loads(out.read_text())
    # every tuned choice is made once per model (first seed), on val, with models trained on train
    assert sorted(seen) == [(k, "train", "val") for k in ("prune", "soft", "w8a8")]
    for row in result["rows"]:
        if row["teacher"] == "-":
            continue
        assert row["chosen_on"] == "val" and row["chosen"] in [t for m in table.METHODS for t in m.grid[:2]]
        assert (row["budget_epochs"], row["budget_samples"]) == (2, 2 * 1078)  # counted from the Histories
        assert row["schedule"] == "equal"
        assert row["teacher"] == ("none" if row["method"].startswith("soft") else "base model")
        assert (row["trials"] is not None) == (row["seed"] == 0)  # the first seed tunes, the second reuses
        if row["trials"]:
            assert len(row["trials"]) > 1 and all("val_accuracy" in t for t in row["trials"])
    for row in result["summary"]:
        assert row["seeds"] == 2 and not row["one_seed"] and row["interval"] == "wilson"  # seeds and test set
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]


def test_choose_refuses_the_test_split(table):
    from workbench.datasets import load_dataset

    test = load_dataset("digits", split="test")
    with pytest.raises(ConfigError, match="val"):
        table.choose(table.METHODS[0], None, test, 90.0, 2)


def test_pick_takes_the_most_compressed_candidate_within_the_tolerance(table):
    trials = [
        {"val_accuracy": 97.0, "ratio": 5.0},
        {"val_accuracy": 96.8, "ratio": 9.0},
        {"val_accuracy": 95.0, "ratio": 20.0},
    ]
    assert table._pick("size", trials, base_val=97.0) == 1
    assert table._pick("accuracy", trials, base_val=97.0) == 0
    assert table._pick("size", trials, base_val=99.0) == 0  # none within: the best val accuracy


def test_paper_schedules_are_labelled_per_row(table, monkeypatch):
    monkeypatch.setitem(table.PROTOCOLS["digits"], "paper_round_epochs", 1)
    monkeypatch.setattr(table, "METHODS", _methods(table, "prune"))
    prune = table.METHODS[0]
    rows, summary = table.run("digits", None, False, [0], log=lambda *a: None, paper_schedules=True)
    pruned = next(r for r in summary if r["method"] == prune.name)
    assert pruned["schedule"] == "own" and pruned["budget_epochs"] == len(table.PROTOCOLS["digits"]["rounds"])
    assert pruned["one_seed"] and pruned["interval"] == "wilson"  # the test set's Wilson interval
    text = table.format_rows(summary)
    assert "own" in text and "one seed" in text


def test_summary_gives_intervals_and_paired_changes(table):
    def row(method, seed, accuracy, teacher="base model"):
        sizes = {"weights": 10, "nonzero": 5, "param_reduction": 2.0, "stored_bytes": 8, "ratio": 4.0}
        return {
            "model": "m", "method": method, "seed": seed, "accuracy": accuracy, "n_test": 400, "teacher": teacher,
            "weights_only_ratio": 4.0, "schemes": [], "budget_epochs": 3, "budget_samples": 30, "schedule": "equal",
            "chosen": {"lr": 1e-3}, "chosen_on": "val", "seconds": 1.0, **sizes,
        }  # fmt: skip

    rows = [row("base", s, a, "-") for s, a in enumerate((90.0, 92.0, 94.0))]
    rows += [row("x", s, a) for s, a in enumerate((89.0, 91.0, 93.5))]
    summary = {r["method"]: r for r in table.summarize(rows)}
    assert summary["x"]["change"] == pytest.approx(-0.83, abs=0.01)  # paired per seed: -1, -1, -0.5
    assert summary["x"]["change_high"] < 0 and summary["x"]["distinguishable"]
    assert summary["base"]["accuracy_high"] - summary["base"]["accuracy_low"] > 4  # t over seeds, not binomial


def test_lenet_table_on_an_idx_folder(table, monkeypatch, digits_idx, tmp_path, capsys):
    monkeypatch.setattr(table, "METHODS", _methods(table, "prune", "deep", "binary"))
    out = tmp_path / "table.json"
    args = ["--data", "idx", "--root", str(digits_idx), "--seeds", "1", "--budget-epochs", "4", "--quiet"]
    assert table.main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    summary = {(r["model"], r["method"].split(" (")[0]): r for r in result["summary"]}
    assert {model for model, _ in summary} == {"lenet300", "lenet5"}
    assert len(result["rows"]) == len(result["summary"]) == 8
    for model in ("lenet300", "lenet5"):
        base = summary[model, "baseline"]
        assert base["accuracy"] > 60 and base["ratio"] == 1.0
        pruned = summary[model, "magnitude pruning + retrain"]
        deep = summary[model, "Deep Compression"]
        assert pruned["param_reduction"] > 7 and pruned["accuracy"] > 60
        assert deep["nonzero"] == pytest.approx(pruned["nonzero"], rel=0.01)  # pruning's chosen rates
        assert deep["ratio"] > 2.5 * pruned["ratio"]  # sharing + Huffman on top of the same pruning
        assert summary[model, "BinaryConnect"]["weights_only_ratio"] == pytest.approx(32, rel=0.01)
        assert {pruned["budget_epochs"], deep["budget_epochs"]} == {4}
    assert "Deep Compression" in printed and "lenet5" in printed and "one seed" in printed


def test_lenet_table_rejects_bad_arguments(capsys):
    table = _load_table()
    with pytest.raises(SystemExit):
        table.main(["--data", "idx"])
    assert "--root" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        table.main(["--seeds", "0"])
    with pytest.raises(SystemExit):
        table.main(["--budget-epochs", "1"])
    assert "at least 2" in capsys.readouterr().err


def test_goals_count_a_loss_of_points_as_missed(table):
    rows = [
        {"model": "m", "method": "magnitude pruning + retrain (Han 2015)", "param_reduction": 16.8, "change": -2.6},
        {"model": "m", "method": "Deep Compression (prune+share+Huffman)", "ratio": 40.0, "change": -0.1},
    ]
    pruning, deep = table.goals(rows)
    assert pruning.endswith("missed") and deep.endswith("met")
