"""Optimizers and learning-rate schedules by name."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from workbench.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "step", "constant", "onecycle")


def check_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; ConfigError listing them otherwise."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"unknown {kind} {value!r}; choose one of {', '.join(choices)}.")
    return value


def make_optimizer(
    groups: Sequence[dict[str, Any]], name: str, lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer:
    """``adam``, ``adamw`` or ``sgd`` (with ``momentum``) over torch parameter ``groups``.

    Each group is a dict with ``"params"`` and optional options (``"lr"``, ``"weight_decay"``, ...) that
    override the defaults given here. Parameters that do not require gradients are left out.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    groups = [{**group, "params": [p for p in group["params"] if p.requires_grad]} for group in groups]
    groups = [group for group in groups if group["params"]]
    if not groups:
        raise ConfigError("there are no trainable parameters (every requires_grad is False); nothing to fit.")
    try:
        if name == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
        if name == "adamw":
            return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    except ValueError as exc:  # e.g. a parameter in two groups, or a negative group lr
        raise ConfigError(f"the optimizer's parameter groups are invalid: {exc}") from None


def make_schedule(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    epochs: int,
    steps_per_epoch: int,
    step_size: int | None,
    gamma: float,
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-batch learning-rate schedule over ``epochs * steps_per_epoch`` steps.

    ``cosine`` anneals from the base rate to zero; ``step`` multiplies it by ``gamma`` every ``step_size``
    epochs (default: a third of the epochs); ``constant`` keeps it; ``onecycle`` warms up then anneals
    (:class:`torch.optim.lr_scheduler.OneCycleLR` with the base rate as its peak).
    """
    check_choice("schedule", name, SCHEDULES)
    total = max(1, epochs * steps_per_epoch)
    if name == "onecycle":
        peak = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=total + 1)
    if name == "cosine":
        factor = lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))  # noqa: E731
    elif name == "step":
        every = step_size if step_size is not None else max(1, epochs // 3)
        factor = lambda step: gamma ** ((step // steps_per_epoch) // every)  # noqa: E731
    else:
        factor = lambda step: 1.0  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
