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
import torch
from torch import nn

from workbench.errors import SurgeryError

_BN = nn.modules.batchnorm._BatchNorm
_CONV = nn.modules.conv._ConvNd


def is_depthwise(module: nn.Module) -> bool:
    """Whether ``module`` is a depthwise convolution: one filter per channel (``groups == in == out > 1``), so each
    output channel carries exactly one input channel and the two are pruned together."""
    return (
        isinstance(module, _CONV) and module.groups > 1 and module.groups == module.in_channels == module.out_channels
    )


def _take(tensor: torch.Tensor, dim: int, keep: np.ndarray) -> torch.Tensor:
    return tensor.detach().index_select(dim, torch.as_tensor(keep, dtype=torch.long, device=tensor.device)).clone()


def _set_param(module: nn.Module, name: str, dim: int, keep: np.ndarray) -> None:
    old = getattr(module, name, None)
    if old is None:
        return
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(_take(old, dim, keep), requires_grad=old.requires_grad))
    else:  # a buffer
        setattr(module, name, _take(old, dim, keep))


def _out_count(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, _CONV):
        return module.out_channels
    if isinstance(module, _BN):
        return module.num_features
    if isinstance(module, nn.PReLU):
        return module.num_parameters
    return None


def _slice_outputs(name: str, module: nn.Module, keep: np.ndarray) -> None:
    """Keep output channels ``keep`` (positions) of one module of the group."""
    k = len(keep)
    if isinstance(module, nn.Linear):
        _set_param(module, "weight", 0, keep)
        _set_param(module, "bias", 0, keep)
        module.out_features = k
    elif isinstance(module, _CONV):
        if is_depthwise(module):  # one filter per channel: inputs and outputs go together
            _set_param(module, "weight", 0, keep)
            module.in_channels = module.groups = k
        elif module.groups != 1:
            raise SurgeryError(
                f"layer {name!r} is a grouped convolution ({module.groups} groups, not depthwise); "
                "slicing its outputs would break its groups. Leave its group out of the plan."
            )
        else:
            _set_param(module, "weight", 1 if module.transposed else 0, keep)
        _set_param(module, "bias", 0, keep)
        module.out_channels = k
    elif isinstance(module, _BN):
        for attr in ("weight", "bias", "running_mean", "running_var"):
            _set_param(module, attr, 0, keep)
        module.num_features = k
    elif isinstance(module, nn.PReLU):
        if module.num_parameters != 1:  # a single shared slope stays as it is
            _set_param(module, "weight", 0, keep)
            module.num_parameters = k
    elif any(True for _ in module.parameters(recurse=False)):
        raise SurgeryError(
            f"layer {name!r} ({type(module).__name__}) has per-unit parameters that graph slicing "
            "cannot remove; leave its group out of the plan."
        )


def _slice_inputs(name: str, module: nn.Module, keep: np.ndarray) -> None:
    """Keep input columns / channels ``keep`` (positions) of a consumer."""
    if isinstance(module, nn.Linear):
        _set_param(module, "weight", 1, keep)
        module.in_features = len(keep)
    elif isinstance(module, _CONV) and module.groups == 1:
        _set_param(module, "weight", 0 if module.transposed else 1, keep)
        module.in_channels = len(keep)
    else:
        raise SurgeryError(
            f"consumer {name!r} ({type(module).__name__}) reads the group's units in a way graph "
            "slicing cannot edit (only Linear and ungrouped convolutions); leave its group out of the plan."
        )


def _in_count(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, _CONV):
        return module.in_channels
    return None


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
        if module is None:
            raise SurgeryError(
                f"layer {name!r} of group {group.name!r} is not a module of {type(model).__name__}; "
                "rebuild the graph from this model."
            )
        count = _out_count(module)
        if count is not None and count != len(unit_map):
            raise SurgeryError(
                f"layer {name!r} has {count} output units, but the graph expects {len(unit_map)}; "
                "the graph was built from another model or the layer was already pruned."
            )
        edits.append(("out", name, module, np.flatnonzero(~drop[np.asarray(unit_map)])))
    for consumer in group.consumers:
        module = modules.get(consumer.layer)
        if module is None:
            raise SurgeryError(
                f"consumer {consumer.layer!r} of group {group.name!r} is not a module of "
                f"{type(model).__name__}; rebuild the graph from this model."
            )
        if consumer.layer in group.unit_maps and is_depthwise(module):
            continue  # sliced with its outputs
        index = np.asarray(consumer.index)
        present = in_index.get(consumer.layer, np.arange(len(index)))
        count = _in_count(module)
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
        if side == "out":
            _slice_outputs(name, module, keep)
            if isinstance(module, (nn.Linear, _CONV)):
                out_index[name] = out_index.get(name, np.arange(len(group.unit_maps[name])))[keep]
        else:
            _slice_inputs(name, module, keep)
            in_index[name] = in_index.get(name, np.arange(_index_len(group, name)))[keep]


def _index_len(group: Any, layer: str) -> int:
    return next(len(c.index) for c in group.consumers if c.layer == layer)


def unsliceable_reason(model: nn.Module, group: Any) -> str | None:
    """Why :func:`slice_group` cannot edit ``group`` of ``model`` (None when it can)."""
    modules = dict(model.named_modules())
    for name in group.unit_maps:
        module = modules.get(name)
        if module is None:
            return f"its layer {name!r} is not a module of the model"
        if isinstance(module, _CONV) and module.groups != 1 and not is_depthwise(module):
            return f"its layer {name!r} is a grouped convolution"
        known = isinstance(module, (nn.Linear, _CONV, _BN, nn.PReLU))
        if not known and any(True for _ in module.parameters(recurse=False)):
            return f"its layer {name!r} ({type(module).__name__}) has parameters graph slicing cannot cut"
    for consumer in group.consumers:
        module = modules.get(consumer.layer)
        if consumer.layer in group.unit_maps and is_depthwise(module):
            continue
        if not (isinstance(module, nn.Linear) or (isinstance(module, _CONV) and module.groups == 1)):
            return f"its consumer {consumer.layer!r} is not a Linear or ungrouped convolution"
    return None


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
    return _per_graph(
        graph, "problems", lambda g: {group.name: unsliceable_reason(g.model, group) for group in g.prunable_groups()}
    )


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
        unit_map = np.asarray(group.unit_maps[name])
        if len(unit_map) == group.n_units and np.array_equal(np.sort(unit_map), np.arange(group.n_units)):
            found.append((modules[name], np.argsort(unit_map)))
    return found


def graph_consumers(
    model: nn.Module, group: Any, in_index: dict[str, np.ndarray] | None = None
) -> list[tuple[nn.Module, dict[int, list[int]]]]:
    """(consumer, {unit: present input indices}) for the Linear / ungrouped convolution consumers of
    ``group`` (the readers of :func:`workbench.surgery.fusion.merge_columns` and ``refit_consumers``)."""
    in_index = in_index or {}
    modules = dict(model.named_modules())
    found = []
    for consumer in group.consumers:
        module = modules[consumer.layer]
        if not (isinstance(module, nn.Linear) or (isinstance(module, _CONV) and module.groups == 1)):
            continue
        index = np.asarray(consumer.index)
        units = index[in_index.get(consumer.layer, np.arange(len(index)))]
        columns: dict[int, list[int]] = {}
        for position in np.flatnonzero(units >= 0):
            columns.setdefault(int(units[position]), []).append(int(position))
        found.append((module, columns))
    return found
