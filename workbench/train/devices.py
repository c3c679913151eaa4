"""Where training runs: the device of a model, and batches moved there in the model's dtype."""

from __future__ import annotations

from typing import Any

import torch

from workbench.errors import ConfigError
from workbench.metrics.forward import model_device
from workbench.train.outputs import check_materialized


def resolve_device(model: torch.nn.Module, device: str | torch.device | None) -> torch.device:
    """``device`` as a :class:`torch.device`; the model's own device when ``None``. A model whose parameters are
    on the meta device (no values) is refused here, before anything runs it
    (:func:`~workbench.train.outputs.check_materialized`)."""
    check_materialized(model)
    if device is None:
        return model_device(model)
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r}: {exc}. Use 'cpu', 'cuda' or 'cuda:0'.") from None


def to_device(inputs: Any, targets: Any, device: torch.device, dtype: torch.dtype | None) -> tuple[Any, Any]:
    """Move a batch to ``device``; floating inputs take the model's dtype, integer targets become int64."""
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.to(device)
        if dtype is not None and inputs.is_floating_point() and inputs.dtype != dtype:
            inputs = inputs.to(dtype)
    if isinstance(targets, torch.Tensor):
        targets = targets.to(device)
        if not targets.is_floating_point() and targets.dtype != torch.int64 and targets.dtype != torch.bool:
            targets = targets.long()
    return inputs, targets
