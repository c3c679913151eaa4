"""Build a :class:`Plan` for a whole network from a selector: :func:`plan_from`."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from workbench.errors import ConfigError, PlanWarning, SurgeryError, closest
from workbench.numeric import as_float, as_int, is_number
from workbench.selection import constrained
from workbench.surgery.plan import Plan


def _with_budget(selector: Any, budget: float, group: str | None = None) -> Any:
    """A copy of ``selector`` (sklearn-style: get_params / constructor) with another budget; with ``group``, an
    int seed becomes the group's own (:func:`group_seed`), so that groups are not drawn alike."""
    params = dict(selector.get_params())
    params["budget"] = budget
    seed = params.get("random_state")
    if group is not None and isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        params["random_state"] = group_seed(int(seed), group)
    copy = type(selector)(**params)
    copy.preset_info = getattr(selector, "preset_info", None)  # a paper preset's record (select.presets)
    return copy


def unrebuildable_groups(graph: Any) -> dict[str, str]:
    """Group -> reason, for the prunable groups of ``graph`` that surgery cannot rebuild (graph slicing
    cannot edit them)."""
    from workbench.surgery.slicing import slicing_problems

    return {name: reason for name, reason in slicing_problems(graph).items() if reason}


def keep_fixed(selection: Any, group: Any) -> Any:
    """``selection`` made rebuildable in ``group``: its fixed units (tied to the network input or output)
    kept, equal counts in the blocks of grouped layers, at least one unit per layer
    (:func:`workbench.selection.constrained`)."""
    return constrained(selection, fixed=group.fixed, blocks=group.blocks, cover=group.cover())


def group_seed(seed: int, group: str) -> int:
    """The seed of one group's selection: derived from the plan's seed and the group's name (the same pair
    always gives the same seed; two groups of one plan get independent streams)."""
    digest = zlib.crc32(group.encode("utf-8"))
    return int(np.random.SeedSequence([seed, digest]).generate_state(1, dtype=np.uint32)[0])


def rounded_count(n_units: int, fraction: float, multiple: int) -> int:
    """Units to keep out of ``n_units``: the multiple of ``multiple`` nearest to ``fraction * n_units`` (at least
    ``multiple``, at most ``n_units``; all of them when the group is smaller than ``multiple``)."""
    if n_units <= multiple:
        return n_units
    nearest = int(np.floor(fraction * n_units / multiple + 0.5)) * multiple
    return int(min(n_units, max(multiple, nearest)))


def plan_from(
    graph: Any,
    selector: Any,
    keep: float = 0.5,
    per_layer: Mapping[str, float] | None = None,
    *,
    source: str = "weights",
    data: Any = None,
    metric: str | None = None,
    groups: list[str] | None = None,
    round_to: int | None = None,
) -> Plan:
    """Select units in every prunable group of ``graph`` and collect the selections into a Plan.

    Parameters
    ----------
    graph
        A :class:`workbench.graph.NetworkGraph`.
    selector
        A selector instance (``workbench.select.get_selector(name, ...)``); its budget is replaced by
        ``keep`` or by the group's ``per_layer`` entry.
    keep
        Fraction of units kept in each group, in (0, 1].
    per_layer
        Group name -> fraction kept, overriding ``keep`` for those groups.
    source, data, metric
        Passed to ``graph.unit_view`` (weights or activations; the data for activations; the similarity).
    groups
        Restrict the plan to these groups (default: every prunable group that surgery can rebuild; the
        others are named in a :class:`~workbench.errors.PlanWarning`).
    round_to
        Keep a multiple of this many units in each group (the nearest one to the budget, at least
        ``round_to``, at most the group's size), for widths that hardware runs fast (8, 16, 32...).

    Notes
    -----
    Each group is selected with its own seed, derived from the selector's and the group's name
    (:func:`group_seed`). Fixed units (tied to the network's input or output) are always kept, on top of the budget; grouped
    layers keep equal counts per group, and no layer loses all its units (:func:`keep_fixed`).
    """
    per_layer = dict(per_layer or {})
    for where, value in (("keep", keep), *((f"per_layer[{name!r}]", v) for name, v in per_layer.items())):
        if is_number(value) and float(value) == 0:
            group = "every group" if where == "keep" else f"group {where[10:-1]}"
            raise ConfigError(f"{where}=0 would remove every filter / unit of {group}; give a kept fraction in (0, 1].")
        as_float(value, where, low=0.0, high=1.0, low_open=True, what="a kept fraction (e.g. 0.5)")
    if round_to is not None:
        as_int(round_to, "round_to", low=1, high=1 << 20, what="a multiple of units kept (e.g. 8) or None")
    available = {group.name: group for group in graph.prunable_groups()}
    unsupported = unrebuildable_groups(graph)
    for name in [*per_layer, *(groups or [])]:
        if name not in available:
            raise SurgeryError(
                f"{name!r} is not a prunable group of this graph.{closest(name, available)} "
                f"Prunable groups: {', '.join(available)}."
            )
    chosen = groups or [name for name in available if name not in unsupported]
    for name in chosen:
        if name in unsupported:
            raise SurgeryError(f"group {name!r} cannot be rebuilt: {unsupported[name]}.")
    if unsupported and not groups:
        warnings.warn(
            "left out of the plan, as surgery cannot rebuild them: "
            + "; ".join(f"{name!r} ({reason})" for name, reason in unsupported.items()),
            PlanWarning,
            stacklevel=2,
        )
    selections = {}
    for name in chosen:
        fraction = float(per_layer.get(name, keep))  # numpy scalars become plain floats
        budget = fraction if round_to is None else rounded_count(available[name].n_units, fraction, int(round_to))
        view_kwargs: dict[str, Any] = {"source": source, "data": data}
        if metric is not None:
            view_kwargs["metric"] = metric
        view = graph.unit_view(name, **view_kwargs)
        fitted = _with_budget(selector, budget, group=name).fit(view).selection_
        selections[name] = keep_fixed(fitted, available[name])
    return Plan(
        selections=selections,
        meta={
            "selector": type(selector).__name__,
            "keep": keep,
            "per_layer": per_layer,
            "source": source,
            **({"round_to": int(round_to)} if round_to is not None else {}),
        },
    )
