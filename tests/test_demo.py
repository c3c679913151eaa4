"""The main job: the baselines reach their targets within the demo budget, and results are saved."""
from __future__ import annotations

import json

from workbench.demo import run_demo
from workbench.train import load_checkpoint


def test_demo_baselines_reach_their_targets(tmp_path):
    rows = run_demo(quiet=True, out=tmp_path)
    accuracy = {row["run"]: row["test_accuracy"] for row in rows}
    assert accuracy["LeNet-300-100 / digits"] >= 0.97
    assert accuracy["MLP 40-100-100-10 / MNIST-1D"] >= 0.65  # the MNIST-1D paper's MLP baseline
    assert accuracy["CNN-1D / MNIST-1D"] >= 0.90
    assert json.loads((tmp_path / "results.json").read_text()) == rows
    model, meta = load_checkpoint(tmp_path / "lenet300-digits.pt")
    assert meta["data"] == "digits" and model.layers[1].in_features == 64
