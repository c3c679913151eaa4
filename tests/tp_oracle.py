"""torch-pruning as an independent oracle for graph-slicing surgery.

:func:`workbench.surgery.apply` edits models by slicing them from the NetworkGraph's unit maps. Here the
same plans are rebuilt by torch-pruning's ``DependencyGraph`` (its own tracing and coupling rules), with
the same fusion arithmetic fed from torch-pruning's groups, so the tests (and ``analyses/bench_rebuild.py``)
can check that both give the same network on every group torch-pruning can couple as the graph does.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.select import Selection
from workbench.surgery import Plan
from workbench.surgery.fusion import FusionContext, fold_incoming, merge_columns, refit_consumers
from workbench.surgery.slicing import group_order

_CONV = nn.modules.conv._ConvNd

# every zoo model at a size that rebuilds in well under a second
SIZES: dict[str, dict[str, Any]] = {
    "mlp": {"widths": [20, 32, 16, 5]},
    "lenet300": {"inputs": 64},
    "lenet5": {"input_size": 28},
    "vgg_small": {"input_size": 16},
    "resnet": {"depth": 8, "input_size": 16},
    "mobilenet_v1": {"width": 0.25, "resolution": 32, "classes": 10},
    "enet": {"input_size": 32, "classes": 3},
    "cnn1d": {},
}


def selection(group: Any, keep: Any, assign: dict[int, int] | None = None) -> Selection:
    """Keep ``keep`` of ``group``; dropped units go to ``assign[unit]`` (default: the first kept unit)."""
    keep = sorted({int(k) for k in keep})
    assign = assign or {}
    mapping = np.array([u if u in keep else assign.get(u, keep[0]) for u in range(group.n_units)])
    return Selection(
        group=group.name,
        n_units=group.n_units,
        keep=np.array(keep),
        assign=mapping,
        scores=np.zeros(group.n_units),
        method="test",
    )


def random_plan(groups: list[Any], rng: np.random.Generator) -> Plan:
    """Half of the free units of every group kept (fixed units stay)."""
    selections = {}
    for group in groups:
        free = np.flatnonzero(~np.asarray(group.fixed))
        chosen = rng.choice(free, max(1, len(free) // 2), replace=False)
        selections[group.name] = selection(group, [*np.flatnonzero(group.fixed), *chosen])
    return Plan(selections)


def randomize_bn(model: nn.Module) -> None:
    """BatchNorm statistics and affine parameters away from their defaults (so folding them matters)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)


def difference(a: nn.Module, b: nn.Module, x: torch.Tensor, same_shapes: bool = True) -> float:
    """Largest output difference relative to the largest output of ``b``; with ``same_shapes``, inf when
    the parameter shapes differ."""
    shapes_a = {k: tuple(v.shape) for k, v in a.state_dict().items()}
    shapes_b = {k: tuple(v.shape) for k, v in b.state_dict().items()}
    if same_shapes and shapes_a != shapes_b:
        return float("inf")
    with torch.no_grad():
        ya, yb = a(x), b(x)
    return float((ya - yb).abs().max()) / max(1.0, float(yb.abs().max()))


def dependency_graph(model: nn.Module, example_input: torch.Tensor):
    """torch-pruning's DependencyGraph of ``model``."""
    import torch_pruning as tp

    with torch.enable_grad():
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)


def unsupported_reason(dg, model: nn.Module, group: Any) -> str | None:
    """Why torch-pruning cannot rebuild ``group`` as the graph couples it (None when it can)."""
    modules = dict(model.named_modules())
    names = {module: name for name, module in modules.items()}
    root = modules.get(group.name)
    pruner = dg.get_pruner_of_module(root) if root is not None else None
    if root is None or root not in dg.module2node or pruner is None or pruner.get_out_channels(root) is None:
        return f"its layer {group.name!r} has no output units torch-pruning can remove"
    try:
        full = dg.get_pruning_group(root, pruner.prune_out_channels, list(range(group.n_units)))
    except Exception as exc:  # torch-pruning fails with bare errors on couplings it cannot map
        return f"torch-pruning failed to couple it ({type(exc).__name__}: {exc})"
    seen = set()
    for item in full:
        module = item.dep.target.module
        if not dg.is_out_channel_pruning_fn(item.dep.handler) or module not in names:
            continue
        name = names[module]
        unit_map = group.unit_maps.get(name)
        if unit_map is None:
            return f"torch-pruning also removes outputs of {name!r}, which the graph does not couple to it"
        idxs, roots = np.asarray(item.idxs, dtype=int), np.asarray(item.root_idxs, dtype=int)
        if idxs.size and (idxs.max() >= len(unit_map) or not np.array_equal(unit_map[idxs], roots)):
            return f"torch-pruning maps the channels of {name!r} differently from the graph"
        seen.add(name)
    missed = [n for n in group.layers if isinstance(modules.get(n), (nn.Linear, _CONV)) and n not in seen]
    if missed:
        return f"torch-pruning does not see the coupling of {missed[0]!r} (e.g. through max-unpooling indices)"
    return None


def tp_reasons(model: nn.Module, graph: Any, example_input: torch.Tensor) -> dict[str, str | None]:
    """Prunable group -> None when torch-pruning couples it as the graph does, else why not."""
    probe = copy.deepcopy(model).eval()
    dg = dependency_graph(probe, example_input)
    return {group.name: unsupported_reason(dg, probe, group) for group in graph.prunable_groups()}


def _readers(dg, group) -> list[tuple[nn.Module, dict[int, list[int]]]]:
    """(consumer, {unit: input indices}) for the Linear / ungrouped convolution inputs torch-pruning cuts."""
    found = []
    for item in group:
        module = item.dep.target.module
        if not dg.is_in_channel_pruning_fn(item.dep.handler):
            continue
        if not isinstance(module, (nn.Linear, _CONV)) or (isinstance(module, _CONV) and module.groups != 1):
            continue
        columns: dict[int, list[int]] = {}
        for idx, root in zip(item.idxs, item.root_idxs):
            columns.setdefault(int(root), []).append(int(idx))
        found.append((module, columns))
    return found


def _producers(dg, group, position: dict[nn.Module, int]) -> list[tuple[nn.Module, np.ndarray]]:
    """(module, channel of each unit) for the layers whose outputs torch-pruning cuts, in network order."""
    found = []
    for item in group:
        if dg.is_out_channel_pruning_fn(item.dep.handler):
            order = np.argsort(np.asarray(item.root_idxs))
            found.append((item.dep.target.module, np.asarray(item.idxs)[order]))
    return sorted(found, key=lambda pair: position.get(pair[0], len(position)))


def _track_outputs(dg, group, names: dict[nn.Module, str], out_index: dict[str, np.ndarray]) -> None:
    """Record which original output units of each Linear / convolution remain after ``group`` is removed."""
    for item in group:
        module = item.dep.target.module
        if not isinstance(module, (nn.Linear, _CONV)) or module not in names:
            continue
        if not dg.is_out_channel_pruning_fn(item.dep.handler):
            continue
        transposed = isinstance(module, _CONV) and module.transposed
        size = int(module.weight.shape[1] * module.groups if transposed else module.weight.shape[0])
        current = out_index.get(names[module], np.arange(size))
        idxs = np.asarray(item.idxs, dtype=int)
        if idxs.size and idxs.max() < len(current):
            out_index[names[module]] = np.delete(current, idxs)


def tp_apply(
    model: nn.Module,
    plan: Any,
    fuse: str = "drop",
    *,
    example_input: torch.Tensor,
    graph: Any,
    data: Any = None,
    max_samples: int = 1024,
    max_positions: int = 64,
    ridge: float = 1e-6,
    random_state: int = 0,
) -> nn.Module:
    """:func:`workbench.surgery.apply` done by torch-pruning (plan groups must be ones it supports).

    The groups go in ``graph``'s order, and merging folds each BatchNorm into the layer before it only
    (``per_block``), as graph slicing does, so that both compute the same fusion from their own couplings.
    """
    pruned = copy.deepcopy(model).eval()
    dg = dependency_graph(pruned, example_input)
    modules = dict(pruned.named_modules())
    names = {module: name for name, module in modules.items()}
    position = {modules[name]: i for i, name in enumerate(graph.layers) if name in modules}
    order = group_order(graph)
    out_index: dict[str, np.ndarray] = {}
    context = FusionContext(
        reference=model.eval(),
        pruned=pruned,
        data=data,
        max_samples=max_samples,
        max_positions=max_positions,
        ridge=ridge,
        random_state=random_state,
    )
    for name in sorted(plan, key=lambda n: order.get(n, len(order))):
        selection = plan[name]
        dropped = sorted(set(range(selection.n_units)) - {int(i) for i in selection.keep})
        if not dropped:
            continue
        root = modules[name]
        pruner = dg.get_pruner_of_module(root)
        full = dg.get_pruning_group(root, pruner.prune_out_channels, list(range(selection.n_units)))
        with torch.no_grad():
            if fuse == "merge":
                producers = _producers(dg, full, position)
                merge_columns(
                    _readers(dg, full), fold_incoming(producers, selection.n_units, per_block=True), selection
                )
            elif fuse == "lsq":
                refit_consumers(_readers(dg, full), selection, context, out_index)
        group = dg.get_pruning_group(root, pruner.prune_out_channels, dropped)
        _track_outputs(dg, group, names, out_index)
        group.prune()
    return pruned
