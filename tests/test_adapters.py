"""Layer adapters: grouped and depthwise convolutions, GroupNorm, LayerNorm, Embedding, attention and a user's
own layer are traced into groups, planned within their constraints and rebuilt exactly when the dropped units
were silent (their outgoing weights zero)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.adapters import Connection, LayerAdapter, adapter_for, register_adapter, unregister_adapter
from workbench.errors import ConfigError, SurgeryError
from workbench.graph import from_model
from workbench.metrics import count_params
from workbench.select import Selection, get_selector
from workbench.selection import constrained, constraint_violation
from workbench.surgery import Plan, apply, plan_from
from workbench.surgery.sizes import predict_sizes


def drop_plan(graph, group: str, dropped: list[int]) -> Plan:
    n = graph.group(group).n_units
    keep = [u for u in range(n) if u not in dropped]
    assign = np.array([u if u in keep else keep[0] for u in range(n)])
    return Plan({group: Selection(group, n, np.array(keep), assign, np.zeros(n), method="test")})


def silence(graph, group: str, dropped: list[int]) -> None:
    """Zero every weight that reads the ``dropped`` units of ``group`` (grouped consumers included)."""
    g = graph.group(group)
    modules = dict(graph.model.named_modules())
    with torch.no_grad():
        for consumer in g.consumers:
            module = modules[consumer.layer]
            adapter = adapter_for(module)
            weight, groups = adapter.weight(module), adapter.groups(module)
            columns = np.flatnonzero(np.isin(consumer.index, dropped))
            if groups == 1:
                weight[:, columns] = 0.0
                continue
            per_in, per_out = weight.shape[1], weight.shape[0] // groups
            for c in columns:
                block = c // per_in
                weight[block * per_out : (block + 1) * per_out, c % per_in] = 0.0


def assert_consistent(model: nn.Module) -> None:
    """Every rebuilt layer's size attributes agree with its tensors."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            assert tuple(m.weight.shape) == (m.out_features, m.in_features), name
        elif isinstance(m, nn.modules.conv._ConvNd):
            out_dim, in_dim = (1, 0) if m.transposed else (0, 1)
            per_group = m.out_channels // m.groups if m.transposed else m.out_channels
            assert (
                m.weight.shape[out_dim] == per_group
                and m.weight.shape[in_dim] * (1 if m.transposed else m.groups) == m.in_channels
            ), name
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert m.running_mean.shape == (m.num_features,), name


def same_function(model: nn.Module, plan: Plan, x: torch.Tensor, graph=None) -> nn.Module:
    small = apply(model, plan, fuse="drop", example_input=x, graph=graph)
    assert_consistent(small)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5), "dropping silent units changed the function"
    return small


class ResNeXtBlock(nn.Module):
    def __init__(self, channels: int = 16, width: int = 16, cardinality: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + x)


class ResNeXtish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.block = ResNeXtBlock()
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.block(self.stem(x)), 1).flatten(1))


def test_grouped_convolutions_are_planned_in_equal_blocks_and_rebuilt():
    model, x = ResNeXtish().eval(), torch.randn(2, 3, 8, 8)
    graph = from_model(model, x)
    assert {"block.conv1", "block.conv2"} <= {g.name for g in graph.prunable_groups()}
    assert len(graph.group("block.conv2").blocks) == 1 and len(graph.group("block.conv1").blocks) == 1
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    for name in ("block.conv1", "block.conv2"):
        kept = np.zeros(16, dtype=bool)
        kept[plan[name].keep] = True
        assert kept.reshape(4, 4).sum(axis=1).tolist() == [2, 2, 2, 2]
    small = apply(model, plan, example_input=x, graph=graph)
    assert_consistent(small)
    conv2 = small.block.conv2
    assert (conv2.in_channels, conv2.out_channels, conv2.groups, conv2.weight.shape[1]) == (8, 8, 4, 2)
    assert predict_sizes(graph, plan).params == count_params(small)


def test_grouped_convolution_drops_silent_units_exactly():
    model, x = ResNeXtish().eval(), torch.randn(2, 3, 8, 8)
    for group, dropped in (("block.conv2", [0, 5, 10, 15]), ("block.conv1", [1, 6, 11, 12])):
        model = ResNeXtish().eval()
        graph = from_model(model, x)
        silence(graph, group, dropped)
        same_function(model, drop_plan(graph, group, dropped), x, graph)


def test_unbalanced_grouped_plan_is_refused_with_the_reason():
    model, x = ResNeXtish().eval(), torch.randn(2, 3, 8, 8)
    graph = from_model(model, x)
    with pytest.raises(SurgeryError, match="same number"):
        apply(model, drop_plan(graph, "block.conv2", [0, 1]), example_input=x, graph=graph)


class DepthwiseMultiplier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.bn = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 12, 1)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        x = F.relu(self.bn(self.dw(F.relu(self.conv(x)))))
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.pw(x)), 1).flatten(1))


def test_depthwise_convolution_with_channel_multiplier_is_tied_to_its_input():
    model, x = DepthwiseMultiplier().eval(), torch.randn(2, 3, 8, 8)
    graph = from_model(model, x)
    group = graph.group("conv")
    assert group.n_units == 8 and set(group.layers) == {"conv", "dw", "bn"}
    np.testing.assert_array_equal(group.unit_maps["dw"], np.arange(16) // 2)
    silence(graph, "conv", [2, 5])
    small = same_function(model, drop_plan(graph, "conv", [2, 5]), x, graph)
    assert (small.dw.in_channels, small.dw.groups, small.dw.out_channels, small.pw.in_channels) == (6, 6, 12, 12)


def test_groupnorm_removes_whole_groups_exactly():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.GroupNorm(4, 16), nn.ReLU(), nn.Conv2d(16, 6, 3)).eval()
    x = torch.randn(2, 3, 10, 10)
    graph = from_model(model, x)
    group = graph.group("0")
    assert group.n_units == 4 and group.prunable
    silence(graph, group.name, [1])
    small = same_function(model, drop_plan(graph, group.name, [1]), x, graph)
    assert (small[1].num_groups, small[1].num_channels, small[0].out_channels) == (3, 12, 12)


def test_layernorm_is_coupled_and_sliced():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 4)).eval()
    x = torch.randn(5, 8)
    graph = from_model(model, x)
    assert graph.group("0").layers == ["0", "1"]
    same_function(model, plan_from(graph, get_selector("magnitude"), keep=1.0), x, graph)
    small = apply(model, plan_from(graph, get_selector("magnitude"), keep=0.5), example_input=x, graph=graph)
    assert small[1].normalized_shape == (8,) and small[1].weight.shape == (8,) and small[3].in_features == 8


class TextCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.embed = nn.Embedding(50, 16)
        self.conv = nn.Conv1d(16, 12, 3)
        self.fc = nn.Linear(12, 2)

    def forward(self, tokens):
        x = self.embed(tokens).permute(0, 2, 1)
        return self.fc(F.relu(self.conv(x)).amax(dim=2))


def test_embedding_dimensions_are_units():
    model, x = TextCNN().eval(), torch.randint(0, 50, (3, 20))
    graph = from_model(model, x)
    assert graph.group("embed").n_units == 16 and graph.group("embed").prunable
    silence(graph, "embed", [0, 7, 9])
    small = same_function(model, drop_plan(graph, "embed", [0, 7, 9]), x, graph)
    assert small.embed.weight.shape == (50, 13) and small.conv.in_channels == 13


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.inp = nn.Linear(6, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.inp(x)
        return self.out(self.attn(h, h, h)[0])


def test_attention_dimensions_are_cut_equally_per_head_and_exactly_when_silent():
    model, x = Attention().eval(), torch.randn(2, 5, 6)
    graph = from_model(model, x)
    group = graph.group("inp")
    assert set(group.layers) == {"inp", "attn"} and len(group.blocks) == 1
    dropped = [1, 6]  # one dimension of each head: no query, no value, no input, not read
    with torch.no_grad():
        model.inp.weight[dropped], model.inp.bias[dropped] = 0.0, 0.0
        model.attn.in_proj_weight[dropped], model.attn.in_proj_bias[dropped] = 0.0, 0.0
        model.attn.out_proj.weight[:, dropped] = 0.0
        model.out.weight[:, dropped] = 0.0
    small = same_function(model, drop_plan(graph, "inp", dropped), x, graph)
    assert (small.attn.embed_dim, small.attn.head_dim, small.attn.in_proj_weight.shape) == (6, 3, (18, 6))
    with pytest.raises(SurgeryError, match="same number"):
        apply(model, drop_plan(graph, "inp", [1, 2]), example_input=x, graph=graph)


class DenseBlock(nn.Module):
    """Concatenations read through one BatchNorm: every producer's slice of the group must keep a channel."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(6)
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.grow1 = nn.Conv2d(4, 2, 3, padding=1)
        self.grow2 = nn.Conv2d(6, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 3)
        with torch.no_grad():
            self.grow2.weight.mul_(1e-3)  # the smallest filters: a magnitude selector drops them first

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([x, self.grow1(x)], 1)
        x = torch.cat([x, self.grow2(x)], 1)
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1).flatten(1))


def test_concatenated_producers_never_lose_every_channel():
    model, x = DenseBlock().eval(), torch.randn(2, 3, 8, 8)
    graph = from_model(model, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.25)
    small = apply(model, plan, example_input=x, graph=graph)
    assert small.grow2.out_channels >= 1 and small.grow1.out_channels >= 1
    assert small(x).shape == (2, 3)


class SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(8, 2), nn.Linear(2, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = F.relu(self.conv(x))
        b, c, _, _ = x.size()
        y = F.adaptive_avg_pool2d(x, 1).view(b, c)
        y = torch.sigmoid(self.fc2(F.relu(self.fc1(y)))).view(b, c, 1, 1)
        return self.head(F.adaptive_avg_pool2d(x * y.expand_as(x), 1).flatten(1))


def test_squeeze_excitation_gate_is_tied_to_the_channels_it_scales():
    model, x = SqueezeExcite().eval(), torch.randn(2, 3, 8, 8)
    graph = from_model(model, x)
    group = graph.group("conv")
    assert set(group.layers) == {"conv", "fc2"} and group.prunable
    small = apply(model, plan_from(graph, get_selector("magnitude"), keep=0.5), example_input=x, graph=graph)
    assert (small.conv.out_channels, small.fc2.out_features, small.fc1.in_features) == (4, 4, 4)


class Scale(nn.Module):
    """A user's layer: one learned scale per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.linspace(0.5, 2.0, channels))

    def forward(self, x):
        return x * self.s.view(1, -1, 1, 1)


class ScaleAdapter(LayerAdapter):
    kind_name = "norm"

    def connect(self, module, n_in):
        return Connection(n_in, reads=False, tie=np.arange(n_in)) if n_in == module.s.numel() else None

    def out_count(self, module):
        return module.s.numel()

    def unit_parameters(self, module):
        return [("s", 0)]


def test_a_user_registers_an_adapter_for_a_layer_of_their_own():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), Scale(8), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()
    x = torch.randn(2, 3, 9, 9)
    register_adapter(Scale, ScaleAdapter())
    try:
        with pytest.raises(ConfigError, match="already has an adapter"):
            register_adapter(Scale, ScaleAdapter())
        graph = from_model(model, x)
        assert graph.layers["1"].kind == "norm" and graph.group("0").layers == ["0", "1"]
        silence(graph, "0", [3, 4])
        small = same_function(model, drop_plan(graph, "0", [3, 4]), x, graph)
        assert small[1].s.shape == (6,)
    finally:
        unregister_adapter(Scale)
    # without its adapter, tracing goes inside the layer: its parameter, used directly, is tied to the units
    graph = from_model(model, x)
    assert graph.layers["1.s"].kind == "parameter" and graph.group("0").layers == ["0", "1.s"]
    small = same_function(model, drop_plan(graph, "0", [3, 4]), x, graph)
    assert small[1].s.shape == (6,)


def test_constrained_balances_blocks_keeps_fixed_and_covers_every_set():
    n = 8
    scores = np.arange(n, dtype=float)
    selection = Selection("g", n, np.array([4, 5, 6, 7]), np.array([4, 4, 4, 4, 4, 5, 6, 7]), scores)
    blocks = [np.arange(n) // 4]  # two blocks of four: the selector kept all of the second
    out = constrained(selection, fixed=np.eye(n, dtype=bool)[0], blocks=blocks, cover=[np.array([0, 1])])
    assert out.keep.tolist() == [0, 3, 6, 7]  # fixed 0 plus the best of block 0; the best two of block 1
    assert constraint_violation(out.keep, n, blocks, [np.array([0, 1])]) is None
    assert set(out.assign[out.dropped]) <= set(out.keep)
    assert out.assign[1] in (0, 3) and out.assign[5] in (6, 7)  # dropped units go to their own block
    assert "same number" in constraint_violation(selection.keep, n, blocks)
    assert "removes all" in constraint_violation([2, 3], n, (), [np.array([0, 1])])
    assert constrained(out, blocks=blocks) is out  # already valid: unchanged


def _devices() -> list:
    found = [pytest.param("cpu")]
    cuda = torch.cuda.is_available()
    found.append(pytest.param("cuda", marks=pytest.mark.skipif(not cuda, reason="no CUDA device on this machine")))
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    found.append(pytest.param("mps", marks=pytest.mark.skipif(not mps, reason="no MPS device on this machine")))
    return found


@pytest.mark.parametrize("device", _devices())
def test_selection_and_every_fusion_run_on_the_models_device(device):
    model = ResNeXtish().eval().to(device)
    x = torch.randn(2, 3, 8, 8, device=device)
    data = torch.randn(32, 3, 8, 8)  # on the CPU: batches are moved to the model
    graph = from_model(model, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5, source="activations", data=data)
    for fuse in ("drop", "merge", "lsq"):
        small = apply(model, plan, fuse=fuse, example_input=x, graph=graph, data=data)
        assert {p.device.type for p in small.parameters()} == {device}
        assert {p.dtype for p in small.parameters()} == {torch.float32}
        assert small(x).shape == (2, 5)


class TinyViT(nn.Module):
    """A class token and position embedding used directly in forward, a hand-sized head read at token 0."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(9)
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.pos = nn.Parameter(torch.randn(1, 5, 8))
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = x + self.mlp(x)
        return self.head(x[:, 0])


def test_parameters_used_directly_are_cut_with_the_units_they_meet():
    model, x = TinyViT().eval(), torch.randn(2, 3, 8, 8)
    graph = from_model(model, x)
    stream = graph.group("patch")
    assert {"patch", "cls", "pos", "mlp.2"} <= set(stream.layers) and stream.prunable
    silence(graph, "patch", [1, 6])
    small = same_function(model, drop_plan(graph, "patch", [1, 6]), x, graph)
    assert small.cls.shape == (1, 1, 6) and small.pos.shape == (1, 5, 6) and small.head.in_features == 6


class HardCoded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(self.conv(x).view(-1, 64))  # the width is written in the code


class SizedByOthers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 8), nn.Linear(6, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        c = self.a(x).size(1)  # a's width shapes b's output
        return self.fc(self.b(x).reshape(x.shape[0], c))


def test_sizes_written_in_the_code_or_read_from_other_units_fix_what_they_shape():
    graph = from_model(HardCoded(), torch.randn(2, 3, 6, 6))
    assert not graph.group("conv").prunable and "written in the code" in graph.group("conv").reasons[0]
    graph = from_model(SizedByOthers(), torch.randn(2, 6))
    assert not graph.group("a").prunable and not graph.group("b").prunable
    assert "sizes the reshape" in graph.group("b").reasons[0]


class Halves(nn.Module):
    """Two halves of one layer's channels go different ways (chunk), or a slice takes the first channels."""

    def __init__(self, how: str) -> None:
        super().__init__()
        torch.manual_seed(10)
        self.how = how
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.left, self.right = nn.Conv2d(4, 5, 1), nn.Conv2d(4, 5, 1)
        self.fc = nn.Linear(10, 2)

    def forward(self, x):
        h = self.conv(x)
        if self.how == "chunk":
            a, b = torch.chunk(h, 2, dim=1)
        elif self.how == "split":
            a, b = torch.split(h, [4, 4], dim=1)
        else:
            a, b = h[:, :4], h[:, 4:]
        return self.fc(torch.cat([self.left(a), self.right(b)], 1).mean(dim=(2, 3)))


def test_chunks_keep_equal_halves_and_positional_slices_fix_their_units():
    x = torch.randn(2, 3, 6, 6)
    model = Halves("chunk").eval()
    graph = from_model(model, x)
    assert len(graph.group("conv").blocks) == 1 and graph.group("conv").prunable
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    assert np.bincount(plan["conv"].keep // 4).tolist() == [2, 2]
    silence(graph, "conv", [1, 6])
    small = same_function(model, drop_plan(graph, "conv", [1, 6]), x, graph)
    assert small.left.in_channels == small.right.in_channels == 3
    for how, why in (("split", "sizes written in the code"), ("slice", "sliced by position")):
        group = from_model(Halves(how).eval(), x).group("conv")
        assert not group.prunable and why in group.reasons[0], how


def test_groups_surgery_cannot_cut_are_not_offered():
    torch.manual_seed(11)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.ConvTranspose2d(8, 8, 3, groups=2), nn.Conv2d(8, 2, 1))
    graph = from_model(model.eval(), torch.randn(2, 3, 8, 8))
    for name in ("0", "2"):  # read by, and made by, a grouped transposed convolution
        group = graph.group(name)
        assert not group.prunable and "surgery cannot cut it" in group.reasons[-1], name
    assert [g.name for g in graph.prunable_groups()] == []
