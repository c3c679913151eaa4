"""Figures comparing plans: kept fraction per layer by selector, and the overlap of what selectors keep."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import ConfigError
from workbench.viz.heatmap_style import layer_columns
from workbench.viz.kept_units import kept_units
from workbench.viz.palette import categorical

if TYPE_CHECKING:
    import plotly.graph_objects as go


def _plans(plans: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    if not isinstance(plans, Mapping) or not plans:
        raise ConfigError("plans must be a non-empty mapping: selector name -> plan.")
    return {str(name): kept_units(plan) for name, plan in plans.items()}


def _groups(kept: Mapping[str, Mapping[str, np.ndarray]]) -> list[str]:
    groups: list[str] = []
    for plan in kept.values():
        groups += [g for g in plan if g not in groups]
    return groups


def _sizes(plans: Mapping[str, Any], sizes: Mapping[str, int] | None) -> dict[str, int]:
    """Units per group: given, or read from the plans' selections (``n_units``)."""
    out = dict(sizes or {})
    for plan in plans.values():
        for group, selection in getattr(plan, "selections", plan).items():
            n = getattr(selection, "n_units", None)
            if n is not None:
                out.setdefault(str(group), int(n))
    return out


def kept_fraction_figure(
    plans: Mapping[str, Any], sizes: Mapping[str, int] | None = None, title: str | None = None
) -> go.Figure:
    """Kept fraction of each layer (group), one bar per selector.

    Parameters
    ----------
    plans
        Selector name -> plan (a Plan, or group -> Selection / kept indices).
    sizes
        Units per group; needed only for plans given as index arrays (Selections carry ``n_units``).
    """
    import plotly.graph_objects as go

    kept = _plans(plans)
    groups = _groups(kept)
    n_units = _sizes(plans, sizes)
    missing = [g for g in groups if g not in n_units]
    if missing:
        raise ConfigError(f"the size of group(s) {', '.join(missing)} is unknown; pass sizes={{group: units}}.")
    colours = categorical(len(kept))
    fig = go.Figure()
    for colour, (name, plan) in zip(colours, kept.items()):
        present = [g for g in groups if g in plan]
        fig.add_trace(
            go.Bar(
                x=present,
                y=[len(plan[g]) / n_units[g] for g in present],
                name=name,
                marker_color=colour,
                customdata=[[len(plan[g]), n_units[g]] for g in present],
                hovertemplate=f"{name}<br>%{{x}}: %{{customdata[0]}} of %{{customdata[1]}} units kept"
                "<br>(%{y:.1%})<extra></extra>",
            )
        )
    fig.update_layout(
        title=title or "Kept fraction per layer, by selector",
        barmode="group",
        template="plotly_white",
        yaxis={"title": "kept fraction", "range": [0, 1.05], "tickformat": ".0%"},
        xaxis={"title": "layer (prunable group)"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0.0},
    )
    return fig


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∩ b| / |a ∪ b| of two index sets (1.0 when both are empty)."""
    union = len(np.union1d(a, b))
    return len(np.intersect1d(a, b)) / union if union else 1.0


#: Colours of the overlap scale anchored at chance: below chance, at chance, above it.
OVERLAP_COLOURS = ("#2166ac", "#f7f7f7", "#b2182b")


def overlap_colours(chance: float) -> dict[str, Any]:
    """Heatmap settings that colour a Jaccard overlap by its ratio to ``chance`` (log2, diverging: white at
    chance, blue below, red above, out to 1 and to ``chance`` squared), with a colour bar labelled in Jaccard
    values and its chance tick named. The heatmap's ``z`` is then ``log2(J / chance)`` (see :func:`overlap_z`)."""
    if not 0.0 < chance < 1.0:
        raise ConfigError(f"the chance overlap is a fraction in (0, 1), got {chance!r}.")
    top = float(np.log2(1.0 / chance))
    ticks = [chance / 4, chance / 2, chance, 2 * chance, 4 * chance, 1.0]
    ticks = [t for t in ticks if t <= 1.0 and (t == 1.0 or t <= 0.8) and abs(np.log2(t / chance)) <= top]
    return {
        "zmin": -top,
        "zmax": top,
        "colorscale": [[0.0, OVERLAP_COLOURS[0]], [0.5, OVERLAP_COLOURS[1]], [1.0, OVERLAP_COLOURS[2]]],
        "colorbar": {
            "title": {"text": "Jaccard<br>(log scale,<br>white: chance)", "side": "right"},
            "tickvals": [float(np.log2(t / chance)) for t in ticks],
            "ticktext": [f"{t:.2g}" + (" chance" if t == chance else "") for t in ticks],
        },
    }


def overlap_z(jaccard_values: np.ndarray, chance: float) -> np.ndarray:
    """``log2(J / chance)`` clipped to the scale of :func:`overlap_colours` (J = 0 at its bottom; NaN kept)."""
    top = float(np.log2(1.0 / chance))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log2(np.asarray(jaccard_values, dtype=float) / chance)
    return np.where(np.isnan(z), np.nan, np.clip(z, -top, top))


def selection_overlap_figure(
    plans: Mapping[str, Any], title: str | None = None, chance: float | None = None
) -> go.Figure:
    """Jaccard overlap of the kept units of every pair of selectors, per layer (group), as a heatmap.

    Rows are selector pairs, columns the groups both plans cover, and the last column the mean over
    those groups; hover gives the kept counts and the size of the intersection.

    Parameters
    ----------
    chance
        The overlap two random selections have (``keep / (2 - keep)`` at a kept fraction ``keep``): the colour
        scale is anchored there (:func:`overlap_colours`), so that pairs near chance read white, below blue and
        above red, however small the values; cells still show the Jaccard value. Without it, 0 to 1 in Viridis.
    """
    import plotly.graph_objects as go

    kept = _plans(plans)
    if len(kept) < 2:
        raise ConfigError("the overlap needs at least two plans (selector name -> plan).")
    groups = _groups(kept)
    pairs = list(combinations(kept, 2))
    z = np.full((len(pairs), len(groups) + 1), np.nan)
    text = [["" for _ in range(len(groups) + 1)] for _ in pairs]
    for r, (p, q) in enumerate(pairs):
        for c, g in enumerate(groups):
            if g in kept[p] and g in kept[q]:
                a, b = kept[p][g], kept[q][g]
                z[r, c] = jaccard(a, b)
                text[r][c] = f"{p}: {len(a)} kept, {q}: {len(b)} kept, {len(np.intersect1d(a, b))} in both"
        row = z[r, : len(groups)]
        z[r, -1] = np.nanmean(row) if np.isfinite(row).any() else np.nan
        text[r][-1] = "mean over layers"
    ticks, with_text = layer_columns([*groups, "mean"])
    if ticks and "mean" not in ticks["tickvals"]:
        ticks = {**ticks, "tickvals": [*ticks["tickvals"], "mean"], "ticktext": [*ticks["ticktext"], "mean"]}
    if chance is None:
        colours: dict[str, Any] = {
            "zmin": 0,
            "zmax": 1,
            "colorscale": "Viridis",
            "colorbar": {"title": {"text": "Jaccard", "side": "right"}},
        }
        shown = z
    else:
        colours, shown = overlap_colours(chance), overlap_z(z, chance)
    fig = go.Figure(
        go.Heatmap(
            z=shown,
            x=groups + ["mean"],
            y=[f"{p} / {q}" for p, q in pairs],
            text=[["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in z],
            customdata=text,
            texttemplate="%{text}" if with_text else "",
            hovertemplate="%{y}<br>%{x}: Jaccard %{text}"
            + ("" if chance is None else f" (chance {chance:.3f})")
            + "<br>%{customdata}<extra></extra>",
            **colours,
        )
    )
    fig.update_layout(
        title=title or "Overlap of the kept units between selectors (Jaccard per layer)",
        template="plotly_white",
        height=max(320, 60 + 32 * len(pairs)),
        xaxis={"title": "layer (prunable group)", **ticks},
        yaxis={"autorange": "reversed"},
    )
    return fig
