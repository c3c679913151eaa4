"""Accuracy against cost for every method on one base model: one figure, a cost axis chosen from a dropdown.

Each point is one method at one budget (a selector with its fusion mode, a compression pipeline, a baseline
architecture) with its accuracy interval (95%). The figure draws the Pareto front on the chosen axis, the base
model's accuracy as a line, and the test set's noise floor as a band on the same 95% scale as the error bars:
the Wilson interval of an accuracy at the base accuracy on ``n_test`` samples. A method outside the band
differs from the base by more than the test set's sampling error of one accuracy; one inside cannot be told
from the base by a test set of this size. The band leaves out seed-to-seed spread: the error bars carry it, and
the paired differences of the report's table give the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

from workbench.errors import ConfigError

#: Cost axes the reader can choose, in menu order: key -> axis title.
COST_AXES = {
    "params": "parameters",
    "macs": "multiply-adds per input",
    "stored_bytes": "stored bytes",
    "latency_ms": "latency per batch (ms, CPU)",
}

#: Marker symbol per fusion mode (selector runs) and per kind of method.
FUSE_SYMBOLS = {"drop": "circle", "merge": "diamond", "lsq": "square"}
KIND_SYMBOLS = {"pipeline": "triangle-up", "baseline": "star", "base": "x"}

_SELECTOR_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_OTHER_COLORS = ("#7f7f7f", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
_GROUP_TITLES = {
    "selector": "selectors (marker: fusion)",
    "pipeline": "compression pipelines",
    "baseline": "baseline architectures",
}

#: Largest marker diameter in pixels (the largest model of a report); see :func:`marker_size`.
MAX_MARKER = 30.0
MIN_MARKER = 6.0


def marker_size(params: float | None, largest: float) -> float:
    """Marker diameter in pixels with area proportional to ``params`` on the scale of ``largest`` (one scale
    for every figure that passes the same ``largest``), never below :data:`MIN_MARKER`."""
    if not params or not largest or largest <= 0:
        return MIN_MARKER
    return max(MIN_MARKER, MAX_MARKER * math.sqrt(float(params) / float(largest)))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points not dominated by another (no other has lower or equal cost and higher accuracy), by cost.

    ``points`` are ``(cost, accuracy)``; points with a missing or non-finite value are left out.
    """
    clean = sorted(
        (c, a) for c, a in points if c is not None and a is not None and math.isfinite(c) and math.isfinite(a)
    )
    front: list[tuple[float, float]] = []
    for cost, acc in sorted(clean, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((cost, acc))
    return front


#: Confidence level of the noise band: the level of the error bars.
BAND_LEVEL = 0.95


def noise_floor(accuracy: float, n_test: int, level: float = BAND_LEVEL) -> dict[str, float]:
    """The test set's resolution at ``accuracy`` on ``n_test`` samples: ``one_sample`` (1/n), ``se`` (binomial
    standard error) and ``low``/``high``, Wilson's ``level`` interval of one accuracy there (within [0, 1], never
    a point; :func:`workbench.study.statistics.wilson_interval`, which this package may not import)."""
    if not n_test or n_test <= 0:
        raise ConfigError(f"the noise floor needs the test-set size, a positive count; got {n_test!r}.")
    p = min(max(float(accuracy), 0.0), 1.0)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    shrink = 1.0 + z * z / n_test
    centre = (p + z * z / (2 * n_test)) / shrink
    half = z / shrink * math.sqrt(p * (1.0 - p) / n_test + z * z / (4 * n_test * n_test))
    return {
        "one_sample": 1.0 / n_test,
        "se": math.sqrt(p * (1.0 - p) / n_test),
        "low": max(0.0, centre - half),
        "high": min(1.0, centre + half),
        "level": level,
    }


def _check(point: Mapping[str, Any]) -> None:
    missing = [key for key in ("name", "kind", "accuracy", "costs") if key not in point]
    if missing:
        raise ConfigError(
            f"a point of tradeoff_figure needs {', '.join(missing)}; got keys {sorted(point)}. "
            "Give name, kind, accuracy and costs (a mapping of cost axis to value)."
        )
    if point["kind"] not in ("selector", "pipeline", "baseline"):
        raise ConfigError(f"a point's kind is 'selector', 'pipeline' or 'baseline', not {point['kind']!r}.")


def _symbol(point: Mapping[str, Any]) -> str:
    symbol = FUSE_SYMBOLS.get(point.get("fuse") or "", "circle") if point["kind"] == "selector" else None
    symbol = symbol or KIND_SYMBOLS[point["kind"]]
    return f"{symbol}-open" if point.get("n") == 1 else symbol


def _interval_text(point: Mapping[str, Any]) -> str:
    low, high, n = point.get("low"), point.get("high"), point.get("n")
    span = f" [{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""
    if n == 1:
        return f"{point['accuracy']:.4f}{span} single seed (95% interval of the test set)"
    return f"mean {point['accuracy']:.4f}{span} over {n} seeds (95% interval)" if n else f"{point['accuracy']:.4f}"


def _errors(points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    plus = [None if p.get("high") is None else max(p["high"] - p["accuracy"], 0.0) for p in points]
    minus = [None if p.get("low") is None else max(p["accuracy"] - p["low"], 0.0) for p in points]
    return {"type": "data", "array": plus, "arrayminus": minus, "visible": True, "thickness": 1.2, "width": 3}


def _axes_in_use(points: Sequence[Mapping[str, Any]], axes: Sequence[str] | None) -> list[str]:
    wanted = list(axes) if axes is not None else list(COST_AXES)
    unknown = [a for a in wanted if a not in COST_AXES]
    if unknown:
        raise ConfigError(f"unknown cost axis {', '.join(unknown)}; choose from {', '.join(COST_AXES)}.")
    used = [a for a in wanted if any(p["costs"].get(a) is not None for p in points)]
    if not used:
        raise ConfigError(f"no point has a cost on any of the axes {', '.join(wanted)}; give each point costs.")
    return used


def tradeoff_figure(
    points: Sequence[Mapping[str, Any]],
    *,
    base: Mapping[str, Any] | None = None,
    axes: Sequence[str] | None = None,
    n_test: int | None = None,
    largest_params: float | None = None,
    order: Sequence[str] = (),
    accuracy_label: str = "test accuracy",
    title: str = "Accuracy against cost",
) -> Any:
    """Every method's accuracy against a cost the reader chooses (a dropdown over ``axes``).

    Parameters
    ----------
    points
        One mapping per method and budget: ``name`` (legend entry: selector, pipeline or architecture),
        ``kind`` (``"selector"``, ``"pipeline"``, ``"baseline"``), ``accuracy`` (mean, or the single seed's
        value), ``costs`` (axis key of :data:`COST_AXES` -> value); optionally ``fuse`` (marker symbol),
        ``low``/``high`` (95% interval: error bars), ``n`` (seeds; one seed draws an open marker),
        ``params`` (marker area) and ``label`` (hover text).
    base
        The uncompressed model: ``accuracy``, ``costs`` and optionally ``low``/``high``/``n``/``params``.
        Drawn as a point and a horizontal line.
    axes
        Cost axes offered, in order (default: those of :data:`COST_AXES` that some point has); the first
        is shown first.
    n_test
        Test-set size: draws the noise floor (:func:`noise_floor`, 95% like the error bars) around the base
        accuracy (needs ``base``).
    largest_params
        Parameters of the largest model on the page: marker areas share one scale across figures
        (default: the largest here).
    order
        Names in the order they take colours (selectors, then the rest), so that a name keeps its colour
        in every figure drawn with the same ``order``; names not in it follow in order of appearance.

    Raises
    ------
    ConfigError
        A point lacks a required key, or no point has a cost on any axis.
    """
    import plotly.graph_objects as go

    for point in points:
        _check(point)
    score = accuracy_label.removeprefix("test ")  # "accuracy" or "mIoU": the menus and the noise note say it
    everything = list(points) + ([base] if base is not None else [])
    used = _axes_in_use(everything, axes)
    largest = largest_params or max((p.get("params") or 0 for p in everything), default=0) or 1
    fig = go.Figure()

    names: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    kind_order = {"selector": 0, "pipeline": 1, "baseline": 2}
    fuse_order = {fuse: i for i, fuse in enumerate(FUSE_SYMBOLS)}
    for point in sorted(points, key=lambda p: (kind_order[p["kind"]], fuse_order.get(p.get("fuse") or "", 0))):
        names.setdefault((point["kind"], str(point["name"])), []).append(point)
    colors: dict[tuple[str, str], str] = {}
    rank = {name: i for i, name in enumerate(order)}
    unranked = [key for key in names if key[1] not in rank]
    for kind, name in names:
        slot = rank[name] if name in rank else len(rank) + unranked.index((kind, name))
        palette = _SELECTOR_COLORS if kind == "selector" else _OTHER_COLORS
        colors[(kind, name)] = palette[slot % len(palette)]

    shown = {axis: dodge(everything, axis) for axis in used}
    traces_x: list[dict[str, list[Any]]] = []  # per trace: axis -> x values
    kinds_seen = []
    for (kind, name), items in names.items():
        first_of_kind = kind not in kinds_seen
        kinds_seen.append(kind)
        hover = [
            f"<b>{p.get('label', name)}</b><br>{accuracy_label}: {_interval_text(p)}"
            + "".join(f"<br>{COST_AXES[a]}: {_short(p['costs'].get(a), a)}" for a in used)
            for p in items
        ]
        fig.add_trace(
            go.Scatter(
                x=[shown[used[0]][id(p)] for p in items],
                y=[p["accuracy"] for p in items],
                error_y={**_errors(items), "color": colors[(kind, name)]},
                mode="markers",
                name=str(name),
                legendgroup=kind,
                legendgrouptitle_text=_GROUP_TITLES[kind] if first_of_kind else None,
                marker={
                    "symbol": [_symbol(p) for p in items],
                    "size": [marker_size(p.get("params"), largest) for p in items],
                    "color": colors[(kind, name)],
                    "opacity": 0.85,
                    "line": {"width": 1.5, "color": colors[(kind, name)]},
                },
                text=hover,
                hovertemplate="%{text}<extra></extra>",
                cliponaxis=False,
            )
        )
        traces_x.append({a: [shown[a][id(p)] for p in items] for a in used})

    fuses = sorted(
        {p["fuse"] for p in points if p["kind"] == "selector" and p.get("fuse")},
        key=lambda f: (list(FUSE_SYMBOLS).index(f) if f in FUSE_SYMBOLS else len(FUSE_SYMBOLS), f),
    )
    for fuse in fuses:  # the marker legend: one grey entry per fusion mode
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"fusion: {fuse}",
                legendgroup="fusion",
                legendgrouptitle_text="marker shape (open: one seed)" if fuse == fuses[0] else None,
                marker={"symbol": FUSE_SYMBOLS.get(fuse, "circle"), "size": 10, "color": "#555"},
                hoverinfo="skip",
            )
        )
        traces_x.append({a: [None] for a in used})

    shapes, annotations = [], []
    if base is not None:
        fig.add_trace(
            go.Scatter(
                x=[shown[used[0]][id(base)]],
                y=[base["accuracy"]],
                error_y=_errors([base]),
                mode="markers",
                name="base model (unpruned)",
                legendgroup="reference",
                legendgrouptitle_text="reference",
                marker={"symbol": "x", "size": 12, "color": "black"},
                text=[f"<b>base model</b><br>{accuracy_label}: {_interval_text(base)}"],
                hovertemplate="%{text}<extra></extra>",
                cliponaxis=False,
            )
        )
        traces_x.append({a: [shown[a][id(base)]] for a in used})
        shapes.append(_hline(base["accuracy"], dash="dash", color="black"))
        if n_test:
            floor = noise_floor(base["accuracy"], n_test)
            shapes.append(
                {
                    "type": "rect",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "y0": floor["low"],
                    "y1": floor["high"],
                    "fillcolor": "rgba(0,0,0,0.08)",
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
            annotations.append(
                {
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0,
                    "y": 1.0,
                    "yanchor": "bottom",
                    "xanchor": "left",
                    "showarrow": False,
                    "align": "left",
                    "font": {"size": 11, "color": "#444"},
                    "text": f"dashed line: base {score}; grey band: the test set's {floor['level']:.0%} sampling interval "
                    f"at the base {score} (n = {n_test:,}; one test sample = {floor['one_sample']:.4f}): a point "
                    "outside it differs from the base by more than that noise",
                }
            )

    n_data = len(fig.data)
    fronts = []
    for axis in used:
        front = pareto_front([(x, p["accuracy"]) for p in everything for x in [p["costs"].get(axis)] if x is not None])
        fronts.append(len(fig.data))
        fig.add_trace(
            go.Scatter(
                x=[c for c, _ in front],
                y=[a for _, a in front],
                mode="lines",
                line={"shape": "hv", "color": "rgba(0,0,0,0.45)", "width": 1.5},
                name="Pareto front",
                legendgroup="reference",
                visible=axis == used[0],
                hoverinfo="skip",
            )
        )

    buttons = []
    for i, axis in enumerate(used):
        xs = [tx[axis] for tx in traces_x] + [list(fig.data[f].x) for f in fronts]
        visible = [True] * n_data + [j == i for j in range(len(used))]
        buttons.append(
            {
                "label": COST_AXES[axis],
                "method": "update",
                "args": [{"x": xs, "visible": visible}, {"xaxis.title.text": f"{COST_AXES[axis]} (log scale)"}],
            }
        )
    entries = len(names) + len(fuses) + 2 + len(set(kinds_seen)) + 2
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "y": 0.98, "yanchor": "top"},
        template="plotly_white",
        height=max(560, 28 * entries + 200),  # the grouped legend (titles and gaps too) fits without scrolling
        margin={"l": 70, "r": 30, "t": 110, "b": 60},
        shapes=shapes,
        annotations=annotations,
        legend={"tracegroupgap": 8, "groupclick": "toggleitem", "itemsizing": "constant"},
        updatemenus=_zoom_menu(everything, base, score)
        + [
            {
                "buttons": buttons,
                "direction": "down",
                "x": 1.0,
                "xanchor": "right",
                "y": 1.0,
                "yanchor": "bottom",
                "pad": {"b": 24},
                "showactive": True,
            }
        ]
        if len(used) > 1
        else [],
    )
    fig.update_xaxes(type="log", title_text=f"{COST_AXES[used[0]]} (log scale)", tickformat="~s")
    fig.update_yaxes(title_text=accuracy_label, tickformat=".3f")
    return fig


#: Relative sideways shift between points that share a cost (see :func:`dodge`).
DODGE = 0.02


def dodge(points: Sequence[Mapping[str, Any]], axis: str) -> dict[int, float | None]:
    """Drawn x per point (keyed by ``id``): points whose cost on ``axis`` agrees within 0.5% are spread
    sideways by a factor of ``1 + DODGE`` each (a log axis), in order, so that their error bars stay apart;
    hover texts give the true cost."""
    drawn: dict[int, float | None] = {}
    clusters: list[list[Mapping[str, Any]]] = []
    for point in sorted((p for p in points if p["costs"].get(axis) is not None), key=lambda p: float(p["costs"][axis])):
        x = float(point["costs"][axis])
        if clusters and x <= float(clusters[-1][0]["costs"][axis]) * 1.005:
            clusters[-1].append(point)
        else:
            clusters.append([point])
    for cluster in clusters:
        centre = float(cluster[0]["costs"][axis])
        for k, point in enumerate(cluster):
            drawn[id(point)] = centre * (1.0 + DODGE) ** (k - (len(cluster) - 1) / 2)
    for point in points:
        drawn.setdefault(id(point), None)
    return drawn


#: Accuracy points around the base accuracy shown by the "near the base" zoom.
NEAR_BASE = 0.05


def _zoom_menu(
    points: Sequence[Mapping[str, Any]], base: Mapping[str, Any] | None, score: str = "accuracy"
) -> list[dict[str, Any]]:
    """A second menu: the ``score`` axis over every point, or within :data:`NEAR_BASE` of the base score
    (offered when some point lies farther from it)."""
    if base is None:
        return []
    lows = [p.get("low", p["accuracy"]) if p.get("low") is not None else p["accuracy"] for p in points]
    highs = [p.get("high") if p.get("high") is not None else p["accuracy"] for p in points]
    low, high = min(lows), max(highs)
    near = (max(base["accuracy"] - NEAR_BASE, 0.0), min(base["accuracy"] + NEAR_BASE / 2, 1.0))
    if low >= near[0]:
        return []
    pad = 0.03 * (high - low or 1.0)
    return [
        {
            "buttons": [
                {
                    "label": f"{score}: all points",
                    "method": "relayout",
                    "args": [{"yaxis.range": [low - pad, high + pad]}],
                },
                {
                    "label": f"{score}: base -{NEAR_BASE * 100:.0f} points",
                    "method": "relayout",
                    "args": [{"yaxis.range": list(near)}],
                },
            ],
            "direction": "down",
            "x": 0.78,
            "xanchor": "right",
            "y": 1.0,
            "yanchor": "bottom",
            "pad": {"b": 24},
            "showactive": True,
        }
    ]


def _hline(y: float, *, dash: str, color: str) -> dict[str, Any]:
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": y,
        "y1": y,
        "line": {"dash": dash, "color": color, "width": 1},
    }


def _short(value: float | None, axis: str) -> str:
    if value is None:
        return "-"
    if axis == "latency_ms":
        return f"{value:.3f} ms"
    return si_bytes(value) if axis == "stored_bytes" else si(value)


def si(value: float, digits: int = 3) -> str:
    """``17600 -> '17.6k'``, ``1234567 -> '1.23M'``, ``812 -> '812'``: ``digits`` significant digits with SI
    suffixes (k, M, G, T)."""
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    if number == int(number) and abs(number) < 1000:
        return str(int(number))
    for suffix, scale in (("", 1.0), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12)):
        text = f"{number / scale:.{digits}g}"
        if "e" not in text and abs(float(text)) < 1000 or suffix == "T":
            return text + suffix
    return str(number)  # pragma: no cover - the loop always returns


def si_bytes(value: float) -> str:
    """``2440 -> '2.44 kB'``, ``512 -> '512 B'`` (decimal units, :func:`si` digits)."""
    text = si(value)
    return f"{text[:-1]} {text[-1]}B" if text[-1].isalpha() else f"{text} B"
