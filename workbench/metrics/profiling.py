"""One call for everything a compressed model is compared on: size, operations, storage and latency."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from workbench.errors import ModelError
from workbench.metrics.counting import count_macs, count_params, dense_bytes
from workbench.metrics.latency import LATENCY_THREADS, batch_latency, measure_latency


@dataclass(frozen=True)
class Profile:
    """Cost figures of a model on one example input.

    Attributes
    ----------
    params
        Number of parameters.
    macs
        Multiply-accumulate operations of one forward pass on the example input (the whole batch).
    dense_bytes
        Bytes of parameters and buffers as stored.
    latency_ms, latency_iqr_ms
        Median and interquartile range of the forward time of the example input in milliseconds, on
        :data:`~workbench.metrics.latency.LATENCY_THREADS` CPU threads (``None`` when not measured).
    latency_b64_ms
        Median forward time of a batch of 64 copies of the example's first sample (``None`` when not measured).
    input_shape
        Shape of the example input, batch dimension included.
    """

    params: int
    macs: int
    dense_bytes: int
    latency_ms: float | None
    latency_iqr_ms: float | None
    input_shape: tuple[int, ...]
    latency_b64_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The figures as a JSON-friendly dict (``input_shape`` as a list)."""
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        return out


def profile(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    latency: bool = True,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = LATENCY_THREADS,
) -> Profile:
    """Parameters, multiply-adds, stored bytes and (optionally) latency of ``model`` on ``example_input``
    and on a batch of 64 (both on ``threads`` CPU threads; None: as torch is set).

    Raises
    ------
    ModelError
        ``example_input`` is not a tensor, or does not fit the model (the message gives the expected shape).
    """
    if not isinstance(example_input, torch.Tensor):
        raise ModelError(
            f"example_input must be a tensor, got {type(example_input).__name__}; "
            "workbench.zoo.example_input(model) makes one."
        )
    macs = count_macs(model, example_input)
    timing = measure_latency(model, example_input, warmup=warmup, repeats=repeats, threads=threads) if latency else None
    large = batch_latency(model, example_input, threads=threads) if latency else None
    return Profile(
        params=count_params(model),
        macs=macs,
        dense_bytes=dense_bytes(model),
        latency_ms=None if timing is None else timing["median_ms"],
        latency_iqr_ms=None if timing is None else timing["iqr_ms"],
        input_shape=tuple(int(d) for d in example_input.shape),
        latency_b64_ms=None if large is None else large["median_ms"],
    )
