"""Numbers that hold up under review: intervals that count the test set's noise and respect [0, 1], paired
differences that never collapse to a point, Holm-corrected verdicts, one 95% scale for figures, ranking on val."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from workbench.study.report_data import build_sections
from workbench.study.statistics import (
    Difference,
    control,
    estimate,
    holm,
    paired_difference,
    proportion_interval,
    wilson_interval,
)
from workbench.study.summary import (
    Record,
    compare_table,
    display_rows,
    format_compare,
    pipeline_table,
    summary_table,
    table_note,
)
from workbench.viz.tradeoff_figures import noise_floor

N = 359  # the test set of the review: LeNet-300-100 on 359 digits


# -- pure functions against scipy and hand computations -----------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 20), (3, 20), (340, 359), (359, 359), (50, 50)])
def test_the_wilson_interval_is_scipys(k, n):
    reference = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    assert wilson_interval(k / n, n) == (pytest.approx(reference.low), pytest.approx(reference.high))


def test_an_accuracy_over_seeds_adds_the_test_sets_binomial_variance_by_hand():
    values = [0.93, 0.95, 0.94]
    p, k = np.mean(values), len(values)
    seed_var = np.var(values, ddof=1) / k
    total = seed_var + p * (1 - p) / N  # between seeds + the test set's sampling (bounded: shared images)
    df = total**2 / (seed_var**2 / (k - 1))  # Welch-Satterthwaite
    q = stats.t.ppf(0.975, df)
    m = p * (1 - p) / total  # effective test-set size
    centre = (p + q * q / (2 * m)) / (1 + q * q / m)
    half = q / (1 + q * q / m) * math.sqrt(p * (1 - p) / m + q * q / (4 * m * m))
    assert proportion_interval(values, N) == pytest.approx((p, centre - half, centre + half))
    assert estimate(values, n_test=N).method == "wilson"


def test_with_many_seeds_and_a_huge_test_set_the_interval_is_the_t_interval():
    values = np.random.default_rng(0).normal(0.9, 0.01, size=200)
    low, high = stats.t.interval(0.95, 199, loc=values.mean(), scale=stats.sem(values))
    result = estimate(values, n_test=10**9)
    assert (result.low, result.high) == (pytest.approx(low, abs=2e-5), pytest.approx(high, abs=2e-5))


def test_tied_seeds_never_give_a_zero_width_interval():
    tied = estimate([340 / N] * 3, n_test=N)  # the review's [0.9471, 0.9471]
    reference = stats.binomtest(340, N).proportion_ci(0.95, method="wilson")
    assert (tied.low, tied.high) == (pytest.approx(reference.low), pytest.approx(reference.high))  # seeds agree
    assert tied.high - tied.low > 0.04


def test_an_accuracy_of_one_on_every_seed_has_upper_bound_one_and_a_lower_bound_below():
    result = estimate([1.0, 1.0, 1.0], n_test=N)
    assert result.high == 1.0 and result.low == pytest.approx(N / (N + stats.norm.ppf(0.975) ** 2)) and result.low < 1
    single = estimate([1.0], n_test=N)  # one seed: Wilson, not the Wald point [1, 1]
    assert single.high == 1.0 and single.low < 1.0


def test_an_interval_near_one_respects_the_bound_without_clipping():
    result = estimate([0.99, 0.80, 1.0], n_test=N)  # the t-interval passes 1 here
    assert stats.t.interval(0.95, 2, loc=result.mean, scale=stats.sem([0.99, 0.80, 1.0]))[1] > 1
    assert 0 < result.low < 0.8 and result.high < 1.0


def test_miou_and_costs_keep_the_t_interval_with_no_binomial_term():
    values = [0.61, 0.64, 0.6]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    result = estimate(values)  # no n_test: what summaries give mIoU (not a proportion of test images)
    assert result.method == "t" and (result.low, result.high) == (pytest.approx(low), pytest.approx(high))
    diff = paired_difference({0: 0.62, 1: 0.66, 2: 0.6}, dict(enumerate(values)))
    assert diff.method == "t" and diff.p_value == pytest.approx(stats.ttest_rel([0.62, 0.66, 0.6], values).pvalue)


def test_a_constant_paired_difference_counts_the_test_sets_noise():
    submodular, magnitude = {s: 336 / N for s in range(3)}, {s: 340 / N for s in range(3)}
    diff = paired_difference(submodular, magnitude, n_test=N)  # the review's -0.0111 [-0.0111, -0.0111]
    assert diff.mean == pytest.approx(-4 / N) and diff.low < diff.mean < diff.high
    assert diff.low < 0 < diff.high and not diff.distinguishable and diff.method == "mover"
    # the seeds agree, so the width is the test set's: about 2 z sqrt(p1 q1 / n + p2 q2 / n)
    p1, p2 = 336 / N, 340 / N
    assert diff.high - diff.low == pytest.approx(2 * 1.96 * math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / N), rel=0.05)
    same = paired_difference(magnitude, magnitude, n_test=N)
    assert same.low < 0 < same.high and same.p_value == 1.0


def test_a_paired_difference_stays_within_minus_one_and_one():
    best, worst = {s: 1.0 for s in range(3)}, {s: 0.0 for s in range(3)}
    diff = paired_difference(best, worst, n_test=20)
    assert diff.mean == 1.0 and diff.high == 1.0 and 0 < diff.low < 1
    wide = paired_difference({0: 0.05, 1: 0.3, 2: 0.1}, {0: 0.99, 1: 0.95, 2: 0.97}, n_test=50)
    assert -1 <= wide.low < wide.mean < wide.high <= 1
    assert stats.t.interval(0.95, 2, loc=wide.mean, scale=stats.sem([-0.94, -0.65, -0.87]))[0] < -1  # t would pass


def test_with_many_seeds_and_a_huge_test_set_the_difference_is_the_paired_t_interval():
    rng = np.random.default_rng(1)
    reference = rng.normal(0.9, 0.01, size=300)
    method = reference + rng.normal(0.01, 0.004, size=300)
    diff = paired_difference(dict(enumerate(method)), dict(enumerate(reference)), n_test=10**9)
    d = method - reference
    low, high = stats.t.interval(0.95, 299, loc=d.mean(), scale=stats.sem(d))
    assert (diff.low, diff.high) == (pytest.approx(low, abs=2e-5), pytest.approx(high, abs=2e-5))


def test_the_p_value_is_the_level_at_which_the_interval_touches_zero():
    method, reference = {0: 0.95, 1: 0.96, 2: 0.945}, {0: 0.92, 1: 0.935, 2: 0.93}
    diff = paired_difference(method, reference, n_test=1000)
    at_p = paired_difference(method, reference, level=1 - diff.p_value, n_test=1000)
    assert 0 < diff.p_value < 1 and at_p.low == pytest.approx(0.0, abs=1e-9)
    assert diff.distinguishable == (diff.p_value < 0.05)


def test_holm_by_hand():
    # sorted: 0.005 x 4 = 0.02; 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]) == []


def test_holm_is_the_closed_test_of_bonferroni_tests():
    p = np.random.default_rng(2).uniform(0, 0.1, size=5)
    closed = [
        max(
            min(1.0, len(subset) * min(p[j] for j in subset))
            for r in range(1, 6)
            for subset in itertools.combinations(range(5), r)
            if i in subset
        )
        for i in range(5)
    ]
    assert holm(list(p)) == pytest.approx(closed)


def test_control_corrects_the_verdicts_of_one_table():
    diffs = [
        Difference(3, 0.02, 0.01, 0.03, True, 0.01),
        Difference(3, 0.02, 0.001, 0.04, True, 0.04),
        Difference(1, 0.02, None, None, False),  # one seed: no test, not counted
        None,
    ]
    first, second, single, none = control(diffs)
    assert (first.p_adjusted, second.p_adjusted) == pytest.approx((0.02, 0.04))
    assert first.distinguishable and second.distinguishable and first.comparisons == 2 and first.correction == "Holm"
    assert single == diffs[2] and none is None
    third = control([*diffs[:2], Difference(3, 0.0, -0.01, 0.01, False, 0.9)])
    assert third[1].p_adjusted == pytest.approx(0.08) and not third[1].distinguishable  # 0.04 x 2: no longer


def test_the_noise_band_is_a_95_percent_wilson_interval():
    floor = noise_floor(340 / N, N)
    reference = stats.binomtest(340, N).proportion_ci(0.95, method="wilson")
    assert (floor["low"], floor["high"]) == (pytest.approx(reference.low), pytest.approx(reference.high))
    assert (floor["low"], floor["high"]) == pytest.approx(wilson_interval(340 / N, N))
    assert noise_floor(1.0, N)["high"] == 1.0 and noise_floor(1.0, N)["low"] < 1.0


# -- summaries built from hand-made records ----------------------------------------------------------------


def _run(kind, seed, accuracy, selector=None, budget="0.5", **metrics):
    return Record(
        hash=f"{kind}-{selector}-{budget}-{seed}",
        kind=kind,
        role="base" if kind == "train" else "compress",
        model="LeNet-300-100",
        data="digits",
        seed=seed,
        status="done",
        selector=selector,
        fuse=None if kind == "train" else "drop",
        budget=None if kind == "train" else budget,
        keep=None if kind == "train" or not budget[0].isdigit() else float(budget),
        pipeline="dc" if kind == "pipeline" else None,
        metrics={"accuracy": accuracy, "n": N, "params": 100.0, **metrics},
        seconds=1.0,
    )


def _tied_records(val=True):
    records = [_run("train", s, 1.0, val_accuracy=1.0, val_n=200) for s in range(3)]
    for selector, hits, val in (("magnitude", [340] * 3, 0.95), ("submodular", [336] * 3, 0.96)):
        extra = {"val_accuracy": val, "val_n": 200} if val else {}
        records += [_run("compress", s, hits[s] / N, selector, **extra) for s in range(3)]
    return records


def test_a_summary_of_tied_seeds_gives_an_interval_and_not_distinguishable():
    rows = {row["selector"]: row for row in summary_table(_tied_records())}
    cell = rows["submodular"]["stats"]["keep 0.5"]
    assert cell["high"] - cell["low"] > 0.04 and cell["interval"] == "wilson"
    assert cell["diff_low"] < cell["diff"] < cell["diff_high"] and cell["diff_low"] < 0 < cell["diff_high"]
    assert cell["distinguishable"] is False and cell["comparisons"] == 1 and cell["correction"] == "Holm"
    base = rows["submodular"]["stats"]["base"]  # 1.0 on every seed
    assert base["high"] == 1.0 and base["low"] < 1.0


def test_a_table_says_which_correction_over_how_many_comparisons():
    records = [_run("train", s, 0.95) for s in range(3)]
    records += [_run("compress", s, 0.80 + 0.01 * s, "magnitude") for s in range(3)]
    for k, selector in enumerate(("sbm", "dpp", "random", "spectral", "leiden")):
        records += [_run("compress", s, 0.86 + 0.01 * s + 0.001 * k, selector) for s in range(3)]
    rows = summary_table(records)
    cells = [row["stats"]["keep 0.5"] for row in rows if not row["stats"]["keep 0.5"]["is_reference"]]
    assert {cell["comparisons"] for cell in cells} == {5}
    for cell in cells:
        assert cell["distinguishable"] == (cell["p_adjusted"] < 0.05) and cell["p_adjusted"] >= cell["p"]
    assert "Holm-corrected over the 5 paired comparisons" in table_note(rows)
    assert "Holm-corrected over the 5 paired comparisons" in format_compare(compare_table(records))


def test_a_pipelines_base_cell_gets_the_test_set_size_without_a_stored_base_n():
    (row,) = pipeline_table([_run("pipeline", 0, 0.9, None, base_accuracy=1.0, stored_bytes=10.0)])
    base = row["stats"]["base"]
    assert base["interval"] == "wilson" and base["high"] == 1.0 and base["low"] < 1.0  # one seed on N images


def test_compare_ranks_on_val_only_and_lists_methods_without_val_after():
    records = _tied_records()
    records += [_run("compress", s, 0.99, "random") for s in range(3)]  # best on test, but no val score
    table = compare_table(records)
    assert [row["method"] for row in table] == ["submodular/drop", "magnitude/drop", "random/drop"]
    assert [row["rank"] for row in table] == [1, 2, None] and table[-1]["ranked"] is False
    assert {row["ranked_on"] for row in table} == {"val"}
    assert "- (not ranked)" in format_compare(table)


def test_the_report_ranks_on_val_only_and_corrects_its_table():
    records = _tied_records()
    records += [_run("compress", s, 0.99, "random") for s in range(3)]  # best on test, but no val score
    (section,) = build_sections(records, {})
    assert section.ranked_on == "val accuracy"
    assert [(e.name, e.rank) for e in section.entries] == [("submodular", 1), ("magnitude", 2), ("random", None)]
    assert section.comparisons == 5 and "over the 5 paired comparisons" in section.multiplicity_note
    submodular = section.entries[0]
    assert (
        submodular.vs_reference.low < 0 < submodular.vs_reference.high and not submodular.vs_reference.distinguishable
    )


def test_a_difference_that_rounds_to_zero_either_way_has_p_value_one():
    """The main job hit this: a mean of per-seed differences of -2e-17 while the means differ by +2e-17."""
    from workbench.study.statistics import paired_difference

    diff = paired_difference({0: 0.1, 1: 0.2, 2: 0.3}, {0: 0.1, 1: 0.2, 2: 0.30000000000000004}, n_test=359)
    assert diff.p_value == 1.0 and not diff.distinguishable and diff.low < 0 < diff.high


def test_a_cost_budget_column_shows_scores_not_counts():
    """A column named for a parameter budget ("params 0.2") holds accuracies: they read as 0.9768, not 0.976787."""
    records = [_run("train", s, 0.95) for s in range(3)]
    records += [_run("compress", s, (330 + s) / N, "magnitude", budget="params 0.2") for s in range(3)]
    (row,) = display_rows(summary_table(records))
    column = next(key for key in row if key.startswith("params"))
    mean = row[column].split(" ")[0]
    assert mean == f"{sum((330 + s) / N for s in range(3)) / 3:.4g}", row[column]
