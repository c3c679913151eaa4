"""Figures of selections: unit embeddings coloured by block, and kernels in block order.

Plotly is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from workbench.errors import ConfigError
from workbench.viz.heatmap_style import block_strip_traces, compact_z, square_layout, unit_pairs
from workbench.viz.palette import categorical

KEPT_SYMBOL = "diamond"
DROPPED_SYMBOL = "circle"


def _labels_and_keep(n: int, labels: Sequence[Any] | None, keep: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros(n, dtype=int) if labels is None else np.asarray(labels)
    if labels.shape != (n,):
        raise ConfigError(f"labels must have one entry per unit ({n}), got shape {labels.shape}.")
    kept = np.zeros(n, dtype=bool)
    if keep is not None:
        keep = np.asarray(keep, dtype=int)
        if keep.size and (keep.min() < 0 or keep.max() >= n):
            raise ConfigError(f"keep has indices outside [0, {n - 1}].")
        kept[keep] = True
    return labels, kept


def embedding_scatter(
    embedding: np.ndarray,
    labels: Sequence[Any] | None = None,
    keep: Sequence[int] | None = None,
    dims: tuple[int, int] = (0, 1),
    pairs: Sequence[tuple[int, int]] | None = None,
    title: str | None = None,
):
    """Scatter of unit embeddings, one colour (trace) per block/cluster, kept units as diamonds.

    Parameters
    ----------
    embedding
        (n, d) unit coordinates (a selector's ``embedding_``, or any features).
    labels
        Block / cluster of each unit (one trace each); None puts all units in one trace.
    keep
        Indices of kept units (drawn as diamonds, the others as circles).
    dims
        The pair of embedding dimensions to plot.
    pairs
        Several pairs of dimensions, one panel each (overrides ``dims``).
    title
        Figure title.

    Hovering a point shows the unit index and its label.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = np.asarray(embedding, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ConfigError(f"embedding must be an (n, d) array, got shape {x.shape}.")
    n, d = x.shape
    if d == 1:  # a single dimension: plot it against the unit index
        x = np.column_stack([x[:, 0], np.arange(n, dtype=np.float64)])
        d = 2
    pairs = [tuple(dims)] if pairs is None else [tuple(p) for p in pairs]
    for pair in pairs:
        if len(pair) != 2 or not all(0 <= int(a) < d for a in pair):
            raise ConfigError(f"dimension pair {pair} is out of range for an embedding with {d} dimensions.")
    labels, kept = _labels_and_keep(n, labels, keep)
    fig = make_subplots(rows=1, cols=len(pairs), subplot_titles=[f"dim {a} vs dim {b}" for a, b in pairs])
    palette = categorical(len(np.unique(labels)))
    for col, (a, b) in enumerate(pairs, start=1):
        for colour, value in enumerate(np.unique(labels)):
            members = np.flatnonzero(labels == value)
            fig.add_trace(
                go.Scatter(
                    x=x[members, a],
                    y=x[members, b],
                    mode="markers",
                    name=f"block {value}",
                    legendgroup=str(value),
                    showlegend=col == 1,
                    customdata=members,
                    marker=dict(
                        color=palette[colour % len(palette)],
                        symbol=[KEPT_SYMBOL if kept[i] else DROPPED_SYMBOL for i in members],
                        size=[12 if kept[i] else 7 for i in members],
                        line=dict(width=[1.5 if kept[i] else 0 for i in members], color="black"),
                    ),
                    hovertemplate=f"unit %{{customdata}}<br>block {value}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text=f"dim {a}", row=1, col=col)
        fig.update_yaxes(title_text=f"dim {b}", row=1, col=col)
    if keep is not None:  # the symbols in the legend (grey, so they do not read as a block)
        for symbol, name in ((KEPT_SYMBOL, "kept unit"), (DROPPED_SYMBOL, "dropped unit")):
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name=name,
                    marker=dict(symbol=symbol, color="#9e9e9e", size=10, line=dict(width=1, color="black")),
                ),
                row=1,
                col=1,
            )
    fig.update_layout(title=title or "unit embedding (diamonds: kept units)", template="plotly_white")
    return fig


def block_order(labels: Sequence[Any] | None, n: int) -> np.ndarray:
    """Unit order grouping units of the same block together (stable within a block)."""
    if labels is None:
        return np.arange(n)
    return np.argsort(np.asarray(labels), kind="stable")


def kernel_heatmap(
    kernel: np.ndarray,
    labels: Sequence[Any] | None = None,
    keep: Sequence[int] | None = None,
    title: str | None = None,
    colorbar_title: str = "similarity",
):
    """Heatmap of an (n, n) unit kernel with units reordered by block, block boundaries drawn as lines,
    and kept units marked by triangles along both axes. Hover shows the two unit indices.

    Cells are square, at most a dozen ticks name the units at their positions, blocks are marked by a
    colour strip along both axes (colours as in :func:`embedding_scatter`), and the colour bar is titled
    ``colorbar_title``. The heatmap's ``z`` is ``kernel[order][:, order]`` with ``order = block_order(labels, n)``,
    rounded to three significant digits (float32: :func:`workbench.viz.heatmap_style.compact_z`).
    """
    import plotly.graph_objects as go

    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ConfigError(f"kernel must be a square (n, n) matrix, got shape {k.shape}.")
    n = k.shape[0]
    labels, kept = _labels_and_keep(n, labels, keep)
    order = block_order(labels, n)
    z = compact_z(k[np.ix_(order, order)])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=np.arange(n),
            y=np.arange(n),
            customdata=unit_pairs(order, order),
            colorscale="Viridis",
            hovertemplate="unit %{customdata[0]} / unit %{customdata[1]}<br>similarity %{z:.3f}<extra></extra>",
            name="kernel",
        )
    )
    sorted_labels = labels[order]
    boundaries = np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 0.5
    for position in boundaries:
        fig.add_shape(type="line", x0=position, x1=position, y0=-0.5, y1=n - 0.5, line=dict(color="white", width=2))
        fig.add_shape(type="line", x0=-0.5, x1=n - 0.5, y0=position, y1=position, line=dict(color="white", width=2))
    strip = -1.5
    if len(np.unique(labels)) > 1:
        for trace in block_strip_traces(sorted_labels, strip):
            fig.add_trace(trace)
        strip = -3.0
    positions = np.flatnonzero(kept[order])
    if positions.size:
        marker = dict(color="black", size=8)
        fig.add_trace(
            go.Scatter(
                x=positions,
                y=np.full(positions.size, strip),
                mode="markers",
                name="kept unit",
                legendgroup="kept",
                customdata=order[positions],
                marker=dict(symbol="triangle-down", **marker),
                hovertemplate="kept unit %{customdata}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=np.full(positions.size, strip),
                y=positions,
                mode="markers",
                name="kept unit",
                legendgroup="kept",
                showlegend=False,
                customdata=order[positions],
                marker=dict(symbol="triangle-right", **marker),
                hovertemplate="kept unit %{customdata}<extra></extra>",
            )
        )
    square_layout(
        fig,
        order,
        low=strip - 1.0,
        colorbar_title=colorbar_title,
        title=title or "kernel in block order (triangles: kept units)",
    )
    return fig
