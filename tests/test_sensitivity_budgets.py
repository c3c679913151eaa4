"""Budgets chosen from per-layer sensitivity: groups cut as far as their measured loss on val allows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from toy import STEADY, toy_data

from workbench.compression import compress, sensitivity
from workbench.errors import ConfigError
from workbench.graph import from_model
from workbench.surgery.budgets import check_budget, cost_fractions, predicted_losses
from workbench.train import fit


class Deep(nn.Sequential):
    """An 8-32-32-3 MLP with two hidden groups of equal cost share."""

    input_shape = (8,)

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))


def test_predicted_losses_interpolate_extend_and_never_rise_with_more_units():
    losses = predicted_losses({0.25: 0.4, 0.5: 0.1, 0.75: 0.15}, 8)  # 0.75 is noise above 0.5
    plain = losses - 1e-9 * (8 - np.arange(9))
    assert plain[8] == 0.0 and plain[4] == pytest.approx(0.15) and plain[6] == pytest.approx(0.15)
    assert plain[2] == pytest.approx(0.4)
    assert plain[3] == pytest.approx(0.25)  # halfway between 0.4 and 0.1
    assert plain[0] == pytest.approx(0.4 + 1.2 * 0.25)  # the first segment's slope (1.2 per unit fraction) extended
    assert np.all(np.diff(losses) < 0)  # strictly fewer losses with more units (ties broken)
    assert np.all(predicted_losses({0.5: -0.2}, 4) >= 0)  # a gain on val is read as no loss
    with pytest.raises(ConfigError, match="below 1"):
        predicted_losses({1.0: 0.0}, 4)


def test_a_sensitive_group_keeps_more_at_the_same_cost():
    model = Deep()
    graph = from_model(model, torch.randn(2, 8))
    names = [g.name for g in graph.prunable_groups()]
    assert len(names) == 2
    curves = {names[0]: {0.25: 0.5, 0.5: 0.3, 0.75: 0.1}, names[1]: {0.25: 0.01, 0.5: 0.0, 0.75: 0.0}}
    fractions = cost_fractions(graph, 0.5, cost="params", scope="sensitivity", sensitivity=curves, tolerance=0.05)
    assert fractions[names[0]] > 0.7 and fractions[names[1]] < 0.4
    flipped = {names[0]: curves[names[1]], names[1]: curves[names[0]]}
    again = cost_fractions(graph, 0.5, cost="params", scope="sensitivity", sensitivity=flipped)
    assert again[names[1]] > 0.7 and again[names[0]] < fractions[names[0]]
    uniform = cost_fractions(graph, 0.5, cost="params")
    assert abs(uniform[names[0]] - uniform[names[1]]) < 0.05  # the uniform scope ignores sensitivity


def test_compress_to_a_cost_with_measured_sensitivity():
    model = Deep()
    fit(model, toy_data(256), epochs=4, lr=1e-2, random_state=0, **STEADY)
    val = toy_data(128, seed=5)
    measured = sensitivity(model, val, fractions=(0.25, 0.5))
    assert set(measured.losses()) == set(measured.curves)
    assert measured.losses()[next(iter(measured.curves))][0.25] == pytest.approx(
        measured.base - measured.curves[next(iter(measured.curves))][0]
    )
    result = compress(model, budget={"params": 0.5, "scope": "sensitivity"}, sensitivity=measured, latency=False)
    assert abs(result.budget["reached"] - 0.5) <= 0.02
    assert result.budget["scope"] == "sensitivity"


def test_sensitivity_budgets_say_what_is_missing():
    model = Deep()
    assert check_budget({"macs": 0.5, "scope": "sensitivity"})["scope"] == "sensitivity"
    with pytest.raises(ConfigError, match="needs the per-layer sensitivity"):
        compress(model, budget={"macs": 0.5, "scope": "sensitivity"}, latency=False)
    with pytest.raises(ConfigError, match="does not read it"):
        compress(model, keep=0.5, sensitivity={"x": {0.5: 0.1}}, latency=False)
    graph = from_model(model, torch.randn(2, 8))
    with pytest.raises(ConfigError, match="none for"):
        cost_fractions(graph, 0.5, scope="sensitivity", sensitivity={})


def test_cli_and_study_place_a_cost_budget_by_sensitivity(tmp_path, capsys):
    from tests.test_cost_budgets import STUDY
    from workbench.checkpoints import save_checkpoint
    from workbench.cli import main
    from workbench.study import Store, load_study, run_study
    from workbench.zoo import create_model

    ckpt = save_checkpoint(tmp_path / "m.pt", create_model("mlp", widths=[64, 48, 32, 10]), metadata={"data": "digits"})
    args = ["compress", str(ckpt), "--params", "0.5", "--scope", "sensitivity", "--json", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "small.pt")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["budget"]["scope"] == "sensitivity"
    assert abs(report["after"]["params"] / report["before"]["params"] - 0.5) <= 0.02

    path = tmp_path / "costs.toml"
    budget = "budgets = [{ params = 0.5, scope = 'sensitivity' }] #"
    path.write_text(STUDY.replace("budgets = [0.5,", budget).replace("           {", "# {"))
    outcome = run_study(load_study(path), quiet=True)
    assert (outcome.done, outcome.failed) == (2, 0)
    with Store(tmp_path / "costs.sqlite", readonly=True) as store:
        run = next(row for row in store.rows() if row["kind"] == "compress")
    assert run["config"]["budget"]["label"] == "params 0.5 sensitivity"
    assert abs(run["metrics"]["budget_reached"] - 0.5) <= 0.032  # one hidden unit of 32 is 3.1% of the parameters
