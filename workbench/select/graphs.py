"""Unit-similarity graphs for the graph selectors: non-negative weights, kNN and threshold binarization."""

from __future__ import annotations

import math

import numpy as np

from workbench.errors import SelectionError

NONNEGATIVE = ("clip", "shift")
THRESHOLDS = ("knn", "quantile")


def default_neighbours(n: int) -> int:
    """The default kNN size m = ceil(log2 n) + 1 (at most n - 1)."""
    return max(1, min(n - 1, int(math.ceil(math.log2(max(n, 2)))) + 1))


def nonnegative(sim: np.ndarray, mode: str = "clip") -> np.ndarray:
    """Similarity made non-negative with a zero diagonal (no self-loops).

    ``"clip"`` sets negative similarities to 0 (anti-correlated units are unrelated); ``"shift"``
    subtracts the smallest off-diagonal value, so the order of all similarities is kept.
    """
    if mode not in NONNEGATIVE:
        raise SelectionError(f"unknown non-negativity rule {mode!r}; use one of {', '.join(NONNEGATIVE)}.")
    weights = np.array(sim, dtype=np.float64)
    np.fill_diagonal(weights, 0.0)
    if mode == "clip":
        np.clip(weights, 0.0, None, out=weights)
    else:
        off = ~np.eye(weights.shape[0], dtype=bool)
        low = float(weights[off].min()) if off.any() else 0.0
        weights = np.where(off, weights - low, 0.0)
    return weights


def knn_graph(sim: np.ndarray, m: int | None = None) -> np.ndarray:
    """Symmetric 0/1 adjacency linking each unit to its m most similar others (OR-symmetrized, no loops)."""
    n = sim.shape[0]
    m = default_neighbours(n) if m is None else int(m)
    if not 1 <= m <= n - 1:
        raise SelectionError(f"the number of neighbours must be in [1, {n - 1}], got {m}.")
    scores = np.array(sim, dtype=np.float64)
    np.fill_diagonal(scores, -np.inf)
    # stable ranking: ties broken by lower index
    neighbours = np.argsort(-scores, axis=1, kind="stable")[:, :m]
    adjacency = np.zeros((n, n))
    adjacency[np.repeat(np.arange(n), m), neighbours.ravel()] = 1.0
    adjacency = np.maximum(adjacency, adjacency.T)
    np.fill_diagonal(adjacency, 0.0)
    return adjacency


def quantile_graph(sim: np.ndarray, q: float = 0.9) -> np.ndarray:
    """Symmetric 0/1 adjacency keeping the pairs whose similarity is at or above the q-quantile of all pairs."""
    if not 0.0 <= q < 1.0:
        raise SelectionError(f"the quantile q must be in [0, 1), got {q!r}.")
    n = sim.shape[0]
    upper = sim[np.triu_indices(n, k=1)]
    cut = float(np.quantile(upper, q)) if upper.size else 0.0
    adjacency = (sim >= cut).astype(np.float64)
    adjacency = np.maximum(adjacency, adjacency.T)
    np.fill_diagonal(adjacency, 0.0)
    return adjacency


def binarize(sim: np.ndarray, threshold: str = "knn", n_neighbors: int | None = None, q: float = 0.9) -> np.ndarray:
    """0/1 similarity graph by the rule ``threshold`` (``"knn"`` or ``"quantile"``)."""
    if threshold == "knn":
        return knn_graph(sim, n_neighbors)
    if threshold == "quantile":
        return quantile_graph(sim, q)
    raise SelectionError(f"unknown threshold rule {threshold!r}; use one of {', '.join(THRESHOLDS)}.")
