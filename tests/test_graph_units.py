"""Unit graphs, unit views, networkx export and summarization of workbench.graph."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from workbench.errors import GraphError
from workbench.graph import from_model, layer_graph, quotient_graph
from workbench.zoo import create_model


class Mixed(nn.Module):
    """Grouped conv, transposed conv, residual add, flatten into a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.g = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.t = nn.ConvTranspose2d(6, 4, 2, stride=2)
        self.p = nn.Conv2d(4, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        u = torch.relu(self.t(torch.relu(self.g(h))))
        u = u + self.p(u)
        return self.fc(torch.flatten(self.pool(u), 1))


def out_in_kernels(module: nn.Module) -> tuple[torch.Tensor, int]:
    """(out, in per group, *kernel) weights and the group count, read from the module's definition alone
    (independent of the implementation's own weight_out_in)."""
    w = module.weight.detach()
    if isinstance(module, nn.Linear):
        return w, 1
    groups = module.groups
    if not module.transposed:
        return w, groups
    in_per_group, out_per_group = w.shape[0] // groups, w.shape[1]  # transposed: (in, out / groups, *kernel)
    kernels = torch.empty(out_per_group * groups, in_per_group, *w.shape[2:])
    for j in range(out_per_group * groups):
        group, local = divmod(j, out_per_group)
        kernels[j] = w[group * in_per_group : (group + 1) * in_per_group, local]
    return kernels, groups


def reference_adjacency(graph, norm):
    """Unit-by-unit, loop-based reference of unit_adjacency."""
    n = graph.n_nodes
    acc = {}
    for read in graph.reads:
        if read.coupled:
            continue
        module = graph.module_of(read.layer)
        w, groups = out_in_kernels(module)
        w = w.double()
        out, ipg = w.shape[0], w.shape[1]
        targets = graph.unit_nodes(graph.layer_units(read.layer))
        sources = graph.unit_nodes(read.ids)
        for j in range(out):
            for i_local in range(ipg):
                col = (j // (out // groups)) * ipg + i_local
                if sources[col] < 0:
                    continue
                kernel = w[j, i_local].reshape(-1)
                key = (int(sources[col]), int(targets[j]))
                if norm == "max":
                    acc[key] = max(acc.get(key, 0.0), float(kernel.abs().max()))
                elif norm == "l1":
                    acc[key] = acc.get(key, 0.0) + float(kernel.abs().sum())
                else:
                    acc[key] = acc.get(key, 0.0) + float((kernel**2).sum())
    dense = np.zeros((n, n))
    for (i, j), v in acc.items():
        dense[i, j] = np.sqrt(v) if norm in ("l2", "fro") else v
    return dense


@pytest.mark.parametrize("norm", ["l2", "l1", "max", "fro"])
def test_unit_adjacency_matches_loop_reference(norm):
    torch.manual_seed(0)
    graph = from_model(Mixed(), torch.randn(1, 2, 4, 4))
    adjacency = graph.unit_adjacency(norm)
    assert isinstance(adjacency, sp.csr_matrix)
    assert adjacency.dtype == np.float32 and adjacency.indices.dtype == np.int32
    np.testing.assert_allclose(adjacency.toarray(), reference_adjacency(graph, norm), rtol=1e-5, atol=1e-6)


def test_unit_adjacency_node_sets_follow_groups():
    torch.manual_seed(0)
    model = Mixed()
    graph = from_model(model, torch.randn(1, 2, 4, 4))
    # the residual add couples t and p: one node set of 4 units, not two
    assert list(graph.unit_index) == ["input", "a", "g", "t", "fc"]
    assert graph.unit_index["t"] == slice(12, 16) and graph.n_nodes == 19
    adjacency = graph.unit_adjacency("l1")
    # t's units feed p (a 1x1 conv inside their own group): those are edges within the block
    block = adjacency[12:16, 12:16].toarray()
    np.testing.assert_allclose(block, model.p.weight.detach().abs()[:, :, 0, 0].T.numpy(), rtol=1e-6)
    # flatten: unit c of the pooled block feeds fc columns 4c..4c+3; the edge is the sum over the block (l1)
    fc = model.fc.weight.detach().abs().reshape(3, 4, 4).sum(dim=2)
    np.testing.assert_allclose(adjacency[12:16, 16:19].toarray(), fc.T.numpy(), rtol=1e-6)


def test_lenet300_adjacency_is_the_absolute_weights():
    model = create_model("lenet300", inputs=64)
    graph = from_model(model)
    adjacency = graph.unit_adjacency()
    assert adjacency.shape == (64 + 300 + 100 + 10,) * 2
    np.testing.assert_allclose(adjacency[0:64, 64:364].toarray(), model.layers[1].weight.detach().abs().T.numpy())
    assert adjacency.nnz == 64 * 300 + 300 * 100 + 100 * 10


def test_unit_adjacency_rejects_unknown_norm():
    graph = from_model(create_model("lenet300", inputs=16))
    with pytest.raises(GraphError, match="unknown norm"):
        graph.unit_adjacency("l3")


def test_weight_view_concatenates_incoming_and_outgoing_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 5))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -2.0, 1.0]))
    graph = from_model(model, torch.randn(2, 2, 4, 4))
    view = graph.unit_view("0")
    w, b = model[0].weight.detach(), model[0].bias.detach()
    np.testing.assert_allclose(view.in_weights, torch.cat([w.flatten(1), b[:, None]], 1).numpy(), rtol=1e-6)
    fc = model[4].weight.detach().reshape(5, 3, 4)
    np.testing.assert_allclose(view.out_weights, fc.permute(1, 0, 2).reshape(3, 20).numpy(), rtol=1e-6)
    assert view.features.shape == (3, 2 * 9 + 1 + 20)
    np.testing.assert_allclose(view.bias, b.numpy(), rtol=1e-6)
    np.testing.assert_allclose(view.bn_scale, [0.5, 2.0, 1.0])
    assert view.activations is None and view.meta["in_layers"] == ["0"] and view.meta["out_layers"] == ["4"]
    sim = view.similarity()
    assert sim.shape == (3, 3) and np.allclose(np.diag(sim), 1.0)


def test_residual_group_view_stacks_all_coupled_producers():
    graph = from_model(create_model("resnet", depth=8, width=0.5))
    group = graph.group("layer2.0.conv2")
    view = graph.unit_view(group.name)
    producers = ["layer2.0.conv2", "layer2.0.shortcut.0"]
    width = sum(graph.module_of(p).weight[0].numel() for p in producers)
    assert view.in_weights.shape == (group.n_units, width)
    assert view.meta["in_layers"] == producers
    assert set(view.meta["bn_layers"]) == {"layer2.0.bn2", "layer2.0.shortcut.1"}


def test_depthwise_group_view_has_depthwise_kernel_columns():
    graph = from_model(create_model("mobilenet_v1", width=0.25, resolution=32, classes=10))
    view = graph.unit_view("blocks.0.pw")
    # pointwise rows (8 inputs) + depthwise 3x3 kernel; outgoing: the next pointwise conv's columns
    assert view.in_weights.shape == (16, 8 + 9)
    assert view.out_weights.shape == (16, 32)


def test_activation_view_streams_batches_with_caps_and_seed():
    model = nn.Sequential(nn.Conv2d(1, 20, 3), nn.ReLU(), nn.Flatten(), nn.Linear(20 * 36, 3))
    graph = from_model(model, torch.randn(2, 1, 8, 8))
    data = torch.randn(30, 1, 8, 8)
    view = graph.unit_view("0", source="activations", data=data, max_samples=20, max_positions=5, batch_size=8)
    assert view.activations.shape == (20 * 5, 20)
    assert view.features.shape == (20, 100)
    assert view.meta["samples"] == 20 and view.meta["positions_per_sample"] == 5
    assert (view.activations >= 0).all()  # after the ReLU
    again = graph.unit_view("0", source="activations", data=data, max_samples=20, max_positions=5, batch_size=8)
    np.testing.assert_array_equal(view.activations, again.activations)
    other = graph.unit_view(
        "0", source="activations", data=data, max_samples=20, max_positions=5, batch_size=8, random_state=1
    )
    assert not np.array_equal(view.activations, other.activations)


def test_activation_values_are_the_post_relu_outputs():
    model = create_model("lenet300", inputs=16)
    graph = from_model(model)
    x = torch.randn(7, 16)
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(7, dtype=torch.long))
    view = graph.unit_view("layers.3", data=torch.utils.data.DataLoader(dataset, batch_size=3))
    with torch.no_grad():
        expected = torch.relu(model.layers[3](torch.relu(model.layers[1](x))))
    np.testing.assert_allclose(view.activations, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert view.meta["source"] == "weights" and view.features.shape[1] == 300 + 1 + 10


def test_activation_view_on_a_dataset():
    from workbench.datasets import load_dataset

    data = load_dataset("digits", split="test")
    model = create_model("lenet300", inputs=int(np.prod(data.inputs.shape[1:])))
    graph = from_model(model, data.inputs[:2])  # images, flattened by the model
    view = graph.unit_view("layers.1", source="activations", data=data, max_samples=50)
    assert view.activations.shape == (50, 300)
    with torch.no_grad():
        expected = torch.relu(model.layers[1](data.inputs[:50].reshape(50, -1)))
    np.testing.assert_allclose(view.activations, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert view.similarity("correlation").shape == (300, 300)


def test_unit_view_bad_input():
    graph = from_model(create_model("lenet300", inputs=16))
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 16)), batch_size=4)
    with pytest.raises(GraphError, match="empty"):
        graph.unit_view("layers.1", source="activations", data=empty)
    with pytest.raises(GraphError, match="needs data"):
        graph.unit_view("layers.1", source="activations")
    with pytest.raises(GraphError, match="unknown source"):
        graph.unit_view("layers.1", source="gradients")
    with pytest.raises(GraphError, match="Did you mean 'layers.1'"):
        graph.unit_view("layer.1")
    with pytest.raises(GraphError, match=r"shape \(batch, 16\)"):
        graph.unit_view("layers.1", data=torch.randn(4, 9))


def test_to_networkx_unit_and_layer_levels():
    model = create_model("lenet300", inputs=16)
    graph = from_model(model)
    units = graph.to_networkx("unit")
    adjacency = graph.unit_adjacency()
    assert units.number_of_nodes() == graph.n_nodes and units.number_of_edges() == adjacency.nnz
    node = units.nodes[graph.unit_index["layers.1"].start + 5]
    assert node["block"] == "layers.1" and node["index"] == 5 and not node["fixed"]
    weight, bias = model.layers[1].weight.detach(), model.layers[1].bias.detach()
    assert node["norm"] == pytest.approx(float(weight[5].norm()), rel=1e-5)
    assert node["bias"] == pytest.approx(float(bias[5]), rel=1e-5)
    assert units.nodes[graph.unit_index["layers.5"].start]["fixed"]
    assert units.edges[0, 16]["weight"] == pytest.approx(abs(float(weight[0, 0])), rel=1e-6)
    layers = graph.to_networkx("layer")
    assert list(layers.edges) == [("input", "layers.1"), ("layers.1", "layers.3"), ("layers.3", "layers.5")]
    assert layers.edges["layers.1", "layers.3"]["weight"] == pytest.approx(
        float(model.layers[3].weight.detach().abs().sum()), rel=1e-6
    )
    with pytest.raises(GraphError, match="unit_adjacency"):
        graph.to_networkx("unit", max_edges=100)
    with pytest.raises(GraphError, match="unknown level"):
        graph.to_networkx("block")


def test_layer_graph_couples_bn_and_depthwise():
    graph = from_model(create_model("mobilenet_v1", width=0.25, resolution=32, classes=10))
    g = layer_graph(graph)
    assert (
        g.has_edge("stem.0", "stem.1")
        and g.has_edge("stem.1", "blocks.0.dw")
        and g.has_edge("blocks.0.dw_bn", "blocks.0.pw")
    )
    dw = graph.module_of("blocks.0.dw").weight.detach().abs().sum()
    assert g.edges["stem.1", "blocks.0.dw"]["weight"] == pytest.approx(float(dw), rel=1e-6)


def test_quotient_graph_blocks():
    a = np.array(
        [
            [0, 1, 2, 0],
            [3, 0, 0, 4],
            [0, 0, 0, 5],
            [0, 6, 0, 0],
        ],
        dtype=float,
    )
    q = quotient_graph(sp.csr_matrix(a), ["x", "x", "y", "y"])
    np.testing.assert_array_equal(q.labels, ["x", "y"])
    np.testing.assert_array_equal(q.sizes, [2, 2])
    np.testing.assert_allclose(q.total, [[4, 6], [6, 5]])
    np.testing.assert_allclose(q.count, [[2, 2], [1, 1]])
    np.testing.assert_allclose(q.mean, [[2.0, 1.5], [1.5, 2.5]])  # diagonal over s(s-1) = 2 ordered pairs
    np.testing.assert_allclose(quotient_graph(a, [0, 0, 1, 1]).total, q.total)  # dense input, same result
    with pytest.raises(GraphError, match="4 nodes"):
        quotient_graph(a, [0, 1, 1])


def test_quotient_of_the_unit_graph_by_layer_sums_layer_weights():
    model = create_model("lenet300", inputs=16)
    graph = from_model(model)
    labels = np.empty(graph.n_nodes, dtype=object)
    for name, sl in graph.unit_index.items():
        labels[sl] = name
    q = quotient_graph(graph.unit_adjacency("l1"), labels.astype(str))
    names = list(q.labels)
    total = q.total[names.index("layers.1"), names.index("layers.3")]
    assert total == pytest.approx(float(model.layers[3].weight.detach().abs().sum()), rel=1e-5)


def test_out_weight_size_guard(monkeypatch):
    import workbench.graph.views as views

    graph = from_model(create_model("lenet300", inputs=16))
    assert views.out_weights_size(graph, graph.group("layers.1")) == 300 * 100
    monkeypatch.setattr(views, "MAX_FEATURE_ENTRIES", 10_000)
    with pytest.raises(GraphError, match="outgoing weights.*source=.activations."):
        graph.unit_view("layers.1")
    view = graph.unit_view("layers.1", source="activations", data=torch.randn(5, 16))
    assert view.out_weights is None and view.in_weights.shape == (300, 17)
    assert views.in_weights_size(graph, graph.group("layers.1")) == 300 * 17
    monkeypatch.setattr(views, "MAX_FEATURE_ENTRIES", 100)
    view = graph.unit_view("layers.1", source="activations", data=torch.randn(5, 16))
    assert view.in_weights is None and view.bias is None and view.activations.shape == (5, 300)


def test_random_conv_nets_match_the_reference():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=12, deadline=None)
    @hypothesis.given(
        widths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
        kernel=st.sampled_from([1, 3]),
        pool=st.booleans(),
        norm=st.sampled_from(["l2", "l1", "max"]),
        seed=st.integers(0, 100),
    )
    def check(widths, kernel, pool, norm, seed):
        torch.manual_seed(seed)
        layers, c = [], 2
        for w in widths:
            layers += [nn.Conv2d(c, w, kernel, padding=kernel // 2), nn.ReLU()]
            c = w
        if pool:
            layers.append(nn.MaxPool2d(2))
        side = 2 if pool else 4
        layers += [nn.Flatten(), nn.Linear(c * side * side, 3)]
        graph = from_model(nn.Sequential(*layers), torch.randn(1, 2, 4, 4))
        np.testing.assert_allclose(
            graph.unit_adjacency(norm).toarray(), reference_adjacency(graph, norm), rtol=1e-5, atol=1e-6
        )
        assert len(graph.groups) == len(widths) + 1

    check()


def test_reused_structure_follows_weight_changes_and_zeros():
    """The assembled sparsity structure is cached per graph; new weights (and new zeros) must still show."""
    torch.manual_seed(0)
    model = create_model("resnet", depth=8).eval()
    graph = from_model(model)
    graph.unit_adjacency()  # builds the cache
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(torch.rand_like(p) + 0.5)
    scaled = graph.unit_adjacency("l2")
    assert abs(scaled - reference_adjacency(graph, "l2")).max() < 1e-4
    with torch.no_grad():
        model.layer1[0].conv1.weight[3].zero_()  # a whole filter: some unit-graph edges vanish
    fresh = graph.unit_adjacency("l2")
    assert abs(fresh - reference_adjacency(graph, "l2")).max() < 1e-4
    assert fresh.nnz < scaled.nnz


class SharedReads(nn.Module):
    """Two convs read the same units into one residual group (repeated unit pairs), then a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 5, 3, padding=1)
        self.s = nn.Conv2d(6, 5, 1)
        self.c = nn.Conv2d(5, 5, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, 4)

    def forward(self, x):
        h = torch.relu(self.a(x))
        r = torch.relu(self.b(h) + self.s(h))
        r = torch.relu(r + self.c(r))
        return self.fc(torch.flatten(self.pool(r), 1))


@pytest.mark.parametrize("batch_read", [None, 40])
@pytest.mark.parametrize("name", ["shared", "resnet8", "lenet300"])
def test_batched_reduction_gives_the_per_read_matrix_bit_for_bit(monkeypatch, name, batch_read):
    """The batched route (all reads of one kernel size reduced at once, cached CSR structure) against the
    per-read route it replaces: the same data, indices and index pointers, for every norm; zeros fall back."""
    from workbench.graph import adjacency

    if batch_read is not None:  # most reads then count as large: batches of one read, and mixed batches
        monkeypatch.setattr(adjacency, "_BATCH_READ", batch_read)
    torch.manual_seed(0)
    if name == "shared":
        model, example = SharedReads(), torch.randn(1, 3, 6, 6)
    else:
        model = create_model("resnet", depth=8) if name == "resnet8" else create_model("lenet300")
        example = None
    graph = from_model(model, example)

    def per_read(norm: str) -> sp.csr_matrix:
        with monkeypatch.context() as patch:
            patch.setattr(adjacency, "_batched", lambda *args: None)
            return graph.unit_adjacency(norm)

    for zero in (False, True):
        if zero:
            with torch.no_grad():
                next(p for p in model.parameters() if p.dim() > 1)[0].zero_()
        for norm in ("l2", "l1", "max"):
            batched, reference = graph.unit_adjacency(norm), per_read(norm)
            for field in ("data", "indices", "indptr"):
                ours, theirs = getattr(batched, field), getattr(reference, field)
                assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), (norm, field, zero)
    layout = adjacency._cache(graph).batched
    assert layout is not None and layout.ok
    if name == "shared":
        assert layout.multi is not None  # repeated (source, target) pairs are combined
    if name == "lenet300":
        assert layout.places is not None  # every source row from one read
