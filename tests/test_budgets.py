"""Budgets by cost: per-group fractions that leave a target share of multiply-adds or parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError
from workbench.graph import from_model
from workbench.metrics import count_macs, count_params
from workbench.select import get_selector
from workbench.surgery import apply
from workbench.surgery.budgets import cost_fractions, plan_for_cost
from workbench.zoo import create_model


@pytest.mark.parametrize("scope", ["uniform", "global"])
@pytest.mark.parametrize("cost, target", [("macs", 0.5), ("params", 0.33)])
def test_the_rebuilt_network_meets_the_target_cost(scope, cost, target):
    torch.manual_seed(0)
    model = create_model("vgg_small").eval()
    x = torch.randn(2, *model.input_shape)
    graph = from_model(model, x)
    plan = plan_for_cost(graph, get_selector("dpp", mode="map"), target, cost=cost, scope=scope)
    small = apply(model, plan, example_input=x, graph=graph)
    measure = (lambda m: count_macs(m, x[:1])) if cost == "macs" else count_params
    reached = measure(small) / measure(model)
    assert abs(reached - target) <= 0.02 and abs(reached - plan.meta["predicted"]) < 1e-9
    fractions = {name: selection.fraction for name, selection in plan.items()}
    if scope == "uniform":
        assert max(fractions.values()) - min(fractions.values()) < 0.1
    else:  # one importance scale: the groups keep different shares, each at least min_keep
        assert max(fractions.values()) - min(fractions.values()) > 0.1 and min(fractions.values()) >= 0.05


def test_a_target_below_what_the_minimum_allows_is_said():
    model = create_model("mlp", widths=[16, 32, 32, 4])
    graph = from_model(model, torch.randn(2, 16))
    with pytest.warns(UserWarning, match="not 0.010"):
        fractions = cost_fractions(graph, 0.01, cost="params", min_keep=0.25)
    assert all(f >= 0.25 for f in fractions.values())
    for bad in ({"target": 0.0}, {"target": float("nan")}, {"target": 0.5, "cost": "latency"}):
        with pytest.raises(ConfigError):
            cost_fractions(graph, **{"target": 0.5, **bad})
    np.testing.assert_allclose(sum(cost_fractions(graph, 1.0).values()), 2.0)
