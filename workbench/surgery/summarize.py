"""Graph summarization as compression: each block of a partition of a group's units becomes one unit.

A partition selector (stochastic block model, spectral clustering, Leiden communities) leaves in its
:class:`~workbench.selection.Selection` one kept unit per part: ``assign`` sends every unit to the kept
unit of its part. Summarization turns each part into a single unit of the new, smaller layer (a quotient
of the unit graph):

- incoming weights from the block: ``"mean"`` (every per-unit parameter of the producing layers -- rows,
  bias, BatchNorm scale, shift and statistics, PReLU slope -- averaged over the block) or ``"medoid"``
  (the block's medoid, the member whose BatchNorm-folded incoming weights are closest in angle to the
  others', carries the block);
- outgoing weights: the block's consumer columns summed, each scaled by the ratio of its member's incoming
  norm to the new unit's (exact for blocks of duplicates, and for positive multiples without BatchNorm), or
  with ``"lsq"`` (mean incoming weights) re-fitted by ridge least squares on data, as ``fuse="lsq"`` does.

The fuse names are ``"summarize"`` (mean), ``"summarize-medoid"`` and ``"summarize-lsq"``. The rebuilt
network keeps one unit per part, so its recorded plan (with the medoids as kept units) replays with
``fuse="drop"`` like any other.

Model Folding (``fuse="fold"``, :mod:`workbench.surgery.folding`) is the option ``"fold"`` here: its k-means
clusters are the parts, incoming parameters are averaged as with ``"mean"``, and the readers' columns are
summed over the part without rescaling (Wang et al. 2025), optionally with the data-free repair of
:func:`workbench.surgery.repair.data_free_repair`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.adapters import adapter_for
from workbench.errors import SurgeryError
from workbench.surgery.fusion import FusionContext, fold_incoming, merge_columns, refit_consumers
from workbench.surgery.plan import Plan
from workbench.surgery.repair import data_free_repair
from workbench.surgery.slicing import graph_consumers, graph_producers

#: incoming-weight options of summarization, by fuse name
SUMMARIZE_MODES = {"summarize": "mean", "summarize-medoid": "medoid", "summarize-lsq": "lsq"}
#: selectors whose Selection partitions the units (``assign`` maps each part to its kept unit)
PARTITION_SELECTORS = ("sbm", "spectral", "leiden")
#: selectors that rank units and send the dropped ones to their nearest kept unit: no partition
RANKING_SELECTORS = ("magnitude", "random", "activation", "dpp", "submodular")


def check_partitions(plan: Plan, fuse: str) -> None:
    """SurgeryError when a selection of ``plan`` comes from a selector that gives no partition.

    Selections of the partition selectors, and hand-made ones (any other method name: their ``assign`` is
    taken as the partition), are accepted.
    """
    for name, selection in plan.items():
        if selection.method in RANKING_SELECTORS:
            raise SurgeryError(
                f"fuse={fuse!r} turns each block of a partition into one unit, but the selection of group {name!r} "
                f"was made by {selection.method!r}, which ranks units and gives no partition; select with "
                f"{', '.join(PARTITION_SELECTORS)} (blocks, clusters, communities), or use fuse='merge' or 'lsq'."
            )


def _blocks(selection: Any) -> dict[int, np.ndarray]:
    """Kept unit -> the members of its part (itself included), in unit order."""
    assign = np.asarray(selection.assign)
    return {int(k): np.flatnonzero(assign == k) for k in selection.keep}


def medoid_plan(model: nn.Module, plan: Plan, graph: Any) -> Plan:
    """``plan`` with each part's kept unit replaced by the part's medoid (the member whose folded incoming
    weights have the largest summed cosine similarity to the other members'; ties: the kept unit)."""
    selections = {}
    for name, selection in plan.items():
        group = graph.group(name)
        incoming = fold_incoming(graph_producers(model, group), group.n_units, per_block=True)
        norms = np.linalg.norm(incoming, axis=1, keepdims=True)
        unit = np.divide(incoming, norms, out=np.zeros_like(incoming), where=norms > 0)
        assign = np.asarray(selection.assign).copy()
        fixed = set(np.flatnonzero(np.asarray(group.fixed)).tolist())
        for kept, members in _blocks(selection).items():
            if kept in fixed or members.size < 3:
                continue  # a fixed unit stays; in a pair both members are medoids
            closeness = (unit[members] @ unit[members].T).sum(axis=1)
            best = int(members[np.argmax(closeness)])
            if closeness[members == best][0] > closeness[members == kept][0] + 1e-12:
                assign[members] = best
        keep = np.unique(assign)
        selections[name] = dataclasses.replace(selection, keep=keep, assign=assign)
    return Plan(selections=selections, meta=dict(plan.meta))


def _unit_parameters(module: nn.Module) -> list[tuple[torch.Tensor, int]]:
    """(tensor, unit dimension) of each per-unit parameter or statistic of a producing layer."""
    adapter = adapter_for(module)
    found = [(getattr(module, attr, None), dim) for attr, dim in (adapter.unit_parameters(module) if adapter else [])]
    return [(t.data if isinstance(t, nn.Parameter) else t, d) for t, d in found if isinstance(t, torch.Tensor)]


def _average_incoming(producers: list[tuple[nn.Module, np.ndarray]], blocks: dict[int, np.ndarray], n: int) -> None:
    """Set each kept unit's per-unit parameters to the mean over its block (in place)."""
    for module, channels in producers:
        channels = np.asarray(channels)
        if len(channels) != n:
            continue
        for tensor, dim in _unit_parameters(module):
            for kept, members in blocks.items():
                if members.size < 2:
                    continue
                rows = tensor.index_select(dim, torch.as_tensor(channels[members], device=tensor.device))
                tensor.select(dim, int(channels[kept])).copy_(rows.mean(dim=dim))


def _scale_columns(readers: list[tuple[nn.Module, dict[int, list[int]]]], unit: int, factor: float) -> None:
    for module, columns in readers:
        if not columns.get(unit):
            continue
        weight = adapter_for(module).weight(module).detach()  # a view: edits reach the module
        weight[:, columns[unit]] *= factor


def summarize_group(
    model: nn.Module,
    group: Any,
    selection: Any,
    option: str,
    in_index: dict[str, np.ndarray],
    out_index: dict[str, np.ndarray],
    context: FusionContext | None = None,
    repair: bool = False,
) -> None:
    """Summarize one group of ``model`` in place, before graph slicing removes the dropped units.

    ``option`` is ``"mean"``, ``"medoid"``, ``"lsq"`` or ``"fold"`` (see the module docstring); ``in_index`` and
    ``out_index`` are :func:`workbench.surgery.apply`'s index maps; ``context`` is needed for ``"lsq"``;
    ``repair`` (with ``"fold"``) corrects the averaged units' variances without data.
    """
    producers = graph_producers(model, group)
    readers = graph_consumers(model, group, in_index)
    blocks = _blocks(selection)
    if option == "fold":
        correction = data_free_repair(producers, blocks, group.n_units) if repair else None
        _average_incoming(producers, blocks, group.n_units)
        if correction is not None:
            correction.apply()
        merge_columns(readers, np.ones((group.n_units, 1)), selection)  # unit norms: columns summed
        return
    before = fold_incoming(producers, group.n_units, per_block=True)
    if option != "medoid":
        _average_incoming(producers, blocks, group.n_units)
    if option == "lsq":
        refit_consumers(readers, selection, context, out_index)
        return
    after = fold_incoming(producers, group.n_units, per_block=True)
    old, new = np.linalg.norm(before, axis=1), np.linalg.norm(after, axis=1)
    for kept in blocks:
        if new[kept] > 0 and old[kept] != new[kept]:
            _scale_columns(readers, kept, float(old[kept] / new[kept]))
    merge_columns(readers, after, selection)
