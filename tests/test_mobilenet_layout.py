"""MobileNet v1's small-image layout and channel floor: shapes, downsampling, counts, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from analysis_scripts import load_analysis

from workbench.errors import ConfigError
from workbench.metrics import count_macs
from workbench.zoo import create_model, example_input


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_small_layout_keeps_8x8_maps_at_32_pixels():
    model = create_model("mobilenet_v1", width=0.25, resolution=32, classes=6, layout="small").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model.stem(x).shape[-2:] == (32, 32)  # stride-1 stem
        assert model.blocks[:5](model.stem(x)).shape[-2:] == (32, 32)  # blocks 2 and 4 at stride 1
        assert model.blocks(model.stem(x)).shape == (2, 256, 8, 8)  # output stride 4 (ImageNet layout: 32)
        assert model(x).shape == (2, 6)
    assert [block.dw.stride[0] for block in model.blocks] == [1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    with torch.no_grad():  # fx traces it, and the trace computes what the model does
        assert torch.allclose(torch.fx.symbolic_trace(model)(x), model(x), atol=1e-6)


def test_small_layout_same_weights_more_multiply_adds():
    imagenet = create_model("mobilenet_v1", width=0.5, resolution=64, classes=6)
    small = create_model("mobilenet_v1", width=0.5, resolution=64, classes=6, layout="small")
    assert n_params(small) == n_params(imagenet)
    ratio = count_macs(small, example_input(small, 1)) / count_macs(imagenet, example_input(imagenet, 1))
    assert 48 < ratio < 64  # maps from block 4 on 8 times wider and higher (64x), the stem's and block 1's 2x (4x)


@pytest.mark.parametrize("width,params", [(1.0, 4_231_976), (0.5, 1_331_592)])
def test_imagenet_layout_is_the_default_and_keeps_published_counts(width, params):
    explicit = create_model("mobilenet_v1", width=width, layout="imagenet")
    default = create_model("mobilenet_v1", width=width)
    assert n_params(explicit) == n_params(default) == params
    assert explicit.stem[0].stride == (2, 2) and explicit.layout == default.layout == "imagenet"


def test_min_channels_raises_the_narrow_layers_only():
    model = create_model("mobilenet_v1", width=0.25, resolution=32, min_channels=16)
    assert model.stem[0].out_channels == 16  # max(int(32 * 0.25), 16)
    assert model.blocks[0].pw.out_channels == 16
    assert model.blocks[-1].pw.out_channels == 256  # int(1024 * 0.25)
    assert create_model("mobilenet_v1", width=0.25, resolution=32).stem[0].out_channels == 8


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(layout="cifar"), "layout must be one of 'imagenet', 'small'"),
        (dict(layout=None), "layout"),
        (dict(min_channels=0), "min_channels"),
        (dict(min_channels=8.5), "min_channels"),
        (dict(min_channels=True), "min_channels"),
    ],
)
def test_bad_options_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model("mobilenet_v1", resolution=32, **kwargs)


def _analysis():
    return load_analysis("mobilenet_small_images")


def test_analysis_weight_decay_groups_leave_out_depthwise_kernels():
    analysis = _analysis()
    model = create_model("mobilenet_v1", width=0.25, resolution=32, classes=6)
    with_dw, without_dw = (analysis.weight_decay_groups(model, depthwise) for depthwise in (True, False))
    depthwise = {id(block.dw.weight) for block in model.blocks}
    assert depthwise <= {id(p) for p in with_dw[0]["params"]}
    assert not depthwise & {id(p) for p in without_dw[0]["params"]}
    for groups in (with_dw, without_dw):
        assert sum(len(group["params"]) for group in groups) == len(list(model.parameters()))
    with pytest.raises(SystemExit):
        analysis.main(["--rows", "nonsense"])
