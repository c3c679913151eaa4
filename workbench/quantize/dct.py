"""Orthonormal DCT-II of convolution kernels over their spatial axes (differentiable torch version).

Matches ``scipy.fft.dctn(w, axes=kernel_axes, norm="ortho")``; the inverse is exact (orthonormal basis).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch


@lru_cache(maxsize=64)
def _dct_matrix(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def dct_matrix(n: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The ``n x n`` orthonormal DCT-II matrix ``C`` (``coef = C @ x``, ``x = C.T @ coef``)."""
    return _dct_matrix(int(n)).to(dtype=dtype, device=device)


def _apply(weight: torch.Tensor, inverse: bool) -> torch.Tensor:
    out = weight
    spatial = weight.dim() - 2
    for axis in range(2, 2 + spatial):
        n = weight.shape[axis]
        c = dct_matrix(n, weight.dtype, weight.device)
        if inverse:
            c = c.T
        out = torch.movedim(torch.tensordot(out, c, dims=([axis], [1])), -1, axis)
    return out


def dct_kernels(weight: torch.Tensor) -> torch.Tensor:
    """DCT coefficients of every kernel of a conv weight ``(out, in, *kernel)`` over the kernel axes."""
    return _apply(weight, inverse=False)


def idct_kernels(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct_kernels`."""
    return _apply(coefficients, inverse=True)


def frequency_band(kernel_shape: tuple[int, ...]) -> torch.Tensor:
    """Band index of each kernel frequency: the sum of its frequency indices (0 = the DC term)."""
    grids = torch.meshgrid(*[torch.arange(n) for n in kernel_shape], indexing="ij")
    return sum(grids) if grids else torch.zeros(())
