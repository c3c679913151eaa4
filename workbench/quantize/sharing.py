"""Weight sharing by k-means and trained quantization (Deep Compression, Han et al., ICLR 2016).

Each layer's (nonzero) weights are clustered into ``2**bits`` values (``2**bits - 1`` plus the exact zero
when the layer is pruned). The layer then holds only the centroids as a parameter; a buffer says which
centroid each weight uses. Training the model afterwards is *trained quantization*: the gradient of a
centroid is the sum of the gradients of the weights sharing it (the gather's backward), and every
weight stays in its cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.edits import record_edit, restorable, set_note
from workbench.errors import CompressionError
from workbench.numeric import as_int
from workbench.quantize.coding import EncodedLayer, decode_layer, encode_layer
from workbench.quantize.dct import idct_kernels
from workbench.sparse.layers import attach, layer_kind, maybe_copy, per_layer, weight_layers, weight_parametrization
from workbench.utils import RandomState, check_random_state

INITS = ("linear", "density", "random")
#: Deep Compression's relative-index widths: 8 bits for conv layers, 5 for fully connected ones.
DEFAULT_INDEX_BITS = {"conv": 8, "linear": 5}


def check_bits(bits, layer: str, parameter: str = "bits", low: int = 1, high: int = 16) -> int:
    """``bits`` as an int in ``[low, high]``; CompressionError naming ``layer`` and ``parameter`` otherwise."""
    return as_int(bits, f"{parameter} for layer {layer!r}", low=low, high=high, error=CompressionError)


def kmeans_1d(
    values: np.ndarray, k: int, init: str = "linear", random_state: RandomState = 0, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars; returns ``(sorted centroids, label of each value)``.

    ``init``: ``"linear"`` (evenly spaced between min and max -- the paper's best), ``"density"`` (evenly
    spaced quantiles of the values) or ``"random"`` (``k`` values drawn from the data).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if init not in INITS:
        raise CompressionError(f"unknown k-means init {init!r}; choose from {', '.join(INITS)}.")
    if x.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    unique = np.unique(x)
    if unique.size <= k:
        return unique, np.searchsorted(unique, x)
    if init == "linear":
        c = np.linspace(x.min(), x.max(), k)
    elif init == "density":
        c = np.quantile(x, np.linspace(0.0, 1.0, k))
    else:
        c = check_random_state(random_state).choice(unique, size=k, replace=False)
    c = np.sort(c)
    labels = np.zeros(x.size, dtype=np.int64)
    for _ in range(max_iter):
        bounds = (c[1:] + c[:-1]) / 2.0
        labels = np.searchsorted(bounds, x)
        sums = np.bincount(labels, weights=x, minlength=k)
        counts = np.bincount(labels, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        order = np.argsort(new, kind="stable")
        new = new[order]
        if np.allclose(new, c, rtol=0, atol=1e-12):
            c = new
            break
        c = new
    bounds = (c[1:] + c[:-1]) / 2.0
    labels = np.searchsorted(bounds, x)
    return c, labels


@restorable("shared")
class SharedWeight(nn.Module):
    """Weight parametrization: ``weight = decode(centroids[index] * mask)``; the centroids are the parameter.

    ``domain="spatial"`` decodes to the weight itself; ``domain="dct"`` treats the shared values as DCT
    coefficients of each kernel and decodes by the inverse DCT (CNNpack). Implements ``storage(module)``
    for :func:`workbench.metrics.storage.storage_report` from the real Huffman-coded streams.
    """

    def __init__(
        self,
        index: torch.Tensor,
        centroids: torch.Tensor,
        bits: int,
        mask: torch.Tensor | None = None,
        index_bits: int | None = None,
        domain: str = "spatial",
    ) -> None:
        super().__init__()
        if domain not in ("spatial", "dct"):
            raise CompressionError(f"domain must be 'spatial' or 'dct', got {domain!r}.")
        self.register_buffer("index", index.to(torch.long))
        self.register_buffer("mask", None if mask is None else mask.to(torch.bool))
        self.bits = int(bits)
        self.index_bits = index_bits
        self.domain = domain
        self._initial = centroids.detach().to(torch.float32).clone()

    def config(self) -> dict[str, Any]:
        """Settings and sizes, for checkpoints (index, mask and centroids come from the state_dict)."""
        return {
            "bits": self.bits,
            "index_bits": self.index_bits,
            "domain": self.domain,
            "centroids": int(self._initial.numel()),
            "masked": self.mask is not None,
        }

    @classmethod
    def placeholder(cls, config: dict[str, Any], shape: tuple[int, ...]) -> SharedWeight:
        """A parametrization of the saved sizes for ``load_state_dict`` to fill."""
        mask = torch.ones(shape, dtype=torch.bool) if config["masked"] else None
        return cls(
            torch.zeros(shape, dtype=torch.long),
            torch.zeros(config["centroids"]),
            config["bits"],
            mask=mask,
            index_bits=config["index_bits"],
            domain=config["domain"],
        )

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self._initial.clone().to(weight.device)

    def forward(self, centroids: torch.Tensor) -> torch.Tensor:
        values = centroids[self.index]
        if self.mask is not None:
            values = values * self.mask.to(values.dtype)
        if self.domain == "dct":
            values = idct_kernels(values)
        return values

    def codebook(self, centroids: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``(codebook, codes)``: for a sparse layer codebook[0] is the zero and codes are shifted by one."""
        c = centroids.detach().cpu().numpy().astype(np.float32)
        idx = self.index.cpu().numpy()
        if self.mask is None:
            return c, idx
        return np.concatenate([[0.0], c]).astype(np.float32), idx + 1

    def encode(self, module: nn.Module) -> EncodedLayer:
        """Encode the layer's current state into real bit streams (see :mod:`workbench.quantize.coding`)."""
        codebook, codes = self.codebook(module.parametrizations.weight.original)
        mask = None if self.mask is None else self.mask.cpu().numpy()
        index_bits = self.index_bits
        if mask is not None and index_bits is None:
            index_bits = DEFAULT_INDEX_BITS[layer_kind(module)]
        return encode_layer(codes, codebook, self.bits, mask, index_bits)

    def storage(self, module: nn.Module):
        """Stored size of the layer (Huffman-coded streams, tables, codebook; see ``metrics.storage``)."""
        from workbench.metrics.storage import WeightStorage

        encoded = self.encode(module)
        nonzero = int(self.mask.sum()) if self.mask is not None else int(self.index.numel())
        return WeightStorage(
            scheme="shared+huffman" if self.domain == "spatial" else "dct-shared+huffman",
            bits=encoded.huffman_bits,
            nonzero=nonzero,
            detail={
                "codebook": int(encoded.codebook.size),
                "weight_bits": self.bits,
                "index_bits": encoded.index_bits,
                "fillers": encoded.n_fillers,
                "weight_stream_bits": encoded.weight_stream.n_bits,
                "index_stream_bits": 0 if encoded.index_stream is None else encoded.index_stream.n_bits,
                "fixed_length_bits": encoded.fixed_bits,
            },
        )


def shared_layer(
    values: torch.Tensor,
    bits: int,
    *,
    mask: torch.Tensor | None,
    init: str,
    random_state: RandomState,
    index_bits: int | None,
    domain: str = "spatial",
) -> SharedWeight:
    """Cluster ``values`` (those under ``mask``) into shared centroids and build the parametrization."""
    k = (1 << bits) - (1 if mask is not None else 0)
    flat = values.detach().cpu().numpy().ravel()
    chosen = flat if mask is None else flat[mask.cpu().numpy().ravel()]
    if k < 1:
        k = 1
    centroids, labels = kmeans_1d(chosen, k, init=init, random_state=random_state)
    if centroids.size == 0:
        centroids = np.zeros(1)
    index = np.zeros(flat.size, dtype=np.int64)
    if mask is None:
        index[:] = labels
    else:
        index[mask.cpu().numpy().ravel()] = labels
    return SharedWeight(
        torch.from_numpy(index).view(values.shape),
        torch.from_numpy(centroids.astype(np.float32)),
        bits,
        mask=mask,
        index_bits=index_bits,
        domain=domain,
    )


def share_weights(
    model: nn.Module,
    bits: int | dict = 5,
    *,
    init: str = "linear",
    layers: Iterable[str] | None = None,
    index_bits: int | dict | None = None,
    inplace: bool = False,
    random_state: RandomState = 0,
) -> nn.Module:
    """k-means weight sharing per layer, ready for trained quantization.

    Parameters
    ----------
    bits
        Bits per codebook index: one int or a dict by layer name / kind, e.g. ``{"conv": 8, "linear": 5}``.
    init
        Centroid initialization: ``"linear"`` (paper's best), ``"density"`` or ``"random"``.
    index_bits
        Relative-index gap width used when storing a pruned layer (default 8 for conv, 5 for linear).

    A layer with exact zeros is treated as pruned: its zeros stay zero (a mask) and get the codebook's
    zero entry. Fine-tune the result with ``workbench.train.fit`` to train the centroids.
    """
    if init not in INITS:
        raise CompressionError(f"unknown k-means init {init!r}; choose from {', '.join(INITS)}.")
    model = maybe_copy(model, inplace)
    rng = check_random_state(random_state)
    for name, module in weight_layers(model, layers, what="weight sharing"):
        b = check_bits(per_layer(bits, name, module, "bits"), name, "bits")
        w = module.weight.detach()
        mask = (w != 0) if bool((w == 0).any()) else None
        ib = per_layer(index_bits, name, module, "index_bits") if index_bits is not None else None
        if ib is None and mask is not None:
            ib = DEFAULT_INDEX_BITS[layer_kind(module)]
        if ib is not None:
            ib = check_bits(ib, name, "index_bits")
        attach(module, shared_layer(w, b, mask=mask, init=init, random_state=rng, index_bits=ib))
    return record_edit(
        model, "share", bits=bits, init=init, index_bits=index_bits, layers=None if layers is None else list(layers)
    )


def shared_values(module: nn.Module) -> torch.Tensor:
    """The distinct values a weight-shared layer currently uses (for checks and plots)."""
    return torch.unique(module.weight.detach())


def encode_model(model: nn.Module, verify: bool = True) -> dict[str, EncodedLayer]:
    """Encode every weight-shared layer of ``model``; with ``verify`` decode and compare to its weights."""
    encoded = {}
    for name, module in model.named_modules():
        p = weight_parametrization(module)
        if isinstance(p, SharedWeight) and p.domain == "spatial":
            enc = p.encode(module)
            if verify:
                back = decode_layer(enc)
                if not np.array_equal(back, module.weight.detach().cpu().numpy().astype(np.float32)):
                    raise CompressionError(
                        f"layer {name!r}: decoding the Huffman streams did not give the weights back."
                    )
            encoded[name] = enc
    return encoded


def huffman_code(model: nn.Module, verify: bool = True) -> nn.Module:
    """Huffman-code every weight-shared layer into real bit streams (Deep Compression's last step), checked
    by decoding when ``verify``; the streams are the note ``"encoded"`` of ``model`` (returned, in place).
    ``workbench.metrics.storage_report`` counts the same streams.

    Raises
    ------
    CompressionError
        ``model`` has no weight-shared layer (in the spatial domain) to code: run :func:`share_weights` first.
    """
    encoded = encode_model(model, verify=verify)
    if not encoded:
        raise CompressionError(
            f"huffman_code found no weight-shared layer in {type(model).__name__}: Huffman coding codes the "
            "cluster indices of shared weights, so there is nothing to code. Run workbench.quantize.share_weights "
            "(the pipeline step 'share') first; layers shared in the DCT domain are not coded."
        )
    return set_note(model, "encoded", encoded)
