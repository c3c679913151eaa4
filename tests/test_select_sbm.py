"""The SBM selector on every group size, on degenerate features and on the zoo's networks; blocks still found."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from workbench.errors import SelectionError, SelectionWarning
from workbench.select import SBMSelector, Selection, get_selector, resolve_budget
from workbench.select.blockmodel import max_block_count, merge_singletons
from workbench.unitview import UnitView

SIZES = [2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32, 48, 64]


def check_selection(selection: Selection, n: int, budget: int | float, fixed: int = 0) -> None:
    """A valid sbm Selection of ``n`` units keeping the budget (plus ``fixed`` units a plan must keep)."""
    k = resolve_budget(n, budget)
    assert selection.n_units == n and k <= selection.k <= k + fixed and selection.method == "sbm"
    assert selection.assign.shape == (n,) and np.all(np.isin(selection.assign, selection.keep))
    assert np.array_equal(selection.assign[selection.keep], selection.keep)
    assert np.all(np.isfinite(selection.scores))
    json.dumps(selection.to_dict())


def fit_quietly(features: np.ndarray, **params) -> SBMSelector:
    """Fit, failing the test on any SelectionWarning (a fallback where a block model should fit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelectionWarning)
        return get_selector("sbm", **params).fit(features)


@pytest.mark.parametrize("n", SIZES)
def test_every_group_size_gets_a_block_model(n):
    for seed in range(3):
        features = np.random.default_rng(seed).standard_normal((n, 1 + seed * 8))
        for budget in (0.1, 0.5, 1):
            selector = fit_quietly(features, budget=budget, random_state=seed)
            check_selection(selector.selection_, n, budget)
            info = selector.selection_.info
            assert info["model"] == "SBMEstimator" and info["fallback"] is None and not info["failed"]
            assert 1 <= selector.n_blocks_ == info["n_blocks"] <= max_block_count(n, 8)
            assert np.bincount(selector.labels_).min() >= min(2, n)  # no block of one unit


@pytest.mark.parametrize("n", [2, 5, 9, 17, 40])
@pytest.mark.parametrize(
    "params", [{"degree_corrected": True}, {"threshold": "quantile"}, {"threshold": "quantile", "q": 0.0}]
)
def test_small_groups_with_other_graphs_and_models(n, params):
    features = np.random.default_rng(n).standard_normal((n, 6))
    selector = fit_quietly(features, budget=0.3, random_state=0, **params)
    check_selection(selector.selection_, n, 0.3)
    expected = "DCSBMEstimator" if params.get("degree_corrected") else "SBMEstimator"
    assert selector.selection_.info["model"] == expected


def degenerate(kind: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    if kind == "duplicated":  # every unit twice (as far as n allows)
        half = rng.standard_normal((max(2, (n + 1) // 2), 5))
        return np.tile(half, (2, 1))[:n]
    if kind == "two_rows":  # only two distinct units
        return np.repeat(rng.standard_normal((2, 5)), [n // 2, n - n // 2], axis=0)
    if kind == "zero_rows":  # half the units all zero (cosine similarity 0 to everything)
        features = rng.standard_normal((n, 5))
        features[: n // 2] = 0.0
        return features
    if kind == "nearly_constant":  # identical rows but for one tiny coordinate
        features = np.ones((n, 5))
        features[:, 0] += 1e-9 * rng.standard_normal(n)
        return features
    raise ValueError(kind)


@pytest.mark.parametrize("n", [2, 3, 4, 7, 12, 33, 64])
@pytest.mark.parametrize("kind", ["duplicated", "two_rows", "zero_rows", "nearly_constant"])
def test_degenerate_features_give_a_valid_selection(kind, n):
    features = degenerate(kind, n)
    for budget in (0.25, 1):
        selector = fit_quietly(features, budget=budget, random_state=0)
        check_selection(selector.selection_, n, budget)


def test_constant_features_are_refused_with_a_clear_error():
    with pytest.raises(SelectionError, match="constant.*use magnitude or random"):
        get_selector("sbm").fit(np.ones((12, 4)))


def test_n_blocks_above_what_the_group_holds_is_lowered_and_said():
    features = np.random.default_rng(0).standard_normal((10, 4))
    with pytest.warns(SelectionWarning, match=r"group 'units' \(10 units\): n_blocks=8 lowered to 3"):
        selector = get_selector("sbm", budget=3, n_blocks=8, random_state=0).fit(features)
    check_selection(selector.selection_, 10, 3)
    info = selector.selection_.info
    assert info["candidates"] == [3] and "lowered to 3" in info["fallback"] and selector.n_blocks_ <= 3
    with pytest.raises(SelectionError, match="n_blocks must be a positive int"):
        get_selector("sbm", n_blocks=0).fit(features)
    with pytest.raises(SelectionError, match="max_blocks must be a positive int"):
        get_selector("sbm", max_blocks=True).fit(features)


def test_a_failed_fit_falls_back_to_one_block_and_says_so(monkeypatch):
    def fail(self, graph, labels):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(SBMSelector, "_fit_model", fail)
    features = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.warns(SelectionWarning, match="could not fit 1 blocks .*ZeroDivisionError.*used one block"):
        selector = get_selector("sbm", budget=5, random_state=0).fit(features)
    check_selection(selector.selection_, 20, 5)
    info = Selection.from_dict(json.loads(json.dumps(selector.selection_.to_dict()))).info
    assert info["model"] == "one block" and info["n_blocks"] == 1 and selector.n_blocks_ == 1
    assert set(info["failed"]) == {str(c) for c in range(1, 7)}
    assert all(reason.startswith("ZeroDivisionError") for reason in info["failed"].values())
    assert selector.block_p_.shape == (1, 1) and 0 < selector.block_p_[0, 0] <= 1


def test_a_failed_candidate_is_skipped_and_the_others_compete(monkeypatch):
    fit_model = SBMSelector._fit_model

    def fail_on_three(self, graph, labels):
        if labels.max() == 2:
            raise ValueError("ill-defined")
        return fit_model(self, graph, labels)

    monkeypatch.setattr(SBMSelector, "_fit_model", fail_on_three)
    features, _ = planted((10, 10, 10, 10))
    with pytest.warns(SelectionWarning, match=r"could not fit 3 blocks \(ValueError: ill-defined\)"):
        selector = get_selector("sbm", budget=8, max_blocks=5, random_state=0).fit(features)
    assert 3 not in selector.bic_ and selector.n_blocks_ == 4
    assert selector.selection_.info["model"] == "SBMEstimator"


def test_merge_singletons_joins_the_most_similar_unit():
    sim = np.array(
        [
            [1.0, 0.2, 0.9, 0.1, 0.0],
            [0.2, 1.0, 0.3, 0.8, 0.1],
            [0.9, 0.3, 1.0, 0.2, 0.1],
            [0.1, 0.8, 0.2, 1.0, 0.7],
            [0.0, 0.1, 0.1, 0.7, 1.0],
        ]
    )
    labels, merged = merge_singletons(np.array([5, 7, 7, 9, 9]), sim)
    assert merged == 1 and labels.tolist() == [0, 0, 0, 1, 1]  # unit 0 joins unit 2's block
    labels, merged = merge_singletons(np.array([0, 1, 2, 3, 4]), sim)  # all singletons: pairs form
    assert np.bincount(labels).min() >= 2 and merged == 3
    assert merge_singletons(np.array([3]), np.ones((1, 1)))[0].tolist() == [0]


def planted(sizes, d=16, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    centres = 3.0 * rng.standard_normal((len(sizes), d))
    return centres[truth] + noise * rng.standard_normal((truth.size, d)), truth


@pytest.mark.parametrize("degree_corrected", [False, True])
@pytest.mark.parametrize("sizes", [(10, 10, 10, 10), (6, 6), (40, 30, 30)])
def test_planted_blocks_are_found_by_the_bic(sizes, degree_corrected):
    for seed in range(2):
        features, truth = planted(sizes, seed=seed)
        params = {"budget": len(sizes), "degree_corrected": degree_corrected, "random_state": seed}
        selector = fit_quietly(features, **params)
        labels = selector.labels_
        assert adjusted_rand_score(truth, labels) >= 0.75
        # every found block lies inside one planted block (the BIC may split a planted block, never mix two)
        assert all(np.unique(truth[labels == block]).size == 1 for block in np.unique(labels))
        assert len(sizes) <= selector.n_blocks_ <= 2 * len(sizes)
        assert set(truth[selector.keep_]) == set(range(len(sizes)))  # every planted block keeps a unit
        assert selector.n_blocks_ == min(selector.bic_, key=selector.bic_.get)


# -- the zoo's networks ---------------------------------------------------------------------------
CONV_NETS = [
    ("lenet5", {}),
    ("resnet", {"depth": 8, "width": 0.5}),
    ("vgg_small", {"input_size": 16}),
    ("mobilenet_v1", {"width": 0.25, "resolution": 32, "classes": 10}),
    ("cnn1d", {}),
    ("enet", {"input_size": 32, "classes": 4}),
]


@pytest.mark.parametrize("name, kwargs", CONV_NETS, ids=[name for name, _ in CONV_NETS])
def test_plan_from_with_sbm_on_each_conv_net_of_the_zoo(name, kwargs):
    from workbench.graph import from_model
    from workbench.surgery import plan_from
    from workbench.zoo import create_model

    torch.manual_seed(0)
    graph = from_model(create_model(name, **kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelectionWarning)
        plan = plan_from(graph, get_selector("sbm", random_state=0), keep=0.25)
    groups = {group.name: group for group in graph.prunable_groups()}
    assert set(plan.selections) == set(groups)  # every prunable group selected
    for name, selection in plan.selections.items():
        check_selection(selection, selection.n_units, 0.25, fixed=int(np.sum(groups[name].fixed)))
        assert selection.info["model"] == "SBMEstimator"


def test_compress_with_sbm_on_lenet5():
    from workbench.compression import compress
    from workbench.zoo import create_model

    torch.manual_seed(1)
    model = create_model("lenet5")
    result = compress(model, method="sbm", keep=0.1, latency=False, random_state=1)
    assert result.after["params"] < result.before["params"]
    assert all(s.method == "sbm" and s.info["model"] == "SBMEstimator" for s in result.plan.selections.values())


def test_a_single_unit_is_one_block():
    selector = get_selector("sbm", budget=1).fit(UnitView("g", np.array([[1.0, 2.0]])))
    assert selector.keep_.tolist() == [0] and selector.n_blocks_ == 1
