"""Diverse units by a k-DPP over the unit kernel (Mariet & Sra 2016, Diversity Networks)."""

from __future__ import annotations

import dataclasses

import numpy as np

from workbench.errors import SelectionError
from workbench.select.base import Selector, register_selector
from workbench.select.kdpp import KDPP, greedy_map_details, sample_k_dpp_dppy
from workbench.unitview import METRICS, UnitView
from workbench.utils import RandomState

MODES = ("sample", "map")
BACKENDS = ("workbench", "dppy")
#: metrics whose similarity is a Gram matrix B Bᵀ of (transformed) features
GRAM_METRICS = ("cosine", "correlation", "linear")


def kernel_features(view: UnitView) -> np.ndarray | None:
    """Features B with B Bᵀ equal to the view's similarity, or None when it is not such a Gram matrix.

    Cosine: rows scaled to unit norm (zero rows stay zero, as in :func:`~workbench.unitview.gram_similarity`);
    correlation: rows centred, then scaled; linear: the features as they are. None for rbf and for views
    with a precomputed ``kernel`` (which may not come from the features).
    """
    if view.kernel is not None or view.metric not in GRAM_METRICS:
        return None
    x = view.features
    if view.metric == "linear":
        return x
    if view.metric == "correlation":
        x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 1e-150)
    return x * scale[:, None]


class _FactorSimilarity:
    """The similarity B Bᵀ read by columns (``sim[:, cols]``) without forming the n x n matrix."""

    def __init__(self, features: np.ndarray) -> None:
        self.features = features

    def __getitem__(self, key: tuple[slice, np.ndarray]) -> np.ndarray:
        rows, cols = key
        return self.features[rows] @ self.features[cols].T


@register_selector("dpp", description="k-DPP over the unit kernel: exact sample or greedy MAP (Mariet & Sra 2016)")
class DPPSelector(Selector):
    """Keep a diverse k-subset: a k-DPP with likelihood kernel the view's similarity (checked PSD).

    Parameters
    ----------
    mode
        ``"sample"``: one exact k-DPP sample (Diversity Networks); ``"map"``: greedy MAP, the k units that
        greedily maximize log det(L_S) (Chen, Zhang & Zhou 2018).
    backend
        ``"workbench"`` (:class:`~workbench.select.kdpp.KDPP`'s log-domain spectral sampler) or
        ``"dppy"`` (dppy's ``sample_exact_k_dpp``; sample mode only).
    ridge
        Added to the kernel's diagonal, relative to its mean diagonal: L + ridge * mean(diag L) * I.
        It keeps a k-DPP defined when k exceeds the kernel's rank (few features, duplicate units);
        0 disables it.
    metric
        None: the view's similarity (its ``metric``, or its precomputed ``kernel``). A metric name
        (``"cosine"``, ``"correlation"``, ``"rbf"``, ``"linear"``): the similarity recomputed from the view's
        features with it (the ``diversity-networks`` preset uses ``"rbf"``); dropped units are then assigned
        by it too.

    When the view's similarity is a Gram matrix of d < n features (cosine, correlation or linear metric,
    no precomputed kernel) the workbench backend works on the features (``route_ = "dual"``): exact
    sampling through the dual kernel Bᵀ B (d x d), greedy MAP on B's rows; the n x n kernel is never
    formed. The distribution is the same as on the kernel (``route_ = "primal"``).

    ``scores_``: in sample mode the exact inclusion probabilities P(i in S) (also ``marginals_``); in
    map mode, for kept units the increase of log det's argument when they joined (their residual
    variance, ``gains_`` in order ``order_``), for dropped units their residual variance given the kept
    set (what they would still add). Dropped units go to their most similar kept unit.
    """

    def __init__(
        self,
        budget: int | float = 0.5,
        mode: str = "sample",
        backend: str = "workbench",
        ridge: float = 1e-6,
        metric: str | None = None,
        random_state: RandomState = None,
    ) -> None:
        super().__init__(budget, random_state)
        self.mode = mode
        self.backend = backend
        self.ridge = ridge
        self.metric = metric

    def _check_params(self) -> None:
        mode = self._choice("mode", MODES)
        backend = self._choice("backend", BACKENDS)
        self._real("ridge", 0.0)
        self._choice("metric", METRICS, optional=True)
        if mode == "map" and backend != "workbench":
            raise SelectionError("selector 'dpp': greedy MAP (mode='map') is only in the 'workbench' backend.")

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        mode, backend = self.mode, self.backend
        if self.metric is not None and self.metric != view.metric:
            view = dataclasses.replace(view, metric=self.metric, kernel=None)
        B = kernel_features(view) if backend == "workbench" else None
        self._factor = B if B is not None and B.shape[1] < B.shape[0] else None
        self.route_ = "primal" if self._factor is None else "dual"
        self.fit_info_["route"] = self.route_
        if self._factor is not None:
            self.kernel_ = None
            ridge = float(self.ridge) * float(np.mean(np.einsum("ij,ij->i", B, B)))
            kernel = {"features": B, "ridge": ridge}
        else:
            L = self._kernel(view, psd=True)
            ridge = float(self.ridge) * max(float(np.mean(np.diag(L))), 0.0)
            self.kernel_ = L = L + ridge * np.eye(view.n_units)
            kernel = {"L": L}
        if mode == "map":
            order, gains, residual = greedy_map_details(kernel.pop("L", None), k, **kernel)
            self.order_, self.gains_ = order, gains
            scores = residual.copy()
            scores[order] = gains
            return np.sort(order), scores, None
        dpp = KDPP(**kernel)
        keep = dpp.sample(k, rng) if backend == "workbench" else sample_k_dpp_dppy(self.kernel_, k, rng)
        self.marginals_ = dpp.marginals(k)
        return keep, self.marginals_, None

    def _assignment_similarity(self, view: UnitView):
        if self._factor is not None:
            return _FactorSimilarity(self._factor)
        return super()._assignment_similarity(view)
