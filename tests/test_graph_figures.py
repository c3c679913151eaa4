"""Figures of workbench.viz.graph_figures: data of the traces, not pixels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from workbench.errors import GraphError
from workbench.graph import from_model, quotient_graph
from workbench.viz.graph_figures import adjacency_heatmap, block_graph, layered_unit_graph
from workbench.zoo import create_model


@pytest.fixture(scope="module")
def graph():
    torch.manual_seed(0)
    return from_model(create_model("mlp", widths=[12, 10, 6, 3]))


def edge_traces(fig):
    return [t for t in fig.data if t.mode == "lines"]


def test_layered_unit_graph_nodes_columns_and_opacity(graph):
    fig = layered_unit_graph(graph, max_units_per_layer=8, n_bins=4)
    nodes = fig.data[-1]
    # input 12 -> 8 shown, hidden 10 -> 8, hidden 6, output 3
    assert len(nodes.x) == 8 + 8 + 6 + 3
    np.testing.assert_array_equal(np.bincount(np.asarray(nodes.x, dtype=int)), [8, 8, 6, 3])
    assert list(fig.layout.xaxis.ticktext) == ["input", "layers.1", "layers.3", "layers.5"]
    shown = np.asarray(nodes.customdata)
    table = graph.unit_table()
    hidden = np.arange(12, 22)
    expected = np.sort(hidden[np.argsort(-table["norm"][hidden], kind="stable")[:8]])
    np.testing.assert_array_equal(shown[8:16], expected)  # the 8 units of largest norm, in unit order
    assert "layers.1[" in nodes.text[8]
    edges = edge_traces(fig)
    assert 1 < len(edges) <= 4
    opacities = [t.opacity for t in edges]
    assert opacities == sorted(opacities)
    # heavier bins hold heavier weights: bin ranges do not overlap downwards
    adjacency = graph.unit_adjacency()
    sub = adjacency[shown][:, shown]
    n_edges = sum(np.isfinite(np.asarray(t.x, dtype=float)).sum() // 2 for t in edges)
    assert n_edges == sub.nnz


def test_layered_unit_graph_edge_weights_increase_with_opacity(graph):
    fig = layered_unit_graph(graph, max_units_per_layer=64, n_bins=3)
    lows_highs = []
    for t in edge_traces(fig):
        low, high = (float(v) for v in t.name.replace("weights ", "").split(" to "))
        lows_highs.append((t.opacity, low, high))
    lows_highs.sort()
    for (_, _, high), (_, low, _) in zip(lows_highs[:-1], lows_highs[1:]):
        assert high <= low


def test_block_graph_sizes_and_edges():
    a = sp.csr_matrix(np.array([[0, 1, 5, 0], [1, 0, 0, 0], [0, 0, 0, 2], [0, 0, 2, 0]], dtype=float))
    q = quotient_graph(a, [0, 0, 1, 1])
    fig = block_graph(q, weight="total")
    nodes = fig.data[-1]
    assert list(nodes.text) == ["0", "1"]
    assert len(edge_traces(fig)) == 1  # one inter-block edge 0 -> 1
    assert nodes.marker.size[0] == nodes.marker.size[1]
    bigger = quotient_graph(a, [0, 1, 1, 1])
    sizes = block_graph(bigger).data[-1].marker.size
    assert sizes[1] > sizes[0]
    with pytest.raises(GraphError, match="unknown weight"):
        block_graph(q, weight="median")


def test_adjacency_heatmap_reorders_by_partition():
    m = np.arange(16, dtype=float).reshape(4, 4)
    fig = adjacency_heatmap(m, partition=[1, 0, 1, 0])
    z = np.asarray(fig.data[0].z)
    order = [1, 3, 0, 2]
    np.testing.assert_array_equal(z, m[np.ix_(order, order)])
    assert fig.layout.meta["order"] == order and fig.layout.meta["boundaries"] == [1.5]
    assert len(fig.layout.shapes) == 2
    plain = adjacency_heatmap(sp.csr_matrix(m))
    np.testing.assert_array_equal(np.asarray(plain.data[0].z), m)
    with pytest.raises(GraphError, match="max_size"):
        adjacency_heatmap(np.zeros((5, 5)), max_size=4)
    with pytest.raises(GraphError, match="partition"):
        adjacency_heatmap(m, partition=[0, 1])
