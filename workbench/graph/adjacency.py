"""The unit graph: a sparse weighted adjacency between the units of a network.

Nodes are the network's input units followed by the units of every group, in ``graph.unit_index``
order: **one node per group unit**. Layers coupled into one group (a conv and its BatchNorm, the layers
added together in a residual stage, a depthwise conv and its producer) share nodes; they are not separate
node sets joined by identity edges. Input units tied into a group (rare: a residual add with the input)
are nodes of that group.

An edge runs from unit ``i`` to unit ``j`` when a layer producing ``j`` reads ``i`` through its weights.
Its weight is a norm of the weights connecting them: ``|w_ji|`` for a Linear; the norm of the kernel
slice ``w[j, i, ...]`` for a convolution; for a conv unit flattened into a Linear, the norm of the whole
``H*W`` block of columns it feeds (for ``"l2"``/``"fro"`` the Frobenius norm of the block, for ``"l1"``
the sum of absolute values, for ``"max"`` the largest absolute value). When several layers connect the
same pair of nodes their contributions combine the same way (squares summed then rooted, absolute values
summed, maximum). Coupled layers (BatchNorm, depthwise convs) add no edges: their weights are per-unit
attributes. Zero weights give no edge. Data are float32 and indices int32.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from workbench.adapters import adapter_for
from workbench.errors import GraphError

if TYPE_CHECKING:
    from workbench.graph.network import NetworkGraph

NORMS = ("l2", "fro", "l1", "max")
_CHUNK = 1 << 22  # weight entries processed at once (bounds temporaries to a few tens of MB)
_BATCH_READ = 1 << 16  # reads with at most this many weights are reduced together (a torch call costs ~10 µs)


def weight_out_in(module: nn.Module) -> tuple[torch.Tensor, int]:
    """The weight as (out, in_per_group, *kernel), on the CPU, and the number of groups (from the layer's adapter)."""
    adapter = adapter_for(module)
    weight = adapter.weight(module) if adapter is not None else None
    if weight is None:
        raise GraphError(f"{type(module).__name__} has no weight that a layer adapter can read as (out, in).")
    return weight.detach().cpu(), adapter.groups(module)


def input_columns(out: int, in_per_group: int, groups: int) -> np.ndarray | None:
    """Input column of each (out, in_per_group) weight entry of a grouped layer (None when groups == 1)."""
    if groups == 1:
        return None
    opg = out // groups
    return (np.arange(out)[:, None] // opg) * in_per_group + np.arange(in_per_group)[None, :]


def _reduce(w: torch.Tensor, norm: str, scratch: bool = False) -> torch.Tensor:
    """Per (out, in) entry: squared sum ("l2"), absolute sum ("l1") or max ("max") over the kernel.

    ``scratch``: ``w`` is a temporary the caller gives up, squared or made absolute in place (same values).
    """
    w = w.float()
    if w.dim() == 2:
        return w * w if norm in ("l2", "fro") else w.abs()
    flat = w.flatten(2)
    if norm in ("l2", "fro"):
        return (flat.mul_(flat) if scratch else flat * flat).sum(dim=2)
    flat = flat.abs_() if scratch else flat.abs()
    return flat.sum(dim=2) if norm == "l1" else flat.amax(dim=2)


@dataclass
class _Rows:
    """One consumer's reduced weights in CSR form: row k is source node ``sources[k]``, columns are targets."""

    sources: np.ndarray
    counts: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    unique: bool  # no (source, target) pair repeated
    dense: bool = False  # every entry nonzero, indices shared with the read plan's cache


@dataclass
class ReadPlan:
    """Weight-independent structure of one consumer read, computed once per graph."""

    layer: str
    out_nodes: np.ndarray
    col_nodes: np.ndarray
    valid: np.ndarray
    sources: np.ndarray
    inv: np.ndarray
    regroup: bool
    unique_targets: bool

    def dense_rows(self, out: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(counts, target indices, cached) of a read whose every entry is nonzero; cached for small layers."""
        cached = getattr(self, "_dense", None)
        if cached is not None:
            return (*cached, True)
        counts = np.full(len(self.sources), out, dtype=np.int64)
        indices = np.tile(self.out_nodes.astype(np.int32), len(self.sources))
        if indices.size > _CHUNK // 4:  # keep the cache small (VGG-sized layers recompute)
            return counts, indices, False
        self._dense = (counts, indices)
        return counts, indices, True

    @classmethod
    def make(cls, layer: str, out_nodes: np.ndarray, col_nodes: np.ndarray) -> ReadPlan:
        valid = np.flatnonzero(col_nodes >= 0)
        sources, inv = np.unique(col_nodes[valid], return_inverse=True)
        regroup = len(sources) < len(valid) or not np.array_equal(sources, col_nodes[valid])
        return cls(
            layer, out_nodes, col_nodes, valid, sources, inv, regroup, len(np.unique(out_nodes)) == len(out_nodes)
        )


@dataclass
class _BatchedLayout:
    """Weight-independent structure of the batched route of :func:`unit_adjacency` (see :func:`_batched`).

    ``key`` is the (weight shape, groups) of every read it was built for; ``ok`` is False when some read
    needs the per-read route (grouped, regrouped, partly read or large layers). ``batches`` lists
    ``(K, members, start, stop)``: the reads of kernel size K reduced by one torch call into
    ``raw[start:stop]`` (each read's (out, in) values, row-major). When every source row comes from one
    read, the CSR data are each read's values transposed into place (``places``: raw offset, data offset,
    out, in); otherwise they are ``raw[gather]``, with the entries of repeated pairs combined where
    ``multi`` (pairs with several entries) is not None.
    """

    key: tuple[Any, ...]
    ok: bool
    size: int = 0
    batches: list[tuple[int, list[int], int, int]] = field(default_factory=list)
    places: list[tuple[int, int, int, int]] | None = None
    gather: np.ndarray | None = None
    indices: np.ndarray | None = None
    indptr: np.ndarray | None = None
    starts: np.ndarray | None = None  # first ordered entry of every pair (only with repeated pairs)
    multi: np.ndarray | None = None  # pairs with repeated entries
    multi_entries: np.ndarray | None = None  # their ordered entries, pair after pair
    multi_starts: np.ndarray | None = None  # where each of those pairs starts in ``multi_entries``


@dataclass
class _GraphCache:
    """Per-graph structure reused by every :func:`unit_adjacency` call: the read plans and the assembled layouts."""

    read_plans: list[ReadPlan]
    dense_assembly: tuple[Any, ...] | None = field(default=None)
    batched: _BatchedLayout | None = field(default=None)


#: Graph -> its cache; an entry goes when its graph is garbage-collected.
_CACHES: weakref.WeakKeyDictionary[NetworkGraph, _GraphCache] = weakref.WeakKeyDictionary()


def _cache(graph: NetworkGraph) -> _GraphCache:
    """The cache of ``graph``, built on first use from its reads (coupled reads carry no edges)."""
    cache = _CACHES.get(graph)
    if cache is None:
        plans = [
            ReadPlan.make(r.layer, graph.unit_nodes(graph.layer_units(r.layer)), graph.unit_nodes(r.ids))
            for r in graph.reads
            if not r.coupled
        ]
        cache = _CACHES[graph] = _GraphCache(plans)
    return cache


def read_plans(graph: NetworkGraph) -> list[ReadPlan]:
    """Weight-independent structure of every uncoupled consumer read of ``graph`` (cached per graph)."""
    return _cache(graph).read_plans


def _consumer_rows(w: torch.Tensor, groups: int, plan: ReadPlan, norm: str) -> _Rows:
    """Reduce one consumer layer's weights to per (source node, target node) values (see the module docstring)."""
    out, ipg = w.shape[0], w.shape[1]
    out_nodes, col_nodes = plan.out_nodes, plan.col_nodes
    cols_of_entry = input_columns(out, ipg, groups)
    if cols_of_entry is not None:  # grouped convolution: few entries, scatter them directly
        r = _reduce(w, norm).numpy().reshape(-1)
        cn = col_nodes[cols_of_entry.reshape(-1)]
        tn = np.repeat(out_nodes, ipg)
        keep = np.flatnonzero((cn >= 0) & (r != 0))
        keep = keep[np.argsort(cn[keep], kind="stable")]
        sources, counts = np.unique(cn[keep], return_counts=True)
        return _Rows(sources, counts, tn[keep].astype(np.int32), r[keep].astype(np.float32), unique=False)
    valid, sources, regroup = plan.valid, plan.sources, plan.regroup
    all_valid = len(valid) == len(col_nodes)
    if all_valid and not regroup and w.numel() <= _CHUNK:  # the common case: one reduction, no regrouping
        vals = _reduce(w, norm).t().contiguous().numpy()
        if vals.all():
            counts, indices, cached = plan.dense_rows(out)
            return _Rows(sources, counts, indices, vals.reshape(-1), unique=plan.unique_targets, dense=cached)
        keep = vals != 0
        indices = np.broadcast_to(out_nodes.astype(np.int32), vals.shape)[keep]
        return _Rows(sources, keep.sum(axis=1), indices, vals[keep], unique=plan.unique_targets)
    inv_t, valid_t = torch.from_numpy(plan.inv), torch.from_numpy(valid)
    reduced = torch.empty(out, len(sources), dtype=torch.float32)
    step = max(1, _CHUNK // max(1, w[0].numel()))
    for start in range(0, out, step):
        block = _reduce(w[start : start + step], norm)
        if not all_valid:
            block = block.index_select(1, valid_t)
        if regroup:
            dest = reduced[start : start + step].zero_()
            if norm == "max":
                dest.scatter_reduce_(1, inv_t.expand(block.shape[0], -1), block, reduce="amax")
            else:
                dest.index_add_(1, inv_t, block)
        else:
            reduced[start : start + step] = block
    vals = reduced.t().contiguous().numpy()  # (sources, out)
    keep = vals != 0
    indices = np.broadcast_to(out_nodes.astype(np.int32), vals.shape)[keep]
    return _Rows(sources, keep.sum(axis=1), indices, vals[keep], unique=plan.unique_targets)


def _combine(pieces: list[_Rows], n: int, norm: str, graph: NetworkGraph | None = None) -> sp.csr_matrix:
    """Sum (or max) the consumers' rows into one n x n CSR matrix (row = source unit).

    With ``graph`` given and every read free of zero entries, the assembled structure is reused.
    """
    if not pieces:
        return sp.csr_matrix((n, n), dtype=np.float32)
    lows = np.array([p.sources[0] if len(p.sources) else n for p in pieces])
    highs = np.array([p.sources[-1] if len(p.sources) else -1 for p in pieces])
    order = np.argsort(lows, kind="stable")
    data = np.concatenate([pieces[k].data for k in order]).astype(np.float32, copy=False)
    indices = np.concatenate([pieces[k].indices for k in order]).astype(np.int32, copy=False)
    if all(p.unique for p in pieces) and np.all(highs[order][:-1] < lows[order][1:]):
        # every source row comes from one consumer: the rows are already in order
        counts = np.zeros(n, dtype=np.int64)
        for p in pieces:
            counts[p.sources] = p.counts
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return sp.csr_matrix((data, indices, indptr), shape=(n, n))
    if graph is not None and all(p.dense for p in pieces):
        return _assemble_dense(graph, pieces, n, norm)
    rows = np.concatenate([np.repeat(pieces[k].sources, pieces[k].counts) for k in order]).astype(np.int32)
    if norm == "max":  # repeated (source, target) pairs combine by their maximum
        perm = np.lexsort((indices, rows))
        rows, indices, data = rows[perm], indices[perm], data[perm]
        first = np.flatnonzero(np.concatenate([[True], (np.diff(rows) != 0) | (np.diff(indices) != 0)]))
        rows, indices, data = rows[first], indices[first], np.maximum.reduceat(data, first)
    matrix = sp.csr_matrix((data, (rows, indices)), shape=(n, n))  # sums repeated pairs
    matrix.sum_duplicates()
    return matrix


def _assemble_dense(graph: NetworkGraph, pieces: list[_Rows], n: int, norm: str) -> sp.csr_matrix:
    """:func:`_combine` for reads without zero entries: the CSR structure is the same every time, so it is
    built once per graph (the order that sorts the concatenated entries, and where repeated pairs start)."""
    data = np.concatenate([p.data for p in pieces]).astype(np.float32, copy=False)
    graph_cache = _cache(graph)
    cached = graph_cache.dense_assembly
    if cached is None or cached[0] != len(data):
        rows = np.concatenate([np.repeat(p.sources, p.counts) for p in pieces]).astype(np.int64)
        cols = np.concatenate([p.indices for p in pieces]).astype(np.int64)
        order = np.lexsort((cols, rows))
        key = rows[order] * n + cols[order]
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        indices = (key[starts] % n).astype(np.int32)
        indptr = np.searchsorted(key[starts] // n, np.arange(n + 1)).astype(np.int32)
        cached = (len(data), order, starts, indices, indptr)
        graph_cache.dense_assembly = cached
    _, order, starts, indices, indptr = cached
    ordered = data[order]
    values = np.maximum.reduceat(ordered, starts) if norm == "max" else np.add.reduceat(ordered, starts)
    return sp.csr_matrix((values.astype(np.float32, copy=False), indices.copy(), indptr.copy()), shape=(n, n))


def _batched_layout(
    graph: NetworkGraph, plans: list[ReadPlan], weights: list[tuple[torch.Tensor, int]]
) -> _BatchedLayout:
    """The :class:`_BatchedLayout` of ``graph`` for reads with these weights: the CSR structure that
    :func:`_combine` gives when no weight is zero, and where each of its entries comes from."""
    key = tuple((tuple(w.shape), groups) for w, groups in weights)
    n = graph.n_nodes
    shapes = [(w.shape[0], w.shape[1], int(np.prod(w.shape[2:], dtype=np.int64))) for w, _ in weights]
    simple = [
        groups == 1 and len(plan.valid) == len(plan.col_nodes) and not plan.regroup and w.numel() <= _CHUNK
        for (w, groups), plan in zip(weights, plans)
    ]
    if not plans or not all(simple):
        return _BatchedLayout(key, ok=False)
    dense = [plan.dense_rows(out) for plan, (out, _, _) in zip(plans, shapes)]  # (counts, indices, cached)
    lows = np.array([plan.sources[0] if len(plan.sources) else n for plan in plans])
    highs = np.array([plan.sources[-1] if len(plan.sources) else -1 for plan in plans])
    piece_order = np.argsort(lows, kind="stable")
    disjoint = all(plan.unique_targets for plan in plans) and bool(
        np.all(highs[piece_order][:-1] < lows[piece_order][1:])
    )
    if not disjoint and not all(cached for _, _, cached in dense):
        return _BatchedLayout(key, ok=False)  # _combine would take its general (COO) route
    # raw: the reads grouped by kernel size, in batches of at most _CHUNK weights, each read's (out, in) row-major
    batches: list[tuple[int, list[int], int, int]] = []
    offsets = np.zeros(len(plans), dtype=np.int64)
    position = 0
    for size in dict.fromkeys(k for _, _, k in shapes):
        members: list[int] = []
        weight_count, start = 0, position
        for index, (out, ipg, k) in enumerate(shapes):
            if k != size:
                continue
            numel = out * ipg * k
            large = numel > _BATCH_READ or (len(members) == 1 and weight_count > _BATCH_READ)
            if members and (large or weight_count + numel > _CHUNK):
                batches.append((size, members, start, position))  # a large read is a batch of its own
                members, weight_count, start = [], 0, position
            members.append(index)
            offsets[index] = position
            weight_count += numel
            position += out * ipg
        batches.append((size, members, start, position))
    layout = _BatchedLayout(key, ok=True, size=position, batches=batches)
    if disjoint:  # as _combine's first route: rows already in order, one consumer each
        places, start = [], 0
        for k in piece_order:
            out, ipg, _ = shapes[k]
            places.append((int(offsets[k]), start, out, ipg))
            start += out * ipg
        layout.places = places
        layout.indices = np.concatenate([dense[k][1] for k in piece_order]).astype(np.int32, copy=False)
        counts = np.zeros(n, dtype=np.int64)
        for plan, (piece_counts, _, _) in zip(plans, dense):
            counts[plan.sources] = piece_counts
        layout.indptr = np.concatenate([[0], np.cumsum(counts)])
    else:  # as _assemble_dense: entries sorted by (row, column), repeated pairs combined in that order
        # a piece's data are its values transposed (source row, then target): entry (s, t) is raw[offset + t * in + s]
        to_raw = [
            offsets[i]
            + (np.arange(out, dtype=np.int64)[None, :] * ipg + np.arange(ipg, dtype=np.int64)[:, None]).ravel()
            for i, (out, ipg, _) in enumerate(shapes)
        ]
        rows = np.concatenate([np.repeat(plan.sources, c) for plan, (c, _, _) in zip(plans, dense)]).astype(np.int64)
        cols = np.concatenate([indices for _, indices, _ in dense]).astype(np.int64)
        order = np.lexsort((cols, rows))
        key_sorted = rows[order] * n + cols[order]
        starts = np.flatnonzero(np.concatenate([[True], key_sorted[1:] != key_sorted[:-1]]))
        layout.gather = np.concatenate(to_raw)[order]
        layout.indices = (key_sorted[starts] % n).astype(np.int32)
        layout.indptr = np.searchsorted(key_sorted[starts] // n, np.arange(n + 1)).astype(np.int32)
        lengths = np.diff(np.append(starts, len(order)))
        if np.any(lengths > 1):
            multi = np.flatnonzero(lengths > 1)
            layout.starts, layout.multi = starts, multi
            layout.multi_entries = np.concatenate([np.arange(starts[m], starts[m] + lengths[m]) for m in multi])
            layout.multi_starts = np.concatenate([[0], np.cumsum(lengths[multi])[:-1]])
    return layout


def _batched(
    graph: NetworkGraph, plans: list[ReadPlan], weights: list[tuple[torch.Tensor, int]], norm: str
) -> sp.csr_matrix | None:
    """:func:`_combine` of the reads' rows, with the weights reduced a batch of reads at a time (one torch call
    per kernel size instead of several per read) and the CSR structure cached; the same matrix, bit for bit.

    Returns None (the per-read route applies) when a read is not a plain dense one or a reduced weight is zero
    (then the structure depends on the values).
    """
    cache = _cache(graph)
    key = tuple((tuple(w.shape), groups) for w, groups in weights)
    layout = cache.batched
    if layout is None or layout.key != key:
        layout = cache.batched = _batched_layout(graph, plans, weights)
    if not layout.ok:
        return None
    raw = np.empty(layout.size, dtype=np.float32)
    for size, members, start, stop in layout.batches:
        parts = [weights[m][0].float().reshape(-1, size) for m in members]
        flat = parts[0] if len(parts) == 1 else torch.cat(parts)
        if size == 1:  # a reduction over one entry is that entry: as _reduce of a Linear weight
            flat = flat.reshape(-1)
            values = flat * flat if norm in ("l2", "fro") else flat.abs()
        else:
            values = _reduce(flat.reshape(flat.shape[0], 1, size), norm, scratch=len(parts) > 1).reshape(-1)
        raw[start:stop] = values.numpy()
    if not raw.all():
        return None
    if layout.places is not None:
        data = np.empty_like(raw)
        into, values = torch.from_numpy(data), torch.from_numpy(raw)
        for source, target, out, ipg in layout.places:  # torch transposes large blocks faster than numpy
            into[target : target + out * ipg].view(ipg, out).copy_(
                values[source : source + out * ipg].view(out, ipg).t()
            )
        return sp.csr_matrix((data, layout.indices.copy(), layout.indptr.copy()), shape=(graph.n_nodes,) * 2)
    data = raw[layout.gather]
    if layout.multi is not None:
        combine = np.maximum if norm == "max" else np.add
        merged = combine.reduceat(data[layout.multi_entries], layout.multi_starts)
        data = data[layout.starts]
        data[layout.multi] = merged
    return sp.csr_matrix((data, layout.indices.copy(), layout.indptr.copy()), shape=(graph.n_nodes,) * 2)


def unit_adjacency(graph: NetworkGraph, norm: str = "l2") -> sp.csr_matrix:
    """Directed weighted adjacency (n_nodes x n_nodes CSR, float32): ``A[i, j]`` is the weight of unit i -> unit j.

    Rows and columns follow ``graph.unit_index``. See the module docstring for what the weights are.
    """
    if norm not in NORMS:
        raise GraphError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}.")
    n = graph.n_nodes
    plans = read_plans(graph)
    weights = [weight_out_in(graph.module_of(plan.layer)) for plan in plans]
    total = _batched(graph, plans, weights, norm)
    if total is None:
        pieces = [_consumer_rows(w, groups, plan, norm) for (w, groups), plan in zip(weights, plans)]
        total = _combine(pieces, n, norm, graph)
    if norm in ("l2", "fro"):
        np.sqrt(total.data, out=total.data)
    if total.nnz < np.iinfo(np.int32).max:
        total.indices = total.indices.astype(np.int32, copy=False)
        total.indptr = total.indptr.astype(np.int32, copy=False)
    return total


def unit_table(graph: NetworkGraph) -> dict[str, np.ndarray]:
    """Per node of the unit graph: ``block``, ``index`` (in the block), ``layer`` (first producer), ``norm``, ``bias``.

    ``norm`` is the L2 norm of the unit's incoming weights over all producing layers of its group (conv /
    linear rows; zero for input units); ``bias`` is the bias of the group's first producer with one (0 otherwise).
    """
    n = graph.n_nodes
    block = np.empty(n, dtype=object)
    index = np.zeros(n, dtype=np.int64)
    layer = np.empty(n, dtype=object)
    sq = np.zeros(n, dtype=np.float64)
    bias = np.zeros(n, dtype=np.float64)
    for name, sl in graph.unit_index.items():
        block[sl] = name
        index[sl] = np.arange(sl.stop - sl.start)
        layer[sl] = name
    from workbench.graph.kinds import PRODUCER_KINDS

    for group in graph.groups.values():
        offset = graph.unit_index[group.name].start
        has_bias = False
        for name in group.layers:
            if graph.layers[name].kind not in PRODUCER_KINDS:
                continue
            module = graph.module_of(name)
            w, _ = weight_out_in(module)
            nodes = offset + group.unit_maps[name]
            np.add.at(sq, nodes, (w.double().flatten(1) ** 2).sum(dim=1).numpy())
            layer_bias = adapter_for(module).bias(module)
            if layer_bias is not None and not has_bias:
                bias[nodes] = layer_bias.detach().cpu().double().numpy()
                has_bias = True
    return {"block": block, "index": index, "layer": layer, "norm": np.sqrt(sq), "bias": bias}
