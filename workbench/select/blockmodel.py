"""Stochastic-block-model selection: blocks of interchangeable units, the most central of each kept."""

from __future__ import annotations

import warnings

import numpy as np

from workbench.errors import SelectionError
from workbench.select.base import Selector, register_selector
from workbench.select.graphs import THRESHOLDS, binarize
from workbench.select.grouping import keep_central
from workbench.unitview import UnitView
from workbench.utils import RandomState, seed_from


@register_selector("sbm", description="stochastic block model (graspologic SBM / DCSBM) on the unit-similarity graph")
class SBMSelector(Selector):
    """Fit a (degree-corrected) stochastic block model to the unit-similarity graph, keep central units per block.

    graspologic's block models take unweighted graphs, so the similarity is binarized first:

    - ``threshold="knn"`` (default): each unit is linked to its ``n_neighbors`` most similar units
      (default m = ceil(log2 n) + 1), and the links are symmetrized (i ~ j if either is among the
      other's neighbours);
    - ``threshold="quantile"``: i ~ j when their similarity is at or above the ``q``-quantile of all pairs.

    The number of blocks is ``n_blocks`` or, when None, the candidate in 1..``max_blocks`` whose fitted
    model has the lowest BIC (graspologic's ``bic(graph)``). The budget is shared across blocks in
    proportion to their sizes (largest remainder, at least one per block when k >= blocks; when k is
    smaller the k largest blocks keep one unit each), each block keeps its most central units (highest
    mean similarity to the block), and dropped units go to the most similar kept unit of their block.

    On kNN graphs of compact clusters the BIC sometimes prefers one block more than there are
    clusters (inside a cluster the kNN graph is not a uniform random block); give ``n_blocks`` when
    the number of blocks is known. graspologic estimates the blocks by an adjacency spectral embedding
    in ``n_blocks`` dimensions followed by a Gaussian mixture.

    Fitted attributes: ``labels_`` (block of each unit), ``n_blocks_``, ``block_p_`` (block edge
    probabilities), ``bic_`` ({n_blocks: BIC}), ``graph_`` (the 0/1 adjacency), ``scores_`` (centrality).
    """

    def __init__(
        self,
        budget: int | float = 0.5,
        n_blocks: int | None = None,
        max_blocks: int = 8,
        degree_corrected: bool = False,
        threshold: str = "knn",
        n_neighbors: int | None = None,
        q: float = 0.9,
        random_state: RandomState = None,
    ) -> None:
        super().__init__(budget, random_state)
        self.n_blocks = n_blocks
        self.max_blocks = max_blocks
        self.degree_corrected = degree_corrected
        self.threshold = threshold
        self.n_neighbors = n_neighbors
        self.q = q

    def _candidates(self, n: int) -> list[int]:
        if self.n_blocks is not None:
            if (
                isinstance(self.n_blocks, bool)
                or not isinstance(self.n_blocks, (int, np.integer))
                or not 1 <= self.n_blocks <= n
            ):
                raise SelectionError(f"selector 'sbm': n_blocks must be an int in [1, {n}], got {self.n_blocks!r}.")
            return [int(self.n_blocks)]
        if not isinstance(self.max_blocks, (int, np.integer)) or self.max_blocks < 1:
            raise SelectionError(f"selector 'sbm': max_blocks must be a positive int, got {self.max_blocks!r}.")
        return list(range(1, min(int(self.max_blocks), max(1, n - 1)) + 1))

    def _fit_model(self, graph: np.ndarray, n_blocks: int, seed: int):
        from graspologic.models import DCSBMEstimator, SBMEstimator

        common = dict(
            directed=False,
            loops=False,
            min_comm=n_blocks,
            max_comm=n_blocks,
            # a c-block model has rank <= c: embed in c dimensions (the elbow rule often picks too few)
            n_components=max(1, min(n_blocks, graph.shape[0] - 1)),
            cluster_kws={"random_state": seed, "covariance_type": "full", "n_init": 4},
            embed_kws={"svd_seed": seed, "check_lcc": False},
        )
        model = DCSBMEstimator(degree_directed=False, **common) if self.degree_corrected else SBMEstimator(**common)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(graph)
        if not hasattr(model, "n_verts"):  # graspologic 3.4's bic() reads n_verts, which fit() does not set
            model.n_verts = graph.shape[0]
        with np.errstate(all="ignore"):
            bic = float(model.bic(graph))
        if not np.isfinite(bic):  # a degree-corrected P can leave [0, 1]: score with clipped probabilities
            loglik = float(np.sum(model.score_samples(graph, clip=1e-12)))
            bic = 2 * np.log(graph.shape[0]) * model._n_parameters() - 2 * loglik
        return model, bic

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        self._choice("threshold", THRESHOLDS)
        sim = self._kernel(view)
        n = view.n_units
        graph = binarize(sim, self.threshold, self.n_neighbors, self.q)
        seed = seed_from(rng)
        self.bic_: dict[int, float] = {}
        best = None
        if n == 1:
            labels = np.zeros(1, dtype=int)
            self.block_p_ = np.zeros((1, 1))
        else:
            for c in self._candidates(n):
                try:
                    model, bic = self._fit_model(graph, c, seed)
                except (ValueError, np.linalg.LinAlgError) as exc:
                    raise SelectionError(
                        f"selector 'sbm': graspologic could not fit {c} blocks on the {n}-unit graph ({exc}); "
                        "give n_blocks explicitly, lower max_blocks, or use threshold='quantile' for a denser graph."
                    ) from exc
                self.bic_[c] = bic
                if best is None or bic < best[1]:
                    best = (model, bic)
            # sorted block ids, so that labels index block_p_
            labels = np.unique(best[0].vertex_assignments_, return_inverse=True)[1]
            self.block_p_ = np.asarray(best[0].block_p_)
        self.labels_ = labels
        self.n_blocks_ = int(labels.max()) + 1
        self.graph_ = graph
        keep, scores = keep_central(sim, labels, k)
        return keep, scores, labels
