"""A minimal training loop on in-memory tensors, for transforms that need their own optimizer settings.

``workbench.train.fit`` is the general trainer; this loop exists for the few transforms that optimize
extra parameters with their own learning rates (soft weight-sharing's mixture prior) and for quick
checks on toy problems. It calls the same hooks as ``fit`` (``before_step``, ``after_step``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from workbench.errors import CompressionError

from workbench.utils import RandomState, seed_from


def as_tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` from a data set with ``.inputs``/``.targets`` or a pair of tensors/arrays."""
    if hasattr(data, "inputs") and hasattr(data, "targets"):
        x, y = data.inputs, data.targets
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    else:
        raise CompressionError(
            f"training data must have .inputs and .targets or be an (inputs, targets) pair, got {type(data).__name__}."
        )
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if x.is_floating_point() is False:
        x = x.float()
    return x, y


def train_steps(
    model: nn.Module,
    data: Any,
    *,
    steps: int = 100,
    batch_size: int = 64,
    lr: float = 1e-2,
    optimizer: str = "adam",
    param_groups: Sequence[dict] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    hooks: Iterable[Any] = (),
    keep_masks: bool = True,
    random_state: RandomState = 0,
) -> list[float]:
    """Train ``model`` for ``steps`` mini-batch steps; returns the loss of every step.

    As in ``workbench.train.fit``, a model carrying pruning masks keeps its pruned weights at zero
    unless ``keep_masks`` is False.

    ``param_groups`` (torch optimizer groups) replaces ``model.parameters()`` when given, so extra
    parameters (e.g. a prior's) can be trained with their own learning rates.
    """
    x, y = as_tensors(data)
    if x.shape[0] == 0:
        raise CompressionError("training data is empty.")
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = list(param_groups) if param_groups is not None else [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr)
    else:
        raise CompressionError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}.")
    hooks = list(hooks)
    generator = torch.Generator().manual_seed(seed_from(random_state))
    losses = []
    model.train()
    order = torch.randperm(x.shape[0], generator=generator)
    cursor = 0
    for _ in range(int(steps)):
        if cursor + batch_size > x.shape[0]:
            order = torch.randperm(x.shape[0], generator=generator)
            cursor = 0
        idx = order[cursor : cursor + batch_size]
        cursor += batch_size
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        if penalty is not None:
            loss = loss + penalty(model)
        loss.backward()
        for hook in hooks:
            if hasattr(hook, "before_step"):
                hook.before_step(model)
        opt.step()
        for hook in hooks:
            if hasattr(hook, "after_step"):
                hook.after_step(model)
        losses.append(float(loss.detach()))
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, data: Any, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on ``data`` (in eval mode)."""
    x, y = as_tensors(data)
    model.eval()
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        correct += int((model(x[start : start + batch_size]).argmax(1) == y[start : start + batch_size]).sum())
    return correct / max(x.shape[0], 1)
