"""Unit views: the arrays a selector sees for one prunable group.

Weight features of a unit are its incoming weights (the rows of every producing layer of the group,
kernels flattened, bias appended, concatenated across coupled producers) followed by its outgoing
weights (the columns of every consumer that reads it: for a conv consumer the kernel slices
``w[:, c, ...]``, for a Linear fed by a flattened conv the whole ``H*W`` block of columns; grouped consumers
are expanded with zeros).

Activation features are the values of the group's units after the nonlinearity, collected on data:
the tensor is the output of the group's last layer followed forward through element-wise operations
(activation, dropout, residual add) as long as there is a single path. Batches are streamed; at most
``max_samples`` samples are used and, for spatial outputs, at most ``max_positions`` positions per sample
(chosen at random with ``random_state``), so the activations stay below ``max_samples * max_positions * n``
float64 values; they are written into one array allocated after the first batch, while the units' Gram
matrix (n x n) and column sums are accumulated batch by batch. Source ``"pooled"`` reads the same tensor
but averages every channel over all its spatial positions first, one row per sample: the channel
responses that filter-pruning papers compare (for a Linear group it is the same as ``"activations"``). A view whose estimated memory exceeds
``max_memory`` is refused before it is built, with the estimate and the caps that would fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import fx

from workbench.adapters import adapter_for
from workbench.datasets.batches import input_batches, sample_count
from workbench.errors import DataError, GraphError
from workbench.graph.adjacency import input_columns, weight_out_in
from workbench.graph.flow import Layout
from workbench.graph.kinds import PRODUCER_KINDS
from workbench.metrics.forward import evaluation_mode
from workbench.unitview import METRICS, UnitView, gram_similarity
from workbench.utils import check_random_state, to_model

if TYPE_CHECKING:
    from workbench.graph.network import Group, NetworkGraph

SOURCES = ("weights", "activations", "pooled")
#: Largest weight-feature array (entries) a view builds; beyond it weights are left out (or refused for
#: source="weights"), since a view is dense float64 (the 512 units of VGG-16's last conv feed 4096 x 49 columns each).
MAX_FEATURE_ENTRIES = 50_000_000
#: Default memory limit of a unit view, bytes (see :func:`view_memory`).
MAX_VIEW_MEMORY = 2 * 1024**3
_FOLLOW_KINDS = frozenset({"act", "dropout", "identity", "add", "mul"})


def _expanded_weight(module: torch.nn.Module) -> torch.Tensor:
    """(out, in, *kernel) weight with grouped convolutions expanded to dense (zeros off the groups)."""
    w, groups = weight_out_in(module)
    if groups == 1:
        return w.float()
    out, ipg = w.shape[0], w.shape[1]
    full = torch.zeros(out, ipg * groups, *w.shape[2:], dtype=torch.float32)
    cols = torch.from_numpy(input_columns(out, ipg, groups))
    full[torch.arange(out)[:, None], cols] = w.float()
    return full


def in_weights(graph: NetworkGraph, group: Group) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """(n, d) incoming weights (+ bias columns), (n,) bias of the first producer with one, and the layers used."""
    blocks, bias, used = [], None, []
    for name in group.layers:
        if graph.layers[name].kind not in PRODUCER_KINDS:
            continue
        module = graph.module_of(name)
        w, _ = weight_out_in(module)
        rows = w.detach().double().flatten(1).numpy()
        layer_bias = adapter_for(module).bias(module)
        if layer_bias is not None:
            b = layer_bias.detach().cpu().double().numpy()
            rows = np.concatenate([rows, b[:, None]], axis=1)
            if bias is None:
                bias = np.zeros(group.n_units)
                bias[group.unit_maps[name]] = b
        block = np.zeros((group.n_units, rows.shape[1]))
        block[group.unit_maps[name]] = rows
        blocks.append(block)
        used.append(name)
    return (np.concatenate(blocks, axis=1) if blocks else None), bias, used


def in_weights_size(graph: NetworkGraph, group: Group) -> int:
    """Number of entries :func:`in_weights` would build."""
    total = 0
    for name in group.layers:
        if graph.layers[name].kind in PRODUCER_KINDS:
            module = graph.module_of(name)
            total += group.n_units * (
                weight_out_in(module)[0][0].numel() + (adapter_for(module).bias(module) is not None)
            )
    return total


def out_weights_size(graph: NetworkGraph, group: Group) -> int:
    """Number of entries :func:`out_weights` would build."""
    total = 0
    for consumer in group.consumers:
        w, _ = weight_out_in(graph.module_of(consumer.layer))
        per_column = w.numel() // w.shape[1]  # out x kernel entries per input column
        m = int(np.bincount(consumer.index[consumer.index >= 0], minlength=group.n_units).max(initial=0))
        total += group.n_units * m * per_column
    return total


def out_weights(graph: NetworkGraph, group: Group) -> tuple[np.ndarray | None, list[str]]:
    """(n, d) outgoing weights: each consumer's columns of each unit, flattened and concatenated."""
    blocks, used = [], []
    for consumer in group.consumers:
        w = _expanded_weight(graph.module_of(consumer.layer)).detach()
        cols = consumer.column_matrix(group.n_units)  # (n, m), -1 padded
        padded = torch.cat([w, torch.zeros(w.shape[0], 1, *w.shape[2:])], dim=1)
        idx = torch.from_numpy(np.where(cols >= 0, cols, w.shape[1]))
        gathered = padded[:, idx]  # (out, n, m, *kernel)
        blocks.append(gathered.movedim(1, 0).reshape(group.n_units, -1).double().numpy())
        used.append(consumer.layer)
    return (np.concatenate(blocks, axis=1) if blocks else None), used


def bn_scale(graph: NetworkGraph, group: Group) -> tuple[np.ndarray | None, list[str]]:
    """(n,) mean |gamma| over the group's affine BatchNorm / norm layers (None without one)."""
    total, count, used = np.zeros(group.n_units), np.zeros(group.n_units), []
    for name in group.layers:
        if graph.layers[name].kind not in ("bn", "norm"):
            continue
        weight = getattr(graph.module_of(name), "weight", None)
        if weight is None:
            continue
        np.add.at(total, group.unit_maps[name], weight.detach().cpu().double().abs().numpy())
        np.add.at(count, group.unit_maps[name], 1)
        used.append(name)
    if not used:
        return None, used
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0), used


def activation_node(graph: NetworkGraph, group: Group) -> fx.Node:
    """The fx node whose output holds the group's units after the nonlinearity (see the module docstring)."""
    nodes = {n.name: n for n in graph.module.graph.nodes}
    last = graph.layers[group.layers[-1]].node
    node = nodes[last]
    while True:
        users = [u for u in node.users if u.op != "output"]
        if len(users) != 1 or len(node.users) != 1:
            return node
        user = users[0]
        layer = graph.layers.get(graph._flow.node_layer.get(user.name, ""))
        if layer is None or layer.kind not in _FOLLOW_KINDS:
            return node
        node = user


class _Stop(Exception):
    pass


class _Capture(fx.Interpreter):
    """Runs the traced module up to ``target`` and stops there, keeping its output."""

    def __init__(self, gm: fx.GraphModule, target: str) -> None:
        super().__init__(gm)
        self.target_name = target
        self.value: torch.Tensor | None = None

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if n.name == self.target_name:
            self.value = result
            raise _Stop
        return result


def _sample_total(data: Any, max_samples: int) -> int:
    """Samples a view will read from ``data``: ``max_samples``, or fewer when ``data`` tells its size."""
    try:
        n = len(data) if isinstance(data, (torch.Tensor, np.ndarray)) else sample_count(data)
    except (DataError, TypeError):
        return max_samples
    return max(1, min(int(n), max_samples))


def view_memory(rows: int, n_units: int, weight_entries: int = 0) -> int:
    """Estimated bytes of a unit view and of a selection on it: activations (float64, rows x n), weight
    features, and a few (n, n) matrices (Gram, similarity, the selectors' working copies)."""
    return 8 * (rows * n_units + weight_entries + 6 * n_units * n_units)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def _refuse(group: str, estimate: int, max_memory: int, what: str, fix: str) -> GraphError:
    return GraphError(
        f"the unit view of group {group!r} would need about {_size(estimate)} ({what}), over "
        f"max_memory={max_memory:,} bytes ({_size(max_memory)}); {fix}, or raise max_memory."
    )


def collect_activations(
    graph: NetworkGraph,
    group: Group,
    data: Any,
    max_samples: int,
    max_positions: int,
    batch_size: int,
    random_state: Any,
    max_memory: int | None = None,
    weight_entries: int = 0,
    pool: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(rows, n) float64 activations of ``group`` (rows: samples x kept positions, or samples with ``pool``:
    each channel's mean over all positions), their (n, n) Gram matrix and (n,) column sums accumulated
    batch by batch, and the view metadata; see the module docstring.

    The rows array is allocated once after the first batch, for the samples ``data`` holds up to
    ``max_samples``; when that estimate (:func:`view_memory`) exceeds ``max_memory`` bytes a GraphError
    gives the estimate and the caps that would fit.
    """
    if max_samples < 1 or max_positions < 1 or batch_size < 1:
        raise GraphError("max_samples, max_positions and batch_size must be positive integers.")
    rng = check_random_state(random_state)
    node = activation_node(graph, group)
    layout = graph.node_layout(node.name)
    if not isinstance(layout, Layout) or layout.ids.ndim != 1:
        raise GraphError(f"the units of group {group.name!r} are not traceable at {node.name!r}; use source='weights'.")
    n = group.n_units
    local = graph.group_units(group.name, layout.ids)
    channel = np.full(n, -1, dtype=np.int64)  # first channel carrying each unit
    units, first = np.unique(local, return_index=True)
    channel[units[units >= 0]] = first[units >= 0]
    missing = int((channel < 0).sum())
    take = torch.from_numpy(np.where(channel >= 0, channel, 0))
    acts: np.ndarray | None = None
    gram, sums = np.zeros((n, n)), np.zeros(n)
    filled, seen, positions, total_positions = 0, 0, 0, 0
    model = graph.module
    with evaluation_mode(graph.model):  # every submodule's own mode comes back afterwards
        try:
            batches = input_batches(data, max_samples, batch_size)
            total = _sample_total(data, max_samples)
            with torch.no_grad():
                for x in batches:
                    x = to_model(x, graph.model)
                    capture = _Capture(model, node.name)
                    try:
                        capture.run(x)
                    except _Stop:
                        pass
                    except Exception as exc:
                        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                        raise GraphError(
                            f"running the model on a data batch of shape {tuple(x.shape)} failed ({first}); "
                            f"the graph was built for inputs of shape (batch, {', '.join(map(str, graph.input_shape))})."
                        ) from exc
                    value = capture.value.detach().cpu()
                    v = value.movedim(layout.dim, -1).reshape(len(x), -1, value.shape[layout.dim])  # (B, P, C)
                    total_positions = v.shape[1]
                    if pool:
                        v = v.mean(dim=1, keepdim=True)
                    elif v.shape[1] > max_positions:  # a random subset of positions per sample
                        keys = torch.from_numpy(rng.random((len(x), v.shape[1])))
                        pos = keys.argsort(dim=1)[:, :max_positions]
                        v = torch.gather(v, 1, pos[:, :, None].expand(-1, -1, v.shape[2]))
                    v = v.index_select(2, take)
                    if missing:
                        v[:, :, torch.from_numpy(channel < 0)] = 0.0
                    block = v.reshape(-1, n).double().numpy()
                    if acts is None:
                        positions = v.shape[1]
                        estimate = view_memory(total * positions, n, weight_entries)
                        if max_memory is not None and estimate > max_memory:
                            per_sample = view_memory(positions, n) - view_memory(0, n)
                            fits = (max_memory - view_memory(0, n, weight_entries)) // per_sample
                            fix = (
                                f"use at most max_samples={fits}"
                                if fits >= 1
                                else "use source='weights' or a smaller group"
                            )
                            if positions > 1:
                                fix += f" or fewer positions per sample (max_positions < {positions})"
                            raise _refuse(
                                group.name,
                                estimate,
                                max_memory,
                                f"{total:,} samples x {positions} positions x {n} units",
                                fix,
                            )
                        acts = np.empty((total * positions, n))
                    if filled + len(block) > len(acts):  # more samples than the data set announced
                        acts = np.concatenate([acts[:filled], np.empty((max(len(block), filled), n))])
                    acts[filled : filled + len(block)] = block
                    filled += len(block)
                    gram += block.T @ block
                    sums += block.sum(axis=0)
                    seen += len(x)
        except DataError as exc:  # not a data set, or an empty one
            raise GraphError(f"the data given for group {group.name!r}: {exc}") from None
    if filled < len(acts):
        acts = acts[:filled].copy()
    meta = {
        "activation_node": node.name,
        "samples": seen,
        "positions_per_sample": positions,
        "positions_in_tensor": total_positions,
        "pooled": pool,
        "units_not_in_tensor": missing,
        "memory_estimate": view_memory(filled, n, weight_entries),
    }
    return acts, gram, sums, meta


def unit_view(
    graph: NetworkGraph,
    group: str,
    source: str = "weights",
    data: Any = None,
    metric: str = "cosine",
    max_samples: int = 2048,
    max_positions: int = 64,
    batch_size: int = 256,
    random_state: Any = 0,
    max_memory: int | None = MAX_VIEW_MEMORY,
) -> UnitView:
    """The :class:`~workbench.unitview.UnitView` of one group.

    Parameters
    ----------
    group
        Group name (or the name of one of its layers).
    source
        ``"weights"``: features are incoming then outgoing weights; ``"activations"``: features are the
        units' activations on ``data`` (units x rows: samples x sampled positions); ``"pooled"``: each
        unit's activation averaged over all spatial positions, per sample (units x samples).
    data
        DataLoader, Dataset (e.g. ``ArrayDataset``), tensor or array of inputs. When given, ``activations``
        is filled whatever the source.
    metric
        Similarity metric of the view (``cosine``, ``correlation``, ``rbf``, ``linear``).
    max_samples, max_positions, batch_size
        Caps on samples used (default 2048), spatial positions kept per sample (default 64, chosen at
        random) and batch size when streaming data: the activations are at most
        ``max_samples * max_positions`` rows of n float64 values, whatever the size of ``data``.
    random_state
        Seed or Generator for the choice of spatial positions.
    max_memory
        Bytes the view (and a selection on it) may take, as estimated by :func:`view_memory`
        (default 2 GiB; None: no limit). A larger request is refused with a GraphError giving the
        estimate and the caps that would fit, before the activations are stored.

    Notes
    -----
    ``meta`` holds the layers used, the caps (``max_samples``, ``max_positions``, ``max_memory``), what was
    read (``samples``, ``positions_per_sample`` of ``positions_in_tensor``), the ``memory_estimate`` in
    bytes, and ``fixed``: the (n,) mask of units that must be kept (they reach the network output or feed
    layers the graph does not understand). For activations the Gram matrix is accumulated batch by batch
    and the view's ``kernel`` is computed from it (:func:`~workbench.unitview.gram_similarity`), so that no
    similarity ever copies the activations.
    """
    if source not in SOURCES:
        raise GraphError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}.")
    if metric not in METRICS:
        raise GraphError(f"unknown similarity metric {metric!r}; use one of {', '.join(METRICS)}.")
    if max_memory is not None and (
        isinstance(max_memory, bool) or not isinstance(max_memory, (int, np.integer)) or max_memory < 1
    ):
        raise GraphError(f"max_memory must be a number of bytes >= 1 (or None: no limit), got {max_memory!r}.")
    g = graph.group(group)
    parts = {}
    for label, size_of, build in (
        ("incoming", in_weights_size, in_weights),
        ("outgoing", out_weights_size, out_weights),
    ):
        size = size_of(graph, g)
        if size <= MAX_FEATURE_ENTRIES:
            parts[label] = build(graph, g)
        elif source == "weights":
            raise GraphError(
                f"the {label} weights of group {g.name!r} would be a {size:,}-entry array (over "
                f"{MAX_FEATURE_ENTRIES:,}); use source='activations' with data, or read graph.unit_adjacency() instead."
            )
        else:
            parts[label] = None
    w_in, bias, in_layers = parts["incoming"] or (None, None, [])
    w_out, out_layers = parts["outgoing"] or (None, [])
    weight_entries = sum(p.size for p in (w_in, w_out) if p is not None)
    if source == "weights":
        weight_entries *= 2  # the features are a concatenated copy
        estimate = view_memory(0, g.n_units, weight_entries)
        if max_memory is not None and estimate > max_memory:
            raise _refuse(
                g.name,
                estimate,
                max_memory,
                f"{g.n_units} units x {weight_entries // 2 // g.n_units:,} weight features",
                "use source='activations' with data",
            )
    scale, bn_layers = bn_scale(graph, g)
    acts, act_meta, kernel = None, {}, None
    if data is not None:
        acts, gram, sums, act_meta = collect_activations(
            graph,
            g,
            data,
            max_samples,
            max_positions,
            batch_size,
            random_state,
            max_memory,
            weight_entries,
            pool=source == "pooled",
        )
        if source != "weights":
            kernel = gram_similarity(gram, metric, sums=sums, count=len(acts))
    elif source != "weights":
        raise GraphError(f"source={source!r} needs data (a DataLoader, Dataset, tensor or array of inputs).")
    if source == "weights":
        parts = [p for p in (w_in, w_out) if p is not None]
        if not parts:
            raise GraphError(f"group {g.name!r} has neither producing nor consuming weights to describe its units.")
        features = np.concatenate(parts, axis=1)
    else:
        features = acts.T  # a transposed view: no copy
    meta = {
        "source": source,
        "layers": list(g.layers),
        "in_layers": in_layers,
        "out_layers": out_layers,
        "bn_layers": bn_layers,
        "fixed": g.fixed.copy(),
        "prunable": g.prunable,
        "max_samples": max_samples,
        "max_positions": max_positions,
        "max_memory": max_memory,
        **act_meta,
    }
    return UnitView(
        group=g.name,
        features=features,
        metric=metric,
        in_weights=w_in,
        out_weights=w_out,
        bias=bias,
        bn_scale=scale,
        activations=acts,
        kernel=kernel,
        meta=meta,
    )
