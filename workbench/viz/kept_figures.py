"""What a compression kept, layer by layer: the fraction of units kept per prunable group, per method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench.errors import ConfigError
from workbench.viz.heatmap_style import layer_columns


def budget_text(budget: object) -> str:
    """A budget as readers see it: ``keep 0.5`` for a kept fraction, the label itself for a cost budget
    (``macs 0.5``, ``params 0.33 global``)."""
    try:
        return f"keep {float(str(budget)):g}"
    except ValueError:
        return str(budget)


def kept_fraction_heatmap(rows: Sequence[Mapping[str, Any]], *, title: str = "Fraction of units kept per layer") -> Any:
    """Heatmaps of the kept fraction: one panel per budget, a row per method, a column per prunable group.

    Parameters
    ----------
    rows
        One mapping per (method, budget, group): ``method``, ``budget`` (panel title), ``group`` and
        ``kept`` (fraction of the group's units kept, 0..1; mean over seeds); optionally ``units`` (the
        group's unit count, shown on hover).

    Raises
    ------
    ConfigError
        No rows, a row without a required key, or a fraction outside [0, 1].
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not rows:
        raise ConfigError("kept_fraction_heatmap needs at least one row (method, budget, group, kept).")
    for row in rows:
        missing = [key for key in ("method", "budget", "group", "kept") if key not in row]
        if missing:
            raise ConfigError(f"a row of kept_fraction_heatmap needs {', '.join(missing)}; got keys {sorted(row)}.")
        if not 0.0 <= float(row["kept"]) <= 1.0:
            raise ConfigError(f"a kept fraction is between 0 and 1; got {row['kept']!r} for {row['group']!r}.")
    budgets = list(dict.fromkeys(str(r["budget"]) for r in rows))
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    groups = list(dict.fromkeys(str(r["group"]) for r in rows))
    units = {str(r["group"]): r.get("units") for r in rows}
    cols = min(len(budgets), 3)
    nrows = -(-len(budgets) // cols)
    fig = make_subplots(
        rows=nrows,
        cols=cols,
        subplot_titles=[f"budget: {budget_text(b)}" for b in budgets],
        shared_yaxes=True,
        horizontal_spacing=0.04,
        vertical_spacing=0.25 / max(nrows, 1),
    )
    value = {(str(r["method"]), str(r["budget"]), str(r["group"])): float(r["kept"]) for r in rows}
    ticks, with_text = layer_columns(groups)
    for i, budget in enumerate(budgets):
        z = [[value.get((m, budget, g)) for g in groups] for m in methods]
        text = [["" if v is None else f"{v:.2f}" for v in line] for line in z]
        hover = [
            [
                f"{m}, {budget_text(budget)}<br>{g}"
                + (f" ({units[g]} units)" if units[g] else "")
                + ("<br>not run" if v is None else f"<br>kept {v:.3f}")
                for g, v in zip(groups, line)
            ]
            for m, line in zip(methods, z)
        ]
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=groups,
                y=methods,
                zmin=0,
                zmax=1,
                colorscale="Blues",
                text=text,
                texttemplate="%{text}" if with_text else "",
                customdata=hover,
                hovertemplate="%{customdata}<extra></extra>",
                showscale=i == 0,
                colorbar={"title": {"text": "kept<br>fraction"}, "len": 0.8},
                xgap=2,
                ygap=2,
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(tickangle=-30, automargin=True, **ticks)
    fig.update_yaxes(automargin=True, autorange="reversed")
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        template="plotly_white",
        height=max(260, nrows * (60 + 28 * len(methods)) + 120),
        margin={"t": 90, "l": 40, "r": 30, "b": 40},
    )
    return fig
