"""Structured sparsity made physical: units whose weights are zero are removed by surgery, exactly."""

import pytest
import torch
from torch import nn
from toy import STEADY

from workbench.edits import note
from workbench.errors import ConfigError
from workbench.metrics import count_params
from workbench.sparse import GroupLasso
from workbench.surgery.zeroed import shrink_zeroed, zeroed_plan
from workbench.train import fit
from workbench.zoo import create_model


def _zeroed_mlp() -> nn.Module:
    """8-10-6-3 MLP: hidden units 1, 4 silent (zero row and bias), 7 unread (zero column), 8 constant."""
    torch.manual_seed(0)
    model = create_model("mlp", widths=[8, 10, 6, 3])
    first, second = model.layers[1], model.layers[3]
    with torch.no_grad():
        first.weight[[1, 4]] = 0.0
        first.bias[[1, 4]] = 0.0
        second.weight[:, 7] = 0.0
        first.weight[8] = 0.0
        first.bias[8] = 0.5
    return model.eval()


def test_silent_and_unread_units_are_dropped_and_the_function_is_unchanged():
    model = _zeroed_mlp()
    plan = zeroed_plan(model)
    assert list(plan.selections) == ["layers.1"]
    assert sorted(plan["layers.1"].keep.tolist()) == [0, 2, 3, 5, 6, 8, 9]
    assert plan.meta["dropped"] == {"unread": 1, "silent": 2, "constant": 0}
    small = shrink_zeroed(model)
    assert small.layers[1].out_features == 7 and small.layers[3].in_features == 7
    x = torch.randn(64, 8)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-6, atol=1e-6)


def test_constant_units_are_absorbed_by_least_squares_only_when_asked():
    model = _zeroed_mlp()
    x = torch.randn(256, 8)
    small = shrink_zeroed(model, constant=True, data=x)
    assert small.layers[1].out_features == 6
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-4, atol=1e-4)
    assert note(small, "plan").meta["dropped"]["constant"] == 1
    with pytest.raises(ConfigError, match="data="):
        shrink_zeroed(model, constant=True)


def test_zeroed_filters_of_a_conv_net_become_fewer_channels():
    torch.manual_seed(1)
    model = create_model("lenet5", in_channels=1, input_size=8, classes=10).eval()
    conv1, conv2 = model.features[0], model.features[2]
    with torch.no_grad():
        conv1.weight[[0, 3, 5]] = 0.0
        conv1.bias[[0, 3, 5]] = -0.2  # ReLU of a negative constant: but not silent by weights alone
        conv1.bias[[0, 3]] = 0.0
        conv2.weight[:, 7] = 0.0  # input channel 7 unread
    small = shrink_zeroed(model)
    assert small.features[0].out_channels == 20 - 3  # 0 and 3 silent, 7 unread; 5 is constant and stays
    assert count_params(small) < count_params(model)
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)


def test_group_lasso_training_then_shrinking_gives_a_smaller_network_with_the_same_outputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    lasso = GroupLasso(strength=0.05, kinds=("filters",), layers=["0"])
    fit(model, (x, y), epochs=50, lr=0.05, optimizer="sgd", momentum=0.0, hooks=[lasso.prox_hook(0.05)], **STEADY)
    plan = zeroed_plan(model, tol=1e-4, constant=True, example_input=x[:2])
    dropped = 16 - len(plan["0"].keep)
    assert dropped >= 4
    small = shrink_zeroed(model, tol=1e-4, constant=True, data=x, example_input=x[:2])
    assert small[0].out_features == 16 - dropped
    with torch.no_grad():
        assert (small(x).argmax(1) == model(x).argmax(1)).float().mean() > 0.99


def test_bad_tolerance_and_nothing_to_remove_are_named():
    with pytest.raises(ConfigError, match="tol"):
        zeroed_plan(_zeroed_mlp(), tol=-1)
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="GroupLasso"):
        shrink_zeroed(create_model("mlp", widths=[8, 10, 3]))


def test_a_zeroed_pointwise_filter_of_mobilenet_is_silent_through_its_depthwise_layer():
    torch.manual_seed(0)
    model = create_model("mobilenet_v1", width=0.25, in_channels=1, resolution=32, classes=10).eval()
    pointwise = next(
        m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1 and m.kernel_size == (1, 1)
    )
    with torch.no_grad():
        pointwise.weight[:4] = 0.0  # BatchNorms are fresh: no shift, so the channels stay zero
    plan = zeroed_plan(model)
    assert plan.meta["dropped"]["silent"] == 4
    small = shrink_zeroed(model)
    x = torch.randn(4, *model.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-5, atol=1e-5)
    assert count_params(small) < count_params(model)
