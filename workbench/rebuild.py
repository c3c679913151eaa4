"""Selection and rebuild as one step: trace a network, choose the units each group keeps, rebuild it smaller.

:func:`select_and_rebuild` is the one engine behind :func:`workbench.compression.compress` (which retrains and
measures after it) and the ``select`` step of a pipeline (:mod:`workbench.pipeline`, which may share weights,
quantize or Huffman-code after it). Both therefore choose and fuse units the same way: graph -> select ->
surgery, on a uniform budget (``keep``, ``per_layer``) or a cost budget (``{"macs": 0.5}``, ``{"params": 0.33}``,
``{"latency": 0.5, "batch": 64}``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.errors import ConfigError, PlanWarning, SelectionWarning
from workbench.utils import example_batch


@dataclass
class Rebuilt:
    """What :func:`select_and_rebuild` made.

    Attributes
    ----------
    model
        The rebuilt network (not retrained).
    plan
        The :class:`~workbench.surgery.Plan` it was rebuilt from (its ``meta`` holds a cost budget).
    graph
        The graph of the input network the plan refers to.
    notes
        The plan's :class:`~workbench.errors.PlanWarning` and the selector's
        :class:`~workbench.errors.SelectionWarning` messages (groups left out, fallbacks used).
    budget
        The budget rebuilt to (:func:`workbench.surgery.budgets.check_budget` form, with a latency search's steps).
    """

    model: nn.Module
    plan: Any
    graph: Any
    notes: list[str] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)


def example_from(model: nn.Module, data: Any = None) -> torch.Tensor:
    """A batch of two inputs to trace ``model`` with: of its ``input_shape`` when it declares one, else the first
    two samples of ``data`` (on the model's device, in its floating dtype).

    Raises
    ------
    ModelError
        The model declares no ``input_shape`` and there is no data to take an example from.
    """
    from workbench.datasets.batches import Batches
    from workbench.utils import to_model

    if getattr(model, "input_shape", None) is not None or data is None:
        return example_batch(model, 2)
    inputs, _ = next(iter(Batches(data, 2, name="the training data")))
    return to_model(inputs, model)


def with_notes(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """``function(*args, **kwargs)`` and the plan and selection warnings it gave, as notes (other warnings go on)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PlanWarning)
        warnings.simplefilter("always", SelectionWarning)
        result = function(*args, **kwargs)
    notes = []
    for w in caught:
        if issubclass(w.category, (PlanWarning, SelectionWarning)):
            notes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return result, notes


def resolve_budget(
    keep: float | None, per_layer: Mapping[str, float] | None, budget: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The one budget of a rebuild: ``keep`` and ``per_layer``, or ``budget`` (checked), not both."""
    from workbench.surgery.budgets import check_budget

    if budget is None:
        return check_budget({"keep": 0.5 if keep is None else keep, "per_layer": dict(per_layer or {})})
    if keep is not None or per_layer:
        raise ConfigError(
            f"give keep= (and per_layer=) or budget=, not both (got keep={keep!r} and budget={dict(budget)!r}); "
            "a budget such as {'macs': 0.5} chooses the kept fractions itself."
        )
    return check_budget(budget)


def applied_plan(model: nn.Module, plan: Any, graph: Any, fuse: str, random_state: int = 0) -> Any:
    """The plan :func:`workbench.surgery.apply` rebuilds: with ``fuse="summarize-medoid"`` each part's medoid
    replaces its kept unit; with ``fuse="fold"`` the k-means folding of each group (the units kept are the clusters'
    representatives, so the returned plan names the channels the rebuilt network has); otherwise ``plan``."""
    if fuse == "fold":
        from workbench.surgery.folding import fold_plan

        return fold_plan(model, plan, graph, random_state)
    if fuse != "summarize-medoid":
        return plan
    from workbench.surgery.summarize import medoid_plan

    return medoid_plan(model, plan, graph)


def unsupported_notes(graph: Any) -> list[str]:
    """The note naming the prunable groups surgery cannot rebuild (left out of every plan), if any."""
    from workbench.surgery.plan_builder import unrebuildable_groups

    unsupported = unrebuildable_groups(graph)
    if not unsupported:
        return []
    return [
        "left out of the plan, as surgery cannot rebuild them: "
        + "; ".join(f"{n!r} ({r})" for n, r in unsupported.items())
    ]


def budget_fractions(
    model: nn.Module, graph: Any, budget: dict[str, Any], sensitivity: Any = None
) -> tuple[dict[str, float], list[str], dict[str, Any]]:
    """Per-group kept fractions that meet a cost or latency ``budget`` (:func:`workbench.surgery.budgets.check_budget`
    form), the notes of the search, and what to add to the budget's record (a latency search's steps,
    ``(parameter, share of units kept, ratio)``); ``sensitivity`` (:func:`sensitivity_losses`) for
    ``scope="sensitivity"``."""
    from workbench.surgery.budgets import COSTS, budget_target, cost_fractions, latency_fractions

    target = budget_target(budget)
    options = {
        "scope": budget["scope"],
        "min_keep": budget["min_keep"],
        "tolerance": budget["tolerance"],
        "sensitivity": sensitivity_losses(sensitivity, budget["scope"]),
    }
    if target in COSTS:
        fractions, notes = with_notes(cost_fractions, graph, budget[target], cost=target, **options)
        return fractions, notes, {}
    fit, notes = with_notes(latency_fractions, model, graph, budget[target], batch=budget["batch"], **options)
    return fit.fractions, notes, {"search": [list(step) for step in fit.steps]}


def sensitivity_losses(sensitivity: Any, scope: str) -> dict[str, dict[float, float]] | None:
    """``sensitivity`` (a :class:`workbench.compression.Sensitivity`, or group -> {kept fraction: loss}) as losses
    for a ``scope="sensitivity"`` budget; None for other scopes.

    Raises
    ------
    ConfigError
        ``scope="sensitivity"`` without a sensitivity, or a sensitivity given to another scope.
    """
    if scope != "sensitivity":
        if sensitivity is not None:
            raise ConfigError(
                f"a sensitivity was given to a {scope!r} budget, which does not read it; "
                "use scope='sensitivity', or leave sensitivity out."
            )
        return None
    if sensitivity is None:
        raise ConfigError(
            "a scope='sensitivity' budget needs the per-layer sensitivity: "
            "sensitivity=workbench.compression.sensitivity(model, val)."
        )
    losses = sensitivity.losses() if hasattr(sensitivity, "losses") else sensitivity
    if not isinstance(losses, Mapping):
        raise ConfigError(f"sensitivity maps groups to {{kept fraction: loss}}, got {type(losses).__name__}.")
    return {str(g): {float(f): float(v) for f, v in dict(curve).items()} for g, curve in losses.items()}


def sequential_rebuild(
    model: nn.Module,
    graph: Any,
    selector: Any,
    *,
    fuse: str,
    train: Any,
    random_state: int,
    fusing: Mapping[str, Any] | None = None,
    **plan_kwargs: Any,
) -> tuple[nn.Module, Any, list[str]]:
    """Select and rebuild one group at a time, in network order, each on the network rebuilt for the groups
    before it (Mariet & Sra 2016); returns the rebuilt network, the plan of all groups and the notes.

    Each group's rebuild is one plan edit of the result's history, so checkpoints replay them in order.
    """
    from workbench.graph import from_model
    from workbench.surgery import Plan, apply, plan_from
    from workbench.surgery.plan_builder import unrebuildable_groups
    from workbench.surgery.slicing import group_order

    unsupported = unrebuildable_groups(graph)
    notes = unsupported_notes(graph)
    order = group_order(graph)
    names = sorted((g.name for g in graph.prunable_groups() if g.name not in unsupported), key=order.__getitem__)
    current, selections, step = model, {}, None
    for i, name in enumerate(names):
        if i:
            graph = from_model(current, graph.example_input)
        step, step_notes = with_notes(plan_from, graph, selector, groups=[name], **plan_kwargs)
        step = applied_plan(current, step, graph, fuse, random_state)
        notes.extend(step_notes)
        current = apply(
            current, step, fuse=fuse, graph=graph, data=train, random_state=random_state, **dict(fusing or {})
        )
        selections[name] = step[name]
    meta = {**(step.meta if step is not None else {}), "sequential": True}
    return current, Plan(selections=selections, meta=meta), notes


def select_and_rebuild(
    model: nn.Module,
    *,
    method: str = "magnitude",
    selector_params: Mapping[str, Any] | None = None,
    keep: float | None = None,
    per_layer: Mapping[str, float] | None = None,
    budget: Mapping[str, Any] | None = None,
    fuse: str = "drop",
    source: str = "weights",
    sequential: bool = False,
    train: Any = None,
    random_state: int = 0,
    example_input: torch.Tensor | None = None,
    round_to: int | None = None,
    fuse_options: Mapping[str, Any] | None = None,
    sensitivity: Any = None,
) -> Rebuilt:
    """Select units with selector ``method`` in every group surgery can rebuild, and rebuild ``model`` smaller.

    Parameters are those of :func:`workbench.compression.compress` that choose and fuse units: ``method`` and
    ``selector_params`` (:func:`workbench.select.get_selector`), ``keep`` and ``per_layer`` or ``budget``
    (:func:`workbench.surgery.budgets.check_budget`), ``fuse`` and ``fuse_options``
    (:func:`workbench.surgery.apply`), ``source`` (what the unit views read), ``sequential`` (group by group,
    Mariet & Sra 2016), ``train`` (activations, lsq, REPAIR), ``random_state``, ``example_input``, ``round_to``
    and ``sensitivity`` (a cost budget of ``scope="sensitivity"``). ``model`` is not modified.
    """
    from workbench.graph import from_model
    from workbench.select import get_selector
    from workbench.surgery import apply, plan_from
    from workbench.surgery.budgets import budget_target

    budget = resolve_budget(keep, per_layer, budget)
    if example_input is None:
        example_input = example_batch(model, 2)
    graph = from_model(model, example_input)
    notes: list[str] = []
    fractions: dict[str, float] | None = None
    if budget_target(budget) != "keep":
        fractions, notes, search = budget_fractions(model, graph, budget, sensitivity)
        budget.update(search)
        plan_kwargs: dict[str, Any] = {"keep": 1.0, "per_layer": fractions}
    else:
        sensitivity_losses(sensitivity, "keep")  # refuses a sensitivity a keep budget would not read
        plan_kwargs = {"keep": budget["keep"], "per_layer": budget["per_layer"]}
    selector = get_selector(
        method, budget=budget.get("keep", 0.5), random_state=random_state, **dict(selector_params or {})
    )
    plan_kwargs.update({"source": source, "round_to": round_to, "data": train if source != "weights" else None})
    fusing = dict(fuse_options or {})
    if sequential:
        smaller, plan, step_notes = sequential_rebuild(
            model, graph, selector, fuse=fuse, train=train, random_state=random_state, fusing=fusing, **plan_kwargs
        )
        notes += step_notes
    else:
        if fractions is not None:  # the groups the fractions cover; those left out are named as plan_from names them
            notes += unsupported_notes(graph)
            plan_kwargs["groups"] = list(fractions)
        plan, plan_notes = with_notes(plan_from, graph, selector, **plan_kwargs)
        notes += plan_notes
        plan = applied_plan(model, plan, graph, fuse, random_state)
        smaller = apply(model, plan, fuse=fuse, graph=graph, data=train, random_state=random_state, **fusing)
    return Rebuilt(model=smaller, plan=plan, graph=graph, notes=notes, budget=budget)
