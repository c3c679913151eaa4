"""Intervals over seeds, single-seed binomial intervals and paired differences of study results."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from workbench.study.statistics import binomial_interval, estimate, paired_difference


@pytest.mark.parametrize("values", [[0.91, 0.93], [0.8, 0.85, 0.83], [0.5, 0.61, 0.55, 0.72, 0.6]])
def test_the_interval_over_seeds_is_scipys_t_interval(values):
    result = estimate(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert result.n == len(values) and result.method == "t" and not result.single_seed
    assert result.mean == pytest.approx(np.mean(values))
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))


def test_one_seed_says_single_seed_and_gives_the_binomial_interval_of_the_test_set():
    result = estimate([0.9], n_test=400)
    se = math.sqrt(0.9 * 0.1 / 400)
    z = stats.norm.ppf(0.975)
    assert result.single_seed and result.n == 1 and result.method == "binomial" and result.mean == 0.9
    assert (result.low, result.high) == (pytest.approx(0.9 - z * se), pytest.approx(0.9 + z * se))
    assert result.high - result.low > 0.05  # not a zero-length interval
    assert result.as_dict()["single_seed"] is True


def test_one_seed_of_unknown_test_size_has_no_interval_and_nothing_has_no_mean():
    assert estimate([0.9]).low is None and estimate([0.9]).high is None and estimate([0.9]).method is None
    assert estimate([3.5], n_test=100).low is None  # not an accuracy
    empty = estimate([None, math.nan])
    assert empty.n == 0 and empty.mean is None and empty.low is None


def test_the_binomial_interval_stays_within_zero_and_one():
    assert binomial_interval(1.0, 50) == (1.0, 1.0)
    low, high = binomial_interval(0.99, 10)
    assert 0 <= low < 0.99 < high == 1.0


def test_a_difference_clearly_away_from_zero_is_distinguishable():
    method = {0: 0.95, 1: 0.96, 2: 0.94, 3: 0.955}
    reference = {0: 0.90, 1: 0.905, 2: 0.89, 3: 0.90}
    result = paired_difference(method, reference)
    diffs = [method[s] - reference[s] for s in method]
    low, high = stats.t.interval(0.95, 3, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert result.n == 4 and result.mean == pytest.approx(np.mean(diffs))
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))
    assert result.low > 0 and result.distinguishable


def test_pairing_is_by_seed_not_by_position():
    # unpaired, the two sets overlap entirely; paired seed by seed, the method is always 0.01 better
    reference = {0: 0.80, 1: 0.90, 2: 0.70}
    method = {0: 0.81, 1: 0.91, 2: 0.71, 7: 0.2}  # seed 7 has no partner and is left out
    result = paired_difference(method, reference)
    assert result.n == 3 and result.mean == pytest.approx(0.01) and result.distinguishable
    assert paired_difference({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6}).distinguishable is False  # equal: [0, 0]


def test_a_difference_straddling_zero_is_not_distinguishable():
    result = paired_difference({0: 0.91, 1: 0.89, 2: 0.905}, {0: 0.90, 1: 0.90, 2: 0.90})
    assert result.low < 0 < result.high and not result.distinguishable


def test_one_pair_is_never_distinguishable():
    result = paired_difference({0: 0.99}, {0: 0.10})
    assert result.n == 1 and result.mean == pytest.approx(0.89) and result.low is None
    assert not result.distinguishable
    assert paired_difference({0: 0.99}, {1: 0.1}).n == 0
