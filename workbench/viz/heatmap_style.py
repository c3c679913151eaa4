"""Shared look of the unit heatmaps: square cells, a dozen ticks at most, titled colour bar, block strips."""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.viz.palette import categorical

MAX_TICKS = 12

#: Significant digits of heatmap values written into a figure (its JSON carries every cell).
Z_DIGITS = 3


def compact_z(z: np.ndarray, digits: int = Z_DIGITS) -> np.ndarray:
    """``z`` rounded to ``digits`` significant digits, as float32: a 300 x 300 heatmap then weighs a third of
    its full-precision float64 copy in the figure's JSON, and no colour changes."""
    values = np.asarray(z, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(
            np.isfinite(values) & (values != 0), 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(values)))), 1.0
        )
        rounded = np.where(np.isfinite(values), np.round(values * scale) / scale, values)
    return rounded.astype(np.float32)


def unit_pairs(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``customdata`` of a unit heatmap: (row unit, column unit) of every cell, in the smallest integer type
    that holds them (int16 below 32768 units), so that the hover names units without a heavy figure."""
    largest = max(int(np.max(rows, initial=0)), int(np.max(columns, initial=0)))
    dtype = np.int16 if largest < 2**15 else np.int32
    pairs = np.broadcast_arrays(np.asarray(rows)[:, None], np.asarray(columns)[None, :])
    return np.stack(pairs, axis=-1).astype(dtype)


def thinned_ticks(order: np.ndarray) -> dict[str, Any]:
    """At most ``MAX_TICKS`` evenly spaced ticks labelled with the unit index shown at that position."""
    n = len(order)
    positions = np.unique(np.linspace(0, n - 1, min(n, MAX_TICKS)).round().astype(int)) if n else np.zeros(0, int)
    return {"tickmode": "array", "tickvals": positions.tolist(), "ticktext": [str(int(order[p])) for p in positions]}


#: Columns of a layer-per-column heatmap up to which every cell carries its value and every column its name.
MAX_LABELLED_COLUMNS = 16


def layer_columns(names: list[str]) -> tuple[dict[str, Any], bool]:
    """Axis settings and whether cells may carry text, for a heatmap with a column per layer in ``names``.

    Up to :data:`MAX_LABELLED_COLUMNS` columns every column is named and every cell shows its value; beyond
    (ENet has 60 prunable groups), about that many evenly spaced names remain, cells show colour only, and
    hover gives each value.
    """
    if len(names) <= MAX_LABELLED_COLUMNS:
        return {}, True
    step = -(-len(names) // MAX_LABELLED_COLUMNS)
    shown = names[::step]
    return {"tickmode": "array", "tickvals": shown, "ticktext": shown}, False


def block_strip_traces(sorted_labels: np.ndarray, at: float) -> list[Any]:
    """One square-marker trace per block along the top and left edges (position ``at``), coloured by block.

    Block ``b`` of the sorted unique labels gets ``categorical(k)[b]``, the colour it has in the other figures.
    """
    import plotly.graph_objects as go

    values = np.unique(sorted_labels)
    colours = categorical(len(values))
    traces = []
    for colour, value in zip(colours, values):
        positions = np.flatnonzero(sorted_labels == value)
        common = {
            "mode": "markers",
            "marker": {"symbol": "square", "color": colour, "size": 6},
            "legendgroup": f"block {value}",
            "hovertemplate": f"block {value} ({len(positions)} units)<extra></extra>",
        }
        traces.append(
            go.Scatter(x=positions, y=np.full(len(positions), at), name=f"block {value}", showlegend=True, **common)
        )
        traces.append(
            go.Scatter(x=np.full(len(positions), at), y=positions, name=f"block {value}", showlegend=False, **common)
        )
    return traces


def square_layout(fig: Any, order: np.ndarray, low: float, colorbar_title: str, title: str) -> None:
    """Square plot area, thinned unit ticks, colour bar titled and kept clear of the legend (below the plot)."""
    n = len(order)
    ticks = thinned_ticks(order)
    fig.update_xaxes(range=[low, n - 0.5], constrain="domain", showgrid=False, zeroline=False, title="unit", **ticks)
    fig.update_yaxes(
        range=[n - 0.5, low], scaleanchor="x", constrain="domain", showgrid=False, zeroline=False, title="unit", **ticks
    )
    fig.update_traces(colorbar={"title": {"text": colorbar_title, "side": "right"}}, selector={"type": "heatmap"})
    fig.update_layout(
        title=title,
        template="plotly_white",
        width=720,
        height=720,
        legend={"orientation": "h", "yanchor": "top", "y": -0.1, "x": 0.0},
        margin={"b": 120},
    )
