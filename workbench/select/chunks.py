"""Row chunks of activation arrays, so that statistics over them never copy the whole array."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: Activation rows read at a time (64k rows of 512 units: 256 MiB of float64 at most).
CHUNK_ROWS = 65536


def row_chunks(A: np.ndarray, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """Consecutive float64 blocks of at most ``rows`` rows of ``A`` (views when ``A`` is float64)."""
    for start in range(0, A.shape[0], rows):
        yield np.asarray(A[start : start + rows], dtype=np.float64)


def activation_gram(A: np.ndarray) -> np.ndarray:
    """AᵀA (n x n, float64) of activations A (rows x n), accumulated chunk by chunk."""
    gram = np.zeros((A.shape[1], A.shape[1]))
    for block in row_chunks(A):
        gram += block.T @ block
    return gram
