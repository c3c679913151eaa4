"""Edges drawn by weight: a few colour-and-width steps (one line trace each) and a stepped colour legend.

A figure with thousands of edges stays responsive because each step is one trace; the legend is a
colour bar whose steps are labelled with the weight range they hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.viz.palette import EDGE_SCALE


def weight_steps(weights: np.ndarray, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(step of each weight, 0 = lightest; the ``n + 1`` step boundaries), steps by quantiles of the weights."""
    weights = np.asarray(weights, dtype=float)
    if len(weights) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(2)
    inner = np.unique(np.quantile(weights, np.linspace(0, 1, n_steps + 1)[1:-1]))
    steps = np.searchsorted(inner, weights, side="right")
    bounds = np.concatenate([[weights.min()], inner, [weights.max()]])
    return steps, bounds


def step_colours(n_steps: int) -> list[str]:
    """Colours of the steps, light to dark, from the edge colour scale."""
    from plotly.colors import sample_colorscale

    return sample_colorscale(EDGE_SCALE, list(np.linspace(0.3, 1.0, max(n_steps, 1))))


def edge_traces(
    paths_x: list[np.ndarray],
    paths_y: list[np.ndarray],
    weights: np.ndarray,
    n_steps: int,
    label: str,
    widths: tuple[float, float] = (0.6, 3.0),
    dashed: np.ndarray | None = None,
) -> list[Any]:
    """Line traces (one per weight step, lightest first) of edges given as point paths, and a colour legend.

    Each trace is named by its weight range; the last trace is an invisible marker whose colour bar
    (titled ``label``) shows the steps with their boundaries. Edges flagged in ``dashed`` (one bool per edge)
    are drawn dashed, in traces of their own with the same steps (``meta["dashed"]``).
    """
    import plotly.graph_objects as go

    weights = np.asarray(weights, dtype=float)
    steps, bounds = weight_steps(weights, n_steps)
    dashed = np.zeros(len(weights), dtype=bool) if dashed is None else np.asarray(dashed, dtype=bool)
    n = len(bounds) - 1
    colours = step_colours(n)
    traces = []
    for s in range(n):
        for dash in (False, True):
            members = np.flatnonzero((steps == s) & (dashed == dash))
            if not len(members):
                continue
            xs = np.concatenate([np.append(paths_x[i], np.nan) for i in members])
            ys = np.concatenate([np.append(paths_y[i], np.nan) for i in members])
            width = widths[0] + (widths[1] - widths[0]) * s / max(n - 1, 1)
            traces.append(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    hoverinfo="skip",
                    showlegend=False,
                    line={"color": colours[s], "width": width, "dash": "dash" if dash else "solid"},
                    opacity=0.85,
                    name=f"{label} {bounds[s]:.3g} to {bounds[s + 1]:.3g}" + (" (dashed)" if dash else ""),
                    meta={"step": s, "low": float(bounds[s]), "high": float(bounds[s + 1]), "dashed": dash},
                )
            )
    if len(weights):
        traces.append(colour_legend(bounds, colours, label))
    return traces


def colour_legend(bounds: np.ndarray, colours: list[str], label: str) -> Any:
    """An invisible marker carrying a stepped colour bar: step ``s`` coloured ``colours[s]``, ticks at bounds."""
    import plotly.graph_objects as go

    n = len(colours)
    scale = []
    for s, colour in enumerate(colours):
        scale += [[s / n, colour], [(s + 1) / n, colour]]
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        showlegend=False,
        hoverinfo="skip",
        name=f"{label} (colour legend)",
        marker={
            "color": [0],
            "cmin": 0,
            "cmax": n,
            "colorscale": scale,
            "showscale": True,
            "colorbar": {
                "title": {"text": label, "side": "right"},
                "tickvals": list(range(n + 1)),
                "ticktext": [f"{b:.3g}" for b in bounds],
                "thickness": 14,
                "len": 0.6,
            },
        },
    )


def curve(x0: float, y0: float, x1: float, y1: float, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A cubic curve from (x0, y0) to (x1, y1) with horizontal tangents; edges that skip columns or run
    backwards (residual connections) bow upwards by an amount growing with the columns they span."""
    t = np.linspace(0.0, 1.0, n)
    span = abs(x1 - x0)
    lift = 0.0 if x1 > x0 and span <= 1.0 else 0.25 * min(span, 6.0) + 0.15
    if x1 > x0:
        c0, c1 = x0 + 0.45 * (x1 - x0), x1 - 0.45 * (x1 - x0)
    else:  # backwards: leave to the right, come back in from the left
        c0, c1 = x0 + 0.6, x1 - 0.6
    xs = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * c0 + 3 * (1 - t) * t**2 * c1 + t**3 * x1
    ys = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * (y0 + lift) + 3 * (1 - t) * t**2 * (y1 + lift) + t**3 * y1
    return xs, ys
