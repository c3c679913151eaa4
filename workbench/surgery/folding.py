"""Model Folding (Wang et al., ICLR 2025): k-means on each group's units, each cluster folded into one unit.

"Forget the Data and Fine-Tuning! Just Fold the Network to Compress" compresses a layer without data: the
rows of its weight matrix are clustered by k-means, and the clustering ``C`` (n x k, one 1 per row) folds the
layer and its readers, ``W_l -> M W_l`` with ``M = (C^T C)^-1 C^T`` (each cluster's mean row) and
``W_{l+1} -> W_{l+1} C`` (the readers' columns summed over the cluster). k-means minimizes
``||W_l - C M W_l||_F``, the error of replacing every unit by its cluster's mean; coupled layers (a residual
stream, a BatchNorm after its convolution) share one clustering.

What is implemented here (``fuse="fold"`` of :func:`workbench.surgery.apply`):

- **Features.** A unit's feature is its incoming weights and bias with the BatchNorm after each producing
  layer folded in (:func:`workbench.surgery.fusion.fold_incoming`, one row per unit, all producing layers of a
  coupled group concatenated), *not* normalized: the k-means objective is then the folding error of the
  function the units compute, and units of different scale are not merged as if they were alike (normalized
  rows would cluster by angle, neuron merging's criterion). A BatchNorm is folded in so that a convolution's
  weight scale, which the BatchNorm undoes, does not count. (The authors' code also appends the readers'
  columns of the unit; folding is exact for duplicate units whatever their readers do, so they are left out.)
- **Clusters.** k is the number of units the plan's selection keeps (per block of a grouped layer, as the
  selection keeps them). Lloyd's k-means runs from ``1 + N_STARTS`` starts and the clustering of least
  inertia wins (ties: the earlier start): the first start is the selection's kept units (their features are
  the initial centroids), the others are k-means++ draws from ``random_state`` (one stream per group, from
  the seed and the group's name). So the selector sets the counts and offers one start; the result is a
  function of the model, the plan and the seed. A centroid left without units takes the unit farthest from
  its own centroid. Units of different blocks of a grouped layer, or of different partial layers
  (``Group.cover``), are never clustered together, so the folded plan keeps the constraints the selection
  met; a fixed unit starts, and stays in, a cluster of its own start. Every cluster is represented by the
  member nearest its centroid (a fixed member when there is one): the recorded plan keeps the
  representatives and assigns each unit to its cluster's, so it replays with ``fuse="drop"``.
- **Folding.** Every per-unit parameter of the producing layers (weight rows, bias, BatchNorm scale, shift
  and running statistics, PReLU slope) is averaged over the cluster, and each reader's columns are summed
  over it (:mod:`workbench.surgery.summarize` does both). The averaged raw parameters give the mean of the
  members' BatchNorm-folded rows when their BatchNorms agree, and approximately otherwise. A cluster of
  identical units (or of all-zero units) is folded exactly. Weights that pruning masked in the representative
  stay zero.

The data-free variance repair that goes with it (``repair="data-free"``) is
:func:`workbench.surgery.repair.data_free_repair`.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import numpy as np
from torch import nn

from workbench.errors import SurgeryError
from workbench.selection import constraint_violation
from workbench.surgery.fusion import fold_incoming
from workbench.surgery.plan import Plan
from workbench.surgery.slicing import graph_producers
from workbench.utils import RandomState, seed_from

#: key of ``Selection.info`` that marks a selection as the folding of another one (folding it again keeps it)
FOLDED = "fold"
#: k-means++ starts tried beside the selection's kept units
N_STARTS = 4


def _squared_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, k) squared Euclidean distances, clipped at 0 (equal points give equal rows)."""
    squares = np.einsum("ij,ij->i", points, points)[:, None] + np.einsum("ij,ij->i", centroids, centroids)[None, :]
    return np.maximum(squares - 2.0 * points @ centroids.T, 0.0)


def kmeans(
    points: np.ndarray,
    seeds: np.ndarray,
    *,
    allowed: np.ndarray | None = None,
    pinned: np.ndarray | None = None,
    max_iter: int = 100,
) -> np.ndarray:
    """Lloyd's k-means started from the points ``seeds`` (deterministic: ties go to the lower index).

    Parameters
    ----------
    points
        (n, d) features.
    seeds
        (k,) indices of the points whose features are the initial centroids; cluster j starts at ``seeds[j]``.
    allowed
        (n, k) bool: which clusters each point may join (default all); every seed must be allowed in its
        own cluster.
    pinned
        (k,) bool: clusters whose seed point stays in them (it cannot move to another cluster).
    max_iter
        Most assignment rounds.

    Returns
    -------
    numpy.ndarray
        (n,) cluster of every point, in ``range(k)``; no cluster is empty.
    """
    points = np.asarray(points, dtype=np.float64)
    seeds = np.asarray(seeds, dtype=np.int64)
    n, k = len(points), len(seeds)
    allowed = np.ones((n, k), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    pinned = np.zeros(k, dtype=bool) if pinned is None else np.asarray(pinned, dtype=bool)
    stuck = np.zeros(n, dtype=bool)
    stuck[seeds[pinned]] = True
    centroids = points[seeds].copy()
    labels = np.full(n, -1)
    for _ in range(max_iter):
        distances = np.where(allowed, _squared_distances(points, centroids), np.inf)
        new = distances.argmin(axis=1)
        new[seeds[pinned]] = np.flatnonzero(pinned)
        for j in range(k):  # an empty cluster takes the allowed, movable point farthest from its own centroid
            if (new == j).any():
                continue
            sizes = np.bincount(new, minlength=k)
            movable = allowed[:, j] & ~stuck & (sizes[new] > 1)
            if not movable.any():
                raise SurgeryError(f"k-means cannot fill cluster {j}: no point may move to it; give fewer seeds.")
            own = np.where(movable, distances[np.arange(n), new], -1.0)
            new[int(own.argmax())] = j
        if np.array_equal(new, labels):
            break
        labels = new
        centroids = np.stack([points[labels == j].mean(axis=0) for j in range(k)])
    return labels


def _cells(group: Any) -> np.ndarray:
    """(n_units,) cell of every unit: units share a cell when they fall in the same block of every grouped
    layer and in the same partial layers (``Group.cover``); folding merges units of one cell only."""
    units = np.arange(group.n_units)
    columns = [np.asarray(labels) for labels in group.blocks]
    columns += [np.isin(units, np.asarray(part, dtype=np.int64)).astype(np.int64) for part in group.cover()]
    if not columns:
        return np.zeros(group.n_units, dtype=np.int64)
    return np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)[1].reshape(-1)


def _plus_plus(
    points: np.ndarray, cells: np.ndarray, counts: dict[int, int], fixed: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """k-means++ seeds (Arthur & Vassilvitskii 2007) drawn within each cell, ``counts[cell]`` of them; the fixed
    units of a cell are always among its seeds."""
    seeds: list[int] = []
    for cell, count in counts.items():
        members = np.flatnonzero(cells == cell)
        chosen = [int(u) for u in members if fixed[u]][:count]
        closest = np.full(len(members), np.inf)  # squared distance of each member to its nearest seed
        for seed in chosen:
            closest = np.minimum(closest, _squared_distances(points[members], points[[seed]])[:, 0])
        while len(chosen) < count:
            free = ~np.isin(members, chosen)
            weights = np.where(free, np.where(np.isfinite(closest), closest, 0.0), 0.0)
            if weights.sum() <= 0:  # no seed yet, or only copies of the seeds left: uniform
                weights = free.astype(np.float64)
            seed = int(members[rng.choice(len(members), p=weights / weights.sum())])
            chosen.append(seed)
            closest = np.minimum(closest, _squared_distances(points[members], points[[seed]])[:, 0])
        seeds.extend(chosen)
    return np.sort(np.asarray(seeds, dtype=np.int64))


def _clustering(
    points: np.ndarray, seeds: np.ndarray, cells: np.ndarray, fixed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """k-means from ``seeds`` within their cells: (labels, centroids, inertia)."""
    seeded = np.isin(cells, cells[seeds])
    allowed = (cells[:, None] == cells[seeds][None, :]) | ~seeded[:, None]  # a cell without seeds joins any
    labels = kmeans(points, seeds, allowed=allowed, pinned=fixed[seeds])
    centroids = np.stack([points[labels == j].mean(axis=0) for j in range(len(seeds))])
    return labels, centroids, float(((points - centroids[labels]) ** 2).sum())


def fold_selection(features: np.ndarray, selection: Any, group: Any, random_state: RandomState = 0) -> Any:
    """The folding of one group: ``selection`` with k-means clusters as parts (see the module docstring)."""
    n, keep = selection.n_units, np.asarray(selection.keep)
    features = np.asarray(features, dtype=np.float64)
    cells = _cells(group)
    fixed = np.asarray(group.fixed, dtype=bool)
    rng = np.random.default_rng([seed_from(random_state), zlib.crc32(str(selection.group).encode())])
    counts = {int(c): int((cells[keep] == c).sum()) for c in np.unique(cells[keep])}
    starts = [keep] + [_plus_plus(features, cells, counts, fixed, rng) for _ in range(N_STARTS)]
    best = None
    for seeds in starts:
        found = _clustering(features, seeds, cells, fixed)
        if best is None or found[2] < best[1][2]:
            best = (seeds, found)
    seeds, (labels, centroids, inertia) = best
    distances = ((features - centroids[labels]) ** 2).sum(axis=1)
    assign = np.empty(n, dtype=np.int64)
    for j, seed in enumerate(seeds):
        members = np.flatnonzero(labels == j)
        assign[members] = seed if fixed[seed] else members[np.argmin(distances[members])]
    keep = np.unique(assign)
    violation = constraint_violation(keep, n, group.blocks, group.cover())
    if violation is not None:
        raise SurgeryError(
            f"folding group {selection.group!r} would break its constraints: {violation}. Use fuse='summarize' "
            "or 'merge' for this group, or leave it out of the plan."
        )
    started = "selection" if seeds is starts[0] else "k-means++"
    info = {**selection.info, FOLDED: {"inertia": inertia, "start": started, "counts_from": selection.method}}
    return dataclasses.replace(selection, keep=keep, assign=assign, info=info)


def fold_plan(model: nn.Module, plan: Plan, graph: Any, random_state: RandomState = 0) -> Plan:
    """``plan`` with each selection replaced by its folding: k-means clusters of the group's units (k = the
    selection's kept count, the best of its kept units and ``N_STARTS`` k-means++ starts seeded by
    ``random_state``), each represented by its member nearest the centroid.

    Selections that are already foldings (their ``info`` has the ``"fold"`` entry) are kept, so folding a
    folded plan changes nothing. ``model`` is read only; ``graph`` is its NetworkGraph.
    """
    selections = {}
    for name, selection in plan.items():
        if FOLDED in selection.info or selection.k == selection.n_units:
            selections[name] = selection
            continue
        group = graph.group(name)
        features = fold_incoming(graph_producers(model, group), group.n_units, per_block=True)
        selections[name] = fold_selection(features, selection, group, random_state)
    return Plan(selections=selections, meta=dict(plan.meta))


__all__ = ["FOLDED", "N_STARTS", "fold_plan", "fold_selection", "kmeans"]
