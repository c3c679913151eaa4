"""Diverse units by a k-DPP over the unit kernel (Mariet & Sra 2016, Diversity Networks)."""

from __future__ import annotations

import numpy as np

from workbench.errors import SelectionError
from workbench.select.base import Selector, register_selector
from workbench.select.kdpp import KDPP, greedy_map_details, sample_k_dpp_dppy
from workbench.unitview import UnitView
from workbench.utils import RandomState

MODES = ("sample", "map")
BACKENDS = ("workbench", "dppy")


@register_selector("dpp", description="k-DPP over the unit kernel: exact sample or greedy MAP (Mariet & Sra 2016)")
class DPPSelector(Selector):
    """Keep a diverse k-subset: a k-DPP with likelihood kernel the view's similarity (checked PSD).

    Parameters
    ----------
    mode
        ``"sample"``: one exact k-DPP sample (Diversity Networks); ``"map"``: greedy MAP, the k units that
        greedily maximize log det(L_S) (Chen, Zhang & Zhou 2018).
    backend
        ``"workbench"`` (:func:`~workbench.select.kdpp.sample_k_dpp`'s log-domain spectral sampler) or
        ``"dppy"`` (dppy's ``sample_exact_k_dpp``; sample mode only).
    ridge
        Added to the kernel's diagonal, relative to its mean diagonal: L + ridge * mean(diag L) * I.
        It keeps a k-DPP defined when k exceeds the kernel's rank (few features, duplicate units);
        0 disables it.

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
        random_state: RandomState = None,
    ) -> None:
        super().__init__(budget, random_state)
        self.mode = mode
        self.backend = backend
        self.ridge = ridge

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        mode = self._choice("mode", MODES)
        backend = self._choice("backend", BACKENDS)
        if not (isinstance(self.ridge, (int, float, np.floating)) and float(self.ridge) >= 0):
            raise SelectionError(f"selector 'dpp': ridge must be a number >= 0, got {self.ridge!r}.")
        L = self._kernel(view, psd=True)
        L = L + float(self.ridge) * max(float(np.mean(np.diag(L))), 0.0) * np.eye(view.n_units)
        self.kernel_ = L
        if mode == "map":
            if backend != "workbench":
                raise SelectionError("selector 'dpp': greedy MAP (mode='map') is only in the 'workbench' backend.")
            order, gains, residual = greedy_map_details(L, k)
            self.order_, self.gains_ = order, gains
            scores = residual.copy()
            scores[order] = gains
            return np.sort(order), scores, None
        dpp = KDPP(L)
        keep = dpp.sample(k, rng) if backend == "workbench" else sample_k_dpp_dppy(L, k, rng)
        self.marginals_ = dpp.marginals(k)
        return keep, self.marginals_, None
