"""Figures of networks as graphs: layered unit graph, block (quotient) graph, reordered adjacency heatmap.

Edges are drawn in a few opacity levels (weights binned by quantile, one trace per bin) so that a figure
with tens of thousands of edges stays responsive; heavier weights are drawn more opaque.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from workbench.errors import GraphError

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from workbench.graph.network import NetworkGraph
    from workbench.graph.quotient import Quotient


def _bins(weights: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index (0 = lightest) of each weight, by quantiles of the weights."""
    if len(weights) == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.unique(np.quantile(weights, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, weights, side="right")


def _opacity(b: int, n_bins: int, lo: float = 0.08, hi: float = 0.9) -> float:
    return lo + (hi - lo) * (b + 1) / n_bins


def _edge_traces(x0, y0, x1, y1, weights, n_bins: int, color: str, width_scale: float = 1.0) -> list[Any]:
    """One line trace per weight bin, opacity increasing with the bin."""
    import plotly.graph_objects as go

    bins = _bins(np.asarray(weights, dtype=float), n_bins)
    traces = []
    for b in range(n_bins):
        sel = np.flatnonzero(bins == b)
        if not len(sel):
            continue
        xs = np.empty(3 * len(sel))
        ys = np.empty(3 * len(sel))
        xs[0::3], xs[1::3], xs[2::3] = x0[sel], x1[sel], np.nan
        ys[0::3], ys[1::3], ys[2::3] = y0[sel], y1[sel], np.nan
        w = np.asarray(weights)[sel]
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                hoverinfo="skip",
                showlegend=False,
                opacity=_opacity(b, n_bins),
                line={"color": color, "width": width_scale * (0.5 + 1.5 * (b + 1) / n_bins)},
                name=f"weights {w.min():.3g} to {w.max():.3g}",
            )
        )
    return traces


def layered_unit_graph(
    graph: NetworkGraph,
    max_units_per_layer: int = 64,
    norm: str = "l2",
    n_bins: int = 4,
    max_edges: int = 50_000,
    title: str | None = None,
) -> go.Figure:
    """The unit graph of a (small) network drawn in columns, one per block (input, then each group).

    Parameters
    ----------
    max_units_per_layer
        Blocks with more units show the ``max_units_per_layer`` units of largest incoming-weight norm
        (input units: of largest total outgoing weight), in unit order.
    norm
        Edge weight (see :meth:`NetworkGraph.unit_adjacency`).
    n_bins
        Opacity levels of the edges (quantile bins of the weights, one trace each).
    max_edges
        Only the heaviest ``max_edges`` edges among the shown units are drawn.

    The last trace holds the nodes (hover: block, unit index, norm, bias); the others are edge bins from
    lightest to heaviest.
    """
    import plotly.graph_objects as go

    if max_units_per_layer < 1 or n_bins < 1:
        raise GraphError("max_units_per_layer and n_bins must be positive.")
    adjacency = graph.unit_adjacency(norm)
    table = graph.unit_table()
    out_mass = np.asarray(adjacency.sum(axis=1)).ravel()
    shown, xs, ys = [], [], []
    for col, (name, sl) in enumerate(graph.unit_index.items()):
        nodes = np.arange(sl.start, sl.stop)
        if len(nodes) > max_units_per_layer:
            # input units by outgoing weight, others by incoming weight norm
            score = out_mass[nodes] if name == "input" else table["norm"][nodes]
            nodes = np.sort(nodes[np.argsort(-score, kind="stable")[:max_units_per_layer]])
        shown.append(nodes)
        xs.append(np.full(len(nodes), float(col)))
        ys.append(np.linspace(1.0, -1.0, len(nodes)) if len(nodes) > 1 else np.zeros(len(nodes)))
    nodes = np.concatenate(shown) if shown else np.zeros(0, dtype=np.int64)
    x, y = np.concatenate(xs), np.concatenate(ys)
    position = np.full(graph.n_nodes, -1, dtype=np.int64)
    position[nodes] = np.arange(len(nodes))
    sub = adjacency[nodes][:, nodes].tocoo()
    if sub.nnz > max_edges:
        keep = np.argsort(-sub.data, kind="stable")[:max_edges]
        sub = sp.coo_matrix((sub.data[keep], (sub.row[keep], sub.col[keep])), shape=sub.shape)
    traces = _edge_traces(x[sub.row], y[sub.row], x[sub.col], y[sub.col], sub.data, n_bins, "#4a6fa5")
    hover = [
        f"{table['block'][i]}[{table['index'][i]}]<br>norm {table['norm'][i]:.3g}<br>bias {table['bias'][i]:.3g}"
        for i in nodes
    ]
    blocks = np.array([table["block"][i] for i in nodes], dtype=object)
    color = np.unique(blocks, return_inverse=True)[1] if len(blocks) else []
    traces.append(
        go.Scatter(
            x=x,
            y=y,
            mode="markers",
            text=hover,
            hoverinfo="text",
            showlegend=False,
            name="units",
            marker={"size": 7, "color": color, "colorscale": "Viridis", "line": {"width": 0.5, "color": "#333"}},
            customdata=nodes,
        )
    )
    fig = go.Figure(traces)
    fig.update_layout(
        title=title or f"Unit graph ({norm} weights; {len(nodes)} of {graph.n_nodes} units shown)",
        xaxis={
            "tickmode": "array",
            "tickvals": list(range(len(graph.unit_index))),
            "ticktext": list(graph.unit_index),
            "showgrid": False,
        },
        yaxis={"visible": False},
        plot_bgcolor="white",
        height=520,
    )
    return fig


def block_graph(
    quotient: Quotient,
    weight: str = "mean",
    n_bins: int = 4,
    names: list[str] | None = None,
    positions: np.ndarray | None = None,
    title: str | None = None,
) -> go.Figure:
    """A block-summarized graph: nodes are blocks (area proportional to block size), edges by block weight.

    Parameters
    ----------
    quotient
        From :func:`workbench.graph.quotient.quotient_graph`.
    weight
        ``"mean"`` (block-model weight), ``"total"`` or ``"density"``.
    positions
        (k, 2) node positions; default a circle in block order.
    """
    import plotly.graph_objects as go

    if weight not in ("mean", "total", "density"):
        raise GraphError(f"unknown weight {weight!r}; use 'mean', 'total' or 'density'.")
    w = getattr(quotient, weight)
    k = quotient.n_blocks
    if positions is None:
        angle = 2 * np.pi * np.arange(k) / max(k, 1)
        positions = np.column_stack([np.cos(angle), np.sin(angle)])
    positions = np.asarray(positions, dtype=float)
    if positions.shape != (k, 2):
        raise GraphError(f"positions must have shape ({k}, 2), got {positions.shape}.")
    a, b = np.nonzero((w > 0) & ~np.eye(k, dtype=bool))
    traces = _edge_traces(
        positions[a, 0], positions[a, 1], positions[b, 0], positions[b, 1], w[a, b], n_bins, "#a55a4a", width_scale=2.0
    )
    labels = names or [str(label) for label in quotient.labels]
    sizes = quotient.sizes.astype(float)
    marker_size = 10 + 40 * np.sqrt(sizes / max(sizes.max(), 1))
    hover = [f"block {labels[i]}<br>{int(sizes[i])} units<br>within {w[i, i]:.3g}" for i in range(k)]
    traces.append(
        go.Scatter(
            x=positions[:, 0],
            y=positions[:, 1],
            mode="markers+text",
            text=labels,
            textposition="top center",
            hovertext=hover,
            hoverinfo="text",
            showlegend=False,
            name="blocks",
            marker={
                "size": marker_size,
                "color": np.diag(w),
                "colorscale": "Reds",
                "showscale": True,
                "colorbar": {"title": f"{weight} within"},
                "line": {"width": 1, "color": "#333"},
            },
        )
    )
    fig = go.Figure(traces)
    fig.update_layout(
        title=title or f"Block graph ({k} blocks, edges: {weight} weight)",
        xaxis={"visible": False},
        yaxis={"visible": False},
        plot_bgcolor="white",
        height=520,
    )
    return fig


def adjacency_heatmap(
    matrix: Any,
    partition: Any = None,
    max_size: int = 4000,
    log: bool = False,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of a (square or rectangular) matrix, rows and columns reordered by ``partition``.

    Nodes are sorted by block (stable, so the original order is kept inside a block); block boundaries
    are drawn as lines. ``matrix`` may be dense or scipy.sparse; larger than ``max_size`` on a side is refused
    (summarize it with :func:`workbench.graph.quotient.quotient_graph` first).
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
        go.Heatmap(z=z, colorscale="Viridis", hovertemplate="position (%{y}, %{x})<br>value %{z:.3g}<extra></extra>")
    )
    for b in bounds:
        fig.add_shape(type="line", x0=b, x1=b, y0=-0.5, y1=shape[0] - 0.5, line={"color": "white", "width": 1})
        fig.add_shape(type="line", y0=b, y1=b, x0=-0.5, x1=shape[1] - 0.5, line={"color": "white", "width": 1})
    fig.update_layout(
        title=title or ("Adjacency in block order" if partition is not None else "Adjacency"),
        yaxis={"autorange": "reversed"},
        height=560,
        meta={"order": order_r.tolist(), "boundaries": [float(b) for b in bounds]},
    )
    return fig
