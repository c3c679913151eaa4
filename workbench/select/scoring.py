"""Selectors that score units one by one: random, magnitude and activation statistics."""

from __future__ import annotations

import numpy as np

from workbench.select.base import Selector, register_selector
from workbench.select.chunks import row_chunks
from workbench.select.grouping import top_k
from workbench.select.validation import require
from workbench.unitview import UnitView
from workbench.utils import RandomState


@register_selector("random", description="uniform random k-subset (baseline)")
class RandomSelector(Selector):
    """Keep a uniformly random k-subset; dropped units go to their most similar kept unit.

    ``scores_`` are the uniform random keys whose k largest were kept.
    """

    uses_similarity = False

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        scores = rng.random(view.n_units)
        return top_k(scores, k), scores, None


@register_selector("magnitude", description="largest L1/L2 norm of incoming or outgoing weights, or BatchNorm scale")
class MagnitudeSelector(Selector):
    """Keep the units with the largest weight norm (Li et al. 2017) or BatchNorm scale (Liu et al. 2017).

    Parameters
    ----------
    budget
        int k or fraction in (0, 1].
    criterion
        ``"l1"`` or ``"l2"`` norm of each unit's weights (ignored for ``source="bn"``).
    source
        ``"in"`` (``view.in_weights``, the unit's incoming weights), ``"out"`` (``view.out_weights``,
        the consumer weights reading the unit) or ``"bn"`` (|``view.bn_scale``|).

    ``scores_`` are the norms (or |gamma|). Constant features are fine: the choice does not use similarity.
    """

    uses_similarity = False
    SOURCES = {"in": "in_weights", "out": "out_weights", "bn": "bn_scale"}

    def __init__(
        self, budget: int | float = 0.5, criterion: str = "l1", source: str = "in", random_state: RandomState = None
    ) -> None:
        super().__init__(budget, random_state)
        self.criterion = criterion
        self.source = source

    def _check_params(self) -> None:
        self._choice("source", tuple(self.SOURCES))
        self._choice("criterion", ("l1", "l2"))

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        source, criterion = self.source, self.criterion
        values = require(
            view, self.SOURCES[source], self.name, f"Choose another source than {source!r} or build the view with it."
        )
        if source == "bn":
            scores = np.abs(values.reshape(view.n_units))
        else:
            flat = values.reshape(view.n_units, -1)
            scores = np.abs(flat).sum(axis=1) if criterion == "l1" else np.sqrt((flat * flat).sum(axis=1))
        return top_k(scores, k), scores, None


@register_selector("activation", description="largest mean |activation| or lowest APoZ (Hu et al. 2016)")
class ActivationSelector(Selector):
    """Keep units by activation statistics over ``view.activations`` (samples x units).

    Parameters
    ----------
    criterion
        ``"mean"``: keep the largest mean |activation|; ``"apoz"``: keep the lowest Average Percentage
        of Zeros (Hu et al. 2016, "Network Trimming").
    zero_tol
        An activation counts as zero when |a| <= zero_tol (0: exact zeros, as after a ReLU).

    ``scores_`` are the mean |activation| or 1 - APoZ (higher = keep). ``apoz_`` holds the APoZ per unit.
    """

    uses_similarity = False

    def __init__(
        self,
        budget: int | float = 0.5,
        criterion: str = "mean",
        zero_tol: float = 0.0,
        random_state: RandomState = None,
    ) -> None:
        super().__init__(budget, random_state)
        self.criterion = criterion
        self.zero_tol = zero_tol

    def _check_params(self) -> None:
        self._choice("criterion", ("mean", "apoz"))
        self._real("zero_tol", 0.0)

    def _select(self, view: UnitView, k: int, rng: np.random.Generator):
        criterion = self.criterion
        acts = require(view, "activations", self.name, "Build the view from data (source='activations' or data=...).")
        acts = acts.reshape(acts.shape[0], view.n_units)
        total, zeros = np.zeros(view.n_units), np.zeros(view.n_units)
        for block in row_chunks(acts):  # no copy of the activations
            block = np.abs(block)
            total += block.sum(axis=0)
            zeros += (block <= float(self.zero_tol)).sum(axis=0)
        self.apoz_ = zeros / acts.shape[0]
        scores = total / acts.shape[0] if criterion == "mean" else 1.0 - self.apoz_
        return top_k(scores, k), scores, None
