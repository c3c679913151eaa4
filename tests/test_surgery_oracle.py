"""Graph slicing checked against torch-pruning, an independent rebuild of the same plans (tests/tp_oracle.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tp_oracle import SIZES, difference, random_plan, randomize_bn, tp_apply, tp_reasons

from workbench.graph import from_model
from workbench.metrics import count_params
from workbench.surgery import apply, supported_groups
from workbench.zoo import create_model, example_input, list_models

# merge and lsq where the couplings differ most: residual streams (resnet), depthwise groups (mobilenet)
CASES = [(name, "drop") for name in sorted(SIZES)] + [
    ("resnet", "merge"),
    ("resnet", "lsq"),
    ("mobilenet_v1", "merge"),
    ("mobilenet_v1", "lsq"),
    ("enet", "merge"),
    ("lenet5", "lsq"),
]


def test_every_zoo_model_is_covered():
    assert set(SIZES) == {name for name in list_models() if not name.startswith("_")}  # "_": registered by tests


def build(name: str):
    torch.manual_seed(0)
    model = create_model(name, **SIZES[name]).eval()
    randomize_bn(model)
    x = example_input(model, 4)
    return model, x, from_model(model, x)


@pytest.mark.parametrize("name, fuse", CASES)
def test_slicing_rebuilds_what_torch_pruning_rebuilds(name, fuse):
    model, x, graph = build(name)
    by_tp = tp_reasons(model, graph, x)
    assert not any(supported_groups(model, graph, x).values())  # slicing rebuilds every group
    common = [group for group in graph.prunable_groups() if by_tp[group.name] is None]
    assert len(common) >= len(graph.prunable_groups()) - 1
    plan = random_plan(common, np.random.default_rng(0))
    data = torch.randn(32, *x.shape[1:]) if fuse == "lsq" else None
    sliced = apply(model, plan, fuse, example_input=x, graph=graph, data=data)
    oracle = tp_apply(model, plan, fuse, example_input=x, graph=graph, data=data)
    assert difference(sliced, oracle, torch.randn(3, *x.shape[1:])) <= 1e-5  # same shapes, same function
    assert count_params(sliced) < count_params(model)


def test_torch_pruning_cannot_couple_only_the_enet_trunk():
    model, x, graph = build("enet")
    refused = {name: why for name, why in tp_reasons(model, graph, x).items() if why is not None}
    assert list(refused) == ["down2.expand"]  # tied by zero-padding and max-unpooling indices
    assert "differently from the graph" in refused["down2.expand"]
    plan = random_plan([graph.group("down2.expand")], np.random.default_rng(1))
    rebuilt = apply(model, plan, example_input=x, graph=graph)  # graph slicing rebuilds it all the same
    assert rebuilt.down2.expand.out_channels == len(plan["down2.expand"].keep) < model.down2.expand.out_channels


def test_per_graph_work_is_done_once():
    from workbench.surgery.slicing import slicing_problems

    model, x, graph = build("resnet")
    problems = slicing_problems(graph)
    assert slicing_problems(graph) is problems  # computed once, reused by apply and supported_groups
    assert supported_groups(model, graph) == problems and supported_groups(model, graph) is not problems
