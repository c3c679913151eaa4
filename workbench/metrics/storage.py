"""Stored size of a (compressed) model, counted honestly per layer.

Every Linear / Conv weight is stored in one of these ways:

- ``dense``: ``numel x value_bits`` (fp32 by default);
- ``csr``: the weight viewed as a matrix ``(out, in * kernel)``: nonzero values (``value_bits`` each),
  their column indices (``index_bits`` each: the smallest of 8/16/32 bits that holds the column count,
  unless given) and ``out + 1`` row pointers (``pointer_bits`` each: the smallest of 8/16/32 bits that
  holds the nonzero count);
- whatever the layer's weight parametrization says it stores, when it implements ``storage(module)``
  returning a :class:`WeightStorage` (weight sharing + Huffman from the real encoded bit streams, binary,
  fixed point, hashed buckets, ...).

``auto`` takes the parametrization's own storage if there is one, else the smaller of dense and CSR.
Biases are counted at ``value_bits`` unless their own parametrization says what it stores (fixed-point
biases, ``workbench.quantize.fixed_point_biases``); every other parameter (and BatchNorm running
statistics) is counted dense at ``value_bits``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.errors import CompressionError

STORAGE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
FORMATS = ("auto", "dense", "csr")


@dataclass
class WeightStorage:
    """What a weight parametrization stores: a scheme name, its exact size in bits and its nonzero count."""

    scheme: str
    bits: int
    nonzero: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class LayerStorage:
    """One row of a :class:`StorageReport`."""

    name: str
    kind: str
    shape: tuple[int, ...]
    weights: int
    nonzero: int
    scheme: str
    weight_bits: int
    bias_bits: int
    dense_bits: int
    csr_bits: int
    detail: dict[str, Any] = field(default_factory=dict)
    biases: int = 0

    @property
    def stored_bits(self) -> int:
        return self.weight_bits + self.bias_bits

    @property
    def dense_fp32_bits(self) -> int:
        """The layer's weights and biases stored dense at fp32."""
        return self.dense_bits + 32 * self.biases

    @property
    def stored_bytes(self) -> float:
        return self.stored_bits / 8

    @property
    def bits_per_weight(self) -> float:
        """Stored weight bits per original weight (biases excluded)."""
        return self.weight_bits / max(self.weights, 1)

    @property
    def bits_per_nonzero(self) -> float:
        """Stored weight bits per kept (nonzero) weight."""
        return self.weight_bits / max(self.nonzero, 1)


@dataclass
class StorageReport:
    """Per-layer storage rows, other parameters, and totals against the dense fp32 model."""

    layers: list[LayerStorage]
    other_bits: int
    other_params: int
    value_bits: int

    @property
    def stored_bits(self) -> int:
        return sum(row.stored_bits for row in self.layers) + self.other_bits

    @property
    def stored_bytes(self) -> float:
        return self.stored_bits / 8

    @property
    def dense_bits(self) -> int:
        """The same model stored dense at 32 bits per parameter (weights, biases, other parameters)."""
        return sum(row.dense_fp32_bits for row in self.layers) + self.other_params * 32

    @property
    def dense_bytes(self) -> float:
        return self.dense_bits / 8

    @property
    def ratio(self) -> float:
        """Compression ratio: dense fp32 bytes / stored bytes."""
        return self.dense_bits / max(self.stored_bits, 1)

    @property
    def weights(self) -> int:
        return sum(row.weights for row in self.layers)

    @property
    def nonzero(self) -> int:
        return sum(row.nonzero for row in self.layers)

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for row in self.layers:
            d = asdict(row)
            d.update(stored_bytes=row.stored_bytes, bits_per_weight=row.bits_per_weight)
            rows.append(d)
        return {
            "layers": rows,
            "other_params": self.other_params,
            "other_bytes": self.other_bits / 8,
            "weights": self.weights,
            "nonzero": self.nonzero,
            "stored_bytes": self.stored_bytes,
            "dense_bytes": self.dense_bytes,
            "ratio": self.ratio,
        }

    def table(self) -> str:
        """A plain-text table of the rows and totals."""
        head = f"{'layer':<16}{'scheme':<20}{'weights':>10}{'nonzero':>10}{'bits/w':>8}{'bytes':>12}{'ratio':>8}"
        lines = [head, "-" * len(head)]
        for r in self.layers:
            ratio = r.dense_fp32_bits / max(r.stored_bits, 1)
            lines.append(
                f"{r.name:<16}{r.scheme:<20}{r.weights:>10}{r.nonzero:>10}{r.bits_per_weight:>8.2f}"
                f"{r.stored_bytes:>12.0f}{ratio:>7.1f}x"
            )
        lines.append(
            f"{'other params':<16}{'dense':<20}{self.other_params:>10}{'':>10}{'':>8}{self.other_bits / 8:>12.0f}"
        )
        lines.append(
            f"{'total':<16}{'':<20}{self.weights:>10}{self.nonzero:>10}{'':>8}{self.stored_bytes:>12.0f}{self.ratio:>7.1f}x"
        )
        return "\n".join(lines)


def width_for(count: int) -> int:
    """The smallest of 8, 16, 32, 64 bits that holds values up to ``count``."""
    for width in (8, 16, 32, 64):
        if count < (1 << width):
            return width
    raise CompressionError(f"count {count} does not fit in 64 bits.")


def dense_bits(weight: torch.Tensor, value_bits: int = 32) -> int:
    """Bits of ``weight`` stored dense."""
    return int(weight.numel()) * int(value_bits)


def csr_bits(
    weight: torch.Tensor, value_bits: int = 32, index_bits: int | None = None, pointer_bits: int | None = None
) -> tuple[int, dict[str, int]]:
    """Bits of ``weight`` in CSR form (viewed as ``(out, rest)``), with the widths used."""
    w = weight.detach()
    matrix = w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(1, -1)
    rows, cols = matrix.shape
    nnz = int((matrix != 0).sum())
    ib = index_bits if index_bits is not None else width_for(max(cols - 1, 0))
    pb = pointer_bits if pointer_bits is not None else width_for(nnz)
    total = nnz * (int(value_bits) + ib) + (rows + 1) * pb
    return total, {"index_bits": ib, "pointer_bits": pb, "value_bits": int(value_bits)}


def _own_storage(module: nn.Module, tensor: str = "weight") -> WeightStorage | None:
    parametrizations = getattr(module, "parametrizations", None)
    if parametrizations is None or tensor not in parametrizations:
        return None
    for p in reversed(list(parametrizations[tensor])):
        method = getattr(p, "storage", None)
        if method is not None:
            result = method(module)
            if result is not None:
                return result
    return None


def _layer_param_ids(module: nn.Module) -> set[int]:
    return {id(p) for p in module.parameters()}


def storage_report(
    model: nn.Module,
    *,
    format: str = "auto",
    value_bits: int = 32,
    index_bits: int | None = None,
) -> StorageReport:
    """Count the stored size of ``model`` layer by layer.

    Parameters
    ----------
    format
        ``"auto"`` (a layer's own storage scheme if it has one, else the smaller of dense and CSR),
        ``"dense"`` or ``"csr"`` (force that format for plain weights; own schemes are still used).
    value_bits
        Bits of a stored float (weights in dense / CSR form, biases, other parameters).
    index_bits
        Column-index width for CSR (default: the smallest of 8/16/32 bits that fits).
    """
    if format not in FORMATS:
        raise CompressionError(f"storage format must be one of {', '.join(FORMATS)}, got {format!r}.")
    if not isinstance(value_bits, int) or not 1 <= value_bits <= 64:
        raise CompressionError(f"value_bits must be an int in [1, 64], got {value_bits!r}.")
    rows = []
    counted: set[int] = set()
    for name, module in model.named_modules():
        if not isinstance(module, STORAGE_LAYERS):
            continue
        counted |= _layer_param_ids(module)
        weight = module.weight.detach()
        n = int(weight.numel())
        dense = dense_bits(weight, 32)
        csr, csr_detail = csr_bits(weight, value_bits, index_bits)
        bias = getattr(module, "bias", None)
        bias_storage = None if bias is None else _own_storage(module, "bias")
        if bias is None:
            bias_bits = 0
        elif bias_storage is not None:
            bias_bits = int(bias_storage.bits)
        else:
            bias_bits = int(bias.numel()) * value_bits
        own = _own_storage(module)
        if own is not None:
            scheme, wbits, nonzero, detail = own.scheme, int(own.bits), int(own.nonzero), dict(own.detail)
        else:
            nonzero = int((weight != 0).sum())
            plain_dense = dense_bits(weight, value_bits)
            if format == "csr" or (format == "auto" and csr < plain_dense):
                scheme, wbits, detail = "csr", csr, csr_detail
            else:
                scheme, wbits, detail = "dense", plain_dense, {"value_bits": value_bits}
        kind = "conv" if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) else "linear"
        rows.append(
            LayerStorage(
                name,
                kind,
                tuple(weight.shape),
                n,
                nonzero,
                scheme,
                wbits,
                bias_bits,
                dense,
                csr,
                detail,
                0 if bias is None else int(bias.numel()),
            )
        )
    other_params = 0
    for p in model.parameters():
        if id(p) not in counted:
            other_params += int(p.numel())
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for buf in (module.running_mean, module.running_var):
                if buf is not None:
                    other_params += int(buf.numel())
    return StorageReport(rows, other_params * value_bits, other_params, value_bits)
