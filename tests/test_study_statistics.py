"""Intervals over seeds, single-seed binomial intervals and paired differences of study results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from workbench.study.statistics import binomial_interval, estimate, paired_difference, proportion_interval


@pytest.mark.parametrize("values", [[0.91, 0.93], [0.8, 0.85, 0.83], [0.5, 0.61, 0.55, 0.72, 0.6]])
def test_the_interval_over_seeds_is_scipys_t_interval(values):
    result = estimate(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert result.n == len(values) and result.method == "t" and not result.single_seed
    assert result.mean == pytest.approx(np.mean(values))
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))


def test_one_seed_says_single_seed_and_gives_the_binomial_interval_of_the_test_set():
    result = estimate([0.9], n_test=400)
    wilson = stats.binomtest(360, 400).proportion_ci(0.95, method="wilson")
    assert result.single_seed and result.n == 1 and result.method == "wilson" and result.mean == 0.9
    assert (result.low, result.high) == (pytest.approx(wilson.low), pytest.approx(wilson.high))
    assert result.high - result.low > 0.05  # not a zero-length interval
    assert result.as_dict()["single_seed"] is True


def test_one_seed_of_unknown_test_size_has_no_interval_and_nothing_has_no_mean():
    assert estimate([0.9]).low is None and estimate([0.9]).high is None and estimate([0.9]).method is None
    assert estimate([3.5], n_test=100).low is None  # not an accuracy
    empty = estimate([None, math.nan])
    assert empty.n == 0 and empty.mean is None and empty.low is None


def test_the_binomial_interval_stays_within_zero_and_one():
    z = stats.norm.ppf(0.975)
    assert binomial_interval(1.0, 50) == (pytest.approx(50 / (50 + z * z)), 1.0)  # Wilson: never a point
    low, high = binomial_interval(0.99, 10)
    assert 0 <= low < 0.99 < high <= 1.0


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


# -- summary rows from hand-made records (no training) -----------------------------------------------------

from workbench.cli import main  # noqa: E402
from workbench.errors import StudyError  # noqa: E402
from workbench.study import Store, expand  # noqa: E402
from workbench.study.schema import load_study  # noqa: E402
from workbench.study.summary import (  # noqa: E402
    Record,
    compare_table,
    display_rows,
    pipeline_table,
    summary_table,
)


def _record(kind, seed, value, selector=None, fuse=None, budget=None, **metrics):
    role = "base" if kind == "train" else "compress"
    return Record(
        hash=f"{kind}{selector}{fuse}{budget}{seed}",
        kind=kind,
        role=role,
        model="mlp",
        data="digits",
        seed=seed,
        status="done",
        selector=selector,
        fuse=fuse,
        budget=budget,
        pipeline="dc" if kind == "pipeline" else None,
        metrics={"accuracy": value, "n": 500, **metrics},
    )


REFERENCE = {0: 0.80, 1: 0.85, 2: 0.82}
BETTER = {0: 0.86, 1: 0.90, 2: 0.87}  # +0.05 to +0.06 on every seed
SAME = {0: 0.81, 1: 0.84, 2: 0.825}  # +0.01, -0.01, +0.005


def _records(seeds=(0, 1, 2)):
    records = [_record("train", s, 0.95) for s in seeds]
    for selector, values in (("magnitude", REFERENCE), ("sbm", BETTER), ("random", SAME)):
        records += [_record("compress", s, values[s], selector, "drop", "0.5") for s in seeds]
    return records


def _rows(records, **kw):
    return {row["selector"]: row for row in summary_table(records, **kw)}


def test_every_summary_cell_has_n_interval_and_the_paired_difference_to_the_reference():
    rows = _rows(_records())
    better = rows["sbm"]
    assert better["keep 0.5"] == pytest.approx(np.mean(list(BETTER.values())), abs=1e-4)  # existing key kept
    cell = better["stats"]["keep 0.5"]
    _, low, high = proportion_interval(list(BETTER.values()), 500)  # seeds and the test set's 500 samples
    assert cell["n"] == 3 and (cell["low"], cell["high"]) == (
        pytest.approx(low, abs=1e-6),
        pytest.approx(high, abs=1e-6),
    )
    assert cell["reference"] == "magnitude/drop" and cell["diff_n"] == 3 and cell["diff_low"] > 0
    assert cell["distinguishable"] is True
    same = rows["random"]["stats"]["keep 0.5"]
    assert same["diff_low"] < 0 < same["diff_high"] and same["distinguishable"] is False
    ref = rows["magnitude"]["stats"]["keep 0.5"]
    assert ref["is_reference"] and ref["diff"] is None
    assert rows["sbm"]["stats"]["base"]["n"] == 3 and rows["sbm"]["base"] == 0.95


def test_the_reference_can_be_another_method():
    rows = _rows(_records(), reference="sbm/drop")
    assert rows["magnitude"]["stats"]["keep 0.5"]["diff"] < 0 and rows["sbm"]["stats"]["keep 0.5"]["is_reference"]
    assert all(row["stats"]["keep 0.5"]["reference"] is None for row in _rows(_records(), reference="dpp/lsq").values())


def test_a_single_seed_is_printed_as_such_with_the_test_set_interval():
    rows = _rows(_records(seeds=(0,)))
    cell = rows["sbm"]["stats"]["keep 0.5"]
    assert cell["single_seed"] and cell["interval"] == "wilson" and cell["low"] < 0.86 < cell["high"]
    assert cell["distinguishable"] is False  # one pair is never told apart
    shown = {row["selector"]: row for row in display_rows(list(rows.values()))}
    assert shown["sbm"]["keep 0.5"].startswith("single seed 0.86 [")
    assert shown["sbm"]["keep 0.5 vs magnitude/drop"].endswith("not distinguishable")
    assert shown["magnitude"]["keep 0.5 vs magnitude/drop"] == "reference"
    several = {row["selector"]: row for row in display_rows(summary_table(_records()))}
    assert several["sbm"]["keep 0.5"].endswith("n=3") and "single seed" not in several["sbm"]["keep 0.5"]
    assert several["random"]["keep 0.5 vs magnitude/drop"].endswith("not distinguishable")
    assert "not distinguishable" not in several["sbm"]["keep 0.5 vs magnitude/drop"]


def test_pipeline_cells_have_intervals_and_the_difference_to_the_base_model_of_the_same_seed():
    records = [
        _record("pipeline", s, 0.9 - 0.01 * s, base_accuracy=0.95 - 0.01 * s, stored_bytes=1000 + s) for s in (0, 1, 2)
    ]
    (row,) = pipeline_table(records)
    assert row["accuracy"] == 0.89 and row["runs"] == "3/3"
    acc = row["stats"]["accuracy"]
    assert acc["n"] == 3 and acc["reference"] == "base" and acc["diff"] == pytest.approx(-0.05)
    assert acc["distinguishable"] is True  # the same 0.05 lost on every seed
    assert row["stats"]["stored_bytes"]["n"] == 3


def test_compare_ranks_methods_and_refuses_an_unknown_reference():
    table = compare_table(_records())
    assert [row["method"] for row in table] == ["sbm/drop", "random/drop", "magnitude/drop"]  # by mean
    assert [row["rank"] for row in table] == [1, 2, 3]
    flags = {row["method"]: row["distinguishable"] for row in table}
    assert flags == {"sbm/drop": True, "magnitude/drop": None, "random/drop": False}
    with pytest.raises(StudyError, match="'dpp/drop' is not a method of this study"):
        compare_table(_records(), reference="dpp/drop")


# -- the compare command on a stored study with two seeds ---------------------------------------------------

STUDY = """
[study]
name = "two seeds"
seeds = [0, 1]
latency = false

[[models]]
label = "tiny MLP"
name = "mlp"
args = { widths = [64, 8, 10] }
data = "digits"

[selectors]
magnitude = {}
random = {}

[compression]
budgets = [0.5]
"""

VALUES = {("magnitude", 0): 0.80, ("magnitude", 1): 0.82, ("random", 0): 0.70, ("random", 1): 0.73}


def _stored_study(tmp_path, text=STUDY, write=True):
    path = tmp_path / "two.toml"
    path.write_text(text)
    study = load_study(path)
    if write:
        with Store(study.store_path()) as db:
            for run in expand(study):
                value = 0.95 if run.kind == "train" else VALUES[run.config["selector"], run.config["seed"]]
                result = {"hash": run.hash, "status": "done", "metrics": {"accuracy": value, "n": 300}}
                db.write(result, study=study.study.name, kind=run.kind, label=run.label, config=run.config)
    return path


def test_study_compare_prints_the_ranking_with_intervals(tmp_path, capsys):
    path = _stored_study(tmp_path)
    assert main(["study", "compare", str(path)]) == 0
    out = capsys.readouterr().out
    assert "tiny MLP on digits, keep 0.5" in out and "vs magnitude/drop" in out
    lines = [line for line in out.splitlines() if "/drop" in line and "vs" not in line]
    assert lines[0].split()[:2] == ["1", "magnitude/drop"] and "reference" in lines[0]
    assert lines[1].split()[:2] == ["2", "random/drop"] and "-0.0950 [" in lines[1] and "n=2" in lines[1]
    assert main(["study", "compare", str(path), "--reference", "random/drop", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["comparison"]
    by_method = {row["method"]: row for row in rows}
    assert by_method["magnitude/drop"]["diff"] == pytest.approx(0.095) and by_method["magnitude/drop"]["n"] == 2
    assert by_method["random/drop"]["is_reference"]


def test_study_compare_uses_the_studys_reference_and_a_study_never_run_is_a_clear_error(tmp_path, capsys):
    path = _stored_study(tmp_path, STUDY.replace("latency = false", 'latency = false\nreference = "random/drop"'))
    assert main(["study", "compare", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["comparison"][0]["reference"] == "random/drop"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    never = _stored_study(fresh, write=False)
    assert main(["study", "compare", str(never)]) == 2
    assert "run the study first" in capsys.readouterr().err
    with Store(load_study(never).store_path()):
        pass  # an empty store: the study was never run
    with pytest.raises(StudyError, match="no finished compression run"):
        from workbench.study.summary import read_records

        read_records(load_study(never))


def test_a_reference_that_is_not_selector_slash_fuse_is_refused_by_the_study_file(tmp_path):
    with pytest.raises(StudyError, match="reference must be 'selector/fuse'"):
        _stored_study(tmp_path, STUDY.replace("latency = false", 'latency = false\nreference = "magnitude"'), False)
    with pytest.raises(StudyError, match="unknown selector 'magnitud'"):
        _stored_study(tmp_path, STUDY.replace("latency = false", 'latency = false\nreference = "magnitud/drop"'), False)


def test_the_retraining_budget_is_shown_per_row():
    from workbench.study.summary import Record, retraining_budget

    def run(samples, teacher, status="done"):
        metrics = {"retrain_samples": samples, "teacher": teacher}
        return Record("h", "compress", "base", "m", "d", 0, status, metrics=metrics)

    assert retraining_budget([run(1000, "none"), run(1000, "none")]) == "1,000 samples, teacher none"
    assert (
        retraining_budget([run(500, "base model"), run(1000, "base model")]) == "500-1,000 samples, teacher base model"
    )
    assert retraining_budget([run(0, "none")]) == "none"
    assert retraining_budget([run(1000, "none", status="failed")]) == "-"


def test_a_score_cells_interval_stays_within_zero_and_one():
    from workbench.study.summary import cell_stats

    cell = cell_stats({0: 0.99, 1: 0.80, 2: 1.0}, n_test=359)
    assert 0 < cell["low"] < 0.8 and 0.99 < cell["high"] < 1.0  # the t-interval alone would pass 1: no clipping
    unbounded = cell_stats({0: 0.99, 1: 0.80, 2: 1.0})  # no test-set size: not a proportion, left as it is
    assert unbounded["high"] > 1.0
