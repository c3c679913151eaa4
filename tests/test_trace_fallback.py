"""Tracing models written the way people publish them: fx, fx with bound defaults, and the dynamic trace."""

from __future__ import annotations

import operator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from workbench.errors import GraphError
from workbench.graph.dynamic_trace import default_is_leaf, dynamic_trace
from workbench.graph.flow import analyse
from workbench.graph.network import NetworkGraph
from workbench.graph.trace import propagate_shapes, symbolic_trace, trace_model
from workbench.zoo import create_model, example_input


class BasicBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class FeatureResNet(nn.Module):
    """A ResNet whose forward can also return its features (a keyword fx turns into a Proxy)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.block = BasicBlock(8)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x, return_features=False):
        x = F.relu(self.bn(self.conv(x)))
        x = self.block(x)
        x = F.adaptive_avg_pool2d(x, 4)
        features = x.view(x.size(0), -1)
        logits = self.fc(features)
        if return_features:
            return logits, features
        return logits


class Cell(nn.Module):
    """A NAS-style cell: reduces the previous state when the spatial sizes differ (control flow on shapes)."""

    def __init__(self, c_prev: int, c: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c_prev, c, 1, stride=2, bias=False)
        self.pre = nn.Conv2d(c_prev, c, 1, bias=False)
        self.op_a = nn.Conv2d(c, 2 * c, 3, padding=1, bias=False)
        self.op_b = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x, y):
        if x.size(2) != y.size(2):
            x = self.reduce(x)
        else:
            x = self.pre(x)
        a, b = torch.chunk(self.op_a(x), 2, dim=1)  # the two halves are summed: channel i is tied to i + c
        return torch.cat([a + b, self.op_b(y)], dim=1)


class CellNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.down = nn.Conv2d(6, 4, 3, stride=2, padding=1)
        self.cell = Cell(6, 4)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        s0 = self.stem(x)
        s1 = self.down(s0)
        out = F.adaptive_avg_pool2d(self.cell(s0, s1), 1)
        return self.head(torch.flatten(out, 1))


class SignGate(nn.Module):
    """Branches on a tensor value: the dynamic trace keeps the branch the example input takes."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.pos = nn.Linear(8, 4)
        self.neg = nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = self.pos(h) if h.sum() > 0 else self.neg(h)
        return 1 - torch.sigmoid(h) + 2 / (1 + h.abs())  # reflected operators: 1 - t, 2 / t


class ScaledByWidth(nn.Module):
    """Uses a parameter and a plain tensor attribute directly, under control flow on ``x.shape``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 8).view(1, 8, 1, 1))
        self.offset = torch.full((1, 8, 1, 1), 0.25)  # not a buffer
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = self.conv(x)
        if x.shape[1] == 8:
            x = x * self.scale + self.offset
        x.relu_()
        return self.head(x)


class NumpyGate(nn.Module):
    def forward(self, x):
        if x.mean() > 0:
            return torch.from_numpy(np.tanh(x.numpy()))
        return x


class NumpyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.gate = NumpyGate()
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.gate(self.fc(x).abs()))


def traced(model: nn.Module, x: torch.Tensor, **kwargs) -> tuple[fx.GraphModule, NetworkGraph]:
    """Trace, propagate shapes and analyse, as ``from_model`` does."""
    gm = trace_model(model, x, **kwargs)
    propagate_shapes(gm, model, x)
    return gm, NetworkGraph(model, gm, analyse(gm), tuple(x.shape[1:]))


def groups_of(graph: NetworkGraph) -> dict[str, tuple[int, list[str], bool]]:
    return {name: (g.n_units, g.layers, g.prunable) for name, g in graph.groups.items()}


def assert_reproduces(model: nn.Module, gm: fx.GraphModule, *inputs: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad():
        for x in inputs:
            torch.testing.assert_close(gm(x.clone()), model(x.clone()))


def test_return_features_keyword_is_bound_to_its_default():
    model, x = FeatureResNet(), torch.randn(2, 3, 8, 8)
    with pytest.raises(GraphError, match="control flow"):
        symbolic_trace(model)
    gm, graph = traced(model, x)
    assert gm.meta["tracer"] == "fx-concrete" and gm.meta["concrete_args"] == {"return_features": False}
    assert_reproduces(model, gm, x, torch.randn(2, 3, 8, 8))
    expected = {
        "conv": (8, ["conv", "bn", "block.conv2", "block.bn2"], True),  # tied by the residual addition
        "block.conv1": (8, ["block.conv1", "block.bn1"], True),
        "fc": (5, ["fc"], False),
    }
    assert groups_of(graph) == expected
    assert graph.groups["conv"].consumers[-1].layer == "fc"  # through view(x.size(0), -1)


def test_dynamic_trace_of_in_place_residual_matches_fx():
    model, x = FeatureResNet(), torch.randn(2, 3, 8, 8)
    _, by_fx = traced(model, x)
    gm = dynamic_trace(model, x)
    assert any(n.target == "add_" for n in gm.graph.nodes)  # ``out += identity`` stays in place
    assert_reproduces(model, gm, x, torch.randn(2, 3, 8, 8))
    propagate_shapes(gm, model, x)
    by_record = NetworkGraph(model, gm, analyse(gm), tuple(x.shape[1:]))
    assert groups_of(by_record) == groups_of(by_fx)


def test_cell_with_control_flow_on_sizes():
    model, x = CellNet(), torch.randn(2, 3, 8, 8)
    gm, graph = traced(model, x)
    assert gm.meta["tracer"] == "dynamic" and gm.meta["input_shape"] == (2, 3, 8, 8)
    modules = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    assert "cell.reduce" in modules and "cell.pre" not in modules  # the branch this input shape takes
    assert any(n.target is torch.chunk for n in gm.graph.nodes)
    assert_reproduces(model, gm, x, torch.randn(2, 3, 8, 8))
    expected = {
        "stem": (6, ["stem"], True),
        "down": (4, ["down"], True),
        "cell.reduce": (4, ["cell.reduce"], True),
        "cell.op_a": (4, ["cell.op_a"], True),  # 8 channels, halves tied by chunk + add
        "cell.op_b": (4, ["cell.op_b"], True),
        "head": (3, ["head"], False),
    }
    assert groups_of(graph) == expected
    assert not graph.warnings


def test_data_dependent_branch_records_the_branch_taken():
    model = SignGate()
    with torch.no_grad():
        model.fc1.bias.fill_(1.0)  # relu(fc1(x)) sums to > 0: the ``pos`` branch
    x = torch.randn(4, 6)
    gm, graph = traced(model, x)
    assert gm.meta["tracer"] == "dynamic"
    modules = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    assert modules == ["fc1", "pos"]
    assert not any(n.target in ("sum", operator.gt) for n in gm.graph.nodes)  # the test itself is dropped
    assert_reproduces(model, gm, x)
    assert groups_of(graph) == {"fc1": (8, ["fc1"], True), "pos": (4, ["pos"], False)}
    assert not graph.groups["fc1"].fixed.any()


def test_parameter_and_tensor_attribute_used_directly():
    model, x = ScaledByWidth(), torch.randn(2, 3, 5, 5)
    gm, graph = traced(model, x)
    assert gm.meta["tracer"] == "dynamic"
    attrs = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    assert attrs == {"scale", "_wb_const_0"}
    assert gm.scale is model.scale and "_wb_const_0" in dict(gm.named_buffers())
    assert any(n.target == "relu_" for n in gm.graph.nodes)
    assert_reproduces(model, gm, x, torch.randn(2, 3, 5, 5))
    # the parameter is tied to the conv's units, but the constant's width is fixed: the units stay
    assert graph.opaque == [] and graph.layers["scale"].kind == "parameter"
    assert graph.groups["conv"].n_units == 8 and graph.groups["conv"].fixed.all()
    assert "written in the code" in graph.groups["conv"].reasons[0]


def test_dynamic_groups_match_fx_on_zoo_models():
    for name in ("resnet", "lenet300"):
        model = create_model(name)
        x = example_input(model, batch_size=2)
        by_fx = traced(model, x)[1]
        gm = dynamic_trace(model, x)
        propagate_shapes(gm, model, x)
        by_record = NetworkGraph(model, gm, analyse(gm), tuple(x.shape[1:]))
        assert groups_of(by_record) == groups_of(by_fx), name
        assert_reproduces(model, gm, x)


def test_dynamic_trace_keeps_training_modes_and_leaf_rule():
    model, x = FeatureResNet(), torch.randn(2, 3, 8, 8)
    model.train()
    model.block.bn1.eval()
    gm = dynamic_trace(model, x, is_leaf=lambda m, name: name == "block" or default_is_leaf(m, name))
    assert model.training and model.block.training and not model.block.bn1.training
    assert gm.training
    assert [n.target for n in gm.graph.nodes if n.op == "call_module"] == ["conv", "bn", "block", "fc"]
    assert_reproduces(model, gm, x)


def test_untraceable_model_names_the_submodule():
    model, x = NumpyNet(), torch.randn(2, 4)
    with pytest.raises(GraphError) as info:
        trace_model(model, x)
    message = str(info.value)
    assert "in submodule 'gate' of NumpyNet" in message
    assert "control flow" in message
    assert "layer 'out' takes a tensor made outside torch after 'numpy' returned a numpy.ndarray" in message
    assert "is_leaf" in message
    gm = trace_model(model, x, is_leaf=lambda m, name: name == "gate" or default_is_leaf(m, name))
    assert gm.meta["tracer"] == "fx"  # marked as a leaf, the gate is no longer traced through


def test_example_input_the_model_cannot_run_on():
    with pytest.raises(GraphError) as info:
        trace_model(CellNet(), torch.randn(2, 1, 8, 8))
    message = str(info.value)
    assert "torch.fx failed in submodule 'cell' of CellNet" in message
    assert "running it on an input of shape (2, 1, 8, 8) failed in submodule 'stem'" in message
    assert "pass an example input the model runs on, or rewrite the forward of submodule 'cell'" in message
