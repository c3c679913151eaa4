"""Selectors: the Selection contract, budgets, input validation, and what each selector chooses."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from workbench.errors import ConfigError, SelectionError, UnknownNameError
from workbench.select import Selection, get_selector, list_selectors, resolve_budget
from workbench.select.grouping import allocate_budget
from workbench.select.submodular import FacilityLocation, LogDet, greedy_maximize
from workbench.unitview import UnitView

ALL = ["activation", "dpp", "leiden", "magnitude", "random", "sbm", "spectral", "submodular"]
SIMILARITY_BASED = [("sbm", {"n_blocks": 2}), ("spectral", {}), ("leiden", {}), ("dpp", {}), ("submodular", {})]


def planted(sizes=(20, 25, 30), d=16, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    centres = 3.0 * rng.standard_normal((len(sizes), d))
    features = centres[truth] + noise * rng.standard_normal((truth.size, d))
    return features, truth


@pytest.fixture(scope="module")
def view():
    features, _ = planted()
    rng = np.random.default_rng(1)
    n = features.shape[0]
    return UnitView(
        "layer1",
        features,
        in_weights=features,
        out_weights=rng.standard_normal((n, 6)),
        bn_scale=rng.uniform(0.1, 2.0, n),
        activations=np.maximum(rng.standard_normal((40, n)), 0.0),
    )


# -- budget and Selection -------------------------------------------------------------------------
def test_resolve_budget():
    assert resolve_budget(10, 3) == 3
    assert resolve_budget(10, np.int64(10)) == 10
    assert resolve_budget(10, 0.25) == 3  # 2.5 rounds half up
    assert resolve_budget(10, 0.01) == 1
    assert resolve_budget(10, 1.0) == 10


@pytest.mark.parametrize(
    "budget, message",
    [
        (0, r"k = 0 is out of range: keep between 1 and 10"),
        (11, r"k = 11 is out of range"),
        (1.5, r"fraction 1.5 is out of range"),
        (0.0, r"fraction 0.0"),
        (float("nan"), r"fraction nan"),
        (True, "bool"),
        ("half", "str"),
    ],
)
def test_resolve_budget_refuses(budget, message):
    with pytest.raises(SelectionError, match=message):
        resolve_budget(10, budget)


def test_selection_validation_and_json_round_trip():
    s = Selection(
        "g",
        5,
        keep=[3, 0],
        assign=[0, 0, 3, 3, 0],
        scores=[1, 0.5, 0.2, 0.9, 0.1],
        method="m",
        params={"a": np.int64(2)},
    )
    assert s.keep.tolist() == [0, 3] and s.k == 2 and s.fraction == 0.4 and s.dropped.tolist() == [1, 2, 4]
    data = json.loads(json.dumps(s.to_dict()))
    back = Selection.from_dict(data)
    assert back.keep.tolist() == [0, 3] and back.assign.tolist() == s.assign.tolist()
    np.testing.assert_array_equal(back.scores, s.scores)
    assert back.params == {"a": 2} and back.method == "m"
    with pytest.raises(SelectionError, match="keep is empty"):
        Selection("g", 3, keep=[], assign=[0, 0, 0], scores=[0, 0, 0])
    with pytest.raises(SelectionError, match="outside"):
        Selection("g", 3, keep=[3], assign=[0, 0, 0], scores=[0, 0, 0])
    with pytest.raises(SelectionError, match=r"units \[1\] do not"):
        Selection("g", 3, keep=[0, 2], assign=[0, 1, 2], scores=[0, 0, 0])
    with pytest.raises(SelectionError, match="themselves"):
        Selection("g", 3, keep=[0, 2], assign=[0, 0, 0], scores=[0, 0, 0])
    with pytest.raises(SelectionError, match="repeated"):
        Selection("g", 3, keep=[0, 0], assign=[0, 0, 0], scores=[0, 0, 0])


def test_registry():
    assert list_selectors() == ALL
    with pytest.raises(UnknownNameError, match="Did you mean 'spectral'"):
        get_selector("spectra")
    with pytest.raises(ConfigError, match="no parameter.*n_blocks"):
        get_selector("dpp", n_blocks=3)
    selector = get_selector("sbm", budget=4, n_blocks=2)
    assert selector.get_params()["n_blocks"] == 2 and selector.get_params()["budget"] == 4


# -- every selector -------------------------------------------------------------------------------
SETTINGS = [
    ("random", {}),
    ("magnitude", {}),
    ("magnitude", {"source": "out", "criterion": "l2"}),
    ("magnitude", {"source": "bn"}),
    ("activation", {}),
    ("activation", {"criterion": "apoz"}),
    ("sbm", {"n_blocks": 3}),
    ("spectral", {}),
    ("spectral", {"embedding": "lse", "clustering": "gmm", "medoid": "centroid"}),
    ("leiden", {}),
    ("leiden", {"max_cluster_size": 15}),
    ("dpp", {}),
    ("dpp", {"mode": "map"}),
    ("dpp", {"backend": "dppy"}),
    ("submodular", {}),
    ("submodular", {"objective": "logdet"}),
    ("submodular", {"objective": "input_change"}),
]


@pytest.mark.parametrize("name, params", SETTINGS)
def test_selector_contract_and_determinism(view, name, params):
    a = get_selector(name, budget=0.2, random_state=3, **params).fit(view)
    b = get_selector(name, budget=0.2, random_state=3, **params).fit(view)
    s = a.selection_
    assert s.k == 15 and s.n_units == 75 and s.group == "layer1" and s.method == name
    assert np.array_equal(s.keep, b.selection_.keep) and np.array_equal(s.assign, b.selection_.assign)
    assert np.all(np.isin(s.assign, s.keep)) and np.array_equal(s.assign[s.keep], s.keep)
    assert np.array_equal(a.scores_, s.scores) and np.all(np.isfinite(s.scores))
    json.dumps(s.to_dict())
    # dropped units go to the most similar kept unit (within their block/cluster when there is one)
    sim = view.similarity()
    labels = getattr(a, "labels_", None)
    for i in s.dropped[:5]:
        candidates = (
            s.keep if labels is None or not np.any(labels[s.keep] == labels[i]) else s.keep[labels[s.keep] == labels[i]]
        )
        if name == "submodular" and params.get("objective") == "input_change":
            break  # assigned by activation similarity, checked below
        assert sim[i, s.assign[i]] == pytest.approx(sim[i, candidates].max())


@pytest.mark.parametrize("name, params", [("random", {}), ("dpp", {}), ("dpp", {"backend": "dppy"})])
def test_random_selectors_depend_on_the_seed(view, name, params):
    keeps = {tuple(get_selector(name, budget=0.2, random_state=seed, **params).fit(view).keep_) for seed in range(4)}
    assert len(keeps) > 1


def test_raw_array_input_is_wrapped():
    features, _ = planted()
    s = get_selector("dpp", budget=5, mode="map").fit(features).selection_
    assert s.group == "units" and s.k == 5


# -- input validation -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_budget_and_nan_refused_by_every_selector(view, name):
    with pytest.raises(SelectionError, match="k = 76 is out of range"):
        get_selector(name, budget=76).fit(view)
    with pytest.raises(SelectionError, match="k = 0 is out of range"):
        get_selector(name, budget=0).fit(view)
    with pytest.raises(SelectionError, match="fraction 1.5"):
        get_selector(name, budget=1.5).fit(view)
    bad = view.features.copy()
    bad[3, 2] = np.nan
    with pytest.raises(SelectionError, match="NaN or infinite"):
        get_selector(name).fit(UnitView("g", bad, in_weights=view.in_weights, activations=view.activations))


@pytest.mark.parametrize("name, params", SIMILARITY_BASED)
def test_constant_features_refused_by_similarity_selectors(name, params):
    with pytest.raises(SelectionError, match="constant"):
        get_selector(name, **params).fit(np.ones((12, 4)))


@pytest.mark.parametrize("name, params", [("random", {}), ("magnitude", {})])
def test_constant_features_fine_for_magnitude_and_random(name, params):
    constant = UnitView("g", np.ones((12, 4)), in_weights=np.arange(48.0).reshape(12, 4))
    s = get_selector(name, budget=3, random_state=0, **params).fit(constant).selection_
    assert s.k == 3
    if name == "magnitude":
        assert s.keep.tolist() == [9, 10, 11]


def test_kernel_checks():
    features, _ = planted(sizes=(6, 6))
    kernel = features @ features.T
    noise = np.random.default_rng(0).standard_normal(kernel.shape) * 1e-6 * np.abs(kernel).max()
    with pytest.warns(UserWarning, match="slightly asymmetric"):
        get_selector("dpp", budget=3, random_state=0).fit(UnitView("g", features, kernel=kernel + noise))
    lopsided = kernel + np.triu(np.ones_like(kernel)) * np.abs(kernel).max()
    with pytest.raises(SelectionError, match="not symmetric"):
        get_selector("dpp", budget=3).fit(UnitView("g", features, kernel=lopsided))
    values, vectors = np.linalg.eigh(kernel)
    gross = (vectors * np.where(np.arange(12) == 0, -0.5 * values.max(), values)) @ vectors.T
    with pytest.raises(SelectionError, match="not positive semi-definite"):
        get_selector("dpp", budget=3).fit(UnitView("g", features, kernel=gross))
    slight = (vectors * np.where(np.arange(12) == 0, -1e-6 * values.max(), values)) @ vectors.T
    with pytest.warns(UserWarning, match="clipped to 0"):
        get_selector("submodular", budget=3, objective="logdet").fit(UnitView("g", features, kernel=slight))


def test_missing_arrays_are_named():
    features, _ = planted()
    bare = UnitView("g", features)
    with pytest.raises(SelectionError, match="needs view.out_weights"):
        get_selector("magnitude", source="out").fit(bare)
    with pytest.raises(SelectionError, match="needs view.bn_scale"):
        get_selector("magnitude", source="bn").fit(bare)
    with pytest.raises(SelectionError, match="needs view.activations"):
        get_selector("activation").fit(bare)
    with pytest.raises(SelectionError, match="needs view.activations"):
        get_selector("submodular", objective="input_change").fit(bare)
    with pytest.raises(SelectionError, match="source='sideways' is not one of"):
        get_selector("magnitude", source="sideways").fit(UnitView("g", features, in_weights=features))
    with pytest.raises(SelectionError, match="meta\\['graphs'\\]"):
        get_selector("spectral", embedding="omnibus").fit(bare)


# -- scoring selectors ----------------------------------------------------------------------------
def test_magnitude_and_activation_scores():
    weights = np.array([[1.0, -1.0], [3.0, 0.0], [0.5, 0.5], [-2.0, 2.0]])
    view = UnitView(
        "g", weights, in_weights=weights, out_weights=weights[::-1].copy(), bn_scale=np.array([0.1, -5.0, 1.0, 0.2])
    )
    l1 = get_selector("magnitude", budget=2).fit(view)
    np.testing.assert_allclose(l1.scores_, [2, 3, 1, 4])
    assert l1.keep_.tolist() == [1, 3]
    assert get_selector("magnitude", budget=2, criterion="l2").fit(view).keep_.tolist() == [1, 3]
    assert get_selector("magnitude", budget=1, source="out").fit(view).keep_.tolist() == [0]
    assert get_selector("magnitude", budget=2, source="bn").fit(view).keep_.tolist() == [1, 2]
    acts = np.array([[0.0, 1.0, 5.0, 0.0], [0.0, 2.0, 0.0, 0.0], [1.0, 3.0, 0.0, 0.5]])
    view = UnitView("g", weights, activations=acts)
    mean = get_selector("activation", budget=1).fit(view)
    np.testing.assert_allclose(mean.scores_, [1 / 3, 2, 5 / 3, 1 / 6])
    apoz = get_selector("activation", budget=1, criterion="apoz").fit(view)
    np.testing.assert_allclose(apoz.apoz_, [2 / 3, 0, 2 / 3, 2 / 3])
    assert apoz.keep_.tolist() == [1]


# -- graph selectors recover planted blocks -------------------------------------------------------
@pytest.mark.parametrize(
    "name, params",
    [
        ("sbm", {"n_blocks": 3}),
        ("sbm", {"n_blocks": 3, "degree_corrected": True}),
        ("spectral", {"budget": 3}),
        ("spectral", {"budget": 3, "embedding": "lse", "clustering": "gmm"}),
        ("leiden", {}),
    ],
)
def test_planted_blocks_are_recovered(name, params):
    features, truth = planted()
    params = {"budget": 6, **params}
    selector = get_selector(name, random_state=0, **params).fit(features)
    assert adjusted_rand_score(truth, selector.labels_) >= 0.9
    keep = selector.keep_
    assert set(truth[keep]) == {0, 1, 2}  # every block keeps a unit
    # dropped units merge into a kept unit of their own block
    assert np.all(truth[selector.selection_.assign] == truth)


def test_sbm_chooses_the_lowest_bic():
    features, truth = planted(sizes=(15, 15))
    selector = get_selector("sbm", budget=4, max_blocks=3, random_state=0).fit(features)
    assert set(selector.bic_) == {1, 2, 3}
    assert selector.n_blocks_ == min(selector.bic_, key=selector.bic_.get)
    assert selector.bic_[1] > selector.bic_[2]  # one block explains two planted ones worse
    assert selector.graph_.shape == (30, 30) and np.array_equal(selector.graph_, selector.graph_.T)


def test_spectral_omnibus_of_several_graphs():
    features, truth = planted()
    rng = np.random.default_rng(2)
    other = features + 0.3 * rng.standard_normal(features.shape)
    graphs = [np.clip(UnitView("a", f).similarity(), 0, None) for f in (features, other)]
    view = UnitView("g", features, meta={"graphs": graphs})
    selector = get_selector("spectral", budget=3, embedding="omnibus", random_state=0).fit(view)
    assert selector.embedding_.shape[0] == 75
    assert adjusted_rand_score(truth, selector.labels_) >= 0.9


def test_allocate_budget():
    assert allocate_budget(np.array([10, 20, 30]), 6).tolist() == [1, 2, 3]
    assert allocate_budget(np.array([1, 1, 98]), 10).tolist() == [1, 1, 8]  # at least one each
    assert allocate_budget(np.array([5, 40, 20]), 2).tolist() == [0, 1, 1]  # k < blocks: largest blocks
    alloc = allocate_budget(np.array([3, 3, 3]), 9)
    assert alloc.tolist() == [3, 3, 3]
    assert allocate_budget(np.array([7, 5, 1]), 8).sum() == 8


def test_sbm_with_fewer_kept_than_blocks_merges_whole_blocks():
    features, truth = planted()
    selector = get_selector("sbm", budget=2, n_blocks=3, random_state=0).fit(features)
    assert selector.selection_.k == 2
    kept_blocks = set(selector.labels_[selector.keep_])
    assert len(kept_blocks) == 2


# -- submodular -----------------------------------------------------------------------------------
def test_lazy_greedy_equals_plain_greedy():
    for seed in range(5):
        features, _ = planted(seed=seed)
        sim = np.clip(UnitView("g", features).similarity(), 0, None)
        lazy, lazy_gains = greedy_maximize(FacilityLocation(sim), 20, lazy=True)
        plain, plain_gains = greedy_maximize(FacilityLocation(sim), 20, lazy=False)
        assert lazy.tolist() == plain.tolist()
        np.testing.assert_allclose(lazy_gains, plain_gains)
        assert np.all(np.diff(plain_gains) <= 1e-12)  # diminishing returns along the greedy path
        kernel = features @ features.T / 16
        assert (
            greedy_maximize(LogDet(kernel, 10), 10, lazy=True)[0].tolist()
            == greedy_maximize(LogDet(kernel, 10), 10, lazy=False)[0].tolist()
        )


def test_facility_location_value_is_monotone_and_matches_definition():
    features, _ = planted()
    sim = np.clip(UnitView("g", features).similarity(), 0, None)
    objective = FacilityLocation(sim)
    order, _ = greedy_maximize(objective, 75, lazy=True)
    values = [sim[:, order[: t + 1]].max(axis=1).sum() for t in range(75)]
    assert np.all(np.diff(values) >= -1e-12)
    assert objective.value() == pytest.approx(values[-1])
    selector = get_selector("submodular", budget=10).fit(features)
    assert selector.value_ == pytest.approx(sim[:, selector.keep_].max(axis=1).sum())


def test_input_change_drops_linear_combinations_exactly():
    rng = np.random.default_rng(0)
    base = np.abs(rng.standard_normal((200, 6)))
    combos = base @ np.abs(rng.standard_normal((6, 4)))  # units 6..9 are combinations of units 0..5
    A = np.concatenate([base, combos], axis=1)
    W = rng.standard_normal((10, 5))
    view = UnitView("g", A.T, activations=A, out_weights=W)
    selector = get_selector("submodular", budget=6, objective="input_change", reg=0.0).fit(view)
    kept = selector.keep_
    assert np.linalg.matrix_rank(A[:, kept]) == 6
    assert selector.input_change_ == pytest.approx(0.0, abs=1e-6 * np.sum((A @ W) ** 2))
    assert selector.new_out_weights_.shape == (6, 5)
    np.testing.assert_allclose(A[:, kept] @ selector.new_out_weights_, A @ W, rtol=1e-8, atol=1e-8)
    # the default ridge (1e-8) changes the fit only at the level of the ridge
    ridged = get_selector("submodular", budget=6, objective="input_change").fit(view)
    np.testing.assert_allclose(A[:, ridged.keep_] @ ridged.new_out_weights_, A @ W, atol=1e-3)
    # with too small a budget the change is positive and the greedy value is monotone
    small = get_selector("submodular", budget=3, objective="input_change").fit(view)
    assert small.input_change_ > 1e-3
    assert np.all(small.gains_ >= 0)


def test_selectors_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, workbench.select; import numpy as np; from workbench.select import get_selector; "
        "get_selector('dpp', budget=2).fit(np.random.default_rng(0).standard_normal((6, 3))); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_stray_warnings_on_clean_input(view):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_selector("dpp", budget=5, random_state=0).fit(view)
        get_selector("submodular", budget=5, objective="logdet").fit(view)


def test_spectral_fills_the_budget_when_clusters_collapse():
    rng = np.random.default_rng(0)
    distinct = rng.standard_normal((5, 6))
    features = np.repeat(distinct, 4, axis=0)  # 20 units, only 5 distinct
    selector = get_selector("spectral", budget=8, n_components=3, random_state=0).fit(features)
    assert selector.selection_.k == 8
    assert len({tuple(row) for row in features[selector.keep_]}) == 5  # every distinct unit is kept first
