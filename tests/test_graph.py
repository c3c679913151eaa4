"""Tracing, layers, edges and coupled groups of workbench.graph."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import GraphError
from workbench.graph import from_model
from workbench.zoo import create_model


def conv_flatten_linear() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(5, 2),
    )


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 6, 1)
        self.c = nn.Conv2d(10, 2, 1)

    def forward(self, x):
        return self.c(torch.cat([F.relu(self.a(x)), self.b(x)], dim=1))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(6, 8)
        self.f1 = nn.Linear(8, 8)
        self.f2 = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = h + self.f1(h)
        h = torch.relu(h + self.f2(h))
        return self.head(h)


def test_sequential_layers_edges_groups():
    model = conv_flatten_linear()
    graph = from_model(model, torch.randn(2, 1, 6, 6))
    assert graph.layers["0"].kind == "conv" and graph.layers["1"].kind == "bn"
    assert graph.layers["4"].kind == "flatten" and not graph.layers["4"].parametric
    assert graph.layers["0"].weight_shape == (4, 1, 3, 3) and graph.layers["0"].n_units == 4
    assert graph.layers["0"].output_shape == (2, 4, 6, 6)
    assert ("0", "1") in graph.edges and ("1", "5") in graph.edges and ("5", "8") in graph.edges
    assert ("input", "0") in graph.edges
    assert list(graph.groups) == ["0", "5", "8"]
    assert graph.groups["0"].layers == ["0", "1"]  # conv and its BatchNorm are one group
    assert [g.name for g in graph.prunable_groups()] == ["0", "5"]
    assert not graph.groups["8"].prunable and graph.groups["8"].fixed.all()
    assert graph.group("1").name == "0"  # a layer name finds its group


def test_flatten_maps_each_channel_to_its_spatial_block():
    graph = from_model(conv_flatten_linear(), torch.randn(2, 1, 6, 6))
    (consumer,) = graph.groups["0"].consumers
    assert consumer.layer == "5"
    np.testing.assert_array_equal(consumer.index, np.repeat(np.arange(4), 9))
    np.testing.assert_array_equal(consumer.columns(2), np.arange(18, 27))
    assert consumer.column_matrix(4).shape == (4, 9)


def test_cat_gives_consumer_offsets_and_separate_groups():
    graph = from_model(Concat(), torch.randn(2, 3, 5, 5))
    a, b = graph.groups["a"], graph.groups["b"]
    assert a.n_units == 4 and b.n_units == 6
    np.testing.assert_array_equal(a.consumers[0].index, [0, 1, 2, 3] + [-1] * 6)
    np.testing.assert_array_equal(b.consumers[0].index, [-1] * 4 + list(range(6)))
    assert graph.layers["cat"].kind == "cat"


def test_residual_adds_couple_layers_recursively():
    graph = from_model(Residual(), torch.randn(2, 6))
    groups = {name: g.layers for name, g in graph.groups.items()}
    assert groups == {"stem": ["stem", "f1", "f2"], "head": ["head"]}
    stem = graph.groups["stem"]
    assert sorted(c.layer for c in stem.consumers) == ["f1", "f2", "head"]
    for layer in ("stem", "f1", "f2"):
        np.testing.assert_array_equal(stem.unit_maps[layer], np.arange(8))


def test_pixel_inputs_for_fully_connected_networks_channels_for_convolutional():
    mlp = create_model("lenet300", inputs=64)
    assert from_model(mlp, torch.randn(2, 64)).unit_index["input"] == slice(0, 64)
    lenet5 = create_model("lenet5")
    graph = from_model(lenet5)
    assert graph.unit_index["input"] == slice(0, 1)
    flat = from_model(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), torch.randn(2, 3, 2, 2))
    assert flat.unit_index["input"] == slice(0, 12)


@pytest.mark.parametrize(
    ("name", "kwargs", "n_groups"),
    [
        ("lenet300", {}, 3),
        ("mlp", {"widths": [16, 12, 8, 4]}, 3),
        ("lenet5", {}, 4),
        ("cnn1d", {}, 4),
        ("vgg_small", {}, 7),
        ("resnet", {"depth": 20}, 13),
        ("mobilenet_v1", {"width": 0.25, "resolution": 32, "classes": 10}, 15),
    ],
)
def test_zoo_models_group_counts_and_classifier_not_prunable(name, kwargs, n_groups):
    model = create_model(name, **kwargs)
    graph = from_model(model)
    assert len(graph.groups) == n_groups
    last = list(graph.groups.values())[-1]
    assert not last.prunable and last.fixed.all()
    assert all(g.prunable and not g.fixed.any() for g in list(graph.groups.values())[:-1])
    assert not graph.opaque and not graph.warnings
    # every unit-owning layer is in exactly one group, and every group but the last has consumers
    owned = [name for g in graph.groups.values() for name in g.layers]
    assert len(owned) == len(set(owned)) == sum(1 for layer in graph.layers.values() if layer.parametric)
    assert all(g.consumers for g in list(graph.groups.values())[:-1])


def test_resnet_stage_groups_hold_everything_added_together():
    graph = from_model(create_model("resnet", depth=20))
    stage2 = graph.group("layer2.0.conv2")
    expected = {"layer2.0.conv2", "layer2.0.bn2", "layer2.0.shortcut.0", "layer2.0.shortcut.1"}
    expected |= {f"layer2.{b}.{kind}" for b in (1, 2) for kind in ("conv2", "bn2")}
    assert set(stage2.layers) == expected and stage2.n_units == 32
    stage1 = graph.group("conv1")
    assert {"conv1", "bn1", "layer1.0.conv2", "layer1.2.bn2"} <= set(stage1.layers)
    consumers = {c.layer for c in stage2.consumers}
    assert consumers == {"layer2.1.conv1", "layer2.2.conv1", "layer3.0.conv1", "layer3.0.shortcut.0"}
    assert graph.group("layer2.1.conv1").layers == ["layer2.1.conv1", "layer2.1.bn1"]


def test_mobilenet_depthwise_joins_its_producer_group():
    graph = from_model(create_model("mobilenet_v1", width=0.25, resolution=32, classes=10))
    assert graph.layers["blocks.0.dw"].kind == "depthwise_conv"
    assert graph.group("stem.0").layers == ["stem.0", "stem.1", "blocks.0.dw", "blocks.0.dw_bn"]
    for b in range(1, 13):
        group = graph.group(f"blocks.{b - 1}.pw")
        assert f"blocks.{b}.dw" in group.layers and f"blocks.{b}.dw_bn" in group.layers
        assert [c.layer for c in group.consumers] == [f"blocks.{b}.pw"]


def test_enet_unpool_padding_and_residual_branches():
    model = create_model("enet", classes=4, input_size=32)
    graph = from_model(model)
    assert not graph.opaque and not graph.warnings
    trunk = graph.group("initial.conv")
    # the zero-padded residual chain ties the whole encoder trunk into one group
    assert {"down1.expand", "stage1.0.expand", "down2.expand", "stage3.7.expand"} <= set(trunk.layers)
    assert trunk.n_units == 128 and trunk.prunable
    assert trunk.name == "down2.expand"  # the first layer carrying all 128 units
    np.testing.assert_array_equal(trunk.unit_maps["down2.expand"], np.arange(128))
    # the initial block concatenates the pooled input: those units are tied to the input and fixed
    assert trunk.fixed.sum() == model.input_shape[0]
    last = list(graph.groups.values())[-1]
    assert graph.layers[last.name].kind == "convtranspose" and not last.prunable
    kinds = {layer.kind for layer in graph.layers.values()}
    assert {"unpool", "pool", "cat", "prelu", "convtranspose"} <= kinds


def test_zero_padding_with_pad_ties_only_the_padded_channels():
    class Pad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(4, 6, 1)
            self.c = nn.Conv2d(6, 2, 1)

        def forward(self, x):
            h = self.a(x)
            return self.c(F.pad(h, (0, 0, 0, 0, 1, 1)) + self.b(h))

    graph = from_model(Pad(), torch.randn(1, 3, 4, 4))
    group = graph.group("a")
    # named and numbered after b, the first layer carrying all 6 units; a's 4 channels are b's 1..4
    assert group.name == "b" and group.layers == ["a", "b"] and group.n_units == 6
    np.testing.assert_array_equal(group.unit_maps["a"], [1, 2, 3, 4])  # channels 0 and 5 are zeros in the pad
    np.testing.assert_array_equal(group.unit_maps["b"], np.arange(6))
    consumers = {c.layer: c.index for c in group.consumers}
    np.testing.assert_array_equal(consumers["b"], [1, 2, 3, 4])
    np.testing.assert_array_equal(consumers["c"], np.arange(6))


def test_opaque_layer_warns_and_fixes_what_feeds_it():
    class Scale(nn.Module):  # a layer with parameters and no layer adapter
        def __init__(self) -> None:
            super().__init__()
            self.s = nn.Parameter(torch.ones(6))

        def forward(self, x):
            return x * self.s

    class Leaves(torch.fx.Tracer):
        def is_leaf_module(self, m, name):
            return isinstance(m, Scale) or super().is_leaf_module(m, name)

    model = nn.Sequential(nn.Linear(4, 6), Scale(), nn.Linear(6, 2))
    model = torch.fx.GraphModule(model, Leaves().trace(model))
    with pytest.warns(UserWarning, match="not understood"):
        graph = from_model(model, torch.randn(3, 4))
    assert graph.opaque == ["1"]
    assert not graph.groups["0"].prunable and "not understand" in graph.groups["0"].reasons[0]
    assert graph.groups["2"].consumers == []


def test_data_dependent_forward_is_traced_as_executed():
    class Inner(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            if x.sum() > 0:
                return self.fc(x)
            return -self.fc(x)

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x)

    with pytest.warns(UserWarning, match="control flow"):  # traced as executed on the example input
        graph = from_model(Outer(), torch.randn(2, 4))
    assert graph.tracer == "dynamic" and graph.group("inner.fc").n_units == 2


def test_wrong_input_shape_names_expected_shape_and_layer():
    with pytest.raises(GraphError, match=r"failed at layer 'features\.0'.*expects input of shape \(batch, 1, 28, 28\)"):
        from_model(create_model("lenet5"), torch.randn(2, 3, 28, 28))
    with pytest.raises(GraphError, match=r"failed at layer '2'"):
        from_model(nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(3, 2)), torch.randn(2, 5))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_name_the_parameter(bad):
    model = create_model("lenet300", inputs=16)
    with torch.no_grad():
        model.layers[3].weight[1, 2] = bad
    with pytest.raises(GraphError, match=r"'layers\.3\.weight'.*NaN or infinite"):
        from_model(model)


def test_a_model_on_the_meta_device_is_refused_with_how_to_materialize_it():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(GraphError, match=r"'0\.weight' of shape \(8, 4\) is on the meta device.*to_empty"):
        from_model(model, torch.randn(2, 4, device="meta"))


def test_unknown_group_suggests_the_closest_name():
    graph = from_model(create_model("lenet300", inputs=16))
    with pytest.raises(GraphError, match="Did you mean 'layers.3'"):
        graph.group("layers.33")


def test_views_reductions_splits_and_gating_are_tracked():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.se = nn.Conv2d(8, 8, 1)  # squeeze-excitation style gate: its units are tied to conv's
            self.left = nn.Conv2d(4, 2, 1)
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            h = h * torch.sigmoid(self.se(h.mean([2, 3], keepdim=True)))
            a, b = torch.chunk(h, 2, dim=1)
            z = self.left(a)
            pooled = torch.cat([z, b[:, :2]], dim=1).mean([2, 3])
            return self.fc(torch.cat([pooled, pooled.view(pooled.size(0), -1)], dim=1))

    graph = from_model(Block(), torch.randn(2, 3, 6, 6))
    assert not graph.warnings
    conv = graph.group("conv")
    assert conv.layers == ["conv", "se"]
    consumers = {c.layer: c.index for c in conv.consumers}
    np.testing.assert_array_equal(consumers["left"], [0, 1, 2, 3])  # first chunk
    np.testing.assert_array_equal(consumers["se"], np.arange(8))
    # fc reads [z(2), b[:, :2] = conv units 4, 5] twice
    np.testing.assert_array_equal(consumers["fc"], [-1, -1, 4, 5, -1, -1, 4, 5])
    np.testing.assert_array_equal(graph.group("left").consumers[0].index, [0, 1, -1, -1, 0, 1, -1, -1])


def test_layer_on_the_wrong_axis_is_opaque_and_pins_its_inputs():
    class LengthMixer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(4, 6, 1)
            self.mix = nn.Linear(5, 3)  # acts on the length axis of (N, C, L), not on channels
            self.out = nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.mix(self.conv(x)).amax(1))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = from_model(LengthMixer(), torch.randn(2, 4, 5))
    messages = [str(w.message) for w in caught]
    assert any("'mix' reading dimension 2" in m for m in messages)
    assert any("'amax' over the unit dimension" in m for m in messages)
    assert graph.opaque == ["mix"]
    assert not graph.group("conv").prunable and graph.group("conv").fixed.all()


class _PoolUnpool(torch.nn.Module):
    """conv -> max-pool (with indices) -> conv -> max-unpool with those indices -> conv."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(2, return_indices=True)
        self.mid = torch.nn.Conv2d(6, 6, 3, padding=1)
        self.unpool = torch.nn.MaxUnpool2d(2)
        self.head = torch.nn.Conv2d(6, 2, 1)

    def forward(self, x):
        y, idx = self.pool(self.enc(x))
        return self.head(self.unpool(self.mid(y), idx))


def test_max_unpooling_ties_its_input_to_the_pooled_channels():
    graph = from_model(_PoolUnpool(), torch.randn(1, 3, 8, 8))
    group = graph.group("enc")
    assert {"enc", "mid"} <= set(group.layers)  # mid's channels are placed by enc's pooling indices
    assert graph.group("mid").name == group.name
