"""Figures of workbench.viz.graph_figures: data of the traces, not pixels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from workbench.errors import ConfigError, GraphError
from workbench.graph import from_model, quotient_graph
from workbench.viz.graph_figures import adjacency_heatmap, block_graph, layered_unit_graph, unit_drilldown
from workbench.zoo import create_model


@pytest.fixture(scope="module")
def graph():
    torch.manual_seed(0)
    return from_model(create_model("mlp", widths=[12, 10, 6, 3]))


def edge_traces(fig):
    return [t for t in fig.data if t.mode == "lines"]


def node_traces(fig):
    return [t for t in fig.data if t.mode == "markers" and t.customdata is not None]


def colour_legend(fig):
    return [t for t in fig.data if t.marker is not None and t.marker.showscale]


def test_layered_unit_graph_columns_rule_and_hover(graph):
    fig = layered_unit_graph(graph, max_units_per_layer=8, n_bins=4)
    nodes = {t.name: t for t in node_traces(fig)}
    assert list(nodes) == ["input", "layers.1", "layers.3", "layers.5"]  # one legend entry per layer
    assert [len(t.x) for t in nodes.values()] == [8, 8, 6, 3]
    table = graph.unit_table()
    hidden = np.arange(12, 22)
    expected = np.sort(hidden[np.argsort(-table["norm"][hidden], kind="stable")[:8]])
    np.testing.assert_array_equal(nodes["layers.1"].customdata, expected)  # largest norm, in unit order
    assert "largest incoming-weight norm" in fig.layout.title.text and "25 of 31 units" in fig.layout.title.text
    assert all("norm" not in h and "outgoing weight" in h for h in nodes["input"].text)  # no fake norm 0 / bias 0
    assert "bias" in nodes["layers.1"].text[0]
    assert len(colour_legend(fig)) == 1 and colour_legend(fig)[0].marker.colorbar.title.text == "l2 weight"


def test_layered_unit_graph_thins_edges_per_unit(graph):
    full = layered_unit_graph(graph, max_units_per_layer=64, edges_per_unit=100, n_bins=3)
    thin = layered_unit_graph(graph, max_units_per_layer=64, edges_per_unit=2, n_bins=3)
    assert full.layout.meta["n_edges"] == graph.unit_adjacency().nnz
    assert thin.layout.meta["n_edges"] == 2 * (10 + 6 + 3)  # every non-input unit keeps its 2 heaviest inputs
    steps = sorted((t.meta["low"], t.meta["high"]) for t in edge_traces(full))
    for (_, high), (low, _) in zip(steps[:-1], steps[1:]):
        assert high <= low  # darker steps hold heavier weights


def test_unit_drilldown_block_and_plan(graph):
    labels = np.array([0, 1] * 5)
    fig = unit_drilldown(graph, "layers.1", block=1, partition={"layers.1": labels}, max_neighbours=4)
    nodes = {t.name: t for t in node_traces(fig)}
    np.testing.assert_array_equal(nodes["layers.1"].customdata - 12, [1, 3, 5, 7, 9])
    assert len(nodes["input"].x) == 4 and "layers.5" not in nodes  # only neighbours of layers.1
    assert "the 5 units of block 1 of layers.1" in fig.layout.title.text
    plan = {"layers.1": [0, 2], "layers.3": [1]}
    kept = unit_drilldown(graph, "layers.1", plan=plan)
    nodes = {t.name: t for t in node_traces(kept)}
    np.testing.assert_array_equal(nodes["layers.1"].customdata - 12, [0, 2])
    assert "kept by the plan" in kept.layout.title.text
    assert list(nodes["layers.3"].marker.symbol).count("diamond") == 1
    assert {t.name for t in kept.data} >= {"kept by the plan", "dropped by the plan"}
    with pytest.raises(ConfigError, match="partition"):
        unit_drilldown(graph, "layers.1", block=1)
    with pytest.raises(ConfigError, match="no layer"):
        unit_drilldown(graph, "layers.9")


def test_unit_drilldown_on_a_residual_network_is_bounded_and_marks_the_stream():
    torch.manual_seed(0)
    resnet = from_model(create_model("resnet", depth=8, input_size=16))
    fig = unit_drilldown(resnet, "conv1", max_neighbours=4, max_units=5, max_layers=2, edges_per_unit=1)
    meta, nodes = fig.layout.meta, {t.name: t for t in node_traces(fig)}
    assert meta["chosen"] == {"shown": 5, "more": 11} and len(nodes["conv1"].x) == 5  # 5 of the stream's 16
    bands = meta["bands"]
    assert len(nodes) == 1 + len(bands) and max(sum(b["side"] == side for b in bands) for side in (-1, 1)) == 2
    adjacency = resnet.unit_adjacency("l2").toarray()
    ids = nodes["conv1"].customdata
    for band in bands:  # the shown units are the strongest linked ones; the rest are counted as "+N more"
        sl = resnet.unit_index[band["layer"]]
        strength = (adjacency[sl, :][:, ids] if band["side"] < 0 else adjacency[ids, :][:, sl].T).sum(axis=1)
        trace = next(t for t in node_traces(fig) if t.name.split(" (")[0] == band["layer"] and t.x[0] == band["side"])
        shown = trace.customdata - sl.start
        assert band["shown"] == len(shown) <= 4 and band["more"] == int((strength > 0).sum()) - len(shown)
        rest = np.delete(strength, shown)
        assert not len(rest) or strength[shown].min() >= rest.max()
    assert meta["n_units"] == 5 + sum(b["shown"] for b in bands) <= 5 + 2 * 2 * 4
    assert meta["n_edges"] <= sum(5 + b["shown"] for b in bands)  # a chosen unit's strongest per side, a neighbour's
    assert any("(+" in a.text and "more)" in a.text for a in fig.layout.annotations)
    block = unit_drilldown(resnet, "layer1.0.conv1")  # reads the stream and, through layer1.0.conv2, writes to it
    assert [(b["layer"], b["side"], b["backward"]) for b in block.layout.meta["bands"]] == [
        ("conv1", -1, False),
        ("conv1", 1, True),
    ]
    assert {t.name for t in node_traces(block)} == {"layer1.0.conv1", "conv1 (in)", "conv1 (out)"}
    dashes = {t.meta["dashed"] for t in edge_traces(block) if t.meta is not None}
    assert dashes == {False, True}  # the writes into the residual stream are dashed, the reads are not


def test_block_graph_is_layered_with_hover():
    a = sp.csr_matrix(np.array([[0, 1, 5, 0], [1, 0, 0, 0], [0, 0, 0, 2], [0, 0, 2, 0]], dtype=float))
    q = quotient_graph(a, [0, 0, 1, 1])
    fig = block_graph(q, weight="total")
    nodes = fig.data[-1]
    assert list(nodes.text) == ["0", "1"]
    assert list(nodes.x) == [0, 1]  # block 1 is read from block 0: one column further right
    assert "incoming total weight 5" in nodes.hovertext[1] and "2 units" in nodes.hovertext[1]
    assert len(set(nodes.marker.color)) == 2  # blocks have their own colours
    assert len(edge_traces(fig)) == 1
    assert nodes.marker.size[0] == nodes.marker.size[1]
    bigger = quotient_graph(a, [0, 1, 1, 1])
    sizes = block_graph(bigger).data[-1].marker.size
    assert sizes[1] > sizes[0]
    with pytest.raises(GraphError, match="unknown weight"):
        block_graph(q, weight="median")


def test_adjacency_heatmap_reorders_by_partition_square_and_titled():
    m = np.arange(16, dtype=float).reshape(4, 4)
    fig = adjacency_heatmap(m, partition=[1, 0, 1, 0], colorbar_title="|w|")
    z = np.asarray(fig.data[0].z)
    order = [1, 3, 0, 2]
    np.testing.assert_array_equal(z, m[np.ix_(order, order)])
    assert fig.layout.meta["order"] == order and fig.layout.meta["boundaries"] == [1.5]
    assert len(fig.layout.shapes) == 2
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.width == fig.layout.height
    assert fig.data[0].colorbar.title.text == "|w|"
    assert {t.name for t in fig.data[1:]} == {"block 0", "block 1"}
    plain = adjacency_heatmap(sp.csr_matrix(m))
    np.testing.assert_array_equal(np.asarray(plain.data[0].z), m)
    with pytest.raises(GraphError, match="max_size"):
        adjacency_heatmap(np.zeros((5, 5)), max_size=4)
    with pytest.raises(GraphError, match="partition"):
        adjacency_heatmap(m, partition=[0, 1])


def test_heatmap_ticks_are_thinned():
    fig = adjacency_heatmap(np.eye(300), partition=np.arange(300) % 16)
    assert len(fig.layout.xaxis.tickvals) <= 12
    colours = {t.marker.color for t in fig.data[1:]}
    assert len(colours) == 16  # 16 blocks, 16 distinct colours
