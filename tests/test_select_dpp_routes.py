"""The dpp selector samples through the dual kernel when its similarity is a Gram matrix of d < n features."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.select import KDPP, get_selector
from workbench.select.dpp import kernel_features
from workbench.unitview import UnitView, similarity_matrix


def features(n: int = 30, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * rng.uniform(0.2, 3.0, size=(n, 1))


@pytest.mark.parametrize("metric", ["cosine", "correlation", "linear"])
def test_kernel_features_reproduce_the_similarity(metric):
    x = features()
    x[4] = 0.0  # a zero row stays zero
    B = kernel_features(UnitView("g", x, metric=metric))
    np.testing.assert_allclose(B @ B.T, similarity_matrix(x, metric), atol=1e-12)
    assert kernel_features(UnitView("g", x, metric="rbf")) is None
    assert kernel_features(UnitView("g", x, kernel=similarity_matrix(x, metric))) is None


def test_dual_route_is_chosen_for_narrow_gram_views_and_gives_the_primal_marginals():
    x = features()
    dual = get_selector("dpp", budget=8, random_state=0).fit(x)
    assert dual.route_ == "dual" and dual.selection_.info["route"] == "dual"
    view = UnitView("g", x)
    L = view.similarity().copy()
    primal = get_selector("dpp", budget=8, random_state=0).fit(view)  # the kernel is now precomputed
    assert primal.route_ == "primal"
    np.testing.assert_allclose(dual.marginals_, primal.marginals_, atol=1e-10)
    ridged = L + 1e-6 * np.mean(np.diag(L)) * np.eye(30)
    np.testing.assert_allclose(dual.marginals_, KDPP(ridged).marginals(8), atol=1e-10)
    # a fit does not leave the n x n kernel behind on the view, so refitting takes the same route and draw
    fresh = UnitView("g", x)
    first = get_selector("dpp", budget=8, random_state=3).fit(fresh).keep_
    assert fresh.kernel is None
    assert np.array_equal(get_selector("dpp", budget=8, random_state=3).fit(fresh).keep_, first)
    # dropped units go to their most similar kept unit, as with the explicit kernel
    s = dual.selection_
    for i in range(30):
        assert L[i, s.assign[i]] == pytest.approx(L[i, s.keep].max())


def test_map_mode_on_features_equals_map_mode_on_the_kernel():
    # linear metric: distinct diagonals (a cosine kernel's diagonal ties at 1, so the first pick is any unit)
    x = features(n=40, d=12, seed=2)
    dual = get_selector("dpp", budget=10, mode="map").fit(UnitView("g", x, metric="linear"))
    primal = get_selector("dpp", budget=10, mode="map").fit(
        UnitView("g", x, metric="linear", kernel=similarity_matrix(x, "linear"))
    )
    assert dual.route_ == "dual" and primal.route_ == "primal"
    assert dual.order_.tolist() == primal.order_.tolist()
    np.testing.assert_allclose(dual.scores_, primal.scores_, atol=1e-9)


def test_wide_views_rbf_and_dppy_use_the_kernel():
    assert get_selector("dpp", budget=3, random_state=0).fit(features(n=8, d=12)).route_ == "primal"
    assert get_selector("dpp", budget=3, random_state=0).fit(UnitView("g", features(), metric="rbf")).route_ == "primal"
    assert get_selector("dpp", budget=3, random_state=0, backend="dppy").fit(features()).route_ == "primal"
