"""Unit views of convolutional filters: flattened kernels, spatially pooled channel responses, and residual
groups selected once for every layer that shares them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.compression import compress
from workbench.errors import GraphError
from workbench.graph import from_model
from workbench.select import get_selector
from workbench.surgery import apply, plan_from
from workbench.zoo import create_model


def _vgg() -> nn.Module:
    torch.manual_seed(0)
    return create_model("vgg_small", cfg=[6, "M", 8], input_size=8, classes=3, in_channels=2).eval()


def test_filter_weight_features_are_flattened_kernels_then_outgoing_slices():
    model = _vgg()
    graph = from_model(model, torch.randn(2, 2, 8, 8))
    view = graph.unit_view("features.0")
    conv, reader = model.features[0], model.features[4]
    assert view.in_weights.shape == (6, 2 * 3 * 3)  # no bias: BatchNorm follows
    np.testing.assert_allclose(view.in_weights[4], conv.weight[4].detach().flatten().double().numpy())
    np.testing.assert_allclose(view.out_weights[4], reader.weight[:, 4].detach().flatten().double().numpy())
    np.testing.assert_allclose(view.features, np.concatenate([view.in_weights, view.out_weights], axis=1))


def test_pooled_view_is_each_channel_mean_over_positions_per_sample():
    model = _vgg()
    graph = from_model(model, torch.randn(2, 2, 8, 8))
    x = torch.randn(10, 2, 8, 8)
    view = graph.unit_view("features.0", source="pooled", data=x)
    with torch.no_grad():
        responses = model.features[:3](x)  # conv -> BN -> ReLU
    expected = responses.mean(dim=(2, 3)).T.double().numpy()  # (filters, samples)
    assert view.features.shape == (6, 10) and view.meta["pooled"]
    np.testing.assert_allclose(view.features, expected, rtol=1e-5, atol=1e-6)
    sampled = graph.unit_view("features.0", source="activations", data=x, max_positions=5)
    assert sampled.features.shape == (6, 50) and not sampled.meta["pooled"]
    with pytest.raises(GraphError, match="source='pooled' needs data"):
        graph.unit_view("features.0", source="pooled")


def test_residual_group_is_selected_once_for_every_layer_that_shares_it():
    torch.manual_seed(0)
    model = create_model("resnet", depth=8, classes=3, input_size=8).eval()
    graph = from_model(model, torch.randn(2, 3, 8, 8))
    stream = graph.group("layer1.0.conv2")
    assert stream.name == "conv1" and {"conv1", "layer1.0.conv2"} <= set(stream.layers)
    view = graph.unit_view("conv1")
    assert {"conv1", "layer1.0.conv2"} <= set(view.meta["in_layers"])  # both producers' kernels
    plan = plan_from(graph, get_selector("magnitude", budget=0.5), keep=0.5)
    assert "layer1.0.conv2" not in plan.selections and len(plan.selections["conv1"].keep) == 8
    rebuilt = apply(model, plan, graph=graph)
    assert rebuilt.conv1.out_channels == rebuilt.layer1[0].conv2.out_channels == rebuilt.layer1[0].conv1.in_channels
    assert rebuilt.conv1.out_channels == 8
    with torch.no_grad():
        assert rebuilt(torch.randn(2, 3, 8, 8)).shape == (2, 3)


def test_compress_selects_filters_on_pooled_responses():
    model = _vgg()
    x = torch.randn(40, 2, 8, 8)
    data = torch.utils.data.TensorDataset(x, torch.randint(0, 3, (40,)))
    result = compress(model, method="spectral", keep=0.5, source="pooled", train=data, test=data, latency=False)
    assert result.model.features[0].out_channels == 3 and result.after["params"] < result.before["params"]
