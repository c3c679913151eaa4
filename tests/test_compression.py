"""The orchestration layer: one call selects, rebuilds, retrains and measures; plan warnings become notes."""

from __future__ import annotations

import pytest
import torch
from toy import tiny_mlp, toy_data

from workbench.compression import Retraining, compress
from workbench.errors import ConfigError, PlanWarning
from workbench.train import evaluate, fit


@pytest.fixture(scope="module")
def trained():
    model = tiny_mlp()
    model.input_shape = (8,)
    fit(model, toy_data(256), epochs=10, lr=1e-2, quiet=True)
    return model


def test_compress_rebuilds_measures_and_retrains_without_touching_the_input(trained):
    before = {key: value.clone() for key, value in trained.state_dict().items()}
    data, test = toy_data(256), toy_data(256, seed=1)
    plain = compress(trained, keep=0.5, train=data, test=test, latency=False)
    assert not plain.retrained and plain.after["accuracy"] == plain.rebuilt["accuracy"]
    assert plain.after["params"] < plain.before["params"] and plain.model[0].out_features == 8
    assert plain.after["latency_ms"] is None and plain.before["accuracy"] == evaluate(trained, test)["accuracy"]
    distilled = compress(
        trained, keep=0.5, train=data, test=test, latency=False, retrain=Retraining(method="distill", epochs=2, lr=1e-2)
    )
    assert distilled.retrained and distilled.rebuilt == plain.rebuilt  # same seed, same rebuild
    assert (plain.retrain_samples, plain.teacher) == (0, "none")
    assert (distilled.retrain_samples, distilled.teacher) == (2 * 256, "base model")  # the budget spent, shown
    assert not torch.equal(distilled.model[0].weight, plain.model[0].weight)
    assert all(torch.equal(before[key], value) for key, value in trained.state_dict().items())


def test_plan_warnings_become_notes_and_are_filtered_by_class(trained, monkeypatch):
    import workbench.surgery.plan_builder as builder
    from workbench.graph import from_model
    from workbench.select import get_selector
    from workbench.surgery import plan_from

    monkeypatch.setattr(builder, "unrebuildable_groups", lambda graph: {"0": "a layer surgery cannot slice"})
    with pytest.warns(PlanWarning, match="left out of the plan"):
        plan = plan_from(from_model(trained), get_selector("magnitude"), keep=0.5)
    assert len(plan) == 0
    result = compress(trained, keep=0.5, latency=False)
    assert result.notes == ["left out of the plan, as surgery cannot rebuild them: '0' (a layer surgery cannot slice)"]
    assert result.after["params"] == result.before["params"]


def test_unknown_retraining_method_is_a_config_error():
    with pytest.raises(ConfigError, match="use one of none, finetune, distill"):
        Retraining(method="prune")


def _imported(path):
    import ast

    tree = ast.parse(path.read_text())
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }


def test_surgery_reads_selections_without_the_selectors_and_orchestration_sits_below_study():
    from pathlib import Path

    import workbench

    root = Path(workbench.__file__).parent
    for path in (root / "surgery").glob("*.py"):
        found = _imported(path)
        assert not {
            m
            for m in found
            if m.startswith(("workbench.select.", "workbench.compression", "workbench.study"))
            or m == "workbench.select"
        }, path.name
    assert not {m for m in _imported(root / "compression.py") if m.startswith(("workbench.study", "workbench.cli"))}


def test_selector_fallbacks_become_notes(trained):
    """A SelectionWarning (here: more blocks asked than 16 units can hold) is a note of the result too."""
    result = compress(trained, method="sbm", selector_params={"n_blocks": 12}, keep=0.5, latency=False)
    assert len(result.notes) == 1 and "n_blocks" in result.notes[0]
    assert result.model[0].out_features == 8
