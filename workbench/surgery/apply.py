"""Rebuild a network physically smaller from a :class:`~workbench.surgery.Plan`.

The coupled edits (the producing layers' outputs, their BatchNorm and PReLU, residual partners, depthwise
convolutions, zero-padded and unpooled channels, and the matching inputs of every consumer) are sliced
from the NetworkGraph's exact unit maps (:mod:`workbench.surgery.slicing`; :func:`supported_groups` says
which groups can be and why not the others). This module decides what happens to the information of the
dropped units first (``fuse``):

- ``"drop"``: the units are deleted.
- ``"merge"``: neuron merging (Kim et al. 2020): each dropped unit's outgoing weights are added to those
  of the kept unit it is assigned to, scaled by the ratio of their (BatchNorm-folded) incoming-weight
  norms. Exact when the dropped unit's incoming weights and bias are a positive multiple of the kept
  unit's and the nonlinearity is positively homogeneous (ReLU, PReLU with equal slopes).
- ``"lsq"``: Diversity Networks reweighting (Mariet & Sra 2016): each consumer's weights on the kept units
  (and its bias) are re-fitted by ridge least squares so that, on a data sample, it reproduces the
  original network's consumer output from the rebuilt network's kept inputs.
- ``"summarize"``, ``"summarize-medoid"``, ``"summarize-lsq"``: graph summarization
  (:mod:`workbench.surgery.summarize`): each part of a partition selector's ``assign`` becomes one unit.
- ``"fold"``: Model Folding (Wang et al. 2025, :mod:`workbench.surgery.folding`): the units are clustered by
  k-means on their (BatchNorm-folded) incoming weights, k = the selection's kept count, the best of a start
  from the selection's kept units and seeded k-means++ starts; each cluster becomes its mean unit and its
  readers' columns are summed. Exact for clusters of
  identical units. ``repair="data-free"`` then corrects the merged units' variances from the weights alone.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.edits import edit_fields, record_edit
from workbench.errors import ConfigError, SurgeryError, closest
from workbench.metrics.forward import evaluation_mode
from workbench.selection import constraint_violation
from workbench.sparse.masks import lift_masks, mask_zeros
from workbench.surgery.folding import fold_plan
from workbench.surgery.fusion import FusionContext, fold_incoming, merge_columns, most_similar, refit_consumers
from workbench.surgery.plan import Plan
from workbench.surgery.repair import repair as repair_statistics
from workbench.surgery.slicing import graph_consumers, graph_producers, group_order, slice_group, slicing_problems
from workbench.surgery.summarize import SUMMARIZE_MODES, check_partitions, medoid_plan, summarize_group
from workbench.utils import example_batch

FUSE_MODES = ("drop", "merge", "neuron-merging", "lsq", *SUMMARIZE_MODES, "fold")
REPAIRS = ("batches", "data-free")
_ON_DATA = ("lsq", "summarize-lsq")  # fuse modes that fit on data
edit_fields("plan", fuse=FUSE_MODES)  # a recorded or loaded plan edit names one of them


def _graph_of(model: nn.Module, graph: Any, example_input: torch.Tensor | None) -> Any:
    """``graph``, or the NetworkGraph of ``model`` traced on ``example_input`` (default: a batch of the model's
    ``input_shape``)."""
    if graph is not None:
        return graph
    from workbench.graph import from_model

    return from_model(model, example_batch(model, 2) if example_input is None else example_input)


def supported_groups(
    model: nn.Module, graph: Any = None, example_input: torch.Tensor | None = None
) -> dict[str, str | None]:
    """Prunable group name -> None if :func:`apply` can rebuild it, else the reason it cannot.

    Computed once per NetworkGraph (pass ``graph`` to reuse it); without ``graph`` one is traced from
    ``model`` on ``example_input``.
    """
    return dict(slicing_problems(_graph_of(model, graph, example_input)))


def rebuild_methods(model: nn.Module, graph: Any = None, example_input: torch.Tensor | None = None) -> dict[str, str]:
    """Prunable group name -> how :func:`apply` rebuilds it: ``"graph slicing"`` (modules sliced from the
    graph's unit maps, :mod:`workbench.surgery.slicing`) or ``"unsupported: <why>"``."""
    return {
        name: "graph slicing" if problem is None else f"unsupported: {problem}"
        for name, problem in supported_groups(model, graph, example_input).items()
    }


def _check_plan(model: nn.Module, plan: Plan, graph: Any) -> None:
    """SurgeryError naming the first plan group that does not fit ``graph`` or cannot be rebuilt."""
    modules = dict(model.named_modules())
    groups = {group.name: group for group in graph.prunable_groups()}
    problems = slicing_problems(graph)
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
        violation = constraint_violation(keep, group.n_units, group.blocks, group.cover())
        if violation is not None:
            raise SurgeryError(
                f"plan group {name!r} cannot be rebuilt as selected: {violation}. Make the plan with "
                "surgery.plan_from (it balances selections), or adjust the selection."
            )
        if problems[name] is not None:
            raise SurgeryError(
                f"group {name!r} cannot be rebuilt: {problems[name]}. Leave it out of the plan "
                "(surgery.supported_groups lists the groups that can be)."
            )


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
    merge_threshold: float = 0.0,
    repair: str | None = None,
) -> nn.Module:
    """Return a physically smaller copy of ``model`` that keeps the units ``plan`` selects.

    Parameters
    ----------
    model
        The network; it is not modified (its weights, statistics and train / eval modes are as they were).
    plan
        One Selection per prunable group, keyed by the group's root layer name.
    fuse
        ``"drop"``, ``"merge"``, ``"neuron-merging"``, ``"lsq"``, ``"summarize"``, ``"summarize-medoid"``,
        ``"summarize-lsq"`` or ``"fold"`` (see the module docstring). With ``"fold"`` the plan's kept units set the
        k of the k-means and are one of its starts; the recorded plan keeps each cluster's representative.
    example_input
        An input batch for tracing and checking the rebuilt model; default the batch ``graph`` was traced on,
        else a random batch of the model's ``input_shape``.
    graph
        The model's NetworkGraph (built from ``example_input`` when not given); plan groups are its groups.
    data
        For ``fuse="lsq"`` and ``"summarize-lsq"``, and ``repair="batches"``: the inputs to fit or measure on (a
        tensor, a Dataset or a DataLoader).
    max_samples, max_positions
        Caps for ``lsq`` and repair: inputs used, and spatial positions per input for convolutional consumers.
    ridge
        Relative ridge of the ``lsq`` solve (times the mean diagonal of the Gram matrix).
    random_state
        Seed of the ``lsq`` position subsampling and of the k-means++ starts of ``"fold"``.
    merge_threshold
        For ``"neuron-merging"``: the least cosine similarity at which a dropped unit is merged into its most
        similar kept unit (below it, it is only pruned).
    repair
        ``"batches"``: REPAIR (Jordan et al. 2023) after the fusion, every kept unit rescaled to the mean and
        standard deviation it had in ``model`` on ``data`` (:mod:`workbench.surgery.repair`); ``"data-free"``
        (with ``fuse="fold"``): Model Folding's data-free repair, each merged unit's BatchNorm variance (or,
        without BatchNorm, its weight scale) corrected from the weights alone
        (:func:`workbench.surgery.repair.data_free_repair`); None: no repair.

    Returns
    -------
    nn.Module
        The rebuilt model, in eval mode, with the plan appended to its edit history (``workbench.edits``), so a
        checkpoint of it can be rebuilt. Layers that were pruned (masked) stay masked at the zeros they keep.
    """
    if fuse not in FUSE_MODES:
        raise ConfigError(f"unknown fuse mode {fuse!r}; use one of {', '.join(FUSE_MODES)}.")
    if repair is not None and repair not in REPAIRS:
        raise ConfigError(f"unknown repair {repair!r}; use one of {', '.join(REPAIRS)}, or None.")
    if repair == "data-free" and fuse != "fold":
        raise ConfigError(
            f"repair='data-free' corrects the clusters that fuse='fold' averages, but fuse={fuse!r}; use "
            "fuse='fold', or repair='batches' (REPAIR on data) with other fuse modes."
        )
    if (fuse in _ON_DATA or repair == "batches") and data is None:
        what = f"fuse={fuse!r} re-fits the consumers" if fuse in _ON_DATA else "repair='batches' measures the units"
        raise ConfigError(f"{what} on data: pass data= (inputs, a Dataset or a DataLoader).")
    if isinstance(merge_threshold, bool) or not isinstance(merge_threshold, (int, float, np.floating, np.integer)):
        raise ConfigError(f"merge_threshold must be a number in [-1, 1], got {merge_threshold!r}.")
    if not -1.0 <= float(merge_threshold) <= 1.0:
        raise ConfigError(f"merge_threshold={merge_threshold!r} is a cosine similarity: give a number in [-1, 1].")
    if example_input is None:
        example_input = graph.example_input if graph is not None and graph.example_input is not None else None
    if example_input is None:
        example_input = example_batch(model, 2)
    settings = _Settings(fuse, data, max_samples, max_positions, ridge, random_state, float(merge_threshold), repair)
    with evaluation_mode(model):  # targets without dropout or batch statistics, no running statistics updated
        return _rebuild(model, plan, example_input, graph, settings)


#: Fusion modes that compare or average units by their incoming weights (each unit's own channel in every producer).
_BY_INCOMING = ("merge", "neuron-merging", "fold", *SUMMARIZE_MODES)


def _check_incoming(model: nn.Module, plan: Plan, graph: Any, fuse: str) -> None:
    """A SurgeryError for a group that loses units but whose units have no incoming weights of their own: each spans
    several channels (GroupNorm groups) or no layer with a weight per unit feeds it, so ``fuse`` has nothing to compare
    or average (it would drop the units and still add their columns into the kept ones)."""
    for name, selection in plan.items():
        if selection.k < selection.n_units and not graph_producers(model, graph.group(name)):
            raise SurgeryError(
                f"fuse={fuse!r} compares and averages units by their incoming weights, but the units of group "
                f"{name!r} have none of their own (each spans several channels, as GroupNorm groups do, or no layer "
                "with one weight row per unit produces them); use fuse='drop' or 'lsq', or leave the group out of "
                "the plan."
            )


@dataclass(frozen=True)
class _Settings:
    """How :func:`apply` rebuilds (its keyword arguments)."""

    fuse: str
    data: Any
    max_samples: int
    max_positions: int
    ridge: float
    random_state: int
    merge_threshold: float
    repair: str | None


def _rebuild(
    reference: nn.Module, plan: Plan, example_input: torch.Tensor, graph: Any, settings: _Settings
) -> nn.Module:
    """:func:`apply` on ``reference``, which is in eval mode (its caller restores its mode)."""
    fuse = settings.fuse
    pruned = copy.deepcopy(reference).eval()
    masked = lift_masks(pruned)
    _check_plain(pruned)
    try:
        with torch.no_grad():
            reference_output = reference(example_input)
    except Exception as exc:
        raise SurgeryError(
            f"the model does not run on the example input of shape {tuple(example_input.shape)}: {exc}"
        ) from exc
    graph = _graph_of(reference, graph, example_input)
    _check_plan(pruned, plan, graph)
    if fuse in _BY_INCOMING:
        _check_incoming(pruned, plan, graph, fuse)
    if fuse in SUMMARIZE_MODES:
        check_partitions(plan, fuse)
        if SUMMARIZE_MODES[fuse] == "medoid":
            plan = medoid_plan(pruned, plan, graph)
    elif fuse == "fold":
        plan = fold_plan(pruned, plan, graph, settings.random_state)
    order = group_order(graph)
    out_index: dict[str, np.ndarray] = {}  # layer -> original indices of its present outputs (for lsq)
    in_index: dict[str, np.ndarray] = {}  # consumer -> original indices of its present input columns
    context = (
        FusionContext(
            reference=reference,
            pruned=pruned,
            data=settings.data,
            max_samples=settings.max_samples,
            max_positions=settings.max_positions,
            ridge=settings.ridge,
            random_state=settings.random_state,
            masked=frozenset(masked),
        )
        if fuse in _ON_DATA
        else None
    )
    modules = dict(pruned.named_modules())
    for name in sorted(plan, key=order.__getitem__):
        selection, group = plan[name], graph.group(name)
        dropped = sorted(set(range(selection.n_units)) - {int(i) for i in selection.keep})
        if not dropped:
            continue
        with torch.no_grad():
            watched = {c.layer for c in group.consumers} | (set(group.layers) if fuse == "fold" else set())
            pruned_zeros = {name: modules[name].weight == 0 for name in watched if name in masked}
            if fuse in ("merge", "neuron-merging"):
                incoming = fold_incoming(graph_producers(pruned, group), group.n_units, per_block=True)
                targets = (
                    most_similar(incoming, selection, settings.merge_threshold) if fuse == "neuron-merging" else None
                )
                merge_columns(graph_consumers(pruned, group, in_index), incoming, selection, targets)
            elif fuse == "lsq":
                refit_consumers(graph_consumers(pruned, group, in_index), selection, context, out_index)
            elif fuse in SUMMARIZE_MODES:
                summarize_group(pruned, group, selection, SUMMARIZE_MODES[fuse], in_index, out_index, context)
            elif fuse == "fold":
                repair = settings.repair == "data-free"
                summarize_group(pruned, group, selection, "fold", in_index, out_index, repair=repair)
            for layer, zeros in pruned_zeros.items():  # pruned weights stay pruned, whatever the fusion added
                modules[layer].weight[zeros] = 0.0
        slice_group(pruned, graph, group, dropped, in_index=in_index, out_index=out_index)
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
    if settings.repair == "batches":
        repair_statistics(reference, pruned, graph, plan, settings.data, settings.max_samples)
    mask_zeros(pruned, masked)  # pruned weights of kept units stay pruned
    batch = {"shape": list(example_input.shape[1:]), "dtype": str(example_input.dtype).removeprefix("torch.")}
    return record_edit(pruned, "plan", fuse=fuse, plan=plan.to_dict(), input=batch)


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
    """Rebuild the architecture a recorded ``"plan"`` edit made (weights are loaded afterwards), tracing the
    model on a batch of the input the edit recorded (older edits: of the model's ``input_shape``)."""
    batch = edit.get("input")
    if isinstance(batch, dict):
        dtype = getattr(torch, str(batch.get("dtype", "float32")), None)
        if not isinstance(dtype, torch.dtype):
            raise SurgeryError(f"the plan edit records an unknown input dtype {batch.get('dtype')!r}.")
        shape = batch.get("shape", [])
        if not isinstance(shape, list) or not all(type(v) is int and v >= 1 for v in shape):
            raise SurgeryError(
                f"the plan edit records the input shape {str(shape)[:100]}; a shape is a list of positive whole numbers."
            )
        _check_replay_input(model, shape, dtype)
        parameter = next(iter(model.parameters()), None)
        device = parameter.device if parameter is not None else None
        example = torch.zeros(2, *shape, dtype=dtype, device=device)
        if dtype.is_floating_point:
            example = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0)).to(dtype=dtype, device=device)
    else:
        example = example_batch(model, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return apply(model, Plan.from_dict(edit["plan"]), fuse="drop", example_input=example)


#: Bytes of a recorded input tried for real when the meta-device dry run cannot run the model (an op without a
#: meta kernel, a value read in the forward): the real run then decides, with a clean SurgeryError.
_UNCHECKED_INPUT_BYTES = 2**28


def _check_replay_input(model: nn.Module, shape: list[int], dtype: torch.dtype) -> None:
    """SurgeryError, before anything is allocated, when the architecture does not run on a batch of 2 inputs of
    ``shape`` or running it would need more memory than is available: a dry run on the meta device (shapes only)."""
    from workbench.graph.dynamic_trace import first_line
    from workbench.metrics.table import format_bytes
    from workbench.zoo.memory import available_memory  # the one reading of free memory

    example = torch.empty(2, *shape, dtype=dtype, device="meta")
    described = f"an input of shape {shape} ({str(dtype).removeprefix('torch.')})"
    meta = copy.deepcopy(model, {id(t): _on_meta(t) for t in [*model.parameters(), *model.buffers()]})
    sizes = [example.numel() * example.element_size()]

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    hooks = [m.register_forward_hook(record) for m in meta.modules() if not list(m.children())]
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta.eval()(example)
    except Exception as exc:  # noqa: BLE001 - whatever the architecture raises on that input
        if sizes[0] > _UNCHECKED_INPUT_BYTES:
            raise SurgeryError(
                f"the plan edit records {described}, which the architecture does not run on ({first_line(exc)}); "
                "the edit was changed or written for another model."
            ) from None
        return
    finally:
        for hook in hooks:
            hook.remove()
    need, have = sizes[0] + 2 * max(sizes[1:], default=0), available_memory()
    if need > have:
        raise SurgeryError(
            f"the plan edit records {described}; tracing the architecture on it needs about {format_bytes(need)}, "
            f"more than the {format_bytes(have)} available; the edit was changed or written for another model."
        )


def _on_meta(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``'s shape and dtype on the meta device (no values), a Parameter if it is one."""
    moved = tensor.detach().to("meta")
    return nn.Parameter(moved, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else moved
