"""Static size and cost of a model: parameters, multiply-adds and stored bytes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from workbench.metrics.forward import checked_forward, evaluation_mode, on_model_device


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (shared parameters counted once).

    Parameters
    ----------
    trainable_only
        Count only parameters with ``requires_grad``.
    """
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def count_macs(model: nn.Module, example_input: Any) -> int:
    """Multiply-accumulate operations of one forward pass of ``model`` on ``example_input`` (the whole batch).

    Counted with :class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions,
    grouped and depthwise ones included; bias additions, activations and pooling are not counted):
    total floating-point operations // 2. Runs under ``torch.no_grad`` in eval mode and restores the
    model's mode afterwards; ``nn.MultiheadAttention``'s fused fast path is switched off meanwhile, and the fused
    CPU attention kernel (``scaled_dot_product_attention``) is counted as its two matrix products. A :class:`~workbench.errors.ModelError` if the input does not fit.
    """
    from torch.utils.flop_counter import FlopCounterMode

    inputs = on_model_device(model, example_input)
    fast_path = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel is not seen by the counter
    try:
        with evaluation_mode(model), torch.no_grad():
            counter = FlopCounterMode(display=False, custom_mapping=_attention_formulas())
            with counter:
                checked_forward(model, inputs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
    return int(counter.get_total_flops() // 2)


def _attention_formulas() -> dict[Any, Any]:
    """Flop formulas of the fused attention kernels the counter does not know (the CPU one: 0 flops otherwise)."""
    from torch.utils.flop_counter import sdpa_flop_count

    def sdpa(
        query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any
    ) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    ops = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_fused_attention_overrideable")
    return {getattr(torch.ops.aten, name): sdpa for name in ops if hasattr(torch.ops.aten, name)}


def _unique(tensors: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    seen: set[int] = set()
    unique = []
    for tensor in tensors:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            unique.append(tensor)
    return unique


def _nbytes(tensors: Iterable[torch.Tensor]) -> int:
    return int(sum(t.numel() * t.element_size() for t in _unique(tensors)))


def param_bytes(model: nn.Module) -> int:
    """Bytes the parameters of ``model`` take as stored (their dtype's element size times their size)."""
    return _nbytes(model.parameters())


def dense_bytes(model: nn.Module) -> int:
    """Bytes of the model stored dense, without any compression: every parameter and buffer (e.g. batch-norm
    statistics) at its dtype, and a parametrized tensor (masked, quantized, shared, hashed weights) at the
    size of the tensor it computes with, not of what it is made from (masks, codebooks, indices)."""
    from torch.nn.utils import parametrize

    tensors: list[torch.Tensor] = []
    inner: list[torch.Tensor] = []  # what parametrizations hold: counted through their result instead
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name, chain in module.parametrizations.items():
                tensors.append(getattr(module, name).detach())
                inner += [*chain.parameters(), *chain.buffers()]
    hidden = {id(t) for t in inner}
    tensors += [t for t in (*model.parameters(), *model.buffers()) if id(t) not in hidden]
    return _nbytes(tensors)
