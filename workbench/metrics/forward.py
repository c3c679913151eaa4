"""Running a model on an example input: its device and dtype, eval mode, and clear errors for wrong shapes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from workbench.errors import ModelError


def describe_shape(inputs: Any) -> str:
    """``(1, 3, 32, 32)`` for a tensor, the type name otherwise."""
    if isinstance(inputs, torch.Tensor):
        return str(tuple(inputs.shape))
    return type(inputs).__name__


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode; restore every submodule's train/eval mode on exit."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def on_model_device(model: nn.Module, inputs: Any) -> Any:
    """``inputs`` moved to the device of ``model`` (tensors only; anything else is returned as it is)."""
    if isinstance(inputs, torch.Tensor):
        device = model_device(model)
        if inputs.device != device:
            return inputs.to(device)
    return inputs


def checked_forward(model: nn.Module, inputs: Any) -> Any:
    """``model(inputs)``; a :class:`ModelError` naming the expected and given shapes if the input does not fit.

    The expected shape comes from ``model.input_shape`` (without the batch dimension) when the model has it.
    """
    try:
        return model(inputs)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        expected = getattr(model, "input_shape", None)
        want = f"(N, {', '.join(map(str, expected))})" if expected is not None else "the shape its first layer takes"
        raise ModelError(
            f"{type(model).__name__} cannot run on an input of shape {describe_shape(inputs)}: it expects {want}. "
            f"Give an input of that shape (workbench.zoo.example_input(model) makes one). Torch said: {exc}"
        ) from exc


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the first parameter or buffer of ``model`` (CPU for a module without any)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def model_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """Floating dtype of the first floating parameter of ``model`` (``None`` when it has none)."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None
