"""Stochastic-block-model selection: blocks of interchangeable units, the most central of each kept."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from workbench.errors import SelectionError, SelectionWarning
from workbench.select.base import Selector, register_selector
from workbench.select.graphs import THRESHOLDS, binarize
from workbench.select.grouping import keep_central, relabel
from workbench.unitview import UnitView
from workbench.utils import RandomState, seed_from

#: candidate block counts go up to n // MIN_BLOCK_SIZE, so that a block holds three units on average
MIN_BLOCK_SIZE = 3
#: exact SVD for the embedding up to this many units, a partial eigendecomposition above
FULL_SVD_MAX_UNITS = 1000
#: what graspologic and scikit-learn raise on a graph or embedding they cannot fit (e.g. ZeroDivisionError for a
#: block without a pair of units, ValueError for an ill-defined mixture component)
FIT_ERRORS = (ArithmeticError, LookupError, ValueError, NotImplementedError, np.linalg.LinAlgError)


def max_block_count(n: int, max_blocks: int) -> int:
    """The largest block count tried on ``n`` units: ``max_blocks``, at most n // MIN_BLOCK_SIZE, at least 1."""
    return max(1, min(int(max_blocks), n // MIN_BLOCK_SIZE))


def merge_singletons(labels: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels with every one-unit block merged into the block of that unit's most similar other unit.

    A block model cannot estimate the edge probability inside a block without a pair of units (graspologic
    divides by zero), so such blocks are dropped this way. Returns the labels renumbered 0..c-1 and the number
    of blocks merged.
    """
    labels = relabel(labels)
    if labels.size < 2:
        return labels, 0
    others = np.array(sim, dtype=np.float64)
    np.fill_diagonal(others, -np.inf)
    merged = 0
    while True:
        single = np.flatnonzero(np.bincount(labels)[labels] == 1)
        if single.size == 0:
            return relabel(labels), merged
        unit = int(single[0])
        labels[unit] = labels[int(np.argmax(others[unit]))]  # ties: lower index
        merged += 1


@register_selector("sbm", description="stochastic block model (graspologic SBM / DCSBM) on the unit-similarity graph")
class SBMSelector(Selector):
    """Fit a (degree-corrected) stochastic block model to the unit-similarity graph, keep central units per block.

    graspologic's block models take unweighted graphs, so the similarity is binarized first:

    - ``threshold="knn"`` (default): each unit is linked to its ``n_neighbors`` most similar units
      (default m = ceil(log2 n) + 1), and the links are symmetrized (i ~ j if either is among the
      other's neighbours);
    - ``threshold="quantile"``: i ~ j when their similarity is at or above the ``q``-quantile of all pairs.

    Blocks are estimated as graspologic's estimators do: an adjacency spectral embedding (a regularized
    Laplacian one for ``degree_corrected``) clustered by a Gaussian mixture (full covariances, 4 starts),
    c blocks from the first c embedding dimensions. The embedding is computed once for all candidates.
    A block of one unit is merged into the block of its most similar other unit (a block model needs a
    pair inside each block), and graspologic's ``SBMEstimator`` / ``DCSBMEstimator`` is fitted to the
    graph with these blocks.

    The number of blocks is ``n_blocks`` or, when None, the candidate in 1..``max_blocks`` whose fitted
    model has the lowest BIC (graspologic's ``bic(graph)``). Candidates stop at n // 3 blocks on n units
    (a block holds three units on average); an ``n_blocks`` above that is lowered to it. A candidate that
    cannot be fitted is skipped; when none can, the group is one block (every unit in it). Both fallbacks
    raise a :class:`~workbench.errors.SelectionWarning` and are recorded in the Selection's ``info``
    (``model``, ``n_blocks``, ``bic``, ``merged_singletons``, ``failed``, ``fallback``).

    The budget is shared across blocks in proportion to their sizes (largest remainder, at least one per
    block when k >= blocks; when k is smaller the k largest blocks keep one unit each), each block keeps
    its most central units (highest mean similarity to the block), and dropped units go to the most
    similar kept unit of their block.

    On kNN graphs of compact clusters the BIC sometimes prefers one block more than there are
    clusters (inside a cluster the kNN graph is not a uniform random block); give ``n_blocks`` when
    the number of blocks is known.

    Fitted attributes: ``labels_`` (block of each unit), ``n_blocks_``, ``block_p_`` (block edge
    probabilities), ``bic_`` ({number of blocks fitted: BIC}), ``graph_`` (the 0/1 adjacency), ``scores_``
    (centrality), ``fit_info_`` (as the Selection's ``info``).
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

    @staticmethod
    def _check_count(name: str, value: Any) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SelectionError(f"selector 'sbm': {name} must be a positive int, got {value!r}.")
        return int(value)

    def _check_params(self) -> None:
        if self.n_blocks is not None:
            self._check_count("n_blocks", self.n_blocks)
        self._check_count("max_blocks", self.max_blocks)
        self._flag("degree_corrected")
        self._choice("threshold", THRESHOLDS)
        self._count("n_neighbors", optional=True)
        self._real("q", 0.0, high=1.0, high_open=True)

    def _candidates(self, n: int) -> tuple[list[int], str | None]:
        """Block counts to try on ``n`` units, and a note when ``n_blocks`` had to be lowered."""
        if self.n_blocks is None:
            return list(range(1, max_block_count(n, int(self.max_blocks)) + 1)), None
        asked = int(self.n_blocks)
        used = max_block_count(n, asked)
        if used == asked:
            return [asked], None
        return [used], f"n_blocks={asked} lowered to {used}: {n} units hold at most {used} blocks of {MIN_BLOCK_SIZE}"

    def _embed(self, graph: np.ndarray, dims: int, seed: int) -> np.ndarray:
        from graspologic.embed import AdjacencySpectralEmbed, LaplacianSpectralEmbed

        options = dict(
            n_components=dims,
            algorithm="full" if graph.shape[0] <= FULL_SVD_MAX_UNITS else "eigsh",
            check_lcc=False,
            svd_seed=seed,
        )
        if self.degree_corrected:
            embed = LaplacianSpectralEmbed(form="R-DAD", **options)
        else:
            embed = AdjacencySpectralEmbed(**options)
        return np.asarray(embed.fit_transform(graph))

    @staticmethod
    def _cluster(latent: np.ndarray, n_blocks: int, seed: int) -> np.ndarray:
        if n_blocks == 1:
            return np.zeros(latent.shape[0], dtype=int)
        from sklearn.mixture import GaussianMixture

        mixture = GaussianMixture(n_components=n_blocks, covariance_type="full", n_init=4, random_state=seed)
        return mixture.fit_predict(latent[:, :n_blocks])

    def _fit_model(self, graph: np.ndarray, labels: np.ndarray):
        from graspologic.models import DCSBMEstimator, SBMEstimator

        if self.degree_corrected:
            model = DCSBMEstimator(degree_directed=False, directed=False, loops=False)
        else:
            model = SBMEstimator(directed=False, loops=False)
        model.fit(graph, y=labels)
        model.vertex_assignments_ = labels  # estimated blocks: the BIC counts their c - 1 parameters
        model.n_verts = graph.shape[0]  # graspologic 3.4's bic() reads n_verts, which fit() does not set
        with np.errstate(all="ignore"):
            bic = float(model.bic(graph))
        if not np.isfinite(bic):  # a degree-corrected P can leave [0, 1]: score with clipped probabilities
            loglik = float(np.sum(model.score_samples(graph, clip=1e-12)))
            bic = 2 * np.log(graph.shape[0]) * model._n_parameters() - 2 * loglik
        return model, bic

    def _fit_candidates(self, sim: np.ndarray, graph: np.ndarray, candidates: list[int], seed: int) -> dict[str, Any]:
        """Fit every candidate; the best (lowest BIC) model's labels and block_p, the BICs, and the failures."""
        best: dict[str, Any] = {}
        failed: dict[int, str] = {}
        latent = None
        if max(candidates) > 1:
            try:
                latent = self._embed(graph, max(candidates), seed)
            except FIT_ERRORS as exc:
                failed.update({c: f"embedding: {type(exc).__name__}: {exc}" for c in candidates if c > 1})
        for c in candidates:
            if c > 1 and latent is None:
                continue
            try:
                found = self._cluster(latent, c, seed) if c > 1 else np.zeros(graph.shape[0], dtype=int)
                labels, merged = merge_singletons(found, sim)
                model, bic = self._fit_model(graph, labels)
            except FIT_ERRORS as exc:
                failed[c] = f"{type(exc).__name__}: {exc}"
                continue
            fitted = int(labels.max()) + 1
            if fitted not in self.bic_ or bic < self.bic_[fitted]:
                self.bic_[fitted] = bic
            if not best or bic < best["bic"]:
                best = {"labels": labels, "block_p": np.asarray(model.block_p_, dtype=np.float64), "bic": bic}
                best["merged_singletons"] = merged
        return {**best, "failed": failed}

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        from threadpoolctl import threadpool_limits

        sim = self._kernel(view)
        n = view.n_units
        candidates, lowered = self._candidates(n)
        seed = seed_from(rng)
        self.bic_: dict[int, float] = {}
        self.graph_ = binarize(sim, self.threshold, self.n_neighbors, self.q) if n > 1 else np.zeros((1, 1))
        fit: dict[str, Any] = {"failed": {}}
        if n > 1:
            # the matrices are small: BLAS and OpenMP threads only wait on each other (10x slower on a busy machine)
            with threadpool_limits(limits=1), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = self._fit_candidates(sim, self.graph_, candidates, seed)
        fallback = [lowered] if lowered else []
        if fit["failed"]:
            fallback.append(
                "could not fit " + "; ".join(f"{c} blocks ({reason})" for c, reason in sorted(fit["failed"].items()))
            )
        if "labels" in fit:
            labels, self.block_p_ = fit["labels"], fit["block_p"]
            model = "DCSBMEstimator" if self.degree_corrected else "SBMEstimator"
        else:  # nothing could be fitted (or a single unit): one block, its edge probability the graph's density
            labels = np.zeros(n, dtype=int)
            self.block_p_ = np.array([[self.graph_.sum() / max(1, n * (n - 1))]])
            model = "one block"
            if n > 1:
                fallback.append("used one block holding every unit")
        self.labels_ = labels
        self.n_blocks_ = int(labels.max()) + 1
        self.fit_info_ = {
            "model": model,
            "n_blocks": self.n_blocks_,
            "candidates": candidates,
            "bic": dict(self.bic_),
            "merged_singletons": fit.get("merged_singletons", 0),
            "failed": dict(fit["failed"]),
            "fallback": "; ".join(fallback) or None,
        }
        if fallback:
            warnings.warn(
                f"selector 'sbm', group {view.group!r} ({n} units): {'; '.join(fallback)}. "
                "The Selection's info['fallback'] records it.",
                SelectionWarning,
                stacklevel=3,
            )
        keep, scores = keep_central(sim, labels, k)
        return keep, scores, labels
