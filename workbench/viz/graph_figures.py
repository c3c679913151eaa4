"""Figures of networks as graphs: layered unit graph (and its drill-down), block graph, adjacency heatmap.

Edges are drawn in a few colour-and-width steps of their weight (one trace per step, see
:mod:`workbench.viz.edge_style`), with a colour bar giving the weight range of each step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from workbench.errors import ConfigError, GraphError
from workbench.viz.edge_style import curve, edge_traces
from workbench.viz.heatmap_style import block_strip_traces, compact_z, square_layout, thinned_ticks, unit_pairs
from workbench.viz.kept_units import check_groups, kept_units
from workbench.viz.palette import categorical

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from workbench.graph.network import NetworkGraph
    from workbench.graph.quotient import Quotient


def _strongest_per_target(sub: sp.coo_matrix, per_target: int) -> np.ndarray:
    """Indices of the ``per_target`` heaviest entries of each column (target unit) of ``sub``."""
    order = np.lexsort((-sub.data, sub.col))
    cols = sub.col[order]
    starts = np.searchsorted(cols, cols, side="left")
    rank = np.arange(len(cols)) - starts
    return order[rank < per_target]


def _unit_hover(table: Mapping[str, np.ndarray], out_mass: np.ndarray, name: str, ids: np.ndarray) -> list[str]:
    """Hover text of unit-graph nodes ``ids`` of layer ``name`` (input units: their total outgoing weight)."""
    if name == "input":
        return [f"input[{table['index'][i]}]<br>total outgoing weight {out_mass[i]:.3g}" for i in ids]
    return [
        f"{name}[{table['index'][i]}]<br>incoming-weight norm {table['norm'][i]:.3g}<br>bias {table['bias'][i]:.3g}"
        for i in ids
    ]


def _unit_marker(colour: str, units: np.ndarray, kept: np.ndarray | None) -> dict[str, Any]:
    """Markers of a layer's ``units``; with the plan's ``kept`` units of the layer, kept ones are filled diamonds
    and dropped ones open circles."""
    marker: dict[str, Any] = {"size": 7, "color": colour, "line": {"width": 0.5, "color": "#333"}}
    if kept is not None:
        is_kept = np.isin(units, kept)
        marker["symbol"] = ["diamond" if k else "circle-open" for k in is_kept]
        marker["size"] = [10 if k else 7 for k in is_kept]
    return marker


def _plan_legend(kept: Mapping[str, np.ndarray]) -> list[Any]:
    """Legend entries of the plan's marker symbols (none without a plan)."""
    import plotly.graph_objects as go

    if not kept:
        return []
    return [
        go.Scatter(x=[None], y=[None], mode="markers", name=name, marker={"symbol": symbol, "color": "#555"})
        for symbol, name in (("diamond", "kept by the plan"), ("circle-open", "dropped by the plan"))
    ]


def largest_norm_units(graph: NetworkGraph, max_units_per_layer: int) -> dict[str, np.ndarray]:
    """Per layer, the ``max_units_per_layer`` units of largest incoming-weight norm (inputs: outgoing weight)."""
    adjacency = graph.unit_adjacency("l2")
    table = graph.unit_table()
    out_mass = np.asarray(adjacency.sum(axis=1)).ravel()
    units = {}
    for name, sl in graph.unit_index.items():
        score = (out_mass if name == "input" else table["norm"])[sl]
        units[name] = np.sort(np.argsort(-score, kind="stable")[:max_units_per_layer])
    return units


def layered_unit_graph(
    graph: NetworkGraph,
    max_units_per_layer: int = 64,
    norm: str = "l2",
    n_bins: int = 4,
    max_edges: int = 20_000,
    edges_per_unit: int = 3,
    units: Mapping[str, Any] | None = None,
    rule: str | None = None,
    plan: Any = None,
    title: str | None = None,
) -> go.Figure:
    """Units of a (sub)network in columns, one per layer (input, then each group), edges by weight.

    Parameters
    ----------
    max_units_per_layer
        Without ``units``: each layer shows its ``max_units_per_layer`` units of largest incoming-weight
        norm (input units: of largest total outgoing weight), in unit order.
    norm
        Edge weight (see :meth:`NetworkGraph.unit_adjacency`).
    n_bins
        Colour / width steps of the edges (quantiles of the drawn weights; the colour bar gives their bounds).
    max_edges
        At most ``max_edges`` edges (the heaviest) are drawn.
    edges_per_unit
        Each shown unit draws only its ``edges_per_unit`` heaviest incoming edges (no hairball).
    units
        The units to show: layer -> local unit indices; layers not named are not drawn. ``rule`` says in
        the title how they were chosen (see :func:`unit_drilldown`).
    plan
        Kept units (a Plan, or group -> Selection / indices): kept units are drawn as filled diamonds,
        the plan's dropped units as open circles.

    One trace of markers per layer (named by the layer, hover: layer, unit index, incoming-weight norm
    and bias; input units: their total outgoing weight); ``customdata`` holds unit-graph node ids.
    """
    import plotly.graph_objects as go

    if max_units_per_layer < 1 or n_bins < 1 or edges_per_unit < 1:
        raise GraphError("max_units_per_layer, n_bins and edges_per_unit must be positive.")
    sizes = {name: sl.stop - sl.start for name, sl in graph.unit_index.items()}
    if units is None:
        units = largest_norm_units(graph, max_units_per_layer)
        limited = any(len(v) < sizes[k] for k, v in units.items())
        rule = rule or (
            f"per layer the {max_units_per_layer} units of largest incoming-weight norm (inputs: outgoing weight)"
            if limited
            else "all units"
        )
    else:
        units = {str(k): np.unique(np.asarray(v, dtype=np.int64)) for k, v in units.items()}
        check_groups(units, sizes)
        rule = rule or "chosen units"
    adjacency = graph.unit_adjacency(norm)
    table = graph.unit_table()
    columns = [name for name in graph.unit_index if name in units and len(units[name])]
    nodes = np.concatenate([graph.unit_index[name].start + units[name] for name in columns])
    x = np.concatenate([np.full(len(units[name]), float(c)) for c, name in enumerate(columns)])
    y = np.concatenate([np.linspace(1.0, -1.0, len(units[n])) if len(units[n]) > 1 else np.zeros(1) for n in columns])
    sub = adjacency[nodes][:, nodes].tocoo()
    keep = _strongest_per_target(sub, edges_per_unit)
    keep = keep[np.argsort(-sub.data[keep], kind="stable")[:max_edges]]
    rows, cols, weights = sub.row[keep], sub.col[keep], sub.data[keep]
    paths = [curve(x[i], y[i], x[j], y[j], n=2 if x[j] == x[i] + 1 else 12) for i, j in zip(rows, cols)]
    traces = edge_traces([p[0] for p in paths], [p[1] for p in paths], weights, n_bins, f"{norm} weight")
    out_mass = np.asarray(adjacency.sum(axis=1)).ravel()
    kept = kept_units(plan) if plan is not None else {}
    check_groups(kept, sizes)
    colours = categorical(len(columns))
    offset = 0
    for c, name in enumerate(columns):
        ids = graph.unit_index[name].start + units[name]
        sel = slice(offset, offset + len(ids))
        offset += len(ids)
        traces.append(
            go.Scatter(
                x=x[sel],
                y=y[sel],
                mode="markers",
                text=_unit_hover(table, out_mass, name, ids),
                hoverinfo="text",
                name=name,
                marker=_unit_marker(colours[c], units[name], kept.get(name)),
                customdata=ids,
            )
        )
    traces += _plan_legend(kept)
    fig = go.Figure(traces)
    shown = f"{len(nodes)} of {graph.n_nodes} units: {rule}"
    backward = int(np.sum(x[cols] <= x[rows]))
    if title is None:
        title = f"Unit graph ({norm} weights)<br><sup>{shown}"
        if backward:
            title += f"; {backward} edges run back to an earlier column (a residual stream) and loop around the ends"
        title += "</sup>"
    xs = np.concatenate([x, *(p[0] for p in paths)]) if paths else x
    ys = np.concatenate([y, *(p[1] for p in paths)]) if paths else y
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        xaxis={
            "tickmode": "array",
            "tickvals": list(range(len(columns))),
            "ticktext": [f"{name} ({len(units[name])} shown)" for name in columns],
            "showgrid": False,
            "zeroline": False,
            "range": [float(xs.min()) - 0.15, float(xs.max()) + 0.15],  # loops of backward edges stay in view
        },
        yaxis={"visible": False, "range": [float(ys.min()) - 0.1, float(ys.max()) + 0.1]},
        margin={"t": 90},
        plot_bgcolor="white",
        height=560,
        legend={"orientation": "h", "yanchor": "top", "y": -0.08, "x": 0.0},
        meta={"rule": rule, "n_edges": int(len(rows)), "n_units": int(len(nodes))},
    )
    return fig


_LABEL = 2.5  # steps above a column of the drill-down for its two-line label


@dataclass
class _Band:
    """A neighbouring layer in a drill-down: the units shown, how many linked units are not, and the weights
    between the shown units (rows) and the chosen units (columns)."""

    layer: str
    side: int  # -1: it feeds the chosen units (left column); +1: they feed it (right column)
    units: np.ndarray
    more: int
    weights: np.ndarray
    backward: bool  # the edges run against network order: through a residual stream


def _strongest(score: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the ``limit`` largest positive entries of ``score``, in position order."""
    linked = np.flatnonzero(score > 0)
    return np.sort(linked[np.argsort(-score[linked], kind="stable")[:limit]])


def _bands(
    graph: NetworkGraph, layer: str, ids: np.ndarray, adjacency: sp.csr_matrix, max_neighbours: int, max_layers: int
) -> tuple[list[_Band], dict[int, int]]:
    """The neighbouring layers of the chosen units ``ids`` on each side, at most ``max_layers`` a side (those
    most strongly connected, drawn in network order), and how many linked layers each side leaves out."""
    order = {name: i for i, name in enumerate(graph.unit_index)}
    into, out_of = adjacency[:, ids].toarray(), adjacency[ids].toarray().T  # (units, chosen)
    bands, left_out = [], {}
    for side, weights in ((-1, into), (1, out_of)):
        found = []
        for name, other in graph.unit_index.items():
            score = weights[other].sum(axis=1)
            if name != layer and (score > 0).any():
                shown = _strongest(score, max_neighbours)
                found.append((-float(score.sum()), name, shown, int((score > 0).sum()) - len(shown)))
        found.sort(key=lambda f: f[0])
        left_out[side] = max(0, len(found) - max_layers)
        for _, name, shown, more in sorted(found[:max_layers], key=lambda f: order[f[1]]):
            backward = order[name] > order[layer] if side < 0 else order[name] < order[layer]
            rows = graph.unit_index[name].start + shown
            bands.append(_Band(name, side, shown, more, weights[rows], backward))
    return bands, left_out


def _band_edges(weights: np.ndarray, edges_per_unit: int) -> tuple[np.ndarray, np.ndarray]:
    """(neighbour, chosen) positions of the edges drawn: each chosen unit's ``edges_per_unit`` heaviest edges
    (columns), and each neighbour's heaviest edge (rows), so that no shown unit floats unconnected."""
    drawn = np.zeros(weights.shape, dtype=bool)
    top = np.argsort(-weights, axis=0, kind="stable")[:edges_per_unit]
    drawn[top, np.arange(weights.shape[1])] = True
    drawn[np.arange(weights.shape[0]), weights.argmax(axis=1)] = True
    return np.nonzero(drawn & (weights > 0))


def _drilldown_places(bands: list[_Band], k: int) -> tuple[np.ndarray, list[np.ndarray], list[float], float]:
    """y of the chosen units, of each band's units (reordered in place: neighbours sorted by the weighted mean
    place of the chosen units they connect to, so that edges cross little) and of each band's top, and the
    height of the tallest column. A step per neighbour, 2.5 above each band for its two-line label; the chosen units
    are spread over up to 2.5 steps each so that the edges into them fan out."""
    index = -np.arange(k, dtype=float)
    places: list[np.ndarray] = []
    tops: list[float] = []
    heights = {-1: 0.0, 1: 0.0}
    for band in bands:
        centre = (band.weights @ index) / np.maximum(band.weights.sum(axis=1), 1e-300)
        rank = np.argsort(-centre, kind="stable")
        band.units, band.weights = band.units[rank], band.weights[rank]
        tops.append(-heights[band.side] - _LABEL)
        places.append(tops[-1] - np.arange(len(band.units), dtype=float))
        heights[band.side] += _LABEL + len(band.units) + 0.5
    step = 1.0 if k < 2 else float(np.clip((max(heights.values()) - _LABEL - 0.5) / (k - 1), 1.0, 2.5))
    heights[0] = _LABEL + step * (k - 1) + 0.5
    tallest = max(heights.values())
    shift = {side: (height - tallest) / 2 for side, height in heights.items()}
    places = [p + shift[b.side] for p, b in zip(places, bands)]
    tops = [t + shift[b.side] for t, b in zip(tops, bands)]
    return step * index + shift[0] - _LABEL, places, tops, tallest


def _drilldown_edges(
    bands: list[_Band], places: list[np.ndarray], y_chosen: np.ndarray, edges_per_unit: int
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, list[bool]]:
    """Paths, weights and dashing of the edges drawn, chosen per side (:func:`_band_edges` on the bands of a
    side stacked): left bands into the chosen units, the chosen units into right bands."""
    paths, weights, dashed = [], [], []
    for side in (-1, 1):
        members = [i for i, band in enumerate(bands) if band.side == side]
        if not members:
            continue
        stacked = np.concatenate([bands[i].weights for i in members])
        owner = np.concatenate([np.full(len(bands[i].units), i) for i in members])
        place = np.concatenate([places[i] for i in members])
        rows, cols = _band_edges(stacked, edges_per_unit)
        for r, c in zip(rows, cols):
            ends = (-1.0, place[r], 0.0, y_chosen[c]) if side < 0 else (0.0, y_chosen[c], 1.0, place[r])
            paths.append(curve(*ends))
        weights.append(stacked[rows, cols])
        dashed += [bands[i].backward for i in owner[rows]]
    return paths, np.concatenate(weights) if weights else np.zeros(0), dashed


def _chosen_units(
    graph: NetworkGraph, layer: str, block: Any, partition: Mapping[str, Any] | None, plan: Any
) -> tuple[np.ndarray, str]:
    """The units of ``layer`` a drill-down starts from (all, a block's, or the plan's kept ones) and the words
    that say which."""
    sl = graph.unit_index[layer]
    n = sl.stop - sl.start
    if block is not None:
        labels = None if partition is None else partition.get(layer)
        if labels is None:
            raise ConfigError(f"block={block!r} needs partition={{{layer!r}: labels}} (one label per unit).")
        labels = np.asarray(labels)
        chosen = np.flatnonzero(labels.astype(str) == str(block))
        if not len(chosen):
            raise ConfigError(f"block {block!r} is not a label of {layer!r}; labels: {sorted(set(labels.tolist()))}.")
        return chosen, f"the {len(chosen)} units of block {block} of {layer}"
    if plan is not None:
        kept = kept_units(plan)
        if layer not in kept:
            raise ConfigError(f"the plan does not cover {layer!r}; it covers {', '.join(kept)}.")
        return kept[layer], f"the {len(kept[layer])} units of {layer} kept by the plan"
    return np.arange(n), f"all {n} units of {layer}"


def unit_drilldown(
    graph: NetworkGraph,
    layer: str,
    block: Any = None,
    partition: Mapping[str, Any] | None = None,
    plan: Any = None,
    max_neighbours: int = 16,
    norm: str = "l2",
    title: str | None = None,
    max_units: int = 32,
    max_layers: int = 4,
    edges_per_unit: int = 2,
) -> go.Figure:
    """Drill down from a layer, or one of its blocks, to its units and their strongest neighbours.

    Three columns: the layers feeding the chosen units (left), the chosen units (middle), the layers they
    feed (right), each neighbouring layer a band of its own, labelled with its name and how many of its
    linked units are not shown. A layer on both sides (a residual stream the chosen units read and write
    back into) has a band on each. Only edges that touch a chosen unit are drawn; edges that run against
    network order (into or out of a residual stream) are dashed.

    Parameters
    ----------
    layer
        A layer (group) of ``graph.unit_index``.
    block
        With ``partition`` (layer -> unit labels): show only the units labelled ``block``.
    plan
        Show only the layer's units kept by ``plan`` (and mark kept units in the neighbouring layers).
    max_neighbours
        Units shown in each neighbouring layer: those most strongly connected to the chosen units.
    max_units
        Chosen units shown at most (those of largest incoming-weight norm).
    max_layers
        Neighbouring layers shown on each side at most (those most strongly connected).
    edges_per_unit
        Each chosen unit draws its ``edges_per_unit`` heaviest edges to each side (and each neighbour its heaviest).

    The title says which units are shown and why; ``layout.meta`` holds ``n_units``, ``n_edges`` and per band
    its layer, side, units shown and left out (``more``).
    """
    import plotly.graph_objects as go

    if layer not in graph.unit_index:
        raise ConfigError(f"no layer {layer!r}; layers of the unit graph: {', '.join(graph.unit_index)}.")
    if min(max_neighbours, max_units, max_layers, edges_per_unit) < 1:
        raise GraphError("max_neighbours, max_units, max_layers and edges_per_unit must be positive.")
    chosen, rule = _chosen_units(graph, layer, block, partition, plan)
    sl = graph.unit_index[layer]
    sizes = {name: s.stop - s.start for name, s in graph.unit_index.items()}
    kept = kept_units(plan) if plan is not None else {}
    check_groups(kept, sizes)
    table = graph.unit_table()
    more_chosen = max(0, len(chosen) - max_units)
    if more_chosen:
        chosen = np.sort(chosen[np.argsort(-table["norm"][sl.start + chosen], kind="stable")[:max_units]])
    adjacency = graph.unit_adjacency(norm).tocsr()
    ids = sl.start + chosen
    bands, left_out = _bands(graph, layer, ids, adjacency, max_neighbours, max_layers)

    k = len(ids)
    y_chosen, places, tops, tallest = _drilldown_places(bands, k)
    paths, weights, dashed = _drilldown_edges(bands, places, y_chosen, edges_per_unit)
    traces = edge_traces(
        [p[0] for p in paths],
        [p[1] for p in paths],
        weights,
        4,
        f"{norm} weight",
        dashed=np.asarray(dashed, dtype=bool),
    )
    out_mass = np.asarray(adjacency.sum(axis=1)).ravel()
    colours = categorical(len(graph.unit_index))
    colour = {name: colours[i] for i, name in enumerate(graph.unit_index)}
    sides = {b.layer: {c.side for c in bands if c.layer == b.layer} for b in bands}
    columns = [(layer, 0, chosen, np.zeros(k), y_chosen, more_chosen)]
    columns += [
        (b.layer, b.side, b.units, np.full(len(b.units), float(b.side)), p, b.more) for b, p in zip(bands, places)
    ]
    annotations = []
    for (name, side, units, xs, ys, more), top in zip(columns, [float(y_chosen[0]), *tops]):
        trace_name = name if len(sides.get(name, ())) < 2 else f"{name} ({'in' if side < 0 else 'out'})"
        node_ids = graph.unit_index[name].start + units
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                text=_unit_hover(table, out_mass, name, node_ids),
                hoverinfo="text",
                name=trace_name,
                marker=_unit_marker(colour[name], units, kept.get(name)),
                customdata=node_ids,
            )
        )
        linked = "units" if side == 0 else "linked units"
        count = f"{len(units)} of {len(units) + more} {linked}" + (f" (+{more} more)" if more else "")
        annotations.append(
            {
                "x": float(side),
                "y": top + 0.6,
                "text": f"<b>{trace_name}</b><br>{count}",
                "showarrow": False,
                "yanchor": "bottom",
                "font": {"size": 11},
            }
        )
    if any(dashed):
        traces.append(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                line={"dash": "dash", "color": "#555"},
                name="through a residual stream (against network order)",
            )
        )
    traces += _plan_legend(kept)
    fig = go.Figure(traces)
    notes = [f"edges: each chosen unit's {edges_per_unit} strongest on each side, and each neighbour's strongest"]
    if any(dashed):
        notes.append("dashed: into or out of a residual stream")
    for side, what in ((-1, "feeding them"), (1, "fed by them")):
        if left_out[side]:
            notes.append(f"{left_out[side]} more layers {what} not drawn")
    shown = f"{rule}, and at most {max_neighbours} most strongly connected units of each neighbouring layer"
    if more_chosen:
        shown = f"{rule} ({max_units} of largest incoming-weight norm shown)" + shown[len(rule) :]
    if title is None:
        title = f"Drill-down ({norm} weights): {shown}<br><sup>{'; '.join(notes)}</sup>"
    used = sorted({side for _, side, *_ in columns})
    heading = {-1: "feed the chosen units", 0: "chosen units", 1: "fed by the chosen units"}
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        xaxis={
            "tickmode": "array",
            "tickvals": used,
            "ticktext": [heading[side] for side in used],
            "showgrid": False,
            "zeroline": False,
            "range": [min(used) - 0.35, max(used) + 0.35],
        },
        yaxis={"visible": False, "range": [-tallest - 0.5, 0.5]},
        annotations=annotations,
        margin={"t": 90},
        plot_bgcolor="white",
        height=int(max(420, 160 + 16 * tallest)),
        legend={"orientation": "h", "yanchor": "top", "y": -0.06, "x": 0.0},
        meta={
            "rule": rule,
            "n_units": int(sum(len(c[2]) for c in columns)),
            "n_edges": len(paths),
            "bands": [
                {"layer": b.layer, "side": b.side, "shown": len(b.units), "more": b.more, "backward": b.backward}
                for b in bands
            ],
            "chosen": {"shown": k, "more": more_chosen},
            "layers_left_out": {"in": left_out[-1], "out": left_out[1]},
        },
    )
    return fig


def _layered_positions(quotient: Quotient, weight: np.ndarray) -> np.ndarray:
    """(k, 2) positions: x the longest-path depth of a block among edges running forward in block order."""
    k = quotient.n_blocks
    depth = np.zeros(k)
    for b in range(k):  # edges a -> b with a < b (block order follows the network for layer_partition labels)
        sources = np.flatnonzero(weight[:b, b] > 0)
        if len(sources):
            depth[b] = depth[sources].max() + 1
    pos = np.zeros((k, 2))
    pos[:, 0] = depth
    for d in np.unique(depth):
        members = np.flatnonzero(depth == d)
        pos[members, 1] = np.linspace(1.0, -1.0, len(members)) if len(members) > 1 else 0.0
    return pos


def block_graph(
    quotient: Quotient,
    weight: str = "mean",
    n_bins: int = 4,
    names: list[str] | None = None,
    positions: np.ndarray | None = None,
    title: str | None = None,
) -> go.Figure:
    """A block-summarized graph, layered: blocks left to right by depth, edges by block weight.

    Parameters
    ----------
    quotient
        From :func:`workbench.graph.quotient.quotient_graph`.
    weight
        ``"mean"`` (block-model weight), ``"total"`` or ``"density"``.
    positions
        (k, 2) node positions; default: x is a block's depth (longest chain of forward edges in block
        order), blocks of one depth stacked.

    Node area is the block size; node colour is the block's colour in the other figures (categorical,
    by block order); hover gives size, within-block weight and incoming / outgoing weight.
    """
    import plotly.graph_objects as go

    if weight not in ("mean", "total", "density"):
        raise GraphError(f"unknown weight {weight!r}; use 'mean', 'total' or 'density'.")
    w = getattr(quotient, weight)
    k = quotient.n_blocks
    positions = _layered_positions(quotient, w) if positions is None else np.asarray(positions, dtype=float)
    if positions.shape != (k, 2):
        raise GraphError(f"positions must have shape ({k}, 2), got {positions.shape}.")
    a, b = np.nonzero((w > 0) & ~np.eye(k, dtype=bool))
    paths = [curve(*positions[i], *positions[j]) for i, j in zip(a, b)]
    traces = edge_traces(
        [p[0] for p in paths], [p[1] for p in paths], w[a, b], n_bins, f"{weight} weight", widths=(1.0, 5.0)
    )
    labels = names or [str(label) for label in quotient.labels]
    sizes = quotient.sizes.astype(float)
    marker_size = 10 + 40 * np.sqrt(sizes / max(sizes.max(), 1))
    inflow = w.sum(axis=0) - np.diag(w)
    outflow = w.sum(axis=1) - np.diag(w)
    hover = [
        f"<b>block {labels[i]}</b><br>{int(sizes[i])} units<br>"
        + (f"within-block {weight} weight {w[i, i]:.3g}" if w[i, i] > 0 else "no edges inside the block")
        + f"<br>incoming {weight} weight {inflow[i]:.3g}<br>outgoing {weight} weight {outflow[i]:.3g}"
        for i in range(k)
    ]
    traces.append(
        go.Scatter(
            x=positions[:, 0],
            y=positions[:, 1],
            mode="markers+text",
            text=labels,
            textposition="top center",
            hovertext=hover,
            hoverinfo="text",
            name="block (area: units)",
            marker={"size": marker_size, "color": categorical(k), "line": {"width": 1, "color": "#333"}},
        )
    )
    fig = go.Figure(traces)
    fig.update_layout(
        title=title or f"Block graph ({k} blocks left to right by depth; edges: {weight} weight)",
        xaxis={"visible": False},
        yaxis={"visible": False},
        plot_bgcolor="white",
        height=520,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
    )
    return fig


def adjacency_heatmap(
    matrix: Any,
    partition: Any = None,
    max_size: int = 4000,
    log: bool = False,
    title: str | None = None,
    colorbar_title: str | None = None,
) -> go.Figure:
    """Heatmap of a (square or rectangular) matrix, rows and columns reordered by ``partition``.

    Nodes are sorted by block (stable, so the original order is kept inside a block); block boundaries
    are drawn as lines. ``matrix`` may be dense or scipy.sparse; larger than ``max_size`` on a side is refused
    (summarize it with :func:`workbench.graph.quotient.quotient_graph` first). Values go into the figure rounded
    to three significant digits, as float32 (:func:`workbench.viz.heatmap_style.compact_z`).
    """
    import plotly.graph_objects as go

    shape = matrix.shape
    if len(shape) != 2:
        raise GraphError(f"matrix must be 2-d, got shape {shape}.")
    if max(shape) > max_size:
        raise GraphError(
            f"matrix of shape {shape} is larger than max_size={max_size}; summarize it with quotient_graph() or raise max_size."
        )
    z = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix, dtype=float)
    order_r, order_c = np.arange(shape[0]), np.arange(shape[1])
    bounds: list[float] = []
    if partition is not None:
        labels = np.asarray(partition)
        if shape[0] != shape[1] or len(labels) != shape[0]:
            raise GraphError(
                f"partition has {len(labels)} labels for a matrix of shape {shape}; it must be square and match."
            )
        _, assignment = np.unique(labels, return_inverse=True)
        order_r = order_c = np.argsort(assignment, kind="stable")
        counts = np.bincount(assignment)
        bounds = list(np.cumsum(counts)[:-1] - 0.5)
    z = z[np.ix_(order_r, order_c)]
    if log:
        z = np.log10(np.abs(z) + 1e-12 * (np.abs(z).max() or 1.0))
    fig = go.Figure(
        go.Heatmap(
            z=compact_z(z),
            colorscale="Viridis",
            hovertemplate="row unit %{customdata[0]}, column unit %{customdata[1]}<br>value %{z:.3g}<extra></extra>",
            customdata=unit_pairs(order_r, order_c),
        )
    )
    for b in bounds:
        fig.add_shape(type="line", x0=b, x1=b, y0=-0.5, y1=shape[0] - 0.5, line={"color": "white", "width": 1})
        fig.add_shape(type="line", y0=b, y1=b, x0=-0.5, x1=shape[1] - 0.5, line={"color": "white", "width": 1})
    low = -0.5
    if partition is not None and len(bounds):
        fig.add_traces(block_strip_traces(np.asarray(labels)[order_r], -1.5))
        low = -2.5
    default_title = "Adjacency in block order" if partition is not None else "Adjacency"
    square_layout(fig, order_r, low, colorbar_title or ("log10 |value|" if log else "value"), title or default_title)
    if shape[0] != shape[1]:  # a rectangle keeps its own column ticks
        fig.update_xaxes(range=[-0.5, shape[1] - 0.5], **thinned_ticks(order_c))
    fig.update_layout(meta={"order": order_r.tolist(), "boundaries": [float(b) for b in bounds]})
    return fig
