"""Export of a :class:`NetworkGraph` to networkx (layer level, or unit level for small networks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from workbench.errors import GraphError

if TYPE_CHECKING:
    import networkx as nx

    from workbench.graph.network import NetworkGraph

LEVELS = ("layer", "unit")


def to_networkx(graph: NetworkGraph, level: str = "layer", norm: str = "l2", max_edges: int = 2_000_000) -> nx.DiGraph:
    """A networkx ``DiGraph`` of the network.

    Parameters
    ----------
    level
        ``"layer"``: :func:`workbench.graph.quotient.layer_graph`. ``"unit"``: one node per unit-graph node
        (integer ids as in :meth:`NetworkGraph.unit_adjacency`) with attributes ``block`` (group name or
        "input"), ``layer``, ``index``, ``norm`` (L2 norm of incoming weights), ``bias``, ``fixed``; edges carry
        ``weight`` (the ``norm`` of the connecting weights).
    max_edges
        Size guard for the unit level: networkx holds ~ 500 bytes per edge, so larger unit graphs are refused.

    Raises
    ------
    GraphError
        Unknown level, or a unit graph with more than ``max_edges`` edges.
    """
    import networkx as nx

    if level == "layer":
        from workbench.graph.quotient import layer_graph

        return layer_graph(graph)
    if level != "unit":
        raise GraphError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}.")
    adjacency = graph.unit_adjacency(norm)
    if adjacency.nnz > max_edges:
        raise GraphError(
            f"the unit graph has {adjacency.nnz:,} edges, more than max_edges={max_edges:,}: as a networkx graph it "
            "would take several GB. Use graph.unit_adjacency() (a scipy.sparse matrix) or to_networkx(level='layer'), "
            "or raise max_edges."
        )
    table = graph.unit_table()
    fixed = np.zeros(graph.n_nodes, dtype=bool)
    for group in graph.groups.values():
        fixed[graph.unit_index[group.name]] = group.fixed
    fixed[graph.unit_index["input"]] = True
    g = nx.DiGraph()
    g.add_nodes_from(
        (
            i,
            {
                "block": table["block"][i],
                "layer": table["layer"][i],
                "index": int(table["index"][i]),
                "norm": float(table["norm"][i]),
                "bias": float(table["bias"][i]),
                "fixed": bool(fixed[i]),
            },
        )
        for i in range(graph.n_nodes)
    )
    coo = adjacency.tocoo()
    g.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.astype(float).tolist()))
    return g
