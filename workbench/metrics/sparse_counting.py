"""Multiply-adds of a sparse model: a zero weight costs nothing.

:func:`count_macs` counts every weight of a Linear or convolution at every output position, zeros
included; a sparse implementation (CSR matrix-vector products, sparse convolution kernels) multiplies only
the nonzero ones. :func:`layer_macs` gives both counts per layer, from the layers' output shapes on one
forward pass; :func:`count_sparse_macs` is the model's total with the layers' dense counts replaced by
their sparse ones (every other operation counted as :func:`count_macs` counts it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workbench.metrics.forward import checked_forward, evaluation_mode, on_model_device

SPARSE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class LayerMacs:
    """Multiply-adds of one layer on the example input: all weights, and nonzero weights only."""

    name: str
    dense: int
    sparse: int


def _positions(module: nn.Module, output: torch.Tensor) -> int:
    """Output positions at which every weight of ``module`` is used once (batch and spatial)."""
    channels = module.out_features if isinstance(module, nn.Linear) else module.out_channels
    return int(output.numel() // channels)


def _forward(model: nn.Module, example_input: Any) -> tuple[list[LayerMacs], int]:
    """Per-layer counts and the total of :func:`count_macs`, from one forward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    rows: list[LayerMacs] = []

    def hook(name: str):
        def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            weight = module.weight.detach()
            positions = _positions(module, output)
            rows.append(LayerMacs(name, positions * int(weight.numel()), positions * int((weight != 0).sum())))

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if isinstance(module, SPARSE_LAYERS)
    ]
    try:
        inputs = on_model_device(model, example_input)
        with evaluation_mode(model), torch.no_grad():
            counter = FlopCounterMode(display=False)
            with counter:
                checked_forward(model, inputs)
    finally:
        for handle in handles:
            handle.remove()
    return rows, int(counter.get_total_flops() // 2)


def layer_macs(model: nn.Module, example_input: Any) -> list[LayerMacs]:
    """Dense and sparse multiply-adds of every Linear / convolution of ``model`` on ``example_input``
    (the whole batch), in the order they run (a layer called twice has two rows)."""
    return _forward(model, example_input)[0]


def count_sparse_macs(model: nn.Module, example_input: Any) -> int:
    """Multiply-adds of one forward pass when zero weights are skipped: :func:`count_macs` with each
    Linear / convolution counted at its nonzero weights (a masked weight counts as what it computes with)."""
    rows, total = _forward(model, example_input)
    return total - sum(row.dense - row.sparse for row in rows)
