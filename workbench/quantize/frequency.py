"""Convolution filters in the frequency domain.

- :func:`dct_compress` (CNNpack, Wang et al., NIPS 2016): DCT of every kernel, small coefficients
  dropped, the kept ones shared by k-means; the layer keeps the coefficient centroids as parameters and
  rebuilds its weight by the inverse DCT (so it can be fine-tuned). Stored like Deep Compression.
- :func:`hashed_dct` (FreshNets, Chen et al., KDD 2016): each DCT coefficient of each kernel is mapped by a
  hash of (layer, filter, channel, frequency) to one of a few shared buckets (with a hashed sign); low
  frequency bands get more buckets. The buckets are the layer's parameters; the weight is the inverse DCT.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.edits import record_edit, restorable
from workbench.errors import CompressionError
from workbench.quantize.dct import dct_kernels, frequency_band, idct_kernels
from workbench.quantize.sharing import INITS, check_bits, shared_layer
from workbench.sparse.layers import CONV_LAYERS, attach, maybe_copy, per_layer, per_layer_fraction, weight_layers
from workbench.utils import RandomState, check_random_state, seed_from


def dct_compress(
    model: nn.Module,
    *,
    keep: float | dict = 0.5,
    bits: int | dict = 8,
    init: str = "linear",
    index_bits: int = 4,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
    random_state: RandomState = 0,
) -> nn.Module:
    """CNNpack-style compression of the conv layers.

    Parameters
    ----------
    keep
        Fraction (0, 1] of DCT coefficients kept per layer (the largest in magnitude).
    bits
        Bits per codebook index of the kept coefficients.
    index_bits
        Relative-index gap width of the stored coefficient positions.
    """
    if init not in INITS:
        raise CompressionError(f"unknown k-means init {init!r}; choose from {', '.join(INITS)}.")
    model = maybe_copy(model, inplace)
    rng = check_random_state(random_state)
    for name, module in weight_layers(model, layers, types=CONV_LAYERS, what="dct_compress"):
        fraction = per_layer_fraction(keep, name, module, "keep")
        b = check_bits(per_layer(bits, name, module, "bits"), name, "bits")
        ib = check_bits(index_bits, name, "index_bits")
        coef = dct_kernels(module.weight.detach().double()).float()
        n_keep = max(1, int(round(fraction * coef.numel())))
        order = torch.argsort(coef.abs().flatten(), descending=True, stable=True)
        mask = torch.zeros(coef.numel(), dtype=torch.bool)
        mask[order[:n_keep]] = True
        mask = mask.view_as(coef)
        attach(module, shared_layer(coef, b, mask=mask, init=init, random_state=rng, index_bits=ib, domain="dct"))
    return record_edit(
        model, "dct", keep=keep, bits=bits, index_bits=index_bits, layers=None if layers is None else list(layers)
    )


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_keys(layer: str, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of (layer, filter, channel, frequency) for every weight position."""
    layer_id = np.uint64(zlib.crc32(layer.encode("utf-8")))
    idx = np.arange(int(np.prod(shape)), dtype=np.uint64).reshape(shape)
    # position -> (filter, channel, frequency) is a bijection with the flat index for a fixed shape
    with np.errstate(over="ignore"):
        key = idx + (layer_id << np.uint64(32)) + np.uint64(seed) * np.uint64(0x632BE59BD9B4E019)
    h1 = _splitmix64(key)
    h2 = _splitmix64(h1 ^ np.uint64(0xD1B54A32D192ED03))
    return h1, h2


def band_budgets(bands: torch.Tensor, total: int, decay: float = 1.0) -> np.ndarray:
    """Buckets per frequency band: proportional to ``count_in_band / (1 + band) ** decay``, at least 1 each.

    Low-frequency bands (small ``u + v``) get a larger share per coefficient than high ones.
    """
    values = np.asarray(bands).ravel()
    n_bands = int(values.max()) + 1
    counts = np.bincount(values, minlength=n_bands).astype(float)
    weights = counts / (1.0 + np.arange(n_bands)) ** decay
    share = weights / weights.sum() * total
    budget = np.maximum(1, np.floor(share)).astype(int)
    budget = np.minimum(budget, counts.astype(int))  # never more buckets than coefficients
    # hand out what floor() left, to the largest fractional parts
    left = total - int(budget.sum())
    frac = share - np.floor(share)
    for b in np.argsort(-frac):
        if left <= 0:
            break
        if budget[b] < counts[b]:
            budget[b] += 1
            left -= 1
    return budget


@restorable("hashed-dct")
class HashedDCTWeight(nn.Module):
    """Weight parametrization: ``weight = idct(sign * buckets[bucket_index])``; the buckets are the parameter."""

    def __init__(self, weight: torch.Tensor, n_buckets: int, layer: str, seed: int, decay: float = 1.0) -> None:
        super().__init__()
        shape = tuple(weight.shape)
        kernel = shape[2:]
        bands = frequency_band(kernel).numpy().astype(np.int64)
        band_of = np.broadcast_to(bands, shape)
        budget = band_budgets(torch.from_numpy(bands.ravel().repeat(shape[0] * shape[1])), n_buckets, decay)
        starts = np.concatenate([[0], np.cumsum(budget)[:-1]])
        h1, h2 = hash_keys(layer, shape, seed)
        within = (h1 % np.maximum(budget[band_of], 1).astype(np.uint64)).astype(np.int64)
        index = starts[band_of] + within
        sign = np.where((h2 >> np.uint64(63)) == 1, 1.0, -1.0).astype(np.float32)
        self.register_buffer("bucket_index", torch.from_numpy(index))
        self.register_buffer("sign", torch.from_numpy(sign))
        self.n_buckets = int(budget.sum())
        self.band_budget = budget.tolist()
        self.settings = {"n_buckets": int(n_buckets), "layer": layer, "seed": int(seed), "decay": float(decay)}
        coef = dct_kernels(weight.detach().double()).float().flatten()
        signed = coef * self.sign.flatten()
        sums = torch.zeros(self.n_buckets).index_add_(0, self.bucket_index.flatten(), signed)
        counts = torch.zeros(self.n_buckets).index_add_(0, self.bucket_index.flatten(), torch.ones_like(signed))
        self._initial = sums / counts.clamp_min(1)  # least-squares bucket values for the given weight

    def config(self) -> dict[str, Any]:
        """Constructor settings, for checkpoints (the hash rebuilds the indices and signs)."""
        return dict(self.settings)

    @classmethod
    def placeholder(cls, config: dict[str, Any], shape: tuple[int, ...]) -> HashedDCTWeight:
        """The parametrization of a weight of ``shape``; ``load_state_dict`` fills in the buckets."""
        return cls(torch.zeros(shape), config["n_buckets"], config["layer"], config["seed"], config["decay"])

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self._initial.clone().to(weight.device)

    def forward(self, buckets: torch.Tensor) -> torch.Tensor:
        return idct_kernels(buckets[self.bucket_index] * self.sign)

    def storage(self, module: nn.Module):
        """The buckets at 32 bits; indices and signs come from the hash and are not stored."""
        from workbench.metrics.storage import WeightStorage

        w = module.weight.detach()
        return WeightStorage(
            "hashed-dct",
            self.n_buckets * 32 + 64,
            int((w != 0).sum()),
            {"buckets": self.n_buckets, "band_budget": self.band_budget},
        )


def hashed_dct(
    model: nn.Module,
    *,
    compression: float | dict = 0.125,
    decay: float = 1.0,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
    random_state: RandomState = 0,
) -> nn.Module:
    """FreshNets: replace each conv weight by hashed DCT buckets (``compression`` x its size of them)."""
    model = maybe_copy(model, inplace)
    seed = seed_from(random_state)
    for name, module in weight_layers(model, layers, types=CONV_LAYERS, what="hashed_dct"):
        c = per_layer_fraction(compression, name, module, "compression")
        n = max(1, int(round(c * module.weight.numel())))
        attach(module, HashedDCTWeight(module.weight, n, name, seed, decay))
    return record_edit(
        model,
        "hashed-dct",
        compression=compression,
        decay=decay,
        seed=seed,
        layers=None if layers is None else list(layers),
    )
