"""Budgets by cost: per-group kept fractions that meet a target of multiply-adds or parameters.

A uniform fraction keeps the same share of every group, wherever the cost lies. :func:`cost_fractions` instead
finds the fractions that leave a target share of the network's multiply-adds (or parameters), read from
:func:`workbench.surgery.sizes.predict_sizes` without rebuilding anything:

- ``scope="uniform"``: one fraction for every group, the one whose plan meets the target (bisection);
- ``scope="global"``: one importance scale across groups (Torch-Pruning's global pruning): each unit's
  L1 norm of incoming weights divided by the mean norm of its group, one threshold for the whole network, so that groups
  whose units matter more by that scale keep more; every group keeps at least ``min_keep``.

:func:`plan_for_cost` then lets a selector choose which units each group keeps at those fractions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from workbench.errors import ConfigError
from workbench.selection import Selection
from workbench.surgery.plan import Plan
from workbench.surgery.sizes import predict_sizes

COSTS = ("macs", "params")
SCOPES = ("uniform", "global")


def _check(cost: str, target: Any, scope: str, min_keep: Any, tolerance: Any) -> float:
    if cost not in COSTS:
        raise ConfigError(f"unknown cost {cost!r}; budgets by cost take one of {', '.join(COSTS)}.")
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}.")
    for name, value, low in (("target", target, 0.0), ("min_keep", min_keep, 0.0), ("tolerance", tolerance, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{name} must be a number, got {value!r}.")
        if not np.isfinite(float(value)) or not low < float(value) <= 1.0:
            raise ConfigError(f"{name}={value!r} must be in (0, 1] (a share of the network's {cost}).")
    return float(target)


def _magnitudes(graph: Any, groups: list[str]) -> dict[str, np.ndarray]:
    """Each group's unit L1 norms of incoming weights (Li et al. 2017's filter norm), divided by the group's mean."""
    from workbench.graph.views import in_weights

    found = {}
    for name in groups:
        rows, _, _ = in_weights(graph, graph.group(name))
        n = graph.group(name).n_units
        scores = np.abs(rows).sum(axis=1) if rows is not None else np.ones(n)
        found[name] = scores / max(float(np.mean(scores)), 1e-12)
    return found


def _counted(graph: Any, counts: dict[str, int], order: dict[str, np.ndarray], cost: str) -> float:
    """The cost a plan keeping ``counts[g]`` units of each group (the first of ``order[g]``) should leave."""
    selections = {}
    for name, k in counts.items():
        n = len(order[name])
        keep = np.sort(order[name][:k])
        assign = np.where(np.isin(np.arange(n), keep), np.arange(n), keep[0])
        selections[name] = Selection(name, n, keep, assign, np.zeros(n), method="cost")
    sizes = predict_sizes(graph, Plan(selections))
    return float(getattr(sizes, cost))


def _bisect(measure: Callable[[float], float], goal: float, low: float, high: float, steps: int = 40) -> float:
    """The parameter in [low, high] whose (non-decreasing) measure comes closest to ``goal`` from below."""
    for _ in range(steps):
        middle = (low + high) / 2
        if measure(middle) <= goal:
            low = middle
        else:
            high = middle
    return low


def cost_fractions(
    graph: Any,
    target: float,
    *,
    cost: str = "macs",
    scope: str = "uniform",
    min_keep: float = 0.05,
    tolerance: float = 0.02,
    groups: list[str] | None = None,
) -> dict[str, float]:
    """Per-group kept fractions whose plan leaves ``target`` of the network's ``cost`` (see the module docstring).

    Parameters
    ----------
    graph
        The model's :class:`workbench.graph.NetworkGraph`.
    target
        Share of the uncompressed network's multiply-adds or parameters to keep, in (0, 1].
    cost
        ``"macs"`` (per sample) or ``"params"``.
    scope
        ``"uniform"`` or ``"global"``.
    min_keep
        Smallest fraction any group keeps.
    tolerance
        Largest accepted gap between the predicted and the target share; a larger one (a target below what
        ``min_keep`` and the fixed units allow) is named in a warning.
    groups
        The groups to compress (default: every prunable group surgery can rebuild).
    """
    target = _check(cost, target, scope, min_keep, tolerance)
    from workbench.surgery.plan_builder import unrebuildable_groups

    unsupported = unrebuildable_groups(graph)
    names = groups or [g.name for g in graph.prunable_groups() if g.name not in unsupported]
    if not names:
        raise ConfigError("the graph has no prunable group surgery can rebuild; nothing to budget.")
    sizes = {name: graph.group(name).n_units for name in names}
    base = float(getattr(predict_sizes(graph, Plan({})), cost))
    goal = target * base
    scores = _magnitudes(graph, names)
    order = {name: np.argsort(-scores[name], kind="stable") for name in names}
    least = {name: max(1, int(np.ceil(min_keep * n))) for name, n in sizes.items()}

    def counts_at(x: float) -> dict[str, int]:
        if scope == "uniform":  # x is the kept fraction
            return {name: max(least[name], int(np.floor(x * n + 0.5))) for name, n in sizes.items()}
        # x in [0, 1] maps to a threshold on the normalized scale, from everything kept to least kept
        top = max(float(s.max()) for s in scores.values())
        threshold = (1.0 - x) * top
        return {name: max(least[name], int(np.sum(scores[name] >= threshold))) for name in names}

    x = _bisect(lambda v: _counted(graph, counts_at(v), order, cost), goal, 0.0, 1.0)
    counts = counts_at(x)
    reached = _counted(graph, counts, order, cost) / base
    if abs(reached - target) > tolerance:
        warnings.warn(
            f"the plan leaves {reached:.3f} of the {cost}, not {target:.3f}: the closest {scope} fractions with at "
            f"least {min_keep:g} of each group (fixed units and layers outside the plan cost what they cost).",
            stacklevel=2,
        )
    return {name: counts[name] / sizes[name] for name in names}


def plan_for_cost(
    graph: Any,
    selector: Any,
    target: float,
    *,
    cost: str = "macs",
    scope: str = "uniform",
    min_keep: float = 0.05,
    tolerance: float = 0.02,
    **plan_options: Any,
) -> Plan:
    """A plan of ``selector`` at the fractions of :func:`cost_fractions`; ``plan_options`` go to
    :func:`workbench.surgery.plan_from` (``source``, ``data``, ``round_to``...). The plan's ``meta`` records the
    target and the share it is predicted to leave."""
    from workbench.surgery.plan_builder import plan_from

    fractions = cost_fractions(graph, target, cost=cost, scope=scope, min_keep=min_keep, tolerance=tolerance)
    plan = plan_from(graph, selector, keep=1.0, per_layer=fractions, groups=list(fractions), **plan_options)
    base = float(getattr(predict_sizes(graph, Plan({})), cost))
    plan.meta.update(
        {
            "cost": cost,
            "target": target,
            "scope": scope,
            "predicted": float(getattr(predict_sizes(graph, plan), cost)) / base,
        }
    )
    return plan


__all__ = ["COSTS", "SCOPES", "cost_fractions", "plan_for_cost"]
