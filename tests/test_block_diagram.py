"""The layered block diagram and the plan figures: what the traces hold, and size on real architectures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.errors import ConfigError, GraphError
from workbench.graph import from_model, quotient_graph
from workbench.viz import kept_fraction_figure, layer_partition, layered_block_diagram, selection_overlap_figure
from workbench.viz.palette import categorical
from workbench.zoo import create_model


@pytest.fixture(scope="module")
def graph():
    torch.manual_seed(0)
    return from_model(create_model("mlp", widths=[12, 10, 6, 3]))


def test_blocks_sizes_columns_and_kept(graph):
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    plan = {"layers.1": [0, 3, 4], "layers.3": [0, 1, 2]}
    fig = layered_block_diagram(graph, {"layers.1": labels}, plan=plan, plan_name="sbm")
    meta = fig.layout.meta
    blocks = dict(zip(meta["labels"], zip(meta["sizes"], meta["columns"], meta["kept"])))
    assert blocks["layers.1/0"] == (3, 1, 1) and blocks["layers.1/1"] == (4, 1, 2) and blocks["layers.1/2"] == (3, 1, 0)
    assert blocks["input"][1] == 0 and blocks["layers.5"][1] == 3 and blocks["layers.3"] == (6, 2, 3)
    names = [t.name for t in fig.data]
    assert "kept by sbm (area: kept units)" in names and "block of a prunable layer (area: units)" in names
    # the edges are the quotient's: input -> each block of layers.1, blocks -> layers.3, layers.3 -> layers.5
    assert len(meta["edges"]) == 3 + 3 + 1
    adjacency = graph.unit_adjacency()
    q = quotient_graph(adjacency, layer_partition(graph, {"layers.1": labels}))
    hover = next(t for t in fig.data if t.name == "edge details").text
    a, b = meta["edges"][0]
    assert f"total {q.total[a, b]:.4g}" in hover[0]  # heaviest edge first
    legend = [t for t in fig.data if t.marker is not None and t.marker.showscale]
    assert legend and legend[0].marker.colorbar.title.text == "total l2 weight"


def test_edges_are_capped_and_title_says_so(graph):
    fig = layered_block_diagram(graph, {"layers.1": np.arange(10)}, max_edges=5)
    assert len(fig.layout.meta["edges"]) == 5 and fig.layout.meta["edges_left_out"] > 0
    assert "the 5 heaviest of" in fig.layout.title.text


def test_bad_input(graph):
    with pytest.raises(ConfigError, match="one block per unit"):
        layered_block_diagram(graph, {"layers.1": [0, 1]})
    with pytest.raises(ConfigError, match="no layer"):
        layered_block_diagram(graph, {"layers.7": [0]})
    with pytest.raises(ConfigError, match="does not have"):
        layered_block_diagram(graph, plan={"layers.7": [0]})
    with pytest.raises(ConfigError, match="unknown weight"):
        layered_block_diagram(graph, weight="median")
    mixed = layer_partition(graph)
    mixed[12] = "input"  # a block across two layers
    with pytest.raises(GraphError, match="two layers"):
        layered_block_diagram(graph, mixed)


@pytest.mark.parametrize(
    "name, options", [("mobilenet_v1", {}), ("resnet", {"depth": 20}), ("vgg_small", {"cfg": "vgg16"})]
)
def test_real_architectures_stay_small(name, options):
    graph = from_model(create_model(name, **options))
    adjacency = graph.unit_adjacency()
    labels = {g.name: np.arange(g.n_units) % 8 for g in graph.prunable_groups()}
    fig = layered_block_diagram(graph, labels, adjacency=adjacency)
    size = len(fig.to_json())
    assert size < 2_000_000  # a few hundred kB, whatever the number of unit edges
    assert size < adjacency.nnz * 8  # far smaller than the unit graph it summarizes


def test_plan_figures():
    plans = {
        "magnitude": {"a": np.array([0, 1, 2]), "b": np.array([0])},
        "sbm": {"a": np.array([1, 2, 3]), "b": np.array([1])},
        "dpp": {"a": np.array([0, 1, 2])},
    }
    fig = kept_fraction_figure(plans, sizes={"a": 6, "b": 2})
    bars = {t.name: dict(zip(t.x, t.y)) for t in fig.data}
    assert bars["magnitude"] == {"a": 0.5, "b": 0.5} and bars["dpp"] == {"a": 0.5}
    with pytest.raises(ConfigError, match="sizes"):
        kept_fraction_figure(plans)
    overlap = selection_overlap_figure(plans)
    z = np.asarray(overlap.data[0].z, dtype=float)
    rows = list(overlap.data[0].y)
    assert rows == ["magnitude / sbm", "magnitude / dpp", "sbm / dpp"]
    np.testing.assert_allclose(z[0], [0.5, 0.0, 0.25])  # {0,1,2} vs {1,2,3}: 2/4; b: 0; mean
    np.testing.assert_allclose(z[1, [0, 2]], [1.0, 1.0])
    assert np.isnan(z[1, 1])  # dpp has no plan for b
    with pytest.raises(ConfigError, match="two plans"):
        selection_overlap_figure({"one": plans["sbm"]})


def test_palette_is_distinct_for_many_blocks():
    for n in (5, 16, 40):
        colours = categorical(n)
        assert len(colours) == n and len(set(colours)) == n
