"""Wall-clock latency of a forward pass, at batch 1 and at a large batch, with the CPU threads fixed."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.errors import ConfigError
from workbench.metrics.forward import checked_forward, evaluation_mode, model_device, on_model_device

#: CPU threads every profiled latency uses, so that figures taken on a busy or a larger machine compare.
LATENCY_THREADS = 1
#: The large batch of :func:`batch_latency` (``latency_b64_ms`` of a profile).
LARGE_BATCH = 64


def measure_latency(
    model: nn.Module, example_input: Any, *, warmup: int = 3, repeats: int = 10, threads: int | None = None
) -> dict[str, float | int]:
    """Time forward passes of ``model`` on ``example_input`` (no_grad, eval mode).

    Parameters
    ----------
    warmup
        Untimed passes first (allocations, caches).
    repeats
        Timed passes (``time.perf_counter``; CUDA is synchronised around each).
    threads
        If given, ``torch.set_num_threads(threads)`` during the measurement, restored afterwards.

    Returns
    -------
    dict
        ``median_ms``, ``iqr_ms`` (75th minus 25th percentile), ``min_ms``, ``repeats`` and ``threads``
        (the number of threads used).
    """
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"warmup must be an integer >= 0, got {warmup!r}.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be an integer >= 1, got {repeats!r}.")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be None or an integer >= 1, got {threads!r}.")
    inputs = on_model_device(model, example_input)
    cuda = model_device(model).type == "cuda"
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        used_threads = torch.get_num_threads()
        times = []
        with evaluation_mode(model), torch.no_grad():
            for i in range(warmup + repeats):
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                checked_forward(model, inputs)
                if cuda:
                    torch.cuda.synchronize()
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000.0)
    finally:
        torch.set_num_threads(previous_threads)
    q25, median, q75 = np.percentile(times, [25, 50, 75])
    return {
        "median_ms": float(median),
        "iqr_ms": float(q75 - q25),
        "min_ms": float(min(times)),
        "repeats": repeats,
        "threads": used_threads,
    }


def batch_latency(
    model: nn.Module,
    example_input: torch.Tensor,
    batch_size: int = LARGE_BATCH,
    *,
    warmup: int = 1,
    repeats: int = 5,
    threads: int | None = LATENCY_THREADS,
) -> dict[str, float | int]:
    """:func:`measure_latency` on a batch of ``batch_size`` copies of ``example_input``'s first sample.

    Batch 1 shows the delay of one request; a large batch shows throughput, where fewer channels pay
    off more fully than at batch 1 (whose time is dominated by per-layer overheads on small networks).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 1 or len(example_input) < 1:
        raise ConfigError("example_input must be a tensor with a batch dimension and at least one sample.")
    batch = example_input[:1].expand(batch_size, *example_input.shape[1:]).contiguous()
    return measure_latency(model, batch, warmup=warmup, repeats=repeats, threads=threads)
