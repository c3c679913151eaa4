"""Shared steps of the selectors: top-k by score, budget across blocks, centres, assignment of dropped units."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Sorted indices of the k largest scores (ties: lower index first)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return np.sort(order[:k])


def assign_to_kept(sim: np.ndarray, keep: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Map every unit to its most similar kept unit (kept units map to themselves).

    With ``labels``, a unit goes to the most similar kept unit of its own label when there is one,
    otherwise to the most similar kept unit overall. Ties go to the lower index.
    """
    keep = np.asarray(keep, dtype=int)
    block = sim[:, keep].copy()
    if labels is not None:
        labels = np.asarray(labels)
        same = labels[:, None] == labels[keep][None, :]
        has_own = same.any(axis=1)
        block[has_own] = np.where(same[has_own], block[has_own], -np.inf)
    assign = keep[np.argmax(block, axis=1)]
    assign[keep] = keep
    return assign.astype(np.int64)


def allocate_budget(sizes: np.ndarray, k: int) -> np.ndarray:
    """Units to keep per block: proportional to block size with largest-remainder rounding.

    When k >= number of blocks every block keeps at least one unit (and never more than its size);
    when k is smaller, the k largest blocks (ties: lower block index) keep one unit each and the others none.
    """
    sizes = np.asarray(sizes, dtype=int)
    n_blocks = sizes.size
    alloc = np.zeros(n_blocks, dtype=int)
    if k < n_blocks:
        alloc[np.argsort(-sizes, kind="stable")[:k]] = 1
        return alloc
    quota = k * sizes / sizes.sum()
    alloc = np.clip(np.floor(quota).astype(int), 1, sizes)
    while alloc.sum() < k:  # largest remainder first, among blocks with room
        room = alloc < sizes
        remainder = np.where(room, quota - alloc, -np.inf)
        alloc[int(np.argmax(remainder))] += 1
    while alloc.sum() > k:  # taken back from the blocks most above their quota
        spare = alloc > 1
        excess = np.where(spare, alloc - quota, -np.inf)
        alloc[int(np.argmax(excess))] -= 1
    return alloc


def centrality(sim: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each unit's mean similarity to the members of its own block (itself included)."""
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    return (sim * same).sum(axis=1) / same.sum(axis=1)


def keep_central(sim: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Budget across blocks (:func:`allocate_budget`), then the most central units of each block.

    Returns the kept indices (sorted) and the centrality scores.
    """
    labels = np.asarray(labels)
    blocks, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    alloc = allocate_budget(sizes, k)
    scores = centrality(sim, inverse)
    keep = []
    for b in range(blocks.size):
        members = np.flatnonzero(inverse == b)
        if alloc[b]:
            keep.extend(members[top_k(scores[members], alloc[b])])
    return np.sort(np.asarray(keep, dtype=int)), scores


def medoids(sim: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For each cluster, the member with the highest summed similarity to its cluster."""
    labels = np.asarray(labels)
    scores = centrality(sim, labels)
    keep = [members[int(np.argmax(scores[members]))] for members in _members(labels)]
    return np.sort(np.asarray(keep, dtype=int))


def fill_to_budget(sim: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """Grow ``keep`` to k units, each time adding the unit least similar to its closest kept unit.

    Used when a clustering returned fewer than k non-empty clusters (duplicate points, empty components).
    """
    keep = list(np.asarray(keep, dtype=int))
    if len(keep) >= k:
        return np.sort(np.asarray(keep[:k], dtype=int))
    closest = sim[:, keep].max(axis=1)
    closest[keep] = np.inf
    while len(keep) < k:
        new = int(np.argmin(closest))
        keep.append(new)
        closest = np.maximum(closest, sim[:, new])
        closest[keep] = np.inf
    return np.sort(np.asarray(keep, dtype=int))


def _members(labels: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(labels == value) for value in np.unique(labels)]


def relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..c-1 in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=int)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[inverse]
