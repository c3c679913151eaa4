"""Rebuild a network physically smaller from a :class:`~workbench.surgery.Plan`.

The coupled edits (the producing layers' outputs, their BatchNorm and PReLU, residual partners, depthwise
convolutions and the matching inputs of every consumer) are made by torch-pruning's ``DependencyGraph``.
Groups whose coupling torch-pruning sees differently from the NetworkGraph (zero-padding concatenations,
max-unpooling indices: ENet's trunk) are sliced from the graph's exact unit maps instead
(:mod:`workbench.surgery.slicing`; :func:`rebuild_methods` says which way each group goes); all fusion
modes work for both, the graph supplying the consumers' columns and the producers' incoming weights.
This module decides what happens to the information of the dropped units first (``fuse``):

- ``"drop"``: the units are deleted.
- ``"merge"``: neuron merging (Kim et al. 2020): each dropped unit's outgoing weights are added to those
  of the kept unit it is assigned to, scaled by the ratio of their (BatchNorm-folded) incoming-weight
  norms. Exact when the dropped unit's incoming weights and bias are a positive multiple of the kept
  unit's and the nonlinearity is positively homogeneous (ReLU, PReLU with equal slopes).
- ``"lsq"``: Diversity Networks reweighting (Mariet & Sra 2016): each consumer's weights on the kept units
  (and its bias) are re-fitted by ridge least squares so that, on a data sample, it reproduces the
  original network's consumer output from the rebuilt network's kept inputs.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.errors import ConfigError, SurgeryError, closest
from workbench.edits import record_edit
from workbench.sparse.masks import lift_masks, mask_zeros
from workbench.surgery.fusion import FusionContext, fold_incoming, lsq_refit, merge_columns, merge_units, refit_consumers
from workbench.surgery.plan import Plan
from workbench.surgery.slicing import graph_consumers, graph_producers, slice_group

FUSE_MODES = ("drop", "merge", "lsq")


def _forward_order(model: nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """Module name -> position of its first call in a forward pass."""
    order: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        def hook(mod: nn.Module, inputs: Any, output: Any, name: str = name) -> None:
            order.setdefault(name, len(order))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
    return order


def _out_units(module: nn.Module) -> int:
    weight = module.weight
    transposed = isinstance(module, nn.modules.conv._ConvNd) and module.transposed
    return int(weight.shape[1] * module.groups if transposed else weight.shape[0])


def _in_units(module: nn.Module) -> int:
    return int(module.in_features if isinstance(module, nn.Linear) else module.in_channels)


def _track_outputs(dg, group, names: dict[nn.Module, str], out_index: dict[str, np.ndarray],
                   in_index: dict[str, np.ndarray] | None = None) -> None:
    """Record which original output units (and input columns, in ``in_index``) of each Linear / ungrouped
    convolution remain after torch-pruning removes ``group``."""
    for item in group:
        module = item.dep.target.module
        if not isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) or module not in names:
            continue
        if dg.is_out_channel_pruning_fn(item.dep.handler):
            index, size = out_index, _out_units(module)
        elif in_index is not None and dg.is_in_channel_pruning_fn(item.dep.handler) and getattr(module, "groups", 1) == 1:
            index, size = in_index, _in_units(module)
        else:
            continue
        name = names[module]
        current = index.get(name, np.arange(size))
        idxs = np.asarray(item.idxs, dtype=int)
        if idxs.size and idxs.max() < len(current):
            index[name] = np.delete(current, idxs)


def dependency_graph(model: nn.Module, example_input: torch.Tensor):
    """torch-pruning's DependencyGraph of ``model``; SurgeryError naming the problem if it cannot be built."""
    import torch_pruning as tp

    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(model, example_inputs=example_input, verbose=False)
    except Exception as exc:  # torch-pruning raises bare errors from deep inside
        raise SurgeryError(
            f"torch-pruning could not build the dependency graph of {type(model).__name__}: "
            f"{type(exc).__name__}: {exc}. Check that the example input fits the model and that custom "
            "layers are built from standard torch.nn modules."
        ) from exc


def _unsupported_reason(dg, model: nn.Module, group: Any) -> str | None:
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
    missed = [n for n in group.layers if isinstance(modules.get(n), (nn.Linear, nn.modules.conv._ConvNd)) and n not in seen]
    if missed:
        return f"torch-pruning does not see the coupling of {missed[0]!r} (e.g. through max-unpooling indices)"
    return None


def rebuild_methods(model: nn.Module, graph: Any = None, example_input: torch.Tensor | None = None) -> dict[str, str]:
    """Prunable group name -> how :func:`apply` rebuilds it.

    ``"torch-pruning"`` (its DependencyGraph couples the group as the graph does), ``"graph slicing: <why
    torch-pruning cannot>"`` (modules sliced from the graph's unit maps, :mod:`workbench.surgery.slicing`)
    or ``"unsupported: <why>"`` when neither can.
    """
    from workbench.surgery.slicing import unsliceable_reason

    if example_input is None:
        from workbench.zoo import example_input as make_input

        example_input = make_input(model, 2)
    if graph is None:
        from workbench.graph import from_model

        graph = from_model(model, example_input)
    probe = copy.deepcopy(model).eval()  # same module names as the user's model
    dg = dependency_graph(probe, example_input)
    methods = {}
    for group in graph.prunable_groups():
        reason = _unsupported_reason(dg, probe, group)
        if reason is None:
            methods[group.name] = "torch-pruning"
        else:
            problem = unsliceable_reason(probe, group)
            methods[group.name] = f"graph slicing: {reason}" if problem is None else f"unsupported: {reason}; {problem}"
    return methods


def supported_groups(model: nn.Module, graph: Any = None, example_input: torch.Tensor | None = None) -> dict[str, str | None]:
    """Prunable group name -> None if :func:`apply` can rebuild it (by torch-pruning or graph slicing),
    else the reason it cannot (see :func:`rebuild_methods` for which way each group is rebuilt)."""
    return {name: (method.split(": ", 1)[1] if method.startswith("unsupported") else None)
            for name, method in rebuild_methods(model, graph, example_input).items()}


def _check_plan(model: nn.Module, plan: Plan, dg, graph: Any) -> tuple[dict[str, nn.Module], set[str]]:
    """The root module of every plan group, and the groups to rebuild by graph slicing."""
    from workbench.surgery.slicing import unsliceable_reason

    modules = dict(model.named_modules())
    groups = {group.name: group for group in graph.prunable_groups()}
    roots, sliced = {}, set()
    for name, selection in plan.items():
        if name not in groups:
            where = "a prunable group" if name in modules else f"a layer of {type(model).__name__}"
            raise SurgeryError(
                f"plan group {name!r} is not {where}.{closest(name, groups)} Prunable groups: "
                f"{', '.join(groups) or 'none'}. Build plans from this model's NetworkGraph (surgery.plan_from)."
            )
        group = groups[name]
        if selection.n_units != group.n_units:
            raise SurgeryError(
                f"plan group {name!r} selects among {selection.n_units} units, but the group has {group.n_units}; "
                "the plan was made for another model or another width."
            )
        keep = np.asarray(selection.keep)
        if keep.size == 0:
            raise SurgeryError(f"plan group {name!r} keeps no unit; keep at least one.")
        dropped_fixed = np.flatnonzero(np.asarray(group.fixed) & ~np.isin(np.arange(group.n_units), keep))
        if dropped_fixed.size:
            raise SurgeryError(
                f"plan group {name!r} drops unit {int(dropped_fixed[0])}, which must stay "
                f"({'; '.join(group.reasons) or 'fixed by the graph'}); keep the group's fixed units."
            )
        reason = _unsupported_reason(dg, model, group)
        if reason is not None:
            problem = unsliceable_reason(model, group)
            if problem is not None:
                raise SurgeryError(f"group {name!r} cannot be rebuilt: {reason}, and {problem}. Leave it out of "
                                   "the plan (surgery.supported_groups lists the groups that can be).")
            sliced.add(name)
        roots[name] = modules[name]
    return roots, sliced


def apply(
    model: nn.Module,
    plan: Plan,
    fuse: str = "drop",
    *,
    example_input: torch.Tensor | None = None,
    graph: Any = None,
    data: Any = None,
    max_samples: int = 1024,
    max_positions: int = 64,
    ridge: float = 1e-6,
    random_state: int = 0,
) -> nn.Module:
    """Return a physically smaller copy of ``model`` that keeps the units ``plan`` selects.

    Parameters
    ----------
    model
        The network; it is not modified.
    plan
        One Selection per prunable group, keyed by the group's root layer name.
    fuse
        ``"drop"``, ``"merge"`` or ``"lsq"`` (see the module docstring).
    example_input
        An input batch for tracing; default ``workbench.zoo.example_input(model)``.
    graph
        The model's NetworkGraph (built from ``example_input`` when not given); plan groups are its groups.
    data
        For ``fuse="lsq"``: the inputs to fit on (a tensor, a Dataset or a DataLoader).
    max_samples, max_positions
        Caps for ``lsq``: inputs used, and spatial positions per input for convolutional consumers.
    ridge
        Relative ridge of the ``lsq`` solve (times the mean diagonal of the Gram matrix).
    random_state
        Seed of the ``lsq`` position subsampling.

    Returns
    -------
    nn.Module
        The rebuilt model, in eval mode, with the plan appended to its edit history (``workbench.edits``)
        when the model came from the zoo, so a checkpoint of it can be rebuilt. Layers that were pruned
        (masked) stay masked at the zeros they keep.
    """
    if fuse not in FUSE_MODES:
        raise ConfigError(f"unknown fuse mode {fuse!r}; use one of {', '.join(FUSE_MODES)}.")
    if fuse == "lsq" and data is None:
        raise ConfigError("fuse='lsq' re-fits the consumers on data: pass data= (inputs, a Dataset or a DataLoader).")
    if example_input is None:
        from workbench.zoo import example_input as make_input

        example_input = make_input(model, 2)
    reference = model
    was_training = model.training
    pruned = copy.deepcopy(model).eval()
    masked = lift_masks(pruned)
    _check_plain(pruned)
    try:
        with torch.no_grad():
            reference_output = reference.eval()(example_input)
    except Exception as exc:
        raise SurgeryError(f"the model does not run on the example input of shape {tuple(example_input.shape)}: {exc}") from exc
    finally:
        reference.train(was_training)
    if graph is None:
        from workbench.graph import from_model

        graph = from_model(model, example_input)
    dg = dependency_graph(pruned, example_input)
    roots, sliced = _check_plan(pruned, plan, dg, graph)
    order = _forward_order(pruned, example_input)
    names = {module: name for name, module in pruned.named_modules()}
    out_index: dict[str, np.ndarray] = {}  # layer -> original indices of its present outputs (for lsq)
    in_index: dict[str, np.ndarray] = {}  # consumer -> original indices of its present input columns
    context = FusionContext(reference=reference, pruned=pruned, data=data, max_samples=max_samples,
                            max_positions=max_positions, ridge=ridge, random_state=random_state) if fuse == "lsq" else None
    for name in sorted(roots, key=lambda n: order.get(n, len(order))):
        selection = plan[name]
        dropped = sorted(set(range(selection.n_units)) - {int(i) for i in selection.keep})
        if not dropped:
            continue
        if name in sliced:
            group = graph.group(name)
            with torch.no_grad():
                if fuse == "merge":
                    merge_columns(graph_consumers(pruned, group, in_index),
                                  fold_incoming(graph_producers(pruned, group), group.n_units, per_block=True), selection)
                elif fuse == "lsq":
                    refit_consumers(graph_consumers(pruned, group, in_index), selection, context, out_index)
            slice_group(pruned, graph, group, dropped, in_index=in_index, out_index=out_index)
            continue
        root = roots[name]
        pruner = dg.get_pruner_of_module(root)
        full = dg.get_pruning_group(root, pruner.prune_out_channels, list(range(selection.n_units)))
        with torch.no_grad():
            if fuse == "merge":
                merge_units(dg, full, selection)
            elif fuse == "lsq":
                lsq_refit(dg, full, selection, context, out_index)
        group = dg.get_pruning_group(root, pruner.prune_out_channels, dropped)
        _track_outputs(dg, group, names, out_index, in_index)
        try:
            group.prune()
        except Exception as exc:
            raise SurgeryError(f"torch-pruning failed to remove units of group {name!r}: {type(exc).__name__}: {exc}") from exc
    try:
        with torch.no_grad():
            output = pruned(example_input)
    except Exception as exc:
        raise SurgeryError(f"the rebuilt model no longer runs: {type(exc).__name__}: {exc}") from exc
    if tuple(output.shape) != tuple(reference_output.shape):
        raise SurgeryError(
            f"the plan changes the network's output shape from {tuple(reference_output.shape)} to "
            f"{tuple(output.shape)}: a group feeds the output directly; leave the output layer out of the plan."
        )
    mask_zeros(pruned, masked)  # pruned weights of kept units stay pruned
    return record_edit(pruned, "plan", fuse=fuse, plan=plan.to_dict())


def _check_plain(model: nn.Module) -> None:
    """SurgeryError naming the first layer whose weights are parametrized (quantized, shared, hashed)."""
    from torch.nn.utils import parametrize

    for name, module in model.named_modules():
        if parametrize.is_parametrized(module):
            kinds = ", ".join(type(p).__name__ for chain in module.parametrizations.values() for p in chain)
            raise SurgeryError(
                f"layer {name!r} has parametrized weights ({kinds}): surgery rebuilds plain layers. Rebuild the "
                "network before quantizing it, or bake the parametrization in first (workbench.sparse.bake)."
            )


def replay_plan(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Rebuild the architecture a recorded ``"plan"`` edit made (weights are loaded afterwards)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return apply(model, Plan.from_dict(edit["plan"]), fuse="drop")
