"""Accuracy against cost for every method on one base model: one figure, a cost axis chosen from a dropdown.

Each point is one method at one budget (a selector with its fusion mode, a compression pipeline, a baseline
architecture) with its accuracy interval (95%), drawn at its true cost: points that share a cost overlap, and the
hover text of each lists every point at that cost. A cost measured with a spread over seeds (latency) carries
a horizontal error bar (its range). The figure draws the Pareto front on the chosen axis, the base
model's accuracy as a line, and the test set's noise floor as a band on the same 95% scale as the error bars:
the Wilson interval of an accuracy at the base accuracy on ``n_test`` samples. A method outside the band
differs from the base by more than the test set's sampling error of one accuracy; one inside cannot be told
from the base by a test set of this size. The band leaves out seed-to-seed spread: the error bars carry it, and
the paired differences of the report's table give the verdict. Given the chance level (1 / classes), a dotted
red line marks it.
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
    "latency_ms": "latency at batch 1 (ms, CPU)",
}

#: Tick format per cost axis: SI prefixes for counts and bytes, plain numbers for milliseconds (an SI prefix
#: on a value already in ms would read 30m for 0.03 ms).
TICK_FORMATS = {"params": "~s", "macs": "~s", "stored_bytes": "~s", "latency_ms": "~g"}

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
    chance: float | None = None,
) -> Any:
    """Every method's accuracy against a cost the reader chooses (a dropdown over ``axes``).

    Parameters
    ----------
    points
        One mapping per method and budget: ``name`` (legend entry: selector, pipeline or architecture),
        ``kind`` (``"selector"``, ``"pipeline"``, ``"baseline"``), ``accuracy`` (mean, or the single seed's
        value), ``costs`` (axis key of :data:`COST_AXES` -> value); optionally ``fuse`` (marker symbol),
        ``low``/``high`` (95% interval: error bars), ``n`` (seeds; one seed draws an open marker),
        ``params`` (marker area), ``label`` (hover text) and ``cost_ranges`` (axis key -> ``(low, high)``:
        a horizontal error bar on that axis, e.g. the range of latency over seeds).
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
    chance
        The score of a guess (1 / classes for accuracy): drawn as a dotted red line, labelled.

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

    traces_x: list[dict[str, list[Any]]] = []  # per trace: axis -> x values
    traces_text: list[dict[str, list[str]]] = []  # per trace: axis -> hover texts
    traces_error: list[dict[str, dict[str, Any]]] = []  # per trace: axis -> horizontal error bars
    kinds_seen = []
    for (kind, name), items in names.items():
        first_of_kind = kind not in kinds_seen
        kinds_seen.append(kind)
        hover = {a: [_hover(p, everything, a, used, accuracy_label) for p in items] for a in used}
        error_x = {a: _cost_errors(items, a, colors[(kind, name)]) for a in used}
        fig.add_trace(
            go.Scatter(
                x=[p["costs"].get(used[0]) for p in items],
                y=[p["accuracy"] for p in items],
                error_y={**_errors(items), "color": colors[(kind, name)]},
                error_x=error_x[used[0]],
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
                text=hover[used[0]],
                hovertemplate="%{text}<extra></extra>",
                cliponaxis=False,
            )
        )
        traces_x.append({a: [p["costs"].get(a) for p in items] for a in used})
        traces_text.append(hover)
        traces_error.append(error_x)

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
        traces_text.append({a: [""] for a in used})
        traces_error.append({a: {"visible": False} for a in used})

    shapes, annotations = [], []
    if base is not None:
        base_hover = {a: [_hover(base, everything, a, used, accuracy_label, "base model")] for a in used}
        base_error = {a: _cost_errors([base], a, "black") for a in used}
        fig.add_trace(
            go.Scatter(
                x=[base["costs"].get(used[0])],
                y=[base["accuracy"]],
                error_y=_errors([base]),
                error_x=base_error[used[0]],
                mode="markers",
                name="base model (unpruned)",
                legendgroup="reference",
                legendgrouptitle_text="reference",
                marker={"symbol": "x", "size": 12, "color": "black"},
                text=base_hover[used[0]],
                hovertemplate="%{text}<extra></extra>",
                cliponaxis=False,
            )
        )
        traces_x.append({a: [base["costs"].get(a)] for a in used})
        traces_text.append(base_hover)
        traces_error.append(base_error)
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

    if chance is not None:
        shapes.append(
            {**_hline(chance, dash="dot", color="#c0392b"), "line": {"dash": "dot", "color": "#c0392b", "width": 1.5}}
        )
        annotations.append(
            {
                "xref": "paper",
                "x": 1.0,
                "y": chance,
                "xanchor": "right",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 11, "color": "#c0392b"},
                "text": f"chance level {chance:.3f}: a guess scores this",
            }
        )
        fig.add_trace(  # the y axis reaches the chance line even when every point lies far above it
            go.Scatter(x=[None], y=[chance], mode="markers", showlegend=False, hoverinfo="skip", marker={"opacity": 0})
        )
        traces_x.append({a: [None] for a in used})
        traces_text.append({a: [""] for a in used})
        traces_error.append({a: {"visible": False} for a in used})

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
        texts = [tt[axis] for tt in traces_text] + [None] * len(fronts)
        errors = [te[axis] for te in traces_error] + [{"visible": False}] * len(fronts)
        visible = [True] * n_data + [j == i for j in range(len(used))]
        buttons.append(
            {
                "label": COST_AXES[axis],
                "method": "update",
                "args": [
                    {"x": xs, "visible": visible, "text": texts, "error_x": errors},
                    {"xaxis.title.text": _axis_title(axis), "xaxis.tickformat": TICK_FORMATS[axis]},
                ],
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
        updatemenus=_zoom_menu(everything, base, score, chance)
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
    fig.update_xaxes(type="log", title_text=_axis_title(used[0]), tickformat=TICK_FORMATS[used[0]])
    fig.update_yaxes(title_text=accuracy_label, tickformat=".3f")
    return fig


#: Costs that agree within this relative tolerance are "the same cost" in the hover listing.
SAME_COST = 0.005


def _axis_title(axis: str) -> str:
    return f"{COST_AXES[axis]} (log scale; points sharing a cost overlap, hover lists them)"


def shared_cost(points: Sequence[Mapping[str, Any]], point: Mapping[str, Any], axis: str) -> list[Mapping[str, Any]]:
    """The points of ``points`` (``point`` included) whose cost on ``axis`` agrees with ``point``'s within
    :data:`SAME_COST`, by accuracy, highest first: the points drawn on top of one another."""
    x = point["costs"].get(axis)
    if x is None:
        return [point]
    same = [p for p in points if (c := p["costs"].get(axis)) is not None and abs(c - x) <= SAME_COST * abs(x)]
    return sorted(same, key=lambda p: -p["accuracy"])


def _hover(
    point: Mapping[str, Any],
    points: Sequence[Mapping[str, Any]],
    axis: str,
    used: Sequence[str],
    accuracy_label: str,
    label: str | None = None,
) -> str:
    """Hover text of ``point`` on ``axis``: its interval and costs, and every other point drawn at its cost."""
    name = label or point.get("label", point.get("name"))
    text = f"<b>{name}</b><br>{accuracy_label}: {_interval_text(point)}"
    for a in used:
        low, high = (point.get("cost_ranges") or {}).get(a, (None, None))
        spread = f" (range {_short(low, a)} to {_short(high, a)})" if low is not None and high is not None else ""
        text += f"<br>{COST_AXES[a]}: {_short(point['costs'].get(a), a)}{spread}"
    others = [p for p in shared_cost(points, point, axis) if p is not point]
    if others:
        lines = "".join(f"<br>  {p.get('label', p.get('name'))}: {p['accuracy']:.4f}" for p in others)
        text += f"<br><i>also at this cost ({len(others)}):</i>{lines}"
    return text


def _cost_errors(points: Sequence[Mapping[str, Any]], axis: str, color: str) -> dict[str, Any]:
    """Horizontal error bars of ``points`` on ``axis`` from their ``cost_ranges`` (invisible without one)."""
    ranges = [(p.get("cost_ranges") or {}).get(axis) for p in points]
    if not any(r is not None for r in ranges):
        return {"visible": False}
    xs = [p["costs"].get(axis) for p in points]
    plus = [None if r is None or x is None else max(r[1] - x, 0.0) for r, x in zip(ranges, xs)]
    minus = [None if r is None or x is None else max(x - r[0], 0.0) for r, x in zip(ranges, xs)]
    return {
        "type": "data",
        "array": plus,
        "arrayminus": minus,
        "visible": True,
        "thickness": 1.0,
        "width": 2,
        "color": color,
    }


#: Accuracy points around the base accuracy shown by the "near the base" zoom.
NEAR_BASE = 0.05


def _zoom_menu(
    points: Sequence[Mapping[str, Any]],
    base: Mapping[str, Any] | None,
    score: str = "accuracy",
    chance: float | None = None,
) -> list[dict[str, Any]]:
    """A second menu: the ``score`` axis over every point (and the chance level), or within :data:`NEAR_BASE`
    of the base score (offered when some point lies farther from it)."""
    if base is None:
        return []
    extra = [] if chance is None else [chance]
    lows = [p.get("low", p["accuracy"]) if p.get("low") is not None else p["accuracy"] for p in points] + extra
    highs = [p.get("high") if p.get("high") is not None else p["accuracy"] for p in points] + extra
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
