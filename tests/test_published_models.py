"""The published-style networks of ``tests/published_models.py`` run, are deterministic and have the
structure they are there to exercise (the graph / surgery tests on them come separately, except the fold and
macs-budget path of analyses/bring_your_own.py on two of them)."""

from __future__ import annotations

import math
import time

import pytest
import torch
from analysis_scripts import load_analysis
from published_models import PUBLISHED, example_input
from torch import nn

from workbench.graph import from_model
from workbench.metrics import count_params
from workbench.select import get_selector
from workbench.surgery import plan_from


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def _outputs(name: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model, x = PUBLISHED[name](), example_input(name)
    with torch.no_grad():
        return model, x, model(x)


def test_registry_is_large_enough():
    assert len(PUBLISHED) >= 16
    with pytest.raises(KeyError, match="unknown published model"):
        example_input("no_such_model")


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_runs_fast_and_deterministically(name):
    model, x, out = _outputs(name)
    assert not model.training
    assert out.shape[0] == x.shape[0] == 2
    assert torch.isfinite(out).all()
    times = []
    for _ in range(3):  # best of three: a busy machine should not fail the test
        start = time.perf_counter()
        with torch.no_grad():
            model(x)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.1
    again = PUBLISHED[name]()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert torch.equal(example_input(name), x)


@pytest.mark.parametrize("name", [n for n in PUBLISHED if n not in ("unet_small", "text_cnn")])
def test_image_classifiers(name):
    _, x, out = _outputs(name)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert out.shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet18", "vgg16_bn"])
def test_return_features_keyword(name):
    model, x, out = _outputs(name)
    with torch.no_grad():
        logits, features = model(x, return_features=True)
    assert torch.equal(logits, out)
    assert features.dim() == 2 and features.shape[0] == 2


def test_resnet56_option_a_has_no_projection_shortcuts():
    model = PUBLISHED["resnet56"]()
    convs = _convs(model)
    assert len(convs) + 1 == 56  # 55 convolutions and the classifier
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(type(m).__name__ == "LambdaLayer" for m in model.modules()) == 2


def test_grouped_and_depthwise_convolutions():
    grouped = [c for c in _convs(PUBLISHED["resnext29"]()) if c.groups > 1]
    assert len(grouped) == 9 and all(c.groups == 8 and c.in_channels > c.groups for c in grouped)
    for name in ("mobilenet_v2", "xception", "nasnet_like"):
        depthwise = [c for c in _convs(PUBLISHED[name]()) if c.groups > 1]
        assert depthwise and all(c.groups == c.in_channels == c.out_channels for c in depthwise)
    multiplier = [c for c in _convs(PUBLISHED["depthwise_multiplier"]()) if c.groups > 1]
    assert len(multiplier) == 2 and all(
        c.groups == c.in_channels and c.out_channels == 2 * c.in_channels for c in multiplier
    )


def test_concatenating_networks():
    densenet = PUBLISHED["densenet121"]()
    assert [len(getattr(densenet, f"dense{i}")) for i in range(1, 5)] == [6, 12, 24, 16]
    googlenet = PUBLISHED["googlenet"]()
    assert sum(type(m).__name__ == "Inception" for m in googlenet.modules()) == 9


def test_squeeze_excitation():
    se = PUBLISHED["se_resnet20"]()
    assert sum(type(m).__name__ == "SELayer" for m in se.modules()) == 9
    senet = PUBLISHED["senet18"]()
    assert all(
        hasattr(block, "fc1") and hasattr(block, "fc2")
        for layer in senet.children()
        if isinstance(layer, nn.Sequential)
        for block in layer
    )


def test_attention_networks():
    vit = PUBLISHED["vit_tiny"]()
    attentions = [m for m in vit.modules() if isinstance(m, nn.MultiheadAttention)]
    assert len(attentions) == 2 and all(a.batch_first for a in attentions)
    assert isinstance(vit.cls_token, nn.Parameter) and vit.cls_token.shape == (1, 1, 32)
    assert any(isinstance(m, nn.LayerNorm) for m in vit.modules())
    hand = PUBLISHED["attention_net"]()
    assert all(isinstance(getattr(hand.attn, n), nn.Linear) for n in "qkv")
    assert not any(isinstance(m, nn.MultiheadAttention) for m in hand.modules())


def test_normalization_and_tied_weights():
    assert sum(isinstance(m, nn.GroupNorm) for m in PUBLISHED["groupnorm_net"]().modules()) == 9
    tied, x = PUBLISHED["tied_weights"](), example_input("tied_weights")
    calls = []
    tied.shared.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        tied(x)
    assert len(calls) == 2


def test_decoder_and_text_network():
    unet, x, out = _outputs("unet_small")
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in unet.modules()) == 2
    assert out.shape == (2, 4, 32, 32)
    text, tokens, logits = _outputs("text_cnn")
    assert tokens.dtype == torch.long and tokens.shape == (2, 32) and int(tokens.max()) < text.embedding.num_embeddings
    assert text.act.num_parameters == 16 and logits.shape == (2, 4)


@pytest.mark.parametrize("name", ["vgg16_bn", "resnet18"])
def test_bring_your_own_fold_and_macs_budget(name):
    """analyses/bring_your_own.py's fold / fold+df rebuilds and macs budget on a plain BatchNorm net and a residual
    one: folding keeps the drop rebuild's size, the data-free repair keeps the output change bounded, the budget
    is met."""
    analysis = load_analysis("bring_your_own")
    torch.manual_seed(0)
    model, x = PUBLISHED[name](), example_input(name)
    analysis.randomize_bn(model)
    graph = from_model(model, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    drop, fold, repaired = (analysis.rebuild(model, plan, c, x, graph, None) for c in ("drop", "fold", "fold+df"))
    assert count_params(fold) == count_params(repaired) == count_params(drop) < count_params(model)
    change, repaired_change = (analysis.relative_difference(m, model, x) for m in (fold, repaired))
    assert 0 < change < 1 and math.isfinite(repaired_change) and 0 < repaired_change <= 10 * change
    budget = analysis.macs_budget(model, x)
    assert budget["tolerance"] == 0.02 and abs(budget["reached"] - budget["macs"]) <= budget["tolerance"]
