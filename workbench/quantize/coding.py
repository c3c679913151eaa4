"""Deep Compression's storage format of one layer: relative sparse indices and codebook indices, Huffman coded.

A layer is stored as (Han et al., ICLR 2016, section 2-4):

- a codebook of ``K`` float32 values (index 0 is the zero used by fillers when the layer is sparse);
- for a sparse layer, the gaps between successive nonzero positions (row-major), each in ``index_bits``
  bits: a gap larger than ``2**index_bits`` gets a *filler* entry (gap ``2**index_bits``, weight zero);
- the codebook index of every stored entry (fillers included);
- both symbol streams Huffman coded (:mod:`workbench.quantize.huffman`), with their code tables.

:func:`encode_layer` builds the real bit streams; :func:`decode_layer` rebuilds the weights from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.errors import CompressionError
from workbench.quantize.huffman import EncodedStream, HuffmanCode

#: Bits of the per-layer header (shape, entry count, flags), counted in every encoded layer.
LAYER_HEADER_BITS = 128
FLOAT_BITS = 32


@dataclass
class EncodedLayer:
    """The encoded streams of one layer and the sizes they take."""

    shape: tuple[int, ...]
    codebook: np.ndarray  # float32 (K,)
    weight_bits: int  # bits of a codebook index in fixed-length form
    index_bits: int | None  # None: dense layer, no position stream
    weight_code: HuffmanCode
    weight_stream: EncodedStream
    index_code: HuffmanCode | None
    index_stream: EncodedStream | None
    n_fillers: int

    @property
    def n_entries(self) -> int:
        """Stored entries (nonzeros plus fillers, or all weights for a dense layer)."""
        return self.weight_stream.n_symbols

    @property
    def huffman_bits(self) -> int:
        """Total bits of the Huffman-coded layer: streams, code tables, codebook and header."""
        bits = self.weight_stream.n_bits + self.weight_code.table_bits()
        if self.index_stream is not None:
            bits += self.index_stream.n_bits + self.index_code.table_bits()
        return bits + self.codebook.size * FLOAT_BITS + LAYER_HEADER_BITS

    @property
    def fixed_bits(self) -> int:
        """Total bits without Huffman coding: fixed-length indices and gaps, codebook and header."""
        per_entry = self.weight_bits + (self.index_bits or 0)
        return self.n_entries * per_entry + self.codebook.size * FLOAT_BITS + LAYER_HEADER_BITS


def relative_gaps(positions: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaps between sorted ``positions`` (first counted from -1) with filler entries.

    Returns ``(symbols, is_filler)``: symbols are ``gap - 1`` in ``[0, 2**index_bits)``; a filler stands
    for a jump of ``2**index_bits`` positions to a zero weight.
    """
    limit = 1 << index_bits
    gaps = np.diff(np.concatenate([[-1], positions.astype(np.int64)]))
    n_fill = np.maximum((gaps - 1) // limit, 0)  # fillers before each real entry
    total = int(gaps.size + n_fill.sum())
    symbols = np.empty(total, dtype=np.int64)
    filler = np.zeros(total, dtype=bool)
    # the real entry i lands at slot i + (fillers up to and including entry i)
    real_slot = np.arange(gaps.size) + np.cumsum(n_fill)
    filler[:] = True
    filler[real_slot] = False
    symbols[filler] = limit - 1
    symbols[real_slot] = gaps - n_fill * limit - 1
    return symbols, filler


def encode_layer(
    codes: np.ndarray,
    codebook: np.ndarray,
    weight_bits: int,
    mask: np.ndarray | None = None,
    index_bits: int | None = None,
) -> EncodedLayer:
    """Encode a quantized layer.

    Parameters
    ----------
    codes
        Codebook index of every weight (any shape; entries outside ``mask`` are ignored).
    codebook
        The ``K`` shared values. For a sparse layer ``codebook[0]`` must be 0 (fillers point at it).
    weight_bits
        Bits of a codebook index in fixed-length form (``K <= 2**weight_bits``).
    mask
        Kept weights (None: dense layer, every weight stored, no position stream).
    index_bits
        Bits of a relative-index gap (required with ``mask``).
    """
    codes = np.asarray(codes, dtype=np.int64)
    codebook = np.asarray(codebook, dtype=np.float32).ravel()
    if codebook.size > (1 << weight_bits):
        raise CompressionError(f"codebook has {codebook.size} entries, more than 2**{weight_bits}.")
    if mask is None:
        symbols = codes.ravel()
        code = HuffmanCode.from_symbols(symbols)
        return EncodedLayer(tuple(codes.shape), codebook, weight_bits, None, code, code.encode(symbols), None, None, 0)
    if index_bits is None or not 1 <= int(index_bits) <= 16:
        raise CompressionError(f"index_bits must be an int in [1, 16] for a sparse layer, got {index_bits!r}.")
    if codebook.size == 0 or codebook[0] != 0:
        raise CompressionError("a sparse layer's codebook must start with the zero value (index 0) for fillers.")
    mask = np.asarray(mask, dtype=bool)
    positions = np.flatnonzero(mask.ravel())
    gap_symbols, filler = relative_gaps(positions, int(index_bits))
    weight_symbols = np.zeros(gap_symbols.size, dtype=np.int64)
    weight_symbols[~filler] = codes.ravel()[positions]
    wcode = HuffmanCode.from_symbols(weight_symbols)
    icode = HuffmanCode.from_symbols(gap_symbols)
    return EncodedLayer(
        tuple(codes.shape),
        codebook,
        weight_bits,
        int(index_bits),
        wcode,
        wcode.encode(weight_symbols),
        icode,
        icode.encode(gap_symbols),
        int(filler.sum()),
    )


def decode_layer(encoded: EncodedLayer) -> np.ndarray:
    """Rebuild the weight array from the encoded streams (exact inverse of :func:`encode_layer`)."""
    symbols = encoded.weight_code.decode(encoded.weight_stream)
    values = encoded.codebook[symbols] if symbols.size else np.zeros(0, dtype=np.float32)
    n = int(np.prod(encoded.shape)) if encoded.shape else 1
    if encoded.index_stream is None:
        return values.reshape(encoded.shape)
    gaps = encoded.index_code.decode(encoded.index_stream) + 1
    positions = np.cumsum(gaps) - 1
    out = np.zeros(n, dtype=np.float32)
    if positions.size and positions[-1] >= n:
        raise CompressionError("relative index stream points past the end of the layer; corrupt stream.")
    out[positions] = values  # fillers write codebook[0] == 0
    return out.reshape(encoded.shape)
