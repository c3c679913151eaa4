"""Remove a group's units by slicing the modules from the graph's exact unit maps.

This is how :func:`workbench.surgery.apply` edits every group: the :class:`~workbench.graph.NetworkGraph`
knows which group unit every output channel of every layer belongs to (``Group.unit_maps``, including
zero-padded residuals and channels tied by max-unpooling indices) and which unit feeds every input column
of every consumer (``Consumer.index``), so the edits need nothing else. Shapes computed at run time from
tensors (ENet's zero-padding width) adapt to the smaller layers. What depends on the graph alone (which
groups can be sliced, the order of the groups) is computed once per graph.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from torch import nn

from workbench.adapters import LayerAdapter, adapter_for, set_param
from workbench.adapters.base import check_out_count, module_has_parameters
from workbench.errors import SurgeryError
from workbench.graph.cutting import cut_problem
from workbench.graph.kinds import module_kind


def is_depthwise(module: nn.Module) -> bool:
    """Whether ``module`` is a depthwise convolution (one input channel per group, any channel multiplier),
    whose output channels are tied to the input channel they filter and pruned with it."""
    return module_kind(module) == "depthwise_conv"


def _adapter(name: str, module: nn.Module, role: str) -> LayerAdapter:
    adapter = adapter_for(module)
    if adapter is None:
        raise SurgeryError(
            f"{role} {name!r} ({type(module).__name__}) has no layer adapter, so surgery cannot cut it; leave its "
            "group out of the plan, or register one (workbench.adapters.register_adapter)."
        )
    return adapter


def slice_group(
    model: nn.Module,
    graph: Any,
    group: Any,
    dropped_units: Iterable[int],
    *,
    in_index: dict[str, np.ndarray] | None = None,
    out_index: dict[str, np.ndarray] | None = None,
) -> None:
    """Remove ``dropped_units`` of ``group`` from ``model`` in place (producers, BN, PReLU, consumers).

    Parameters
    ----------
    model
        The (copied) model; its module names must be those of ``graph``'s model.
    graph
        The :class:`~workbench.graph.NetworkGraph` of the original model.
    group
        A :class:`~workbench.graph.Group` of ``graph``.
    dropped_units
        Group units to remove.
    in_index
        Consumer name -> original input columns still present (updated in place); needed when other
        groups already removed some of a consumer's inputs. Missing layers have all their inputs.
    out_index
        Linear / convolution name -> original output units still present (updated in place, for lsq).

    Raises
    ------
    SurgeryError
        A layer's current width differs from the graph's, or a layer cannot be sliced.
    """
    in_index = {} if in_index is None else in_index
    out_index = {} if out_index is None else out_index
    drop = np.zeros(group.n_units, dtype=bool)
    dropped = np.asarray(sorted({int(u) for u in dropped_units}), dtype=np.int64)
    if dropped.size and (dropped.min() < 0 or dropped.max() >= group.n_units):
        raise SurgeryError(f"group {group.name!r} has {group.n_units} units; cannot drop unit {int(dropped.max())}.")
    drop[dropped] = True
    modules = dict(model.named_modules())
    edits = []
    for name, unit_map in group.unit_maps.items():
        module = modules.get(name)
        layer = graph.layers.get(name)
        if layer is not None and layer.kind == "parameter":  # used directly in forward: cut along its units
            edits.append(("param", name, layer.unit_dim, np.flatnonzero(~drop[np.asarray(unit_map)])))
            continue
        if module is None:
            raise SurgeryError(
                f"layer {name!r} of group {group.name!r} is not a module of {type(model).__name__}; "
                "rebuild the graph from this model."
            )
        if adapter_for(module) is None and not module_has_parameters(module):
            continue  # nothing of its own to cut
        adapter = _adapter(name, module, "layer")
        check_out_count(name, module, len(unit_map), adapter)
        edits.append(("out", name, module, np.flatnonzero(~drop[np.asarray(unit_map)])))
    for consumer in group.consumers:
        module = modules.get(consumer.layer)
        if module is None:
            raise SurgeryError(
                f"consumer {consumer.layer!r} of group {group.name!r} is not a module of "
                f"{type(model).__name__}; rebuild the graph from this model."
            )
        index = np.asarray(consumer.index)
        present = in_index.get(consumer.layer, np.arange(len(index)))
        count = _adapter(consumer.layer, module, "consumer").in_count(module)
        if count != len(present):
            raise SurgeryError(
                f"consumer {consumer.layer!r} has {count} inputs, but the graph expects {len(present)}; "
                "the graph was built from another model."
            )
        units = index[present]
        lost = (units >= 0) & drop[np.where(units >= 0, units, 0)]
        if lost.any():
            edits.append(("in", consumer.layer, module, np.flatnonzero(~lost)))
    for side, name, module, keep in edits:
        if side == "param":
            owner, _, attr = name.rpartition(".")
            set_param(model.get_submodule(owner), attr, module, keep)
            continue
        adapter = adapter_for(module)
        if side == "out":
            adapter.slice_out(module, keep)
            if adapter.weight(module) is not None:
                out_index[name] = out_index.get(name, np.arange(len(group.unit_maps[name])))[keep]
        else:
            adapter.slice_in(module, keep)
            in_index[name] = in_index.get(name, np.arange(_index_len(group, name)))[keep]


def _index_len(group: Any, layer: str) -> int:
    return next(len(c.index) for c in group.consumers if c.layer == layer)


def unsliceable_reason(model: nn.Module, group: Any) -> str | None:
    """Why :func:`slice_group` cannot edit ``group`` of ``model`` (None when it can; the graph already leaves
    such groups unprunable, :func:`workbench.graph.cutting.cut_problem`, and this checks ``model`` again)."""
    return cut_problem(model, group)


_PER_GRAPH: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _per_graph(graph: Any, key: str, compute: Callable[[Any], Any]) -> Any:
    """``compute(graph)``, computed on the first call for ``graph`` and reused while the graph lives."""
    cached = _PER_GRAPH.setdefault(graph, {})
    if key not in cached:
        cached[key] = compute(graph)
    return cached[key]


def slicing_problems(graph: Any) -> dict[str, str | None]:
    """Prunable group name -> None when :func:`slice_group` can edit it, else why not (once per graph).

    Read it, do not modify it: the dict is shared by every call for ``graph``.
    """

    def compute(g: Any) -> dict[str, str | None]:
        modules, parameters = dict(g.model.named_modules()), dict(g.model.named_parameters())
        return {group.name: cut_problem(g.model, group, modules, parameters) for group in g.prunable_groups()}

    return _per_graph(graph, "problems", compute)


def group_order(graph: Any) -> dict[str, int]:
    """Prunable group name -> position of its named layer in the traced forward pass (once per graph)."""

    def compute(g: Any) -> dict[str, int]:
        position = {name: i for i, name in enumerate(g.layers)}
        return {group.name: position.get(group.name, len(position)) for group in g.prunable_groups()}

    return _per_graph(graph, "order", compute)


def graph_producers(model: nn.Module, group: Any) -> list[tuple[nn.Module, np.ndarray]]:
    """(module, channel of each unit) for the group's layers that carry every unit, in network order
    (the input of :func:`workbench.surgery.fusion.fold_incoming`)."""
    modules = dict(model.named_modules())
    found = []
    for name in group.layers:
        if name not in modules:
            continue  # a parameter used directly in forward
        unit_map = np.asarray(group.unit_maps[name])
        if len(unit_map) == group.n_units and np.array_equal(np.sort(unit_map), np.arange(group.n_units)):
            found.append((modules[name], np.argsort(unit_map)))
    return found


def graph_consumers(
    model: nn.Module, group: Any, in_index: dict[str, np.ndarray] | None = None
) -> list[tuple[nn.Module, dict[int, list[int]]]]:
    """(consumer, {unit: present input indices}) for the dense consumers (Linear, ungrouped convolutions) of
    ``group`` (the readers of :func:`workbench.surgery.fusion.merge_columns` and ``refit_consumers``)."""
    in_index = in_index or {}
    modules = dict(model.named_modules())
    found = []
    for consumer in group.consumers:
        module = modules[consumer.layer]
        adapter = adapter_for(module)
        if adapter is None or adapter.groups(module) != 1 or adapter.weight(module) is None:
            continue
        index = np.asarray(consumer.index)
        units = index[in_index.get(consumer.layer, np.arange(len(index)))]
        columns: dict[int, list[int]] = {}
        for position in np.flatnonzero(units >= 0):
            columns.setdefault(int(units[position]), []).append(int(position))
        found.append((module, columns))
    return found
