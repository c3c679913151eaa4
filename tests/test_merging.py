"""Neuron Merging (Kim et al. 2020) by cosine similarity, and REPAIR (Jordan et al. 2023) after any fusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.datasets import load_dataset
from workbench.errors import ConfigError
from workbench.graph import from_model
from workbench.select import Selection, get_selector
from workbench.surgery import Plan, apply, plan_from
from workbench.train import fit
from workbench.zoo import create_model


def scaled_copies() -> nn.Module:
    """Hidden units 4 and 5 copy units 1 (times 2.5) and 2; unit 6 is unit 3 negated."""
    torch.manual_seed(0)
    model = create_model("mlp", widths=[8, 7, 5, 3])
    first = model.layers[1]
    with torch.no_grad():
        first.weight[4], first.bias[4] = 2.5 * first.weight[1], 2.5 * first.bias[1]
        first.weight[5], first.bias[5] = first.weight[2], first.bias[2]
        first.weight[6], first.bias[6] = -first.weight[3], -first.bias[3]
    return model.eval()


def plan_keeping(keep: list[int]) -> Plan:
    """Dropped units all assigned to unit 0, as a selector that knows nothing of the copies might."""
    n = 7
    assign = np.array([u if u in keep else 0 for u in range(n)])
    return Plan({"layers.1": Selection("layers.1", n, np.array(keep), assign, np.zeros(n), method="test")})


def gap(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def test_neuron_merging_finds_the_copies_the_selection_did_not_assign():
    model, x = scaled_copies(), torch.randn(64, 8)
    plan = plan_keeping([0, 1, 2, 3])
    merged = apply(
        model, Plan({"layers.1": plan_keeping([0, 1, 2, 3, 6])["layers.1"]}), "neuron-merging", example_input=x
    )
    assert merged.layers[1].out_features == 5 and gap(merged, model, x) <= 1e-5  # 4 -> 1 (x2.5), 5 -> 2: exact
    assert gap(apply(model, plan, "merge", example_input=x), model, x) > 1e-2  # merged into unit 0: wrong
    # unit 6 is -unit 3: no positive multiple of a kept unit, so only pruned (a ReLU cannot carry it)
    near = apply(model, plan, "neuron-merging", example_input=x, merge_threshold=0.9)
    dropped = apply(model, plan, "drop", example_input=x)
    assert gap(near, model, x) < gap(dropped, model, x)
    with pytest.raises(ConfigError, match="cosine similarity"):
        apply(model, plan, "neuron-merging", example_input=x, merge_threshold=2.0)


def test_repair_gives_kept_units_their_statistics_back():
    torch.manual_seed(1)
    train = load_dataset("digits", split="train")
    val = load_dataset("digits", split="val")
    model = create_model("lenet300", inputs=64, classes=10)
    fit(model, train, epochs=8, lr=1e-3, random_state=0, quiet=True)
    model.eval()
    x = torch.as_tensor(val.inputs[:256]).float()
    graph = from_model(model, x[:2])
    plan = plan_from(graph, get_selector("magnitude"), keep=0.2)
    with torch.no_grad():
        reference = model(x)
    for fuse in ("merge", "drop"):
        plain = apply(model, plan, fuse, example_input=x[:2], graph=graph)
        repaired = apply(model, plan, fuse, example_input=x[:2], graph=graph, repair="batches", data=train)
        with torch.no_grad():
            error_plain = float((plain(x) - reference).pow(2).mean())
            error_repaired = float((repaired(x) - reference).pow(2).mean())
        assert error_repaired < error_plain, (fuse, error_plain, error_repaired)
    same = apply(
        model, plan_from(graph, get_selector("magnitude"), keep=1.0), "drop", graph=graph, repair="batches", data=train
    )
    assert gap(same, model, x) <= 1e-4  # nothing dropped: nothing to repair
    with pytest.raises(ConfigError, match="repair='batches' measures"):
        apply(model, plan, "merge", graph=graph, repair="batches")
