"""Per-layer sensitivity: the validation score of the network when one group alone is compressed.

Li et al. (2017) prune each layer on its own at growing rates and read off which layers are sensitive (their
score falls fast) and which are not (flat curves): budgets then keep more of the sensitive ones. The figure
draws one line per group, the kept fraction on x and the score on y, with the uncompressed score as a dashed
line. It reads :meth:`workbench.compression.Sensitivity.as_dict` (or that object), so that this package need
not import the orchestration above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.errors import ConfigError
from workbench.viz.palette import categorical

_SCORE_TITLES = {"accuracy": "validation accuracy", "miou": "validation mIoU"}


def _fields(result: Any) -> Mapping[str, Any]:
    found = result.as_dict() if hasattr(result, "as_dict") else result
    if not isinstance(found, Mapping) or not {"curves", "fractions", "base"} <= set(found):
        raise ConfigError(
            "sensitivity_figure reads the result of workbench.compression.sensitivity (or its as_dict()): "
            "a mapping with curves, fractions and base."
        )
    fractions = list(found["fractions"])
    for name, curve in found["curves"].items():
        if len(curve) != len(fractions):
            raise ConfigError(f"group {name!r} has {len(curve)} scores for {len(fractions)} fractions.")
    return found


def sensitivity_figure(result: Any, *, title: str | None = None) -> Any:
    """One line per group (kept fraction -> validation score), the base score dashed.

    Parameters
    ----------
    result
        :func:`workbench.compression.sensitivity`'s result, or its ``as_dict()``.
    title
        Figure title (default: the selector and fusion the curves used).

    Returns
    -------
    plotly.graph_objects.Figure
        One trace per group, in the result's order, then the base line, named ``"uncompressed"``.
    """
    import plotly.graph_objects as go

    found = _fields(result)
    fractions = [float(f) for f in found["fractions"]]
    metric = str(found.get("metric", "accuracy"))
    score = _SCORE_TITLES.get(metric, metric)
    curves = found["curves"]
    colors = categorical(max(1, len(curves)))
    fig = go.Figure()
    for color, (name, curve) in zip(colors, curves.items()):
        fig.add_trace(
            go.Scatter(
                x=fractions,
                y=[float(v) for v in curve],
                mode="lines+markers",
                name=str(name),
                line={"color": color, "width": 2},
                marker={"size": 7},
                hovertemplate=f"group {name}<br>kept %{{x:.2f}} of its units<br>{score} %{{y:.4f}}<extra></extra>",
            )
        )
    base = float(found["base"])
    fig.add_trace(
        go.Scatter(
            x=[0.0, 1.0],
            y=[base, base],
            mode="lines",
            name="uncompressed",
            line={"color": "#444444", "dash": "dash", "width": 1.5},
            hovertemplate=f"uncompressed<br>{score} {base:.4f}<extra></extra>",
        )
    )
    selector, fuse = found.get("selector"), found.get("fuse")
    how = f" ({selector}, {fuse}, no retraining)" if selector and fuse else " (no retraining)"
    fig.update_layout(
        title=title or f"Per-layer sensitivity: one group compressed at a time{how}",
        xaxis={"title": "fraction of the group's units kept", "range": [-0.02, 1.02]},
        yaxis={"title": score},
        legend={"title": {"text": "group compressed"}},
        hovermode="closest",
        template="plotly_white",
        margin={"l": 70, "r": 30, "t": 60, "b": 60},
    )
    return fig


__all__ = ["sensitivity_figure"]
