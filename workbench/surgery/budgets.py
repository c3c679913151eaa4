"""Budgets by cost: per-group kept fractions that meet a target of multiply-adds, parameters or latency.

A uniform fraction keeps the same share of every group, wherever the cost lies. :func:`cost_fractions` instead
finds the fractions that leave a target share of the network's multiply-adds (or parameters), read from
:func:`workbench.surgery.sizes.predict_sizes` without rebuilding anything:

- ``scope="uniform"``: one fraction for every group, the one whose plan meets the target (bisection);
- ``scope="global"``: one importance scale across groups (Torch-Pruning's global pruning): each unit's
  L1 norm of incoming weights divided by the mean norm of its group, one threshold for the whole network, so that groups
  whose units matter more by that scale keep more; every group keeps at least ``min_keep``.
- ``scope="sensitivity"``: per-layer sensitivity (Li et al. 2017): each group's measured loss of score when it alone
  keeps a fraction of its units (:func:`workbench.compression.sensitivity`, on ``val``), interpolated between the
  fractions tried; one tolerated loss for the whole network, so that each group is cut as far as its own loss stays
  within it, and sensitive groups keep more (:func:`predicted_losses`).

Where that one parameter steps past the target (a group of large steps, such as a transformer's embedding kept in
multiples of its heads), single units of the other groups are then moved toward it, in the scope's order.

:func:`plan_for_cost` then lets a selector choose which units each group keeps at those fractions.

:func:`latency_fractions` does the same for a share of the measured CPU latency at a batch size: latency cannot
be predicted, so each step of its bisection rebuilds the network (dropping the units of least weight norm) and
times it against the base, interleaved in one process with the threads fixed; :func:`latency_ratio` is that
paired measurement, with its spread over rounds.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import ConfigError, PlanWarning
from workbench.numeric import as_float, as_int
from workbench.selection import Selection
from workbench.surgery.plan import Plan
from workbench.surgery.sizes import predict_sizes

COSTS = ("macs", "params")
#: What a budget mapping may aim at: a share of one of these (``{"macs": 0.5}``), or ``keep`` (units).
TARGETS = ("keep", *COSTS, "latency")
SCOPES = ("uniform", "global", "sensitivity")
#: The keys of a budget mapping besides its target, and the targets they go with.
BUDGET_OPTIONS = {
    "scope": COSTS + ("latency",),
    "min_keep": COSTS + ("latency",),
    "tolerance": COSTS + ("latency",),
    "batch": ("latency",),
    "per_layer": ("keep",),
}
#: Largest accepted gap between the reached and the target latency share, by default (latency is noisy).
LATENCY_TOLERANCE = 0.05


def _share(name: str, value: Any, what: str) -> float:
    return as_float(value, name, low=0.0, high=1.0, low_open=True, what=f"a share of the network's {what}")


def _check(cost: str, target: Any, scope: str, min_keep: Any, tolerance: Any) -> float:
    if cost not in COSTS:
        raise ConfigError(f"unknown cost {cost!r}; budgets by cost take one of {', '.join(COSTS)}.")
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}.")
    for name, value in (("min_keep", min_keep), ("tolerance", tolerance)):
        _share(name, value, cost)
    return _share("target", target, cost)


def check_budget(budget: Mapping[str, Any]) -> dict[str, Any]:
    """``budget`` checked and completed: exactly one target of :data:`TARGETS` and the options that go with it.

    ``{"macs": 0.5}`` becomes ``{"macs": 0.5, "scope": "uniform", "min_keep": 0.05, "tolerance": 0.02}``;
    ``{"latency": 0.5}`` gets ``batch`` 64 and tolerance :data:`LATENCY_TOLERANCE`; ``{"keep": 0.5}`` gets an empty
    ``per_layer``.

    Raises
    ------
    ConfigError
        Unknown keys, no target or two at once, options of another target, values outside (0, 1] or not finite.
    """
    if not isinstance(budget, Mapping):
        raise ConfigError(f"a budget is a mapping such as {{'macs': 0.5}}, got {budget!r}.")
    unknown = sorted(set(budget) - set(TARGETS) - set(BUDGET_OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown budget key(s) {', '.join(map(repr, unknown))}; a budget takes one target of "
            f"{', '.join(TARGETS)} and the options {', '.join(BUDGET_OPTIONS)}."
        )
    targets = [key for key in TARGETS if key in budget]
    if len(targets) != 1:
        given = ", ".join(targets) or "none"
        raise ConfigError(
            f"a budget aims at exactly one of {', '.join(TARGETS)} (given: {given}); e.g. {{'macs': 0.5}}."
        )
    target = targets[0]
    misplaced = sorted(key for key in budget if key in BUDGET_OPTIONS and target not in BUDGET_OPTIONS[key])
    if misplaced:
        verb = "does" if len(misplaced) == 1 else "do"
        raise ConfigError(f"{', '.join(misplaced)} {verb} not go with a {target!r} budget; remove it.")
    what = "units" if target == "keep" else target
    checked: dict[str, Any] = {target: _share(target, budget[target], what)}
    if target == "keep":
        per_layer = budget.get("per_layer") or {}
        if not isinstance(per_layer, Mapping):
            raise ConfigError(f"per_layer maps group names to kept fractions, got {per_layer!r}.")
        checked["per_layer"] = {str(k): _share(f"per_layer[{k!r}]", v, "units") for k, v in per_layer.items()}
        return checked
    scope = budget.get("scope", "uniform")
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}.")
    checked["scope"] = scope
    checked["min_keep"] = _share("min_keep", budget.get("min_keep", 0.05), "units")
    default_tolerance = LATENCY_TOLERANCE if target == "latency" else 0.02
    checked["tolerance"] = _share("tolerance", budget.get("tolerance", default_tolerance), what)
    if target == "latency":
        batch = budget.get("batch", 64)
        checked["batch"] = as_int(batch, "batch", low=1, what="the batch the latency is timed at")
    return checked


def budget_target(budget: Mapping[str, Any]) -> str:
    """The target key of a checked budget (``"keep"``, ``"macs"``, ``"params"`` or ``"latency"``)."""
    return next(key for key in TARGETS if key in budget)


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


def predicted_losses(points: Mapping[float, float], n: int) -> np.ndarray:
    """A group's predicted loss of score when it keeps ``k`` of its ``n`` units, for ``k = 0..n``.

    Piecewise linear through the measured ``points`` (kept fraction -> loss) and (1, 0), extended below the
    smallest fraction measured along the first segment's slope, negative losses (noise) read as 0, and made
    non-increasing in ``k`` (keeping more never predicts a larger loss). A loss of 1e-9 per unit dropped breaks ties,
    so that equal measured losses still keep more units at a smaller tolerance.
    """
    measured = sorted((float(f), max(float(loss), 0.0)) for f, loss in points.items() if float(f) < 1.0)
    if not measured:
        raise ConfigError("a sensitivity curve needs the loss at one kept fraction below 1 at least.")
    xs = np.array([f for f, _ in measured] + [1.0])
    ys = np.array([loss for _, loss in measured] + [0.0])
    fractions = np.arange(n + 1) / n
    losses = np.interp(fractions, xs, ys)
    slope = (ys[0] - ys[1]) / (xs[1] - xs[0])
    below = fractions < xs[0]
    losses[below] = ys[0] + np.maximum(slope, 0.0) * (xs[0] - fractions[below])
    losses = np.maximum.accumulate(losses[::-1])[::-1]
    return losses + 1e-9 * (n - np.arange(n + 1))


@dataclass
class _Scale:
    """The groups a budget spreads over, and how a parameter ``x`` in [0, 1] maps to units kept per group:
    the kept fraction (uniform), or a threshold on the normalized weight norm, from everything kept (1) down to
    each group's minimum (0) (global), or a tolerated loss of score, from none (1) to the largest a group's minimum
    predicts (0) (sensitivity, from ``losses``: group -> {kept fraction: measured loss})."""

    graph: Any
    scope: str
    min_keep: float
    names: list[str]
    losses: Mapping[str, Mapping[float, float]] | None = None
    sizes: dict[str, int] = field(init=False)
    scores: dict[str, np.ndarray] = field(init=False)
    order: dict[str, np.ndarray] = field(init=False)
    least: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.sizes = {name: self.graph.group(name).n_units for name in self.names}
        self.scores = _magnitudes(self.graph, self.names)
        self.order = {name: np.argsort(-self.scores[name], kind="stable") for name in self.names}
        self.least = {name: max(1, int(np.ceil(self.min_keep * n))) for name, n in self.sizes.items()}
        self.predicted: dict[str, np.ndarray] = {}
        if self.scope == "sensitivity":
            missing = [name for name in self.names if name not in (self.losses or {})]
            if missing:
                raise ConfigError(
                    f"scope='sensitivity' needs each group's measured sensitivity; none for {', '.join(missing)}. "
                    "Measure it with workbench.compression.sensitivity(model, val) and pass it as sensitivity=."
                )
            self.predicted = {name: predicted_losses(self.losses[name], self.sizes[name]) for name in self.names}

    def counts(self, x: float) -> dict[str, int]:
        """Units kept per group at parameter ``x``."""
        if self.scope == "uniform":
            return {name: max(self.least[name], int(np.floor(x * n + 0.5))) for name, n in self.sizes.items()}
        if self.scope == "sensitivity":
            tolerated = (1.0 - x) * max(float(self.predicted[name][self.least[name]]) for name in self.names)
            return {
                name: max(self.least[name], int(np.argmax(self.predicted[name] <= tolerated))) for name in self.names
            }
        top = max(float(s.max()) for s in self.scores.values())
        threshold = (1.0 - x) * top
        return {name: max(self.least[name], int(np.sum(self.scores[name] >= threshold))) for name in self.names}

    def priority(self, name: str, k: int, grow: bool) -> float:
        """How much group ``name``, keeping ``k`` units, should get its next unit (``grow``) or keep its last one:
        higher first when growing, lower first when shrinking. Global: the weight norm of that unit; uniform: minus
        the kept fraction; sensitivity: the predicted loss that unit saves."""
        if self.scope == "global":
            return float(self.scores[name][self.order[name][k if grow else k - 1]])
        if self.scope == "sensitivity":
            losses = self.predicted[name]
            return float(losses[k] - losses[k + 1]) if grow else float(losses[k - 1] - losses[k])
        return -k / self.sizes[name]

    def fractions(self, counts: Mapping[str, int]) -> dict[str, float]:
        """``counts`` as kept fractions."""
        return {name: counts[name] / self.sizes[name] for name in self.names}

    def plan(self, counts: Mapping[str, int], constrain: bool = False) -> Plan:
        """The plan keeping ``counts[g]`` units of largest weight norm in each group (dropped units assigned to the
        first kept one); ``constrain``: made rebuildable (:func:`workbench.surgery.plan_builder.keep_fixed`)."""
        from workbench.surgery.plan_builder import keep_fixed

        selections = {}
        for name, k in counts.items():
            n = self.sizes[name]
            keep = np.sort(self.order[name][:k])
            assign = np.where(np.isin(np.arange(n), keep), np.arange(n), keep[0])
            selection = Selection(name, n, keep, assign, self.scores[name].astype(np.float64), method="cost")
            selections[name] = keep_fixed(selection, self.graph.group(name)) if constrain else selection
        return Plan(selections)


def _scale(
    graph: Any,
    scope: str,
    min_keep: float,
    groups: list[str] | None,
    losses: Mapping[str, Mapping[float, float]] | None = None,
) -> _Scale:
    from workbench.surgery.plan_builder import unrebuildable_groups

    unsupported = unrebuildable_groups(graph)
    names = groups or [g.name for g in graph.prunable_groups() if g.name not in unsupported]
    if not names:
        raise ConfigError("the graph has no prunable group surgery can rebuild; nothing to budget.")
    return _Scale(graph, scope, min_keep, names, losses)


def _counted(scale: _Scale, counts: dict[str, int], cost: str) -> float:
    """The cost a plan keeping ``counts[g]`` units of each group should leave, once made rebuildable (the fixed units
    a group must keep, such as the zero-padded channels of a residual stream, counted)."""
    return float(getattr(predict_sizes(scale.graph, scale.plan(counts, constrain=True)), cost))


def _bisect(measure: Callable[[float], float], goal: float, low: float, high: float, steps: int = 40) -> float:
    """The parameter in [low, high] whose (non-decreasing, stepwise) measure comes closest to ``goal``: the last step
    at or below it, or the first step above it when that one is nearer (the budget's tolerance is two-sided)."""
    for _ in range(steps):
        middle = (low + high) / 2
        if measure(middle) <= goal:
            low = middle
        else:
            high = middle
    return high if abs(measure(high) - goal) < abs(measure(low) - goal) else low


#: The most single-unit moves :func:`_refine` makes.
REFINE_MOVES = 256


def _refine(scale: _Scale, counts: dict[str, int], goal: float, cost: str, tolerance: float) -> dict[str, int]:
    """``counts`` moved one unit at a time toward ``goal`` (absolute cost) when the scope's single parameter steps
    past it by more than ``tolerance``: a group with large steps (a residual stream, attention's embedding) jumps
    over the target while the others could still close the gap. Each move takes the group first in the scope's
    order (:meth:`_Scale.priority`) whose move brings the cost nearer the goal, until no move does; groups read in
    equal blocks (heads, grouped convolutions) are left as the parameter set them. Counts within ``tolerance``
    are returned as they are."""
    free = [name for name in scale.names if not scale.graph.group(name).blocks]
    current = _counted(scale, counts, cost)
    if abs(current - goal) <= tolerance:
        return counts
    for _ in range(REFINE_MOVES):
        grow = current < goal
        movable = [n for n in free if (counts[n] < scale.sizes[n] if grow else counts[n] > scale.least[n])]
        movable.sort(key=lambda n: scale.priority(n, counts[n], grow), reverse=grow)
        for name in movable:
            trial = {**counts, name: counts[name] + (1 if grow else -1)}
            value = _counted(scale, trial, cost)
            if abs(value - goal) < abs(current - goal):
                counts, current = trial, value
                break
        else:
            break
    return counts


def cost_fractions(
    graph: Any,
    target: float,
    *,
    cost: str = "macs",
    scope: str = "uniform",
    min_keep: float = 0.05,
    tolerance: float = 0.02,
    groups: list[str] | None = None,
    sensitivity: Mapping[str, Mapping[float, float]] | None = None,
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
        ``"uniform"``, ``"global"`` or ``"sensitivity"``.
    min_keep
        Smallest fraction any group keeps.
    tolerance
        Largest accepted gap between the predicted and the target share; a larger one (a target below what
        ``min_keep`` and the fixed units allow) is named in a warning.
    groups
        The groups to compress (default: every prunable group surgery can rebuild).
    sensitivity
        For ``scope="sensitivity"``: group -> {kept fraction: loss of score measured with that group alone
        compressed} (:meth:`workbench.compression.Sensitivity.losses`).
    """
    target = _check(cost, target, scope, min_keep, tolerance)
    scale = _scale(graph, scope, min_keep, groups, sensitivity)
    base = float(getattr(predict_sizes(graph, Plan({})), cost))
    x = _bisect(lambda v: _counted(scale, scale.counts(v), cost), target * base, 0.0, 1.0)
    counts = _refine(scale, scale.counts(x), target * base, cost, tolerance * base)
    reached = _counted(scale, counts, cost) / base
    if abs(reached - target) > tolerance:
        warnings.warn(
            f"the plan leaves {reached:.3f} of the {cost}, not {target:.3f}: the closest {scope} fractions with at "
            f"least {min_keep:g} of each group (fixed units and layers outside the plan cost what they cost).",
            PlanWarning,
            stacklevel=2,
        )
    return scale.fractions(counts)


def plan_for_cost(
    graph: Any,
    selector: Any,
    target: float,
    *,
    cost: str = "macs",
    scope: str = "uniform",
    min_keep: float = 0.05,
    tolerance: float = 0.02,
    sensitivity: Mapping[str, Mapping[float, float]] | None = None,
    **plan_options: Any,
) -> Plan:
    """A plan of ``selector`` at the fractions of :func:`cost_fractions`; ``plan_options`` go to
    :func:`workbench.surgery.plan_from` (``source``, ``data``, ``round_to``...). The plan's ``meta`` records the
    target and the share it is predicted to leave."""
    from workbench.surgery.plan_builder import plan_from

    fractions = cost_fractions(
        graph, target, cost=cost, scope=scope, min_keep=min_keep, tolerance=tolerance, sensitivity=sensitivity
    )
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


@dataclass(frozen=True)
class LatencyRatio:
    """Latency of a network over its base's, measured in rounds (each round times the base, then the network).

    Attributes
    ----------
    ratio
        Median over rounds of the per-round ratio of medians.
    low, high
        Smallest and largest per-round ratio (the spread the noise gives).
    base_ms, ms
        Median over rounds of the base's and the network's median milliseconds.
    batch, threads, rounds, repeats
        How it was measured: batch size, CPU threads, rounds, timed passes per model and round.
    """

    ratio: float
    low: float
    high: float
    base_ms: float
    ms: float
    batch: int
    threads: int
    rounds: int
    repeats: int

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict."""
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def latency_ratio(
    base: Any,
    model: Any,
    example_input: Any,
    *,
    batch: int = 64,
    rounds: int = 3,
    repeats: int = 5,
    threads: int | None = None,
) -> LatencyRatio:
    """:class:`LatencyRatio` of ``model`` over ``base`` on ``batch`` copies of ``example_input``'s first sample
    (:func:`workbench.metrics.batch_latency`, threads fixed to ``threads``, default
    :data:`workbench.metrics.latency.LATENCY_THREADS`)."""
    from workbench.metrics.latency import LATENCY_THREADS, batch_latency

    threads = LATENCY_THREADS if threads is None else threads
    rounds = as_int(rounds, "rounds", low=1)
    pairs = []
    for _ in range(rounds):
        times = [
            batch_latency(m, example_input, batch, repeats=repeats, threads=threads)["median_ms"] for m in (base, model)
        ]
        pairs.append(times)
    ratios = [ms / max(base_ms, 1e-9) for base_ms, ms in pairs]
    return LatencyRatio(
        ratio=float(np.median(ratios)),
        low=float(min(ratios)),
        high=float(max(ratios)),
        base_ms=float(np.median([p[0] for p in pairs])),
        ms=float(np.median([p[1] for p in pairs])),
        batch=batch,
        threads=threads,
        rounds=rounds,
        repeats=repeats,
    )


@dataclass(frozen=True)
class LatencyFit:
    """What :func:`latency_fractions` found.

    Attributes
    ----------
    fractions
        Group -> kept fraction.
    target, tolerance
        The latency share aimed at and the accepted gap.
    measured
        :func:`latency_ratio` of the network rebuilt at ``fractions`` (units of largest weight norm kept).
    steps
        ``(parameter, fraction of units kept overall, ratio)`` of every bisection step, in order.
    """

    fractions: dict[str, float]
    target: float
    tolerance: float
    measured: LatencyRatio
    steps: list[tuple[float, float, float]]


def latency_fractions(
    model: Any,
    graph: Any,
    target: float,
    *,
    batch: int = 64,
    scope: str = "uniform",
    min_keep: float = 0.05,
    tolerance: float = LATENCY_TOLERANCE,
    steps: int = 8,
    rounds: int = 3,
    repeats: int = 5,
    threads: int | None = None,
    groups: list[str] | None = None,
    sensitivity: Mapping[str, Mapping[float, float]] | None = None,
) -> LatencyFit:
    """Per-group kept fractions whose rebuilt network runs in ``target`` of the base's CPU latency at ``batch``.

    Bisection over the uniform fraction (or the global threshold, as :func:`cost_fractions`): each step rebuilds
    ``model`` keeping the units of largest weight norm (``fuse="drop"``; which units are kept does not change the
    time, only how many) and times it against ``model`` (:func:`latency_ratio` with one round). It stops after
    ``steps`` steps or once a step is within half ``tolerance``; the closest step is then measured again over
    ``rounds`` rounds, and a gap larger than ``tolerance`` (a target below the per-layer overheads, or noise) is
    named in a warning.

    Parameters
    ----------
    model, graph
        The network (not modified) and its :class:`workbench.graph.NetworkGraph`.
    target
        Share of the base's median latency, in (0, 1].
    batch, threads, repeats
        Batch size timed, CPU threads (default :data:`workbench.metrics.latency.LATENCY_THREADS`), timed passes
        per model and round.
    scope, min_keep, groups, sensitivity
        As :func:`cost_fractions`.
    tolerance, steps, rounds
        Accepted gap, most bisection steps, rounds of the final measurement.
    """
    from workbench.surgery.apply import apply

    target = _share("target", target, "latency")
    tolerance = _share("tolerance", tolerance, "latency")
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}.")
    steps = as_int(steps, "steps", low=1)
    scale = _scale(graph, scope, _share("min_keep", min_keep, "units"), groups, sensitivity)
    example = graph.example_input
    built: dict[tuple[int, ...], Any] = {}

    def rebuilt(counts: dict[str, int]) -> Any:
        key = tuple(counts[name] for name in scale.names)
        if key not in built:
            built[key] = apply(model, scale.plan(counts, constrain=True), graph=graph)
        return built[key]

    total = sum(scale.sizes.values())
    tried: list[tuple[float, float, float]] = []
    low, high = 0.0, 1.0
    for _ in range(steps):
        x = (low + high) / 2
        counts = scale.counts(x)
        ratio = latency_ratio(model, rebuilt(counts), example, batch=batch, rounds=1, repeats=repeats, threads=threads)
        tried.append((x, sum(counts.values()) / total, ratio.ratio))
        if abs(ratio.ratio - target) <= tolerance / 2:
            break  # well inside: one round is noisy, so a step at the edge of the tolerance goes on
        low, high = (x, high) if ratio.ratio < target else (low, x)
    x = min(tried, key=lambda step: abs(step[2] - target))[0]
    counts = scale.counts(x)
    measured = latency_ratio(
        model, rebuilt(counts), example, batch=batch, rounds=rounds, repeats=repeats, threads=threads
    )
    if abs(measured.ratio - target) > tolerance:
        warnings.warn(
            f"the closest {scope} fractions found in {len(tried)} steps run in {measured.ratio:.3f} of the base's "
            f"latency at batch {batch} (rounds from {measured.low:.3f} to {measured.high:.3f}), not {target:.3f} "
            f"+- {tolerance:g}: per-layer overheads or timing noise; try a larger batch or more steps.",
            PlanWarning,
            stacklevel=2,
        )
    return LatencyFit(scale.fractions(counts), target, tolerance, measured, tried)


__all__ = [
    "BUDGET_OPTIONS",
    "COSTS",
    "LATENCY_TOLERANCE",
    "SCOPES",
    "TARGETS",
    "LatencyFit",
    "LatencyRatio",
    "budget_target",
    "check_budget",
    "cost_fractions",
    "latency_fractions",
    "latency_ratio",
    "plan_for_cost",
]
