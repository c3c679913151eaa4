"""The layered block diagram of a network: layers left to right, each layer's units summarized in blocks.

Blocks come from a partition of each layer's units (SBM, Leiden, spectral clusters, k-means, or one
block per layer); an edge between two blocks carries the total (or mean) weight of the unit edges
between them (:func:`workbench.graph.quotient.quotient_graph`), so the figure has at most a few
thousand elements whatever the size of the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import ConfigError, GraphError
from workbench.viz.edge_style import curve, edge_traces
from workbench.viz.kept_units import check_groups, kept_units

if TYPE_CHECKING:
    import plotly.graph_objects as go
    import scipy.sparse as sp

    from workbench.graph.network import NetworkGraph

SEPARATOR = "/"
NODE_COLOURS = {"input": "#9e9e9e", "prunable": "#7fa7d6", "fixed": "#5d5d5d", "kept": "#d62728"}


def layer_partition(graph: NetworkGraph, labels: Mapping[str, Any] | None = None) -> np.ndarray:
    """Block label of every unit-graph node: ``"layer/label"`` for the layers in ``labels``, ``"layer"`` else.

    Parameters
    ----------
    labels
        Layer (group) name -> one label per unit of that layer (a selector's ``labels_``, k-means labels).
        Layers not named are one block each.
    """
    partition = np.empty(graph.n_nodes, dtype=object)
    for name, sl in graph.unit_index.items():
        partition[sl] = name
    for name, values in (labels or {}).items():
        if name not in graph.unit_index:
            raise ConfigError(
                f"no layer {name!r} to partition; layers of the unit graph: {', '.join(graph.unit_index)}."
            )
        sl = graph.unit_index[name]
        values = np.asarray(values)
        if values.shape != (sl.stop - sl.start,):
            raise ConfigError(
                f"labels of {name!r} must give one block per unit ({sl.stop - sl.start}), got shape {values.shape}."
            )
        partition[sl] = [f"{name}{SEPARATOR}{v}" for v in values]
    return partition.astype(str)


def _layer_of_blocks(graph: NetworkGraph, assignment: np.ndarray, n_blocks: int) -> np.ndarray:
    """Column (layer index) of each block; a block spanning two layers is refused."""
    column = np.full(n_blocks, -1, dtype=np.int64)
    for col, sl in enumerate(graph.unit_index.values()):
        blocks = np.unique(assignment[sl])
        if np.any((column[blocks] >= 0) & (column[blocks] != col)):
            raise GraphError("a block of the partition holds units of two layers; partition each layer on its own.")
        column[blocks] = col
    return column


def _order_in_columns(column: np.ndarray, total: np.ndarray, n_columns: int) -> np.ndarray:
    """Vertical position in [-1, 1] of each block: blocks sorted by the mean position of their sources."""
    y = np.zeros(len(column))
    for col in range(n_columns):
        members = np.flatnonzero(column == col)
        if not len(members):
            continue
        incoming = total[:, members]
        earlier = column < col
        mass = incoming[earlier].sum(axis=0)
        centre = np.where(mass > 0, (y[earlier] @ incoming[earlier]) / np.where(mass > 0, mass, 1), 0.0)
        members = members[np.argsort(-centre, kind="stable")]
        y[members] = np.linspace(1.0, -1.0, len(members)) if len(members) > 1 else 0.0
    return y


def layered_block_diagram(
    graph: NetworkGraph,
    partition: Any = None,
    weight: str = "total",
    norm: str = "l2",
    plan: Any = None,
    plan_name: str = "plan",
    adjacency: sp.spmatrix | None = None,
    max_edges: int = 400,
    n_steps: int = 5,
    title: str | None = None,
) -> go.Figure:
    """Layers left to right, blocks of units stacked in each layer, edges between blocks by weight.

    Parameters
    ----------
    graph
        From :func:`workbench.graph.from_model`.
    partition
        None (one block per layer), a mapping layer -> unit labels (see :func:`layer_partition`), or a
        label for every unit-graph node.
    weight
        ``"total"`` (sum of unit edge weights between two blocks) or ``"mean"`` (per unit pair).
    norm
        Unit edge weight (see :meth:`NetworkGraph.unit_adjacency`); ignored when ``adjacency`` is given.
    plan
        Kept units to mark (a Plan, or group -> Selection / indices): each block gets an inner red disc
        whose area is its number of kept units.
    adjacency
        The unit adjacency, if already computed.
    max_edges
        The heaviest ``max_edges`` block edges are drawn (the title says when edges were left out).
    n_steps
        Colour / width steps of the edges (quantiles of the drawn weights; the colour bar gives their bounds).

    The figure takes the width of its container (``autosize``); the y range reaches the highest arc, and each
    block's unit count sits on a white label above the edges.

    Hover on a block gives its layer, size, kept units, within-block weight and its incoming and outgoing
    weight; hover on an edge's midpoint gives both blocks, the total and mean weight and the number of unit edges.
    The figure's ``layout.meta`` holds the blocks (``labels``, ``sizes``, ``columns``) and the drawn edges.
    """
    import plotly.graph_objects as go

    from workbench.graph.quotient import quotient_graph

    if weight not in ("total", "mean"):
        raise ConfigError(f"unknown weight {weight!r}; use 'total' or 'mean'.")
    if max_edges < 0 or n_steps < 1:
        raise ConfigError("max_edges must be >= 0 and n_steps >= 1.")
    if partition is None or isinstance(partition, Mapping):
        partition = layer_partition(graph, partition)
    adjacency = graph.unit_adjacency(norm) if adjacency is None else adjacency
    q = quotient_graph(adjacency, partition)
    names = list(graph.unit_index)
    column = _layer_of_blocks(graph, q.assignment, q.n_blocks)
    y = _order_in_columns(column, q.total, len(names))
    x = column.astype(float)
    w = getattr(q, weight)

    # edges between blocks, heaviest first
    a, b = np.nonzero(w > 0)
    off = a != b
    a, b = a[off], b[off]
    order = np.argsort(-w[a, b], kind="stable")
    left_out = max(len(order) - max_edges, 0)
    a, b = a[order[:max_edges]], b[order[:max_edges]]
    paths = [curve(x[i], y[i], x[j], y[j]) for i, j in zip(a, b)]
    label = f"{weight} {norm} weight"
    traces = edge_traces([p[0] for p in paths], [p[1] for p in paths], w[a, b], n_steps, label, widths=(0.8, 5.0))
    mid = len(paths[0][0]) // 2 if paths else 0
    traces.append(
        go.Scatter(
            x=[p[0][mid] for p in paths],
            y=[p[1][mid] for p in paths],
            mode="markers",
            marker={"size": 6, "opacity": 0},
            showlegend=False,
            name="edge details",
            hovertemplate="%{text}<extra></extra>",
            text=[
                f"{q.labels[i]} → {q.labels[j]}<br>total {q.total[i, j]:.4g}, mean {q.mean[i, j]:.3g} per unit pair"
                f"<br>{int(q.count[i, j])} unit edges"
                for i, j in zip(a, b)
            ],
        )
    )

    # blocks
    groups = graph.groups
    sizes_by_group = {name: sl.stop - sl.start for name, sl in graph.unit_index.items()}
    kept = kept_units(plan) if plan is not None else {}
    check_groups(kept, sizes_by_group)
    kept_count = np.zeros(q.n_blocks, dtype=np.int64)
    for group, keep in kept.items():
        nodes = graph.unit_index[group].start + keep
        kept_count += np.bincount(q.assignment[nodes], minlength=q.n_blocks)
    planned = np.zeros(q.n_blocks, dtype=bool)
    for group in kept:
        planned[np.unique(q.assignment[graph.unit_index[group]])] = True
    kind = np.array(
        [
            "input"
            if names[c] == "input"
            else ("prunable" if names[c] in groups and groups[names[c]].prunable else "fixed")
            for c in column
        ]
    )
    scale = 8 + 34 * np.sqrt(q.sizes / max(q.sizes.max(), 1))
    inflow, outflow = q.total.sum(axis=0) - np.diag(q.total), q.total.sum(axis=1) - np.diag(q.total)
    hover = []
    for i in range(q.n_blocks):
        text = f"<b>{q.labels[i]}</b><br>layer {names[column[i]]}<br>{q.sizes[i]} units"
        if planned[i]:
            text += f", {kept_count[i]} kept by {plan_name}"
        within = q.total[i, i]
        text += f"<br>within-block weight {within:.4g}" if within > 0 else "<br>no edges inside the block"
        text += f"<br>incoming weight {inflow[i]:.4g}<br>outgoing weight {outflow[i]:.4g}"
        hover.append(text)
    hover = np.array(hover, dtype=object)
    legend_names = {
        "input": "input units",
        "prunable": "block of a prunable layer (area: units)",
        "fixed": "block of a fixed layer (area: units)",
    }
    for k, name in legend_names.items():
        members = np.flatnonzero(kind == k)
        if not len(members):
            continue
        traces.append(
            go.Scatter(
                x=x[members],
                y=y[members],
                mode="markers",
                hovertext=list(hover[members]),
                hoverinfo="text",
                name=name,
                customdata=members,
                marker={"size": scale[members], "color": NODE_COLOURS[k], "line": {"width": 1, "color": "#333"}},
            )
        )
    if kept:
        members = np.flatnonzero(planned)
        inner = 8 + 34 * np.sqrt(kept_count[members] / max(q.sizes.max(), 1))
        inner = np.where(kept_count[members] > 0, inner, 0)
        traces.append(
            go.Scatter(
                x=x[members],
                y=y[members],
                mode="markers",
                hovertext=list(hover[members]),
                hoverinfo="text",
                name=f"kept by {plan_name} (area: kept units)",
                customdata=members,
                marker={"size": inner, "color": NODE_COLOURS["kept"], "opacity": 0.85},
            )
        )
    fig = go.Figure(traces)
    for i in range(q.n_blocks):  # unit counts above the edges, on a white label beside each block
        fig.add_annotation(
            x=x[i],
            y=y[i],
            text=str(q.sizes[i]),
            showarrow=False,
            xanchor="left",
            xshift=scale[i] / 2 + 2,
            font={"size": 10, "color": "#222"},
            bgcolor="rgba(255,255,255,0.85)",
            borderpad=1,
        )
    top = max([1.0, *(float(np.max(p[1])) for p in paths)]) + 0.2  # the highest arc, and room for its width
    n_labelled = sum(1 for lbl in q.labels if SEPARATOR in str(lbl))
    what = "one block per layer" if n_labelled == 0 else f"{q.n_blocks} blocks"
    shown = f"; the {max_edges} heaviest of {max_edges + left_out} block edges" if left_out else ""
    fig.update_layout(
        title=title or f"Layered block diagram ({what}; edges: {weight} {norm} weight{shown})",
        xaxis={
            "tickmode": "array",
            "tickvals": list(range(len(names))),
            "ticktext": names,
            "tickangle": -45 if len(names) > 8 else 0,
            "showgrid": False,
            "zeroline": False,
            "range": [-0.6, len(names) - 0.15],  # room for the last column's unit counts
        },
        yaxis={"visible": False, "range": [-1.25, max(1.25, top)], "fixedrange": False},
        plot_bgcolor="white",
        height=560,
        autosize=True,  # as wide as its container (a notebook cell, a page): no fixed width to cut off
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
        margin={"t": 110},
        meta={
            "labels": [str(v) for v in q.labels],
            "sizes": q.sizes.tolist(),
            "columns": column.tolist(),
            "kept": kept_count.tolist(),
            "edges": [[int(i), int(j)] for i, j in zip(a, b)],
            "edges_left_out": int(left_out),
        },
    )
    return fig
