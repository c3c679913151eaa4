"""Quotient (block) graphs of a unit graph, and the layer graph of a network.

The quotient of a weighted adjacency ``A`` (n x n) by a partition of its nodes into k blocks is the
k x k graph of block-to-block weights ``P^T A P``, where ``P`` is the n x k block indicator matrix.
Computed with sparse products, so a unit graph of millions of edges summarizes in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from workbench.errors import GraphError

if TYPE_CHECKING:
    import networkx as nx

    from workbench.graph.network import NetworkGraph


@dataclass
class Quotient:
    """A block-summarized graph.

    Attributes
    ----------
    labels
        (k,) the partition's block labels, in block order.
    sizes
        (k,) number of nodes per block.
    total
        (k, k) summed weight of the edges from block a to block b.
    count
        (k, k) number of edges from block a to block b.
    mean
        (k, k) ``total`` divided by the number of node pairs (``s_a * s_b``; ``s_a * (s_a - 1)`` on the
        diagonal, self-loops excluded): the block-model edge weight.
    density
        (k, k) ``count`` over the same number of pairs.
    assignment
        (n,) block index of every node.
    """

    labels: np.ndarray
    sizes: np.ndarray
    total: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    density: np.ndarray
    assignment: np.ndarray

    @property
    def n_blocks(self) -> int:
        return int(len(self.sizes))


def indicator(partition: Any, n: int | None = None) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """(n x k) sparse block indicator matrix, the block labels and each node's block index."""
    labels_in = np.asarray(partition)
    if labels_in.ndim != 1:
        raise GraphError(f"partition must be a 1-d array of block labels, got shape {labels_in.shape}.")
    if n is not None and len(labels_in) != n:
        raise GraphError(f"partition has {len(labels_in)} labels but the graph has {n} nodes.")
    labels, assignment = np.unique(labels_in, return_inverse=True)
    m = len(labels_in)
    p = sp.csr_matrix((np.ones(m, dtype=np.float64), (np.arange(m), assignment)), shape=(m, len(labels)))
    return p, labels, assignment


def quotient_graph(adjacency: Any, partition: Any) -> Quotient:
    """Summarize ``adjacency`` (dense or sparse, n x n) by the node ``partition`` (n labels).

    Raises
    ------
    GraphError
        Non-square adjacency, or a partition of the wrong length.
    """
    a = adjacency if sp.issparse(adjacency) else np.asarray(adjacency)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise GraphError(f"adjacency must be a square matrix, got shape {a.shape}.")
    a = sp.csr_matrix(a)
    _, labels, assignment = indicator(partition, a.shape[0])
    k = len(labels)
    # one pass over the stored entries (self-loops and explicit zeros are not block-to-block edges)
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    edge = (a.data != 0) & (rows != a.indices)
    pair = assignment[rows[edge]] * k + assignment[a.indices[edge]]
    total = np.bincount(pair, weights=a.data[edge].astype(np.float64), minlength=k * k).reshape(k, k)
    count = np.bincount(pair, minlength=k * k).reshape(k, k).astype(np.float64)
    sizes = np.bincount(assignment, minlength=len(labels)).astype(np.int64)
    pairs = np.outer(sizes, sizes).astype(np.float64)
    np.fill_diagonal(pairs, sizes * (sizes - 1.0))
    mean = np.divide(total, pairs, out=np.zeros_like(total), where=pairs > 0)
    density = np.divide(count, pairs, out=np.zeros_like(count), where=pairs > 0)
    return Quotient(
        labels=labels, sizes=sizes, total=total, count=count, mean=mean, density=density, assignment=assignment
    )


def layer_graph(graph: NetworkGraph) -> nx.DiGraph:
    """Layers as nodes (unit-owning layers and the input), edge A -> B weighted by the total |w| of B reading A.

    For a coupled layer (BatchNorm, PReLU, depthwise conv) the weight is the total |parameter| of the
    channels it takes from A. Node attributes: kind, module_type, n_units, group, weight_shape.
    """
    import networkx as nx

    from workbench.graph.adjacency import weight_out_in

    g = nx.DiGraph()
    owners = graph._owner_names
    for name in owners:
        layer = graph.layers[name]
        g.add_node(
            name,
            kind=layer.kind,
            module_type=layer.module_type,
            n_units=layer.n_units,
            group=layer.group,
            weight_shape=layer.weight_shape,
        )
    for read in graph.reads:
        module = graph.module_of(read.layer)
        weight = getattr(module, "weight", None)
        n_cols = len(read.ids)
        if weight is None:
            col_mass = np.zeros(n_cols)
        elif read.coupled and graph.layers[read.layer].kind != "depthwise_conv":
            col_mass = weight.detach().cpu().double().abs().reshape(-1).numpy()
        else:
            w, groups = weight_out_in(module)
            per_entry = w.detach().double().abs().flatten(2).sum(dim=2) if w.dim() > 2 else w.detach().double().abs()
            if groups == 1:
                col_mass = per_entry.sum(dim=0).numpy()
            else:
                from workbench.graph.adjacency import input_columns

                cols = input_columns(per_entry.shape[0], per_entry.shape[1], groups)
                col_mass = np.bincount(cols.reshape(-1), weights=per_entry.numpy().reshape(-1), minlength=n_cols)
        valid = read.ids >= 0
        owner_idx = graph._owner[read.ids[valid]]
        mass = np.bincount(owner_idx, weights=col_mass[valid], minlength=len(owners))
        for k in np.unique(owner_idx):
            src = owners[k]
            prev = g.edges[src, read.layer]["weight"] if g.has_edge(src, read.layer) else 0.0
            g.add_edge(src, read.layer, weight=prev + float(mass[k]))
    return g


__all__ = ["Quotient", "quotient_graph", "layer_graph", "indicator"]
