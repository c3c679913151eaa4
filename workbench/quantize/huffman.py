"""Canonical Huffman coding of non-negative integer symbols, to and from real bit streams."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from workbench.errors import CompressionError

#: Bits used in a stored code table for each symbol's code length.
LENGTH_FIELD_BITS = 8
#: Bits of the table header (number of symbols in the table).
TABLE_HEADER_BITS = 32


def _code_lengths(counts: Mapping[int, int]) -> dict[int, int]:
    symbols = [s for s, c in counts.items() if c > 0]
    if not symbols:
        return {}
    if len(symbols) == 1:
        return {symbols[0]: 1}
    # heap items: (count, tie-breaker, symbols in the subtree)
    heap = [(int(counts[s]), i, [s]) for i, s in enumerate(sorted(symbols))]
    heapq.heapify(heap)
    lengths = dict.fromkeys(symbols, 0)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1:
            lengths[s] += 1
        for s in s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


@dataclass(frozen=True)
class EncodedStream:
    """A Huffman-coded stream: the packed bytes, the exact number of bits and of symbols."""

    data: bytes
    n_bits: int
    n_symbols: int


class HuffmanCode:
    """A canonical Huffman code over non-negative integer symbols.

    Build it with :meth:`from_counts` or :meth:`from_symbols`; :meth:`encode` turns a symbol sequence into
    an :class:`EncodedStream` of packed bits, :meth:`decode` turns it back. A code with one symbol uses
    one bit per occurrence; a code without symbols encodes only the empty sequence.
    """

    def __init__(self, lengths: Mapping[int, int]) -> None:
        self.lengths = {int(s): int(n) for s, n in lengths.items()}
        if any(s < 0 for s in self.lengths):
            raise CompressionError("Huffman symbols must be non-negative integers.")
        ordered = sorted(self.lengths, key=lambda s: (self.lengths[s], s))
        self.codes: dict[int, int] = {}
        code = 0
        previous = 0
        for s in ordered:
            n = self.lengths[s]
            code <<= n - previous
            self.codes[s] = code
            code += 1
            previous = n
        self._ordered = ordered
        kraft = sum(2.0**-n for n in self.lengths.values())
        if kraft > 1.0 + 1e-12:
            raise CompressionError("code lengths violate the Kraft inequality; not a prefix code.")

    @classmethod
    def from_counts(cls, counts: Mapping[int, int] | np.ndarray) -> HuffmanCode:
        """Build the code from symbol counts (a mapping, or an array indexed by symbol)."""
        if isinstance(counts, np.ndarray):
            counts = {i: int(c) for i, c in enumerate(counts) if c > 0}
        return cls(_code_lengths(counts))

    @classmethod
    def from_symbols(cls, symbols: Iterable[int] | np.ndarray) -> HuffmanCode:
        """Build the code from the symbols it will encode."""
        arr = np.asarray(list(symbols) if not isinstance(symbols, np.ndarray) else symbols).astype(np.int64).ravel()
        if arr.size and arr.min() < 0:
            raise CompressionError("Huffman symbols must be non-negative integers.")
        return cls.from_counts(dict(Counter(arr.tolist())))

    @property
    def max_length(self) -> int:
        return max(self.lengths.values(), default=0)

    def encoded_bits(self, counts: Mapping[int, int]) -> int:
        """Bits needed for a sequence with these symbol counts."""
        return int(sum(self.lengths[s] * int(c) for s, c in counts.items() if c))

    def table_bits(self) -> int:
        """Bits to store this code: a header, then each symbol with its code length (canonical codes follow)."""
        if not self.lengths:
            return TABLE_HEADER_BITS
        symbol_bits = max(1, int(max(self.lengths)).bit_length())
        return TABLE_HEADER_BITS + len(self.lengths) * (symbol_bits + LENGTH_FIELD_BITS)

    def encode(self, symbols: Iterable[int] | np.ndarray) -> EncodedStream:
        """Encode ``symbols`` into packed bits (most significant bit first)."""
        arr = np.asarray(symbols if isinstance(symbols, np.ndarray) else list(symbols), dtype=np.int64).ravel()
        if arr.size == 0:
            return EncodedStream(b"", 0, 0)
        unknown = set(np.unique(arr).tolist()) - set(self.codes)
        if unknown:
            raise CompressionError(f"symbols {sorted(unknown)[:5]} are not in this Huffman code.")
        top = max(self.codes) + 1
        code_of = np.zeros(top, dtype=np.int64)
        len_of = np.zeros(top, dtype=np.int64)
        for s, c in self.codes.items():
            code_of[s] = c
            len_of[s] = self.lengths[s]
        codes = code_of[arr]
        lens = len_of[arr]
        width = int(lens.max())
        if width > 62:
            raise CompressionError("Huffman code longer than 62 bits; too many rare symbols for this encoder.")
        shifts = np.arange(width - 1, -1, -1, dtype=np.int64)  # bit j of a code of length L at column width-L+j
        bits = (codes[:, None] >> shifts[None, :]) & 1
        valid = np.arange(width)[None, :] >= (width - lens)[:, None]
        stream = bits[valid].astype(np.uint8)
        return EncodedStream(np.packbits(stream).tobytes(), int(stream.size), int(arr.size))

    def decode(self, stream: EncodedStream) -> np.ndarray:
        """Decode an :class:`EncodedStream` back to its symbols (int64 array)."""
        if stream.n_symbols == 0:
            return np.zeros(0, dtype=np.int64)
        if not self.codes:
            raise CompressionError("an empty Huffman code cannot decode a non-empty stream.")
        bits = np.unpackbits(np.frombuffer(stream.data, dtype=np.uint8))[: stream.n_bits].tolist()
        max_len = self.max_length
        count = [0] * (max_len + 1)
        for n in self.lengths.values():
            count[n] += 1
        first = [0] * (max_len + 2)  # first canonical code of each length
        offset = [0] * (max_len + 2)  # index in self._ordered of that code
        code = 0
        index = 0
        for n in range(1, max_len + 1):
            code = (code + count[n - 1]) << 1 if n > 1 else 0
            first[n] = code
            offset[n] = index
            index += count[n]
        ordered = self._ordered
        out = np.empty(stream.n_symbols, dtype=np.int64)
        pos = 0
        for i in range(stream.n_symbols):
            code = 0
            for n in range(1, max_len + 1):
                if pos >= len(bits):
                    raise CompressionError("Huffman stream ended in the middle of a code; the stream is truncated.")
                code = (code << 1) | bits[pos]
                pos += 1
                if code - first[n] < count[n]:
                    out[i] = ordered[offset[n] + code - first[n]]
                    break
            else:
                raise CompressionError("invalid Huffman stream: no code matches.")
        return out


def entropy_bits(symbols: np.ndarray) -> float:
    """Shannon entropy of the empirical symbol distribution times its length (the coding lower bound)."""
    arr = np.asarray(symbols).ravel()
    if arr.size == 0:
        return 0.0
    _, counts = np.unique(arr, return_counts=True)
    p = counts / arr.size
    return float(-(counts * np.log2(p)).sum())
