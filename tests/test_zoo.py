"""Tests of the built-in zoo models: shapes, torch.fx tracing, published sizes, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from torch.utils.flop_counter import FlopCounterMode

from workbench.errors import ConfigError, UnknownNameError
from workbench.zoo import create_model, describe_models, example_input, list_models, model_spec

# name -> small configurations for forward / tracing tests
SMALL = {
    "mlp": [dict(widths=[12, 8, 3]), dict(widths=[64, 10], activation="tanh", dropout=0.2)],
    "lenet300": [dict(), dict(inputs=40)],
    "lenet5": [dict(), dict(input_size=8)],
    "cnn1d": [dict()],
    "vgg_small": [dict(), dict(cfg=[8, "M", 16], head="flatten", hidden=[20], input_size=16, classes=4)],
    "resnet": [dict(), dict(width=0.5, classes=7, input_size=16)],
    "mobilenet_v1": [dict(resolution=32, classes=10), dict(width=0.25, resolution=64, classes=5)],
    "enet": [dict(input_size=64, classes=5), dict(input_size=(32, 48))],
}
CASES = [(name, kw) for name, kws in SMALL.items() for kw in kws]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs(model: torch.nn.Module) -> float:
    with FlopCounterMode(display=False) as counter:
        model(example_input(model, 1))
    return counter.get_total_flops() / 2


def test_every_registered_model_is_covered():
    # names starting with "_" are registered by other tests (e.g. a tiny checkpoint model)
    assert sorted(SMALL) == [name for name in list_models() if not name.startswith("_")]
    assert all(describe_models().values())


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for n, kws in SMALL.items() for i in range(len(kws))])
def test_forward_shape_and_fx_trace(name, kwargs):
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    assert model_spec(model) == {"name": name, "kwargs": kwargs}
    assert model.task in ("classification", "segmentation")
    x = example_input(model, 2)
    with torch.no_grad():
        y = model(x)
        traced = torch.fx.symbolic_trace(model)
        assert torch.allclose(traced(x), y, atol=1e-6)
    if model.task == "segmentation":
        assert y.shape == (2, model.num_classes, *model.input_shape[1:])
    else:
        assert y.shape == (2, model.num_classes)
    assert torch.isfinite(y).all()


def test_mlp_flattens_image_shaped_input():
    model = create_model("lenet300").eval()
    assert model.input_shape == (784,)
    images = torch.randn(3, 1, 28, 28)
    assert torch.equal(model(images), model(images.reshape(3, 784)))
    assert isinstance(model.layers[0], torch.nn.Flatten)


def test_classic_parameter_counts():
    assert n_params(create_model("lenet300")) == 266_610
    assert n_params(create_model("lenet5")) == 431_080  # Caffe LeNet-5 on 28x28
    assert n_params(create_model("lenet5", input_size=8)) == 131_080  # padding 2 -> 50x2x2 features
    assert create_model("lenet5", input_size=8).padding == 2
    assert n_params(create_model("cnn1d")) == 7_460
    # ResNet-20: 0.27M published with parameter-free shortcuts; the two 1x1 projections add 2,752
    resnet20 = n_params(create_model("resnet", depth=20))
    assert resnet20 == 269_722 + 2_752
    assert 0.27e6 <= resnet20 <= 0.275e6
    assert 0.85e6 <= n_params(create_model("resnet", depth=56)) <= 0.86e6  # published 0.85M


def test_vgg16_parameter_count_without_forward():
    kwargs = dict(cfg="vgg16", classes=1000, in_channels=3, input_size=224)
    with torch.device("meta"):  # shapes only: no 0.5 GB of weights to allocate and initialise
        without_bn = n_params(create_model("vgg_small", batch_norm=False, **kwargs))
        with_bn = n_params(create_model("vgg_small", **kwargs))
    assert without_bn == 138_357_544
    assert with_bn == 138_357_544 - 4_224 + 2 * 4_224  # conv biases dropped, BN scale and shift added
    assert round(with_bn / 1e6, 2) == 138.36


@pytest.mark.parametrize("width,params,published_macs", [(1.0, 4_231_976, 569e6), (0.5, 1_331_592, 149e6)])
def test_mobilenet_v1_published_size(width, params, published_macs):
    model = create_model("mobilenet_v1", width=width).eval()
    assert model.input_shape == (3, 224, 224)
    assert n_params(model) == params
    with torch.no_grad():
        measured = macs(model)
    assert abs(measured - published_macs) / published_macs < 0.03


def test_mobilenet_v1_rounds_channels_like_reference():
    model = create_model("mobilenet_v1", width=0.1, resolution=32)
    assert model.stem[0].out_channels == 8  # max(int(32 * 0.1), 8)
    assert model.blocks[-1].pw.out_channels == 102  # int(1024 * 0.1)
    assert model.blocks[0].dw.groups == model.blocks[0].dw.in_channels


def test_enet_structure_and_size():
    model = create_model("enet")
    assert model.input_shape == (3, 512, 512) and model.task == "segmentation"
    params = n_params(model)
    assert params == 364_311
    assert abs(params - 0.37e6) / 0.37e6 < 0.02  # published: 0.37M
    assert n_params(create_model("enet", classes=12)) == params - 7 * 65
    assert len(model.stage2) == len(model.stage3) == 8
    assert isinstance(model.up4.unpool, torch.nn.MaxUnpool2d)
    assert isinstance(model.stage1[0].act, torch.nn.PReLU) and isinstance(model.stage4[0].act, torch.nn.ReLU)
    assert model.stage2[1].conv.dilation == (2, 2) and model.stage3[7].conv.dilation == (16, 16)
    assert [conv.kernel_size for conv in model.stage2[2].conv] == [(5, 1), (1, 5)]


def test_enet_downsampling_pads_with_zero_channels():
    block = create_model("enet", input_size=16).down1.eval()
    x = torch.randn(1, 16, 8, 8)
    out, indices = block(x)
    assert out.shape == (1, 64, 4, 4) and indices.shape == (1, 16, 4, 4)
    ext = block.dropout(
        block.expand_bn(
            block.expand(
                block.conv_act(block.conv_bn(block.conv(block.project_act(block.project_bn(block.project(x))))))
            )
        )
    )
    pooled = torch.nn.functional.max_pool2d(x, 2)
    expected = block.act(ext + torch.cat([pooled, torch.zeros(1, 48, 4, 4)], dim=1))
    assert torch.allclose(out, expected, atol=1e-6)


def test_same_seed_same_weights():
    def weights(seed):
        torch.manual_seed(seed)
        return create_model("resnet", width=0.5).state_dict()

    a, b, c = weights(3), weights(3), weights(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_unknown_model_name_has_hint():
    with pytest.raises(UnknownNameError, match="Did you mean 'resnet'"):
        create_model("resnett")


@pytest.mark.parametrize(
    "name,kwargs,message",
    [
        ("resnet", dict(depth=21), "6n \\+ 2"),
        ("mobilenet_v1", dict(width=0), "width"),
        ("mobilenet_v1", dict(width=-0.5), "width"),
        ("mlp", dict(widths=[10]), "at least 2"),
        ("mlp", dict(widths=[10, 5], activation="swishy"), "activation"),
        ("mlp", dict(widths=[10, 5], dropout=1.0), "dropout"),
        ("enet", dict(input_size=60), "divisible by 8"),
        ("enet", dict(in_channels=16), "in_channels"),
        ("lenet5", dict(input_size=8, padding=0), "padding"),
        ("cnn1d", dict(length=10), "length"),
        ("vgg_small", dict(cfg="vgg17"), "cfg"),
        ("vgg_small", dict(input_size=4), "input_size"),
        ("resnet", dict(classes=0), "classes"),
        ("resnet", dict(depht=20), "bad arguments"),
    ],
)
def test_bad_arguments_raise_config_error(name, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model(name, **kwargs)


def test_initialization_schemes_differ_are_seeded_and_unknown_ones_are_named():
    import torch

    from workbench.errors import ConfigError
    from workbench.zoo import INIT_SCHEMES, create_model, init_weights_

    weights = {}
    for scheme in INIT_SCHEMES:
        runs = []
        for _ in range(2):
            torch.manual_seed(0)
            model = init_weights_(create_model("lenet300"), scheme)
            runs.append(model.layers[1].weight.detach().clone())
        assert torch.equal(runs[0], runs[1])  # deterministic given the seed
        weights[scheme] = runs[0]
    fan_in = weights["kaiming"].shape[1]
    assert abs(weights["kaiming"].std().item() - (2 / fan_in) ** 0.5) < 0.01  # He: std sqrt(2 / fan_in)
    assert weights["torch"].abs().max().item() <= 1 / fan_in**0.5 + 1e-6  # PyTorch: U(-1/sqrt(fan_in), ...)
    w = weights["orthogonal"]
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    assert torch.allclose(gram, torch.eye(gram.shape[0]), atol=1e-4)
    with pytest.raises(ConfigError, match="unknown initialization 'he'.*kaiming"):
        init_weights_(create_model("lenet300"), "he")


def test_layers_that_start_at_zero_stay_zero_when_a_network_is_reinitialized_or_rebuilt():
    """ENet's encoder class scores start at zero (He-initialized, learning stalls): every scheme, and a scratch
    control's re-initialization after surgery, leave them zero while the other layers are drawn afresh."""
    import torch

    from workbench.graph import from_model
    from workbench.select import get_selector
    from workbench.surgery import apply
    from workbench.surgery.plan_builder import plan_from
    from workbench.zoo import INIT_SCHEMES, create_model, init_weights_

    for scheme in INIT_SCHEMES:
        torch.manual_seed(0)
        model = create_model("enet", classes=3, input_size=32, width=0.5, encoder_scores=True)
        before = model.down1.project.weight.detach().clone()
        with torch.no_grad():
            model.scores.weight.fill_(1.0)  # as if trained
        init_weights_(model, scheme)
        assert not torch.equal(before, model.down1.project.weight), scheme
        assert torch.count_nonzero(model.scores.weight) == 0 and torch.count_nonzero(model.scores.bias) == 0, scheme
    graph = from_model(model, torch.randn(2, 3, 32, 32))
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    small = apply(model, plan, fuse="drop", graph=graph)
    assert small.scores.in_channels < 64  # its input channels were rebuilt in place
    init_weights_(small, "kaiming")
    assert torch.count_nonzero(small.scores.weight) == 0
