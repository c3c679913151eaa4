"""ENet's options for small scenes (width, encoder class scores) and the data the demo trains it on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from workbench.compression import Retraining, compress
from workbench.datasets import load_dataset
from workbench.demo import load_demo_study
from workbench.errors import ConfigError
from workbench.zoo import create_model, create_model_for_data


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_default_is_the_published_network():
    model = create_model("enet")
    assert n_params(model) == 364_311 and model.scores is None
    assert not any(key.startswith("scores") for key in model.state_dict())
    assert (model.initial.bn.num_features, model.down1.expand.out_channels, model.down2.expand.out_channels) == (
        16,
        64,
        128,
    )
    assert len(model.stage1) == 4 and len(model.stage2) == len(model.stage3) == 8 and len(model.stage4) == 2


@pytest.mark.parametrize(
    ("width", "channels", "params"),
    [(0.5, (16, 32, 64), 95_723), (0.75, (16, 48, 96), 207_931), (0.25, (16, 16, 32), None)],
)
def test_width_scales_every_stage_and_keeps_the_layout(width, channels, params):
    model = create_model("enet", classes=7, input_size=32, width=width).eval()
    published = create_model("enet", classes=7, input_size=32)
    found = (model.initial.bn.num_features, model.down1.expand.out_channels, model.down2.expand.out_channels)
    assert found == channels and model.up5.expand.out_channels == channels[0]
    assert model.stage2[5].project.out_channels == channels[2] // 4
    assert min(m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)) >= 4  # as published
    assert params is None or n_params(model) == params
    assert [type(m).__name__ for m in model.modules()] == [type(m).__name__ for m in published.modules()]
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 7, 32, 32)


def test_encoder_scores_start_at_zero_and_add_the_upsampled_scores():
    torch.manual_seed(0)
    plain = create_model("enet", classes=7, input_size=32, width=0.5).eval()
    torch.manual_seed(0)
    scored = create_model("enet", classes=7, input_size=32, width=0.5, encoder_scores=True).eval()
    for key, value in plain.state_dict().items():  # the same seed gives the same weights
        assert torch.equal(scored.state_dict()[key], value), key
    assert n_params(scored) == n_params(plain) + 64 * 7 + 7  # stage 3 has 64 channels at width 0.5
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(scored(x), plain(x))  # zero scores: the published function at the start
        torch.nn.init.normal_(scored.scores.weight)
        coarse = {}
        scored.scores.register_forward_hook(lambda m, i, o: coarse.setdefault("scores", o))
        out = scored(x)
    assert coarse["scores"].shape == (2, 7, 4, 4)
    upsampled = F.interpolate(coarse["scores"], size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(out, plain(x) + upsampled, atol=1e-5)


def test_zero_scores_still_learn():
    model = create_model("enet", classes=7, input_size=16, width=0.5, encoder_scores=True).train()
    loss = F.cross_entropy(model(torch.rand(2, 3, 16, 16)), torch.randint(0, 7, (2, 16, 16)))
    loss.backward()
    assert model.scores.weight.grad.abs().sum() > 0 and model.scores.bias.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(width=0), "width"),
        (dict(width=-0.5), "width"),
        (dict(width="half"), "width"),
        (dict(encoder_scores="yes"), "encoder_scores"),
        (dict(width=0.25, in_channels=16), "in_channels"),
    ],
)
def test_bad_options_are_refused_with_their_name(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        create_model("enet", **{"input_size": 32, **kwargs})


def test_the_demo_scenes_are_seeded_and_sized_for_enet():
    study = load_demo_study()
    entry = next(m for m in study.models if m.name == "enet")
    one = load_dataset("shapes-seg", split="train", **entry.data_options)
    two = load_dataset("shapes-seg", split="train", **entry.data_options)
    other = load_dataset("shapes-seg", split="train", **{**entry.data_options, "seed": 1})
    assert np.array_equal(np.asarray(one.inputs), np.asarray(two.inputs))
    assert np.array_equal(np.asarray(one.targets), np.asarray(two.targets))
    assert not np.array_equal(np.asarray(one.targets), np.asarray(other.targets))
    assert one.input_shape == (3, 64, 64) and len(one) == 1200  # 8x downsampling leaves 8x8 cells
    model = create_model_for_data("enet", one.input_shape, one.num_classes, **entry.args)
    assert model.scores is not None and model.num_classes == 7


def test_encoder_scores_are_pruned_with_stage_3():
    train = load_dataset("shapes-seg", split="train", num_samples=20, size=16)
    test = load_dataset("shapes-seg", split="test", num_samples=20, size=16)
    torch.manual_seed(0)
    model = create_model_for_data("enet", train.input_shape, train.num_classes, width=0.5, encoder_scores=True)
    result = compress(
        model.eval(),
        method="magnitude",
        keep=0.5,
        fuse="drop",
        train=train,
        test=test,
        retrain=Retraining(method="finetune", epochs=1, max_batches=1),
        latency=False,
    )
    assert result.model.scores.in_channels == result.model.stage3[-1].expand.out_channels < 64
    with torch.no_grad():
        assert result.model(test.inputs[:2]).shape == (2, 7, 16, 16)
