"""Figures of compressed models: accuracy against stored size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench.errors import ConfigError


def _seeds(n: int | None) -> str:
    if not n:
        return ""
    return "<br>single seed" if n == 1 else f"<br>mean of {n} seeds"


def size_accuracy_figure(
    points: Sequence[Mapping[str, Any]],
    *,
    base: Mapping[str, Any] | None = None,
    title: str = "Accuracy against stored size",
) -> Any:
    """Accuracy against stored bytes (log scale), one labelled marker per compressed model.

    Parameters
    ----------
    points
        One mapping per model: ``name``, ``stored_bytes``, ``accuracy``; optionally ``accuracy_std``
        (an error bar), ``ratio`` (compression ratio, shown on hover) and ``seeds``.
    base
        The uncompressed model: ``stored_bytes`` and ``accuracy`` (an open diamond).
    title
        The figure title.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for point in points:
        missing = [key for key in ("name", "stored_bytes", "accuracy") if key not in point]
        if missing:
            raise ConfigError(f"a point of size_accuracy_figure needs {', '.join(missing)}; got keys {sorted(point)}.")
        extra = "".join(
            [
                f" ({point['ratio']:.1f}x smaller)" if point.get("ratio") else "",
                _seeds(point.get("seeds")),
            ]
        )
        std = point.get("accuracy_std")
        fig.add_trace(
            go.Scatter(
                x=[point["stored_bytes"]],
                y=[point["accuracy"]],
                mode="markers+text",
                text=[point["name"]],
                error_y={"type": "data", "array": [std]} if std is not None else None,
                textposition="top center",
                name=str(point["name"]),
                marker={"size": 11},
                hovertemplate=f"{point['name']}<br>%{{x:,.0f}} bytes{extra}<br>accuracy %{{y:.4f}}<extra></extra>",
            )
        )
    if base is not None:
        fig.add_trace(
            go.Scatter(
                x=[base["stored_bytes"]],
                y=[base["accuracy"]],
                mode="markers+text",
                text=["base (fp32)"],
                textposition="top center",
                name="base model (fp32)",
                marker={
                    "size": 13,
                    "symbol": "diamond",
                    "color": "rgba(0,0,0,0)",
                    "line": {"width": 2, "color": "black"},
                },
                hovertemplate="base model<br>%{x:,.0f} bytes<br>accuracy %{y:.4f}<extra></extra>",
            )
        )
    fig.update_xaxes(type="log", title_text="stored bytes (log scale; sparse, shared, coded weights counted as stored)")
    fig.update_yaxes(title_text="test accuracy")
    fig.update_layout(title=title, height=480, template="plotly_white")
    return fig
