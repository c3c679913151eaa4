"""Scratch-trained controls: does compression beat simply training the smaller network?

Liu et al. (ICLR 2019, "Rethinking the Value of Network Pruning") found that a pruned architecture trained from a
fresh initialization often matches the pruned-and-retrained network. A study with ``[controls]`` asks that
question of every model, budget and seed, with two run kinds (``kind = "control"``):

- ``"scratch"``: the base architecture at the widths a compression run kept (its stored plan, rebuilt with
  ``fuse="drop"`` on a fresh copy, then re-initialized with the study's init scheme under the run's seed);
- ``"random-widths"``: the base architecture at random per-group widths (seeded) whose predicted parameters or
  multiply-adds (:func:`workbench.surgery.sizes.predict_sizes`) are within a relative tolerance of that
  compression run's (:func:`random_width_plan`).

Both are trained from scratch with the base model's training settings for as many samples as the base training
and the compression run's retraining together (Liu et al.'s "Scratch-B": the same budget, counted with
:func:`workbench.train.counting_samples`). The runner gives each control run its source run's stored plan and
metrics (``config["source_run"]``, not hashed); the summaries compare the controls, seed by seed, with that
compressed model and with the base model (:func:`workbench.study.summary.controls_table`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from workbench.errors import StudyError

#: How many random width profiles :func:`random_width_plan` tries before it gives up.
RANDOM_DRAWS = 200


class ControlError(StudyError):
    """A control run cannot be built or trained as asked (no source plan, no cost match, no training recipe)."""


def control_label(config: Mapping[str, Any]) -> str:
    """A control run's method name in tables: ``"scratch, widths of magnitude/drop"``, ``"random widths, same
    params"``."""
    if config["control"] == "scratch":
        return f"scratch, widths of {config['widths_from']}"
    return f"random widths, same {config.get('match', 'params')}"


def epoch_samples(n: int, batch_size: int, max_batches: int | None) -> int:
    """Training samples :func:`workbench.train.fit` sees per epoch of ``n`` samples: all of them, or ``max_batches``
    full batches when that stops the epoch early (only the last batch of a pass can be smaller)."""
    import torch

    from workbench.datasets.batches import Batches

    steps = len(Batches((torch.zeros(n, 1), torch.zeros(n)), batch_size, shuffle=True))
    return n if max_batches is None or max_batches >= steps else max_batches * batch_size


def _plan_of(counts: Mapping[str, int], sizes: Mapping[str, int]) -> Any:
    """A plan keeping the first ``counts[group]`` of ``sizes[group]`` units of each group (which ones does not
    matter for a network that is initialized afresh)."""
    from workbench.selection import Selection
    from workbench.surgery import Plan

    selections = {}
    for group, k in counts.items():
        n = sizes[group]
        assign = np.minimum(np.arange(n), k - 1)
        assign[k:] = 0
        selections[group] = Selection(group, n, np.arange(k), assign, np.zeros(n), method="random-widths")
    return Plan(selections=selections)


def random_width_plan(
    graph: Any, like: Any, *, cost: str = "params", tolerance: float = 0.02, random_state: int = 0
) -> tuple[Any, float]:
    """A plan of random per-group widths over the groups of plan ``like`` whose predicted ``cost`` is within
    ``tolerance`` (relative) of ``like``'s; returns it and its cost over ``like``'s.

    Each try draws a random profile ``u`` (one factor in [0.1, 1] per group) and finds by bisection the scale
    ``s`` whose widths ``round(clip(s u, 0, 1) n)`` (at least one unit) cost the target (the closer of the two
    widths the bisection ends between); the first try within ``tolerance`` is kept (:data:`RANDOM_DRAWS` tries at most).

    Raises
    ------
    ControlError
        No profile comes within ``tolerance``: the groups are too small for that precision.
    """
    from workbench.surgery.sizes import predict_sizes

    sizes = {group: selection.n_units for group, selection in like.items()}
    groups = list(sizes)
    target = float(getattr(predict_sizes(graph, like), cost))
    rng = np.random.default_rng(random_state)

    def widths(scale: float, profile: np.ndarray) -> dict[str, int]:
        return {g: max(1, round(min(1.0, scale * u) * sizes[g])) for g, u in zip(groups, profile)}

    def priced(counts: dict[str, int]) -> float:
        return float(getattr(predict_sizes(graph, _plan_of(counts, sizes)), cost))

    best = math.inf
    for _ in range(RANDOM_DRAWS):
        profile = rng.uniform(0.1, 1.0, size=len(groups))
        low, high = 0.0, 1.0 / float(profile.min())
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (mid, high) if priced(widths(mid, profile)) < target else (low, mid)
        ratio, counts = min(
            ((priced(counts) / target, counts) for counts in (widths(low, profile), widths(high, profile))),
            key=lambda found: abs(found[0] - 1.0),
        )
        best = min(best, abs(ratio - 1.0))
        if best <= tolerance:
            plan = _plan_of(counts, sizes)
            plan.meta.update({"control": "random-widths", "cost": cost, "ratio": ratio})
            return plan, ratio
    raise ControlError(
        f"no random widths of the groups {', '.join(groups)} come within {tolerance:g} of the compressed model's "
        f"{cost} in {RANDOM_DRAWS} tries (closest: {best:.3f} off); raise [controls] tolerance (e.g. to "
        f"{max(2 * tolerance, round(best + 0.005, 3)):g}) or match the other cost"
    )


def _nonlinearity(model_cfg: Mapping[str, Any]) -> str:
    """The activation a zoo model initializes its weights for (``args.activation``, else ReLU)."""
    activation = model_cfg.get("args", {}).get("activation")
    return activation if isinstance(activation, str) else "relu"


def _source(config: Mapping[str, Any]) -> dict[str, Any]:
    """The stored outcome of the control run's source compression run, as the runner gave it."""
    source = config.get("source_run")
    if not isinstance(source, Mapping) or not isinstance(source.get("plan"), Mapping):
        raise ControlError(
            f"this control run has no stored plan of its source run {config.get('source')}: control runs take the "
            "widths a compression run kept, so run them with `workbench study run` (run_study), which runs the "
            "compression run first and hands its plan over"
        )
    return dict(source)


def scratch_model(config: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """The control's network before training, its training split, its plan and the cost ratio to the source
    (1.0 for a scratch control): the base architecture rebuilt at the control's widths and initialized afresh
    under the run's seed with the study's init scheme."""
    import torch

    from workbench.graph import from_model
    from workbench.study.execute import _untrained, example_input
    from workbench.surgery import Plan, apply
    from workbench.utils import example_batch
    from workbench.zoo import init_weights_

    source = _source(config)
    model_cfg = config["model"]
    if "training" not in model_cfg:
        raise ControlError(
            f"model {model_cfg.get('label')!r} is loaded from a checkpoint: the study does not know how it was "
            "trained, so it cannot train a control the same way; switch [controls] off or train the model in the study"
        )
    fresh, train = _untrained(dict(config))
    example = example_input(fresh, model_cfg)
    graph = from_model(fresh, example if example is not None else example_batch(fresh, 2))
    plan, ratio = Plan.from_dict(source["plan"]), 1.0
    if config["control"] == "random-widths":
        plan, ratio = random_width_plan(
            graph, plan, cost=config["match"], tolerance=config["tolerance"], random_state=config["seed"]
        )
    small = apply(fresh, plan, fuse="drop", graph=graph)
    with torch.random.fork_rng():
        torch.manual_seed(config["seed"])
        init_weights_(small, model_cfg["training"].get("init", "kaiming"), _nonlinearity(model_cfg))
    return small, train, plan, ratio


def samples_budget(config: Mapping[str, Any], n_train: int) -> tuple[int, int, int]:
    """The control's training budget: ``(base samples, retraining samples of the source run, samples per epoch
    of the base's training settings)``; the control trains for their sum."""
    training = config["model"]["training"]
    per_epoch = epoch_samples(n_train, training["batch_size"], training.get("max_batches"))
    retrain = int(_source(config).get("metrics", {}).get("retrain_samples") or 0)
    return training["epochs"] * per_epoch, retrain, per_epoch


def run_control(config: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build, train and measure one control run (see the module docstring); returns its metrics and plan."""
    from workbench.compression import measure
    from workbench.study.execute import _class_scores, _metrics, _val_scores, example_input, load_data
    from workbench.train import fit
    from workbench.train.history import counting_samples

    small, train, plan, ratio = scratch_model(config)
    training, seed = config["model"]["training"], config["seed"]
    base_samples, retrain_samples, per_epoch = samples_budget(config, len(train))
    target = base_samples + retrain_samples
    epochs = max(1, round(target / per_epoch))
    if epochs * per_epoch != target:
        notes.append(
            f"trained {epochs} epochs ({epochs * per_epoch:,} samples): the closest whole number of epochs to the "
            f"budget of {target:,} samples"
        )
    with counting_samples() as count:
        history = fit(
            small,
            train,
            epochs=epochs,
            batch_size=training["batch_size"],
            optimizer=training["optimizer"],
            lr=training["lr"],
            weight_decay=training["weight_decay"],
            schedule=training["schedule"],
            max_batches=training.get("max_batches"),
            class_weights=training.get("class_weights", "none"),
            random_state=seed,
            quiet=True,
        )
    test = load_data(config["model"], "test")
    example = example_input(small, config["model"])
    metrics = _metrics(measure(small, test, latency=config.get("latency", True), example_input=example))
    metrics.update(_val_scores(small, config))
    metrics.update(_class_scores(small, test))
    source_metrics = _source(config).get("metrics", {})
    metrics.update(
        {
            "train_samples": count.samples,
            "samples_target": target,
            "base_train_samples": base_samples,
            "source_retrain_samples": retrain_samples,
            "epochs": epochs,
            "train_seconds": round(float(sum(history.seconds)), 3),
            "teacher": "none",
            "kept_fraction": plan.kept_fraction,
            "widths": {group: selection.k for group, selection in plan.items()},
            "cost_ratio": ratio,
            **{f"source_{key}": source_metrics[key] for key in ("params", "macs", "accuracy") if key in source_metrics},
        }
    )
    if "base_accuracy" in source_metrics:
        metrics["base_accuracy"] = source_metrics["base_accuracy"]
    plan.meta.update({"control": config["control"], "source": config["source"]})
    return metrics, plan.to_dict()
