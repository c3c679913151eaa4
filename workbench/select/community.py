"""Leiden community selection: communities of the unit-similarity graph, the most central units of each kept."""

from __future__ import annotations

import numpy as np

from workbench.select.base import Selector, register_selector
from workbench.select.graphs import NONNEGATIVE, THRESHOLDS, binarize, nonnegative
from workbench.select.grouping import keep_central, relabel
from workbench.unitview import UnitView
from workbench.utils import RandomState, seed_from

#: weight given to a kNN / quantile edge whose similarity is <= 0 after the non-negativity rule
MIN_EDGE_WEIGHT = 1e-6


def similarity_edges(adjacency: np.ndarray, weights: np.ndarray) -> list[tuple[int, int, float]]:
    """Undirected weighted edge list (i < j) of the 0/1 ``adjacency``, weighted by ``weights``."""
    i, j = np.nonzero(np.triu(adjacency, k=1))
    w = np.maximum(weights[i, j], MIN_EDGE_WEIGHT)
    return [(int(a), int(b), float(c)) for a, b, c in zip(i, j, w)]


@register_selector("leiden", description="Leiden communities (graspologic) of the kNN similarity graph")
class LeidenSelector(Selector):
    """Leiden communities of the similarity graph; the budget is shared across them as in ``sbm``.

    The graph is the kNN graph of the similarity (``threshold="knn"``, ``n_neighbors`` defaulting to
    ceil(log2 n) + 1, symmetrized) or its ``q``-quantile threshold graph (``"quantile"``); each edge is
    weighted by the similarity made non-negative (``nonnegative="clip"`` or ``"shift"``; edges whose
    weight would be <= 0 get 1e-6). graspologic's ``leiden`` partitions it (``resolution``: higher gives
    more communities); with ``max_cluster_size`` set, ``hierarchical_leiden`` keeps splitting
    communities larger than that and its final level is used. Units absent from the result (isolated)
    form their own communities.

    Fitted attributes: ``labels_`` (community per unit), ``n_communities_``, ``scores_`` (centrality).
    """

    def __init__(
        self,
        budget: int | float = 0.5,
        resolution: float = 1.0,
        max_cluster_size: int | None = None,
        threshold: str = "knn",
        n_neighbors: int | None = None,
        q: float = 0.9,
        nonnegative: str = "clip",
        random_state: RandomState = None,
    ) -> None:
        super().__init__(budget, random_state)
        self.resolution = resolution
        self.max_cluster_size = max_cluster_size
        self.threshold = threshold
        self.n_neighbors = n_neighbors
        self.q = q
        self.nonnegative = nonnegative

    def _check_params(self) -> None:
        self._real("resolution", 0.0, low_open=True)
        self._count("max_cluster_size", optional=True)
        self._choice("threshold", THRESHOLDS)
        self._count("n_neighbors", optional=True)
        self._real("q", 0.0, high=1.0, high_open=True)
        self._choice("nonnegative", NONNEGATIVE)

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        sim = self._kernel(view)
        n = view.n_units
        labels = np.arange(n)
        if n > 1:
            adjacency = binarize(sim, self.threshold, self.n_neighbors, self.q)
            edges = similarity_edges(adjacency, nonnegative(sim, self.nonnegative))
            if edges:
                communities = self._communities(edges, seed_from(rng) % (2**31))
                found = np.full(n, -1)
                for node, community in communities.items():
                    found[int(node)] = int(community)
                isolated = found < 0
                found[isolated] = found.max() + 1 + np.arange(int(isolated.sum()))
                labels = found
        labels = relabel(labels)
        self.labels_ = labels
        self.n_communities_ = int(labels.max()) + 1
        keep, scores = keep_central(sim, labels, k)
        return keep, scores, labels

    def _communities(self, edges: list[tuple[int, int, float]], seed: int) -> dict:
        from graspologic.partition import hierarchical_leiden, leiden

        if self.max_cluster_size is None:
            return leiden(edges, resolution=float(self.resolution), random_seed=seed, is_weighted=True)
        result = hierarchical_leiden(
            edges,
            max_cluster_size=int(self.max_cluster_size),
            resolution=float(self.resolution),
            random_seed=seed,
            is_weighted=True,
        )
        return result.final_level_hierarchical_clustering()
