"""How much memory a zoo model needs, estimated from its spec before it is built.

The model is built on PyTorch's ``meta`` device (shapes only, no storage) and run once on a meta input,
so the figures come from the real architecture without allocating it: the parameter bytes and the
bytes of every layer's output for the given batch. :func:`check_memory` compares a conservative
peak (parameters, and for training their gradients and two optimizer moments; every layer's output,
kept for the backward pass, and its gradient) with the memory this machine has, and refuses with the
figures a model that cannot fit, instead of letting the allocator fail deep inside torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.errors import ModelError, WorkbenchError


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of a model's parameters, of one input batch, and of its layers' outputs for that batch
    (``activations``: all of them; ``largest``: the largest one)."""

    params: int
    input: int
    activations: int
    largest: int

    def peak(self, training: bool = False) -> int:
        """Bytes needed at most: to train (parameters x 4 for gradients and Adam's moments, every
        activation twice for the backward pass) or to run the model (parameters, input, the two
        largest activations)."""
        if training:
            return 4 * self.params + self.input + 2 * self.activations
        return self.params + self.input + 2 * self.largest


def available_memory() -> int:
    """Bytes of memory this machine can give a process now (``MemAvailable``, else the physical memory)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: do not refuse


def estimate_memory(
    name: str,
    batch_size: int = 1,
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    **kwargs: Any,
) -> MemoryEstimate | None:
    """Estimate the memory of zoo model ``name`` built with ``kwargs`` on a batch of ``batch_size``.

    With ``input_shape`` and ``num_classes`` the model is sized for that data
    (:func:`workbench.zoo.create_model_for_data`); otherwise its own ``input_shape`` is used. Returns
    None when the architecture cannot be built or run on the meta device (then nothing is known).

    Raises
    ------
    WorkbenchError
        The arguments are invalid for the model (the same error building it would raise).
    """
    from workbench.zoo import create_model, create_model_for_data

    try:
        with torch.device("meta"):
            if input_shape is not None:
                model = create_model_for_data(name, tuple(input_shape), int(num_classes or 2), **kwargs)
            else:
                model = create_model(name, **kwargs)
    except WorkbenchError:
        raise
    except Exception:  # noqa: BLE001 - an architecture the meta device cannot build: no estimate
        return None
    params = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    shape = tuple(input_shape) if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        return MemoryEstimate(params=params, input=0, activations=0, largest=0)
    example = torch.empty(batch_size, *shape, device="meta")
    sizes: list[int] = []

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * output.element_size())

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model.eval()(example)
    except Exception:  # noqa: BLE001 - an op without a meta kernel: what was seen so far is a lower bound
        pass
    finally:
        for hook in hooks:
            hook.remove()
    return MemoryEstimate(
        params=params,
        input=example.numel() * example.element_size(),
        activations=sum(sizes),
        largest=max(sizes, default=0),
    )


def check_memory(
    name: str,
    batch_size: int = 1,
    *,
    training: bool = False,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    **kwargs: Any,
) -> MemoryEstimate | None:
    """:func:`estimate_memory`, refused with the figures when its :meth:`~MemoryEstimate.peak` exceeds
    :func:`available_memory`.

    Raises
    ------
    ModelError
        The model (with its batch) needs more memory than this machine has available.
    """
    from workbench.metrics.table import format_bytes as _gb

    estimate = estimate_memory(name, batch_size, input_shape=input_shape, num_classes=num_classes, **kwargs)
    if estimate is None:
        return None
    need, have = estimate.peak(training), available_memory()
    if need > have:
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        raise ModelError(
            f"{name}({args}) with a batch of {batch_size} needs about {_gb(need)} of memory to "
            f"{'train' if training else 'run'} (parameters {_gb(estimate.params)}, input {_gb(estimate.input)}, "
            f"layer outputs {_gb(estimate.activations)}), more than the {_gb(have)} available; "
            "choose smaller widths, resolution or batch size."
        )
    return estimate
