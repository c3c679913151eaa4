"""Surgery checked against references that share none of its code.

- ``drop``: graph slicing against torch-pruning, an independent rebuild of the same plans (tests/tp_oracle.py),
  on every zoo model.
- ``merge`` and ``lsq``: the rebuilt weights against a reference written here in plain numpy / torch from
  the raw weight matrices of small networks (Linear and Conv2d consumers, with and without bias and
  BatchNorm, a residual stream, a depthwise chain). Only :func:`workbench.surgery.apply` is run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from tp_oracle import SIZES, difference, random_plan, randomize_bn, tp_apply, tp_reasons

from workbench.graph import from_model
from workbench.metrics import count_params
from workbench.select import Selection
from workbench.surgery import Plan, apply, supported_groups
from workbench.zoo import create_model, example_input, list_models


def test_every_zoo_model_is_covered():
    assert set(SIZES) == {name for name in list_models() if not name.startswith("_")}  # "_": registered by tests


def build(name: str):
    torch.manual_seed(0)
    model = create_model(name, **SIZES[name]).eval()
    randomize_bn(model)
    x = example_input(model, 4)
    return model, x, from_model(model, x)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_slicing_rebuilds_what_torch_pruning_rebuilds(name):
    model, x, graph = build(name)
    by_tp = tp_reasons(model, graph, x)
    assert not any(supported_groups(model, graph, x).values())  # slicing rebuilds every group
    common = [group for group in graph.prunable_groups() if by_tp[group.name] is None]
    assert len(common) >= len(graph.prunable_groups()) - 1
    plan = random_plan(common, np.random.default_rng(0))
    sliced = apply(model, plan, "drop", example_input=x, graph=graph)
    oracle = tp_apply(model, plan, "drop", example_input=x, graph=graph)
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


# -- merge and lsq against a reference written here ---------------------------------------------------------
# The reference reads the raw parameters (in float64) and computes by hand: the BatchNorm of a unit is
# gain = gamma / sqrt(var + eps), shift = beta - gain * mean; a forward pass is F.linear / F.conv2d / that
# affine map / ReLU, layer by layer, as each network below spells out.

KEEP = [0, 2, 5, 7]  # of 8 units; 1 -> 0, 3 -> 2, 4 -> 2 (two into one), 6 -> 7
ASSIGN = [0, 0, 2, 2, 2, 5, 7, 7]
DROPPED = [u for u in range(8) if u not in KEEP]


class Hand:
    """A forward pass from raw float64 parameters; ``seen[name]`` = (input, output, padding) of each Linear /
    convolution."""

    def __init__(self, params: dict[str, dict[str, torch.Tensor]]):
        self.p = params
        self.seen: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        w, b = self.p[name]["weight"], self.p[name].get("bias")
        y = x @ w.T + (0.0 if b is None else b)
        self.seen[name] = (x, y, 0)
        return y

    def conv(self, name: str, x: torch.Tensor, padding: int = 0, groups: int = 1) -> torch.Tensor:
        y = F.conv2d(x, self.p[name]["weight"], self.p[name].get("bias"), padding=padding, groups=groups)
        self.seen[name] = (x, y, padding)
        return y

    def bn(self, name: str, x: torch.Tensor) -> torch.Tensor:
        gain, shift = bn_affine(self.p[name])
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * gain.view(shape) + shift.view(shape)


def bn_affine(p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    gain = p["weight"] / torch.sqrt(p["running_var"] + p["eps"])
    return gain, p["bias"] - gain * p["running_mean"]


def raw(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Every module's own parameters and buffers, as float64 copies (BatchNorm also gets its eps)."""
    params = {}
    for name, module in model.named_modules():
        own = {
            k: v.detach().double().clone()
            for k, v in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        }
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            own["eps"] = torch.tensor(module.eps, dtype=torch.float64)
        if own:
            params[name] = own
    return params


class Residual(nn.Module):
    """A residual stream of 8 channels written by ``stem`` and ``conv2``, read by ``conv1`` and ``head``."""

    def __init__(self, bias: bool):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 8, 3, padding=1, bias=bias), nn.BatchNorm2d(8)
        self.conv1, self.bn1 = nn.Conv2d(8, 5, 3, padding=1, bias=bias), nn.BatchNorm2d(5)
        self.conv2, self.bn2 = nn.Conv2d(5, 8, 3, padding=1, bias=bias), nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 4, 1, bias=bias)

    def forward(self, x):
        s = torch.relu(self.bn0(self.stem(x)))
        return self.head(torch.relu(s + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(s)))))))


@dataclass
class Net:
    """A network, its group of 8 units (``producers``: (layer, its BatchNorm or None) in network order), its
    consumers ({layer: input columns per unit}, in network order) and its forward pass by hand."""

    model: nn.Module
    shape: tuple[int, ...]
    group: str
    producers: list[tuple[str, str | None]]
    consumers: dict[str, int]
    forward: Callable[[Hand, torch.Tensor], torch.Tensor]

    def columns(self, consumer: str, units: list[int]) -> list[int]:
        span = self.consumers[consumer]
        return [u * span + j for u in units for j in range(span)]


def relu(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_min(0.0)


def net(kind: str, bias: bool, norm: bool) -> Net:
    torch.manual_seed(0)
    if kind == "linear":  # Linear -> [BatchNorm1d] -> ReLU -> Linear
        layers = [
            nn.Linear(6, 8, bias=bias),
            *([nn.BatchNorm1d(8)] if norm else []),
            nn.ReLU(),
            nn.Linear(8, 5, bias=bias),
        ]
        out = str(len(layers) - 1)

        def forward(h, x):
            y = h.linear("0", x)
            return h.linear(out, relu(h.bn("1", y) if norm else y))

        found = Net(nn.Sequential(*layers), (6,), "0", [("0", "1" if norm else None)], {out: 1}, forward)
    elif kind == "conv":  # Conv2d -> [BatchNorm2d] -> ReLU -> Conv2d 3x3
        layers = [
            nn.Conv2d(3, 8, 3, padding=1, bias=bias),
            *([nn.BatchNorm2d(8)] if norm else []),
            nn.ReLU(),
            nn.Conv2d(8, 5, 3, padding=1, bias=bias),
        ]
        out = str(len(layers) - 1)

        def forward(h, x):
            y = h.conv("0", x, padding=1)
            return h.conv(out, relu(h.bn("1", y) if norm else y), padding=1)

        found = Net(nn.Sequential(*layers), (3, 6, 6), "0", [("0", "1" if norm else None)], {out: 1}, forward)
    elif kind == "conv-linear":  # Conv2d -> [BatchNorm2d] -> ReLU -> Flatten -> Linear: 9 columns per unit
        layers = [
            nn.Conv2d(3, 8, 3, bias=bias),
            *([nn.BatchNorm2d(8)] if norm else []),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 9, 5, bias=bias),
        ]
        out = str(len(layers) - 1)

        def forward(h, x):
            y = h.conv("0", x)
            return h.linear(out, relu(h.bn("1", y) if norm else y).flatten(1))

        found = Net(nn.Sequential(*layers), (3, 5, 5), "0", [("0", "1" if norm else None)], {out: 9}, forward)
    elif kind == "residual":

        def forward(h, x):
            s = relu(h.bn("bn0", h.conv("stem", x, padding=1)))
            inner = relu(h.bn("bn1", h.conv("conv1", s, padding=1)))
            return h.conv("head", relu(s + h.bn("bn2", h.conv("conv2", inner, padding=1))))

        found = Net(
            Residual(bias), (3, 6, 6), "stem", [("stem", "bn0"), ("conv2", "bn2")], {"conv1": 1, "head": 1}, forward
        )
    else:  # depthwise: pointwise -> BN -> ReLU -> depthwise 3x3 -> BN -> ReLU -> pointwise
        layers = [
            nn.Conv2d(3, 8, 1, bias=bias),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=bias),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 5, 1, bias=bias),
        ]

        def forward(h, x):
            y = relu(h.bn("1", h.conv("0", x)))
            return h.conv("6", relu(h.bn("4", h.conv("3", y, padding=1, groups=8))))

        found = Net(nn.Sequential(*layers), (3, 6, 6), "0", [("0", "1"), ("3", "4")], {"6": 1}, forward)
    found.model.eval()
    randomize_bn(found.model)
    if kind == "depthwise":  # centred, so that no kept unit is dead on the data (lsq needs them all)
        found.model[4].running_mean.zero_()
    return found


NETS = [
    ("linear", True, False),
    ("linear", False, False),
    ("linear", True, True),
    ("conv", True, False),
    ("conv", False, True),
    ("conv-linear", True, True),
    ("conv-linear", False, False),
    ("residual", False, True),
    ("residual", True, True),
    ("depthwise", False, True),
]


def plan_of(found: Net, assign=ASSIGN) -> Plan:
    return Plan({found.group: Selection(found.group, 8, np.array(KEEP), np.array(assign), np.zeros(8), method="test")})


def merged_reference(found: Net) -> dict[str, dict[str, torch.Tensor]]:
    """Neuron merging as workbench.surgery.fusion documents it: a unit's incoming vector is its rows of every
    producer, each times the gain of the BatchNorm right after it, then one bias entry (the sum over
    producers of gain * bias + shift); each dropped unit's consumer columns, times the ratio of its incoming
    norm to its target's, are added to the target's columns. Returns the parameters with the dropped
    columns zeroed (a network equal to the rebuilt one)."""
    params = raw(found.model)
    zeros = torch.zeros(8, dtype=torch.float64)
    rows, bias = [], zeros
    for layer, norm in found.producers:
        w, b = params[layer]["weight"].reshape(8, -1), params[layer].get("bias", zeros)
        gain, shift = bn_affine(params[norm]) if norm else (zeros + 1.0, zeros)
        rows.append(w * gain[:, None])
        bias = bias + gain * b + shift
    norms = np.linalg.norm(torch.cat([*rows, bias[:, None]], dim=1).numpy(), axis=1)
    for consumer in found.consumers:
        w = params[consumer]["weight"]
        for d in DROPPED:
            k = ASSIGN[d]
            w[:, found.columns(consumer, [k])] += norms[d] / norms[k] * w[:, found.columns(consumer, [d])]
        w[:, found.columns(consumer, DROPPED)] = 0.0
    return params


def lsq_reference(found: Net, data: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """Diversity Networks reweighting: each consumer in turn (network order), on the activations the network
    has once the consumers before it were refitted, gets the least-squares weights (numpy.linalg.lstsq, a
    ones column for the bias) on the kept units' inputs that reproduce its original output. Returns the
    parameters with the dropped columns zeroed."""
    params = raw(found.model)
    original = Hand(raw(found.model))
    found.forward(original, data.double())
    for consumer in found.consumers:
        now = Hand(params)
        found.forward(now, data.double())
        inputs, padding = now.seen[consumer][0], now.seen[consumer][2]
        target = original.seen[consumer][1]
        weight = params[consumer]["weight"]
        kept = found.columns(consumer, KEEP)
        if weight.dim() == 2:
            x, y = inputs[:, kept], target
        else:  # every output position is a row: the kernel-sized patches of the kept channels
            x = (
                F.unfold(inputs[:, kept], weight.shape[2:], padding=padding)
                .transpose(1, 2)
                .reshape(-1, len(kept) * weight[0, 0].numel())
            )
            y = target.flatten(2).transpose(1, 2).reshape(-1, weight.shape[0])
        if "bias" in params[consumer]:
            x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
        solution = torch.from_numpy(np.linalg.lstsq(x.numpy(), y.numpy(), rcond=None)[0])
        new = torch.zeros_like(weight)
        new[:, kept] = solution[: len(kept) * weight[0, 0].numel()].T.reshape(len(weight), len(kept), *weight.shape[2:])
        params[consumer]["weight"] = new
        if "bias" in params[consumer]:
            params[consumer]["bias"] = solution[-1]
    return params


def check_rebuilt(found: Net, rebuilt: nn.Module, expected: dict[str, dict[str, torch.Tensor]]) -> None:
    """The rebuilt consumers hold the reference's weights on the kept columns, the rebuilt producers the
    original rows of the kept units, and the rebuilt network computes what the reference network computes."""
    modules = dict(rebuilt.named_modules())
    original = raw(found.model)
    for consumer in found.consumers:
        got = modules[consumer].weight.detach().double()
        want = expected[consumer]["weight"][:, found.columns(consumer, KEEP)]
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6 * float(want.abs().max()))
        if "bias" in expected[consumer]:
            assert torch.allclose(modules[consumer].bias.detach().double(), expected[consumer]["bias"], atol=1e-5)
    for layer, _ in found.producers:
        assert torch.equal(modules[layer].weight.detach().double(), original[layer]["weight"][KEEP])
    x = torch.randn(16, *found.shape)
    reference = found.forward(Hand(expected), x.double())
    with torch.no_grad():
        output = rebuilt(x).double()
    assert float((output - reference).abs().max()) <= 1e-5 * max(1.0, float(reference.abs().max()))


@pytest.mark.parametrize("kind, bias, norm", NETS)
def test_merge_matches_the_reference_rule(kind, bias, norm):
    found = net(kind, bias, norm)
    x = torch.randn(4, *found.shape)
    with torch.no_grad():  # the hand-written forward pass is the network's
        assert torch.allclose(found.forward(Hand(raw(found.model)), x.double()).float(), found.model(x), atol=1e-5)
    check_rebuilt(found, apply(found.model, plan_of(found), "merge", example_input=x), merged_reference(found))


@pytest.mark.parametrize("kind, bias, norm", NETS)
def test_lsq_matches_a_least_squares_solve(kind, bias, norm):
    found = net(kind, bias, norm)
    data = torch.randn(160, *found.shape)  # more rows than unknowns for every consumer
    rebuilt = apply(
        found.model, plan_of(found), "lsq", example_input=data[:4], data=data, ridge=0.0, max_positions=10_000
    )
    check_rebuilt(found, rebuilt, lsq_reference(found, data))


@pytest.mark.parametrize("kind", ["linear", "conv", "residual"])
def test_merge_is_exact_for_scaled_copies(kind):
    """A dropped unit computing 2.5 times what its target computes (ReLU is positively homogeneous) is merged
    without changing the network's function at all: a known answer, independent of the rule's details."""
    found = net(kind, True, True)
    modules = dict(found.model.named_modules())
    with torch.no_grad():
        for layer, norm in found.producers:
            for d in DROPPED:
                k = ASSIGN[d]
                modules[layer].weight[d], modules[layer].bias[d] = modules[layer].weight[k], modules[layer].bias[k]
                bn = modules[norm]
                bn.running_mean[d], bn.running_var[d] = bn.running_mean[k], bn.running_var[k]
                bn.weight[d], bn.bias[d] = 2.5 * bn.weight[k], 2.5 * bn.bias[k]
    x = torch.randn(32, *found.shape)
    merged = apply(found.model, plan_of(found), "merge", example_input=x)
    dropped = apply(found.model, plan_of(found), "drop", example_input=x)
    assert difference(merged, found.model, x, same_shapes=False) <= 1e-5
    assert difference(dropped, found.model, x, same_shapes=False) > 1e-2  # the dropped units mattered
