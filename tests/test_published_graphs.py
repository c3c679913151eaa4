"""Every published-style architecture (tests/published_models.py) is traced, planned and rebuilt, and dropping
units whose readers were zeroed leaves its function unchanged (analyses/bring_your_own.py's silent check)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from analysis_scripts import load_analysis
from published_models import PUBLISHED, example_input

from workbench.errors import SurgeryError
from workbench.graph import from_model
from workbench.select import get_selector
from workbench.surgery import apply, plan_from, supported_groups

#: network -> (tracer, prunable groups) as measured; fewer prunable groups is a regression
EXPECTED = {
    "resnet18": ("fx-concrete", 12),
    "resnet56": ("fx", 28),
    "vgg16_bn": ("fx-concrete", 13),
    "vgg19_bn": ("fx-concrete", 16),
    "preact_resnet18": ("fx", 12),
    "mobilenet_v2": ("fx", 26),
    "densenet121": ("fx", 62),
    "googlenet": ("fx", 64),
    "inception_v4": ("fx", 36),
    "resnext29": ("fx", 22),
    "se_resnet20": ("fx", 21),
    "senet18": ("fx", 20),
    "xception": ("fx", 11),
    "depthwise_multiplier": ("fx", 3),
    "nasnet_like": ("dynamic", 8),
    "vit_tiny": ("fx", 3),
    "attention_net": ("fx", 1),
    "groupnorm_net": ("fx", 6),
    "tied_weights": ("fx", 3),
    "unet_small": ("fx", 12),
    "text_cnn": ("fx", 2),
}


def _analysis():
    return load_analysis("bring_your_own")


def test_every_published_network_is_expected():
    assert set(EXPECTED) == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_network_is_rebuilt_exactly(name):
    analysis = _analysis()
    torch.manual_seed(0)
    model = PUBLISHED[name]().eval()
    analysis.randomize_bn(model)
    x = example_input(name)
    with pytest.warns(UserWarning, match="control flow") if name == "nasnet_like" else contextlib.nullcontext():
        graph = from_model(model, x)
    tracer, prunable = EXPECTED[name]
    assert graph.tracer == tracer and len(graph.prunable_groups()) == prunable
    supported = supported_groups(model, graph=graph)
    assert all(reason is None for reason in supported.values()), supported
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    fuse = "merge"
    if name == "groupnorm_net":  # a unit is a GroupNorm group of channels: nothing of its own to merge by
        with pytest.raises(SurgeryError, match="have none of their own"):
            apply(model, plan, fuse=fuse, example_input=x, graph=graph)
        fuse = "drop"
    small = apply(model, plan, fuse=fuse, example_input=x, graph=graph)
    with torch.no_grad():
        assert small(x).shape == model(x).shape
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    assert analysis.silent_check(model, graph, supported, x).startswith("ok"), name
