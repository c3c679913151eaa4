"""Sparse convolutional neural networks (Liu et al., CVPR 2015): a two-stage decomposition of conv kernels.

A convolution with kernel ``K`` (n outputs, m inputs, kh x kw) is rewritten as three convolutions:

1. ``P`` -- a 1x1 convolution (m -> r) that turns the input channels into ``r`` basis channels; the basis
   is the PCA basis of the kernel unfolded along its input channels (left singular vectors of the
   m x (n kh kw) unfolding), so ``r = m`` keeps the function and ``r < m`` keeps the leading directions;
2. ``Q`` -- a grouped kh x kw convolution (r -> r q, ``groups=r``): ``q`` basis kernels per basis channel,
   the leading right singular vectors of that channel's n x (kh kw) kernel matrix;
3. ``S`` -- a 1x1 convolution (r q -> n, with the bias) holding the sparse coefficients that mix the
   ``r q`` filtered channels into the outputs: sparsified by thresholding (``threshold``: entries with
   ``|s| < threshold`` dropped, or ``density``: the largest-magnitude fraction kept, per layer) and held
   sparse by a pruning mask (:mod:`workbench.sparse.masks`), so fine-tuning keeps its zeros.

Nothing is lost with ``r = m``, ``q = min(n, kh kw)`` and no thresholding: the decomposed network
computes the same function (the exactness test). The cost per output position is ``m r`` (P, at the
input resolution) + ``r q kh kw`` (Q) + ``nnz(S)``; :func:`workbench.metrics.count_sparse_macs` counts it
from the layers' nonzeros and :func:`workbench.metrics.storage_report` stores ``S`` in CSR form (nonzero
values and their indices) when that is smaller.

The transform records the edit ``{"op": "sparse-decompose", "layers": {name: [r, q]}}``;
:func:`replay_sparse_decompose` rebuilds that architecture for :mod:`workbench.checkpoints`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from workbench.edits import record_edit
from workbench.errors import CompressionError, ConfigError
from workbench.sparse.masks import push_mask

OP = "sparse-decompose"


class SparseDecomposedConv(nn.Sequential):
    """A Conv2d as ``basis`` (1x1, m -> r), ``kernels`` (grouped kh x kw, r -> r q) and ``mix`` (1x1 sparse,
    r q -> n): the three stages of Liu et al. (2015)."""

    def __init__(self, layer: nn.Conv2d, channels: int, kernels: int) -> None:
        out_c, in_c = layer.out_channels, layer.in_channels
        kwargs = {"padding_mode": layer.padding_mode, "device": layer.weight.device, "dtype": layer.weight.dtype}
        basis = nn.Conv2d(in_c, channels, 1, bias=False, **kwargs)
        filters = nn.Conv2d(
            channels,
            channels * kernels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=channels,
            bias=False,
            **kwargs,
        )
        mix = nn.Conv2d(channels * kernels, out_c, 1, bias=layer.bias is not None, **kwargs)
        super().__init__()
        self.add_module("basis", basis)
        self.add_module("kernels", filters)
        self.add_module("mix", mix)

    @property
    def ranks(self) -> list[int]:
        """``[r, q]``: basis channels and kernels per basis channel."""
        return [self.basis.out_channels, self.kernels.out_channels // self.basis.out_channels]


def _check_conv(layer: nn.Module, name: str) -> nn.Conv2d:
    if not isinstance(layer, nn.Conv2d) or layer.groups != 1:
        kind = type(layer).__name__ + (f" with groups={layer.groups}" if isinstance(layer, nn.Conv2d) else "")
        raise CompressionError(
            f"layer {name!r} is a {kind}; sparse_decompose rewrites ungrouped nn.Conv2d layers, so leave it out of layers=."
        )
    return layer


def _count(value: int | float | None, full: int, what: str) -> int:
    """``value`` as a count in [1, full]: an int, a fraction of ``full`` in (0, 1], or None for ``full``."""
    if value is None:
        return full
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a count or a fraction in (0, 1], got {value!r}.")
    if isinstance(value, float):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{what} as a fraction must lie in (0, 1], got {value!r}.")
        return max(1, round(value * full))
    if not 1 <= value <= full:
        raise ConfigError(f"{what} must lie in [1, {full}] for this layer, got {value!r}.")
    return int(value)


def _sparsity_mask(weight: torch.Tensor, density: float | None, threshold: float | None) -> torch.Tensor | None:
    """Boolean mask of the kept coefficients (None: keep them all)."""
    if threshold is not None:
        return weight.abs() >= threshold
    if density is None or density >= 1.0:
        return None
    keep = max(1, round(density * weight.numel()))
    order = torch.argsort(weight.abs().flatten(), descending=True, stable=True)
    mask = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
    mask[order[:keep]] = True
    return mask.view_as(weight)


def decompose_conv(
    layer: nn.Conv2d,
    channels: int | float | None = None,
    kernels: int | float | None = None,
    *,
    density: float | None = None,
    threshold: float | None = None,
    name: str = "conv",
) -> SparseDecomposedConv:
    """``layer`` as a :class:`SparseDecomposedConv`.

    Parameters
    ----------
    channels
        Basis channels ``r``: a count, a fraction of the input channels, or None for all (exact).
    kernels
        Basis kernels per basis channel ``q``: a count, a fraction of ``min(n, kh kw)``, or None for all (exact).
    density, threshold
        Sparsify the mixing coefficients: keep the ``density`` fraction of largest magnitude, or drop the
        entries with ``|s| < threshold``; the kept ones are masked so they stay the only nonzeros.
    """
    layer = _check_conv(layer, name)
    if density is not None and threshold is not None:
        raise ConfigError("give density= (fraction of coefficients kept) or threshold= (|s| dropped below), not both.")
    if density is not None and (isinstance(density, bool) or not 0.0 < float(density) <= 1.0):
        raise ConfigError(f"density must be a fraction in (0, 1], got {density!r}.")
    if threshold is not None and (isinstance(threshold, bool) or not float(threshold) >= 0.0):
        raise ConfigError(f"threshold must be a number >= 0, got {threshold!r}.")
    out_c, in_c, kh, kw = layer.weight.shape
    r = _count(channels, in_c, "channels")
    q = _count(kernels, min(out_c, kh * kw), "kernels")
    weight = layer.weight.detach().double()
    unfolded = weight.transpose(0, 1).reshape(in_c, -1)  # (m, n kh kw)
    u = torch.linalg.svd(unfolded, full_matrices=False)[0][:, :r]  # (m, r): PCA basis of the input channels
    rotated = torch.einsum("nmhw,mr->rnhw", weight, u).reshape(r, out_c, kh * kw)  # kernels on the basis channels
    left, singular, right = torch.linalg.svd(rotated, full_matrices=False)  # per basis channel: (n, k) (k,) (k, kh kw)
    filters = right[:, :q, :]  # (r, q, kh kw)
    mix = (left[:, :, :q] * singular[:, None, :q]).permute(1, 0, 2).reshape(out_c, r * q)  # (n, r q)
    new = SparseDecomposedConv(layer, r, q)
    dtype = layer.weight.dtype
    with torch.no_grad():
        new.basis.weight.copy_(u.T.reshape(r, in_c, 1, 1).to(dtype))
        new.kernels.weight.copy_(filters.reshape(r * q, 1, kh, kw).to(dtype))
        new.mix.weight.copy_(mix.reshape(out_c, r * q, 1, 1).to(dtype))
        if layer.bias is not None:
            new.mix.bias.copy_(layer.bias.detach())
        mask = _sparsity_mask(new.mix.weight, density, threshold)
        if mask is not None:
            push_mask(new.mix, mask)
    return new


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _layers(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    modules = dict(model.named_modules())
    if layers is None:
        # a decomposed layer's stages are 1x1 or grouped, so they are never decomposed again
        names = [
            n for n, m in modules.items() if isinstance(m, nn.Conv2d) and m.groups == 1 and m.kernel_size != (1, 1)
        ]
        if not names:
            raise CompressionError(
                f"{type(model).__name__} has no ungrouped Conv2d layer with a kernel larger than 1x1 to decompose; "
                "sparse_decompose applies to convolutional networks (name the layers to force 1x1 ones)."
            )
        return names
    names = list(layers)
    for name in names:
        if name not in modules or not name:
            raise CompressionError(f"layer {name!r} is not in the model; layers: {', '.join(n for n in modules if n)}.")
        _check_conv(modules[name], name)
    return names


def sparse_decompose(
    model: nn.Module,
    *,
    layers: Sequence[str] | None = None,
    channels: int | float | None = None,
    kernels: int | float | None = None,
    density: float | None = None,
    threshold: float | None = None,
) -> nn.Module:
    """A copy of ``model`` whose convolutions are decomposed into basis, basis kernels and sparse mixing
    (Liu et al. 2015; see the module docstring).

    Parameters
    ----------
    layers
        Names of the Conv2d layers to decompose (default: every ungrouped Conv2d with a kernel over 1x1).
    channels, kernels
        Basis channels ``r`` and kernels per basis channel ``q`` of every layer (count or fraction; None:
        all, which keeps the function exactly when nothing is thresholded).
    density, threshold
        Sparsification of the mixing coefficients (see :func:`decompose_conv`); neither: dense.

    Fine-tune afterwards (pipeline step ``retrain``) to recover what thresholding cost: the masks keep the
    mixing layers sparse.
    """
    names = _layers(model, layers)
    result = copy.deepcopy(model)
    ranks: dict[str, list[int]] = {}
    for name in names:
        new = decompose_conv(
            result.get_submodule(name), channels, kernels, density=density, threshold=threshold, name=name
        )
        _replace(result, name, new)
        ranks[name] = new.ranks
    return record_edit(result, OP, layers=ranks)


def replay_sparse_decompose(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Rebuild the architecture a recorded ``"sparse-decompose"`` edit made (weights and masks are then
    restored by the checkpoint); in place, returns ``model``."""
    for name, (r, q) in edit["layers"].items():
        layer = _check_conv(model.get_submodule(name), name)
        _replace(model, name, SparseDecomposedConv(layer, int(r), int(q)))
    return model
