"""Figures of networks as graphs: layered unit graph (and its drill-down), block graph, adjacency heatmap.

Edges are drawn in a few colour-and-width steps of their weight (one trace per step, see
:mod:`workbench.viz.edge_style`), with a colour bar giving the weight range of each step.
"""

from __future__ import annotations

from collections.abc import Mapping
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
        if name == "input":
            hover = [f"input[{table['index'][i]}]<br>total outgoing weight {out_mass[i]:.3g}" for i in ids]
        else:
            hover = [
                f"{name}[{table['index'][i]}]<br>incoming-weight norm {table['norm'][i]:.3g}<br>bias {table['bias'][i]:.3g}"
                for i in ids
            ]
        marker = {"size": 7, "color": colours[c], "line": {"width": 0.5, "color": "#333"}}
        if name in kept:
            is_kept = np.isin(units[name], kept[name])
            marker["symbol"] = ["diamond" if k else "circle-open" for k in is_kept]
            marker["size"] = [10 if k else 7 for k in is_kept]
        traces.append(
            go.Scatter(
                x=x[sel],
                y=y[sel],
                mode="markers",
                text=hover,
                hoverinfo="text",
                name=name,
                marker=marker,
                customdata=ids,
            )
        )
    if kept:
        for symbol, name in (("diamond", "kept by the plan"), ("circle-open", "dropped by the plan")):
            traces.append(
                go.Scatter(x=[None], y=[None], mode="markers", name=name, marker={"symbol": symbol, "color": "#555"})
            )
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


def unit_drilldown(
    graph: NetworkGraph,
    layer: str,
    block: Any = None,
    partition: Mapping[str, Any] | None = None,
    plan: Any = None,
    max_neighbours: int = 32,
    norm: str = "l2",
    title: str | None = None,
) -> go.Figure:
    """Drill down from a layer, or one of its blocks, to its units and their strongest neighbours.

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

    The title says which units are shown and why.
    """
    if layer not in graph.unit_index:
        raise ConfigError(f"no layer {layer!r}; layers of the unit graph: {', '.join(graph.unit_index)}.")
    sl = graph.unit_index[layer]
    n = sl.stop - sl.start
    chosen = np.arange(n)
    rule = f"all {n} units of {layer}"
    if block is not None:
        labels = None if partition is None else partition.get(layer)
        if labels is None:
            raise ConfigError(f"block={block!r} needs partition={{{layer!r}: labels}} (one label per unit).")
        labels = np.asarray(labels)
        chosen = np.flatnonzero(labels.astype(str) == str(block))
        if not len(chosen):
            raise ConfigError(f"block {block!r} is not a label of {layer!r}; labels: {sorted(set(labels.tolist()))}.")
        rule = f"the {len(chosen)} units of block {block} of {layer}"
    elif plan is not None:
        kept = kept_units(plan)
        if layer not in kept:
            raise ConfigError(f"the plan does not cover {layer!r}; it covers {', '.join(kept)}.")
        chosen = kept[layer]
        rule = f"the {len(chosen)} units of {layer} kept by the plan"
    adjacency = graph.unit_adjacency(norm)
    ids = sl.start + chosen
    into = np.asarray(adjacency[:, ids].sum(axis=1)).ravel()
    out_of = np.asarray(adjacency[ids].sum(axis=0)).ravel()
    strength = into + out_of
    units = {layer: chosen}
    for name, other in graph.unit_index.items():
        if name == layer:
            continue
        score = strength[other]
        linked = np.flatnonzero(score > 0)
        if len(linked):
            units[name] = np.sort(linked[np.argsort(-score[linked], kind="stable")[:max_neighbours]])
    rule += f", and the {max_neighbours} most strongly connected units of each neighbouring layer"
    return layered_unit_graph(graph, norm=norm, units=units, rule=rule, plan=plan, title=title)


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
