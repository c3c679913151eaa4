"""Selection figures: embedding scatter and kernel heatmap."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.viz.selection_figures import embedding_scatter, kernel_heatmap


def test_embedding_scatter_traces_by_label_with_kept_symbols():
    import plotly.graph_objects as go

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((10, 3))
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 2, 1, 0])
    keep = [0, 4, 6]
    fig = embedding_scatter(emb, labels=labels, keep=keep, dims=(0, 2))
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 5
    assert [t.name for t in fig.data[3:]] == ["kept unit", "dropped unit"]  # both symbols in the legend
    for trace, value in zip(fig.data, [0, 1, 2]):
        members = np.flatnonzero(labels == value)
        assert list(trace.customdata) == members.tolist()
        np.testing.assert_allclose(trace.x, emb[members, 0])
        np.testing.assert_allclose(trace.y, emb[members, 2])
        assert list(trace.marker.symbol) == ["diamond" if i in keep else "circle" for i in members]
    two = embedding_scatter(emb, labels=labels, pairs=[(0, 1), (1, 2)])
    assert len(two.data) == 6 and [t.showlegend for t in two.data] == [True] * 3 + [False] * 3
    with pytest.raises(ConfigError, match="out of range"):
        embedding_scatter(emb, dims=(0, 3))


def test_kernel_heatmap_reorders_by_block_and_marks_kept_units():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 4))
    kernel = x @ x.T
    labels = np.array([1, 0, 1, 0, 2, 2, 0, 1])
    keep = [2, 6]
    fig = kernel_heatmap(kernel, labels=labels, keep=keep)
    order = np.argsort(labels, kind="stable")
    assert order.tolist() == [1, 3, 6, 0, 2, 7, 4, 5]
    np.testing.assert_allclose(np.asarray(fig.data[0].z), kernel[np.ix_(order, order)], rtol=5e-3)  # 3 digits
    # two block boundaries, one line on each axis
    assert len(fig.layout.shapes) == 4
    assert sorted({s.x0 for s in fig.layout.shapes if s.x0 == s.x1}) == [2.5, 5.5]
    kept_trace = next(t for t in fig.data if t.name == "kept unit")
    strips = [t for t in fig.data if t.name and t.name.startswith("block")]
    assert len({t.marker.color for t in strips}) == 3  # one colour per block, along both axes
    assert fig.layout.yaxis.scaleanchor == "x" and fig.data[0].colorbar.title.text == "similarity"
    assert fig.layout.legend.orientation == "h"  # the legend sits below, clear of the colour bar
    assert list(kept_trace.x) == [2, 4]  # positions of units 6 and 2 in block order
    assert list(kept_trace.customdata) == [6, 2]
    with pytest.raises(ConfigError, match="square"):
        kernel_heatmap(np.ones((3, 4)))
