"""What a study file sets is checked when the file is read (selector settings, pipeline step values, the reference,
the nesting of the TOML), seeds that would share one random stream are refused, and damaged cells of a stored row
are named and left out of summaries and reports."""

from __future__ import annotations

import sqlite3
import warnings

import pytest
import torch

from workbench.errors import ConfigError, SelectionError, StudyError
from workbench.pipeline import DeepCompression, check_steps
from workbench.select import get_selector
from workbench.study import expand, load_study
from workbench.study.schema import toml_depth
from workbench.study.store import Store
from workbench.study.summary import (
    collect,
    read_records,
    stored_row_problem,
    summary_table,
    time_table,
    training_table,
)
from workbench.utils import seed_from
from workbench.zoo import create_model

STUDY = """
[study]
name = "checks"
seeds = [0]
latency = false

[[models]]
label = "tiny"
name = "mlp"
args = { widths = [64, 8, 10] }
data = "digits"
training = { epochs = 1, max_batches = 2 }

[selectors]
magnitude = {}

[compression]
budgets = [0.5]
"""


def _study(tmp_path, old: str = "", new: str = "", extra: str = "", name: str = "s.toml"):
    assert old in STUDY
    path = tmp_path / name
    path.write_text(STUDY.replace(old, new) + extra)
    return path


def _refused(tmp_path, *args, **kwargs) -> str:
    with pytest.raises(StudyError) as info:
        load_study(_study(tmp_path, *args, **kwargs))
    return str(info.value)


# -- selector settings --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, params, message",
    [
        ("sbm", {"n_blocks": 0}, "n_blocks must be a positive int"),
        ("spectral", {"n_components": -1}, "n_components must be an integer >= 1"),
        ("leiden", {"resolution": -1.0}, "resolution must be a finite number > 0"),
        ("submodular", {"reg": -1.0}, "reg must be a finite number >= 0"),
        ("submodular", {"lazy": "yes"}, "lazy is true or false"),
        ("dpp", {"ridge": float("inf")}, "ridge must be a finite number >= 0"),
        ("dpp", {"mode": "map", "backend": "dppy"}, r"greedy MAP \(mode='map'\) is only in the 'workbench'"),
        ("leiden", {"q": 1.0}, r"q must be a finite number in \[0, 1\)"),
        ("activation", {"zero_tol": -1.0}, "zero_tol must be a finite number >= 0"),
    ],
)
def test_selector_settings_are_checked_before_any_fit(name, params, message):
    with pytest.raises(SelectionError, match=f"selector '{name}': {message}"):
        get_selector(name, **params)


def test_a_study_file_with_a_bad_selector_setting_is_refused_when_read(tmp_path):
    text = _refused(tmp_path, "magnitude = {}", "magnitude = {}\nsbm = { n_blocks = 0 }\nleiden = { resolution = -1 }")
    assert "n_blocks must be a positive int" in text and "resolution must be a finite number > 0" in text


def test_every_selector_and_preset_passes_its_own_check():
    from workbench.select import list_presets, list_selectors

    for name in list_selectors():
        get_selector(name)
    for preset in list_presets():
        get_selector(preset.selector, preset=preset.name)


# -- pipeline step values -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "step, message",
    [
        ({"do": "retrain", "epochs": 1, "loss_fn": "mse"}, "loss_fn is a Python function"),
        ({"do": "share", "bits": 5.5}, "bits is an integer or a table, got 5.5"),
        ({"do": "share", "bits": True}, "bits is an integer or a table, got True"),
        ({"do": "group-lasso", "kinds": "filters"}, "kinds is a list, got 'filters'"),
        ({"do": "prune", "rate": {"fc": "half"}}, "rate is a number or a table"),
        ({"do": "retrain", "epochs": 1, "device": "gpu"}, "'gpu' is not a device name"),
        ({"do": "retrain", "epochs": 1, "device": f"cuda:{torch.cuda.device_count()}"}, "is not on this machine"),
    ],
)
def test_step_values_of_the_wrong_type_are_refused_before_a_model_is_needed(step, message):
    with pytest.raises(ConfigError, match=rf"step 0 \({step['do']}\): .*{message}"):
        check_steps([step])


def test_step_values_of_the_right_type_pass():
    steps = [
        {"do": "prune", "rate": 0.5},
        {"do": "prune", "rate": {"fc": 1}},  # an int where a number goes
        {"do": "retrain", "epochs": 1, "device": "cpu", "lr": 1e-3},
        {"do": "share", "bits": {"conv": 8, "linear": 5}, "layers": ["layers.0"]},
    ]
    assert check_steps(steps) == steps
    check_steps(DeepCompression(prune_rounds=[0.5, 0.8], bias_bits=8).steps)


def test_a_study_pipeline_with_a_bad_step_value_is_refused_when_read(tmp_path):
    extra = '\n[pipelines]\np = [{ do = "share", bits = 5.5 }, { do = "retrain", epochs = 1, loss_fn = "mse" }]\n'
    text = _refused(tmp_path, extra=extra)
    assert "pipeline 'p'" in text and "bits is an integer or a table" in text and "loss_fn" in text


# -- the reference ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reference", ["dpp/drop", "magnitude/lsq"])
def test_a_reference_the_study_does_not_run_is_refused(tmp_path, reference):
    text = _refused(tmp_path, 'name = "checks"', f'name = "checks"\nreference = "{reference}"')
    assert f"study.reference is {reference!r}, not a method" in text and "magnitude/drop" in text


def test_a_reference_the_study_runs_is_taken(tmp_path):
    path = _study(tmp_path, 'name = "checks"', 'name = "checks"\nreference = "magnitude/drop"')
    study = load_study(path)
    assert study.study.reference == "magnitude/drop" and study.methods == ["magnitude/drop"]


# -- nesting ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("open_, close", [("[", "]"), ("{ a = ", " }")])
def test_a_study_file_nested_thousands_deep_is_refused_before_parsing(tmp_path, open_, close):
    text = _refused(tmp_path, extra="extra = " + open_ * 10000 + "1" + close * 10000 + "\n")
    assert "more than 100 levels deep" in text


def test_brackets_in_strings_and_comments_do_not_count():
    assert toml_depth('a = "[[[[" # [[[[\nb = \'{{{{\'\nc = """x\n[[[""""\nd = [[1], {e = [2]}]') == 3
    assert toml_depth('a = "\\"[[[" \nb = [1]') == 1  # an escaped quote does not end the string
    assert toml_depth("[[models]]\nx = { a = { b = [1] } }") == 3


# -- seeds --------------------------------------------------------------------------------------------------------
def test_seeds_below_2_32_keep_their_streams_and_larger_ones_do_not_wrap():
    assert [seed_from(s) for s in (0, 1, 12345, 2**32 - 1)] == [0, 1, 12345, 2**32 - 1]
    assert seed_from(2**32) != 0 and seed_from(2**32 + 1) != 1 and 0 <= seed_from(2**63 - 1) < 2**32
    first = create_model("mlp", widths=[8, 4, 2], random_state=0).state_dict()
    other = create_model("mlp", widths=[8, 4, 2], random_state=2**32).state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_a_study_refuses_two_seeds_of_one_stream(tmp_path):
    assert load_study(_study(tmp_path, "seeds = [0]", f"seeds = [0, {2**32}]")).study.seeds == [0, 2**32]
    text = _refused(tmp_path, "seeds = [0]", f"seeds = [{seed_from(2**32)}, {2**32}]")
    assert f"seeds {seed_from(2**32)} and {2**32} give the same random stream" in text


# -- damaged cells of stored rows ---------------------------------------------------------------------------------
def _stored(tmp_path):
    study = load_study(_study(tmp_path))
    runs = {run.kind: run for run in expand(study)}
    with Store(study.store_path()) as db:
        for run in runs.values():
            metrics = {"accuracy": 0.9 if run.kind == "train" else 0.8, "n": 300, "params": 610}
            result = {"hash": run.hash, "status": "done", "seconds": 1.5, "metrics": metrics, "plan": None}
            if run.kind == "compress":
                result["plan"] = {"format": "workbench-plan", "selections": {}}
            db.write(result, study=study.study.name, kind=run.kind, label=run.label, config=run.config)
    return study, runs


def _set(store, run_hash, column, value):
    db = sqlite3.connect(store)
    db.execute(f"UPDATE runs SET {column} = ? WHERE hash = ?", (value, run_hash))
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "kind, column, value, said",
    [
        ("train", "metrics_json", '{"accuracy": "high", "n": 300}', "metric accuracy is 'high', not a number"),
        ("train", "seconds", "a while", "seconds is 'a while'"),
        ("train", "config_json", "{}", "config_json is not the configuration of run"),
        ("compress", "plan_json", "42", "plan_json holds a int"),
        ("compress", "metrics_json", '{"accuracy": 0.8, "n": true}', "metric n is 'True'"),
    ],
)
def test_a_damaged_cell_is_named_and_its_row_left_out(tmp_path, kind, column, value, said):
    study, runs = _stored(tmp_path)
    damaged, intact = runs[kind].hash, runs["compress" if kind == "train" else "train"].hash
    _set(study.store_path(), damaged, column, value)
    with Store(study.store_path(), readonly=True) as db, pytest.warns(UserWarning, match=said) as caught:
        records = collect(study, db.rows(), dict(db.damaged))
    assert any(damaged in str(w.message) for w in caught)
    by_hash = {r.hash: r for r in records}
    assert by_hash[damaged].status == "damaged" and said.split(" is")[0] in by_hash[damaged].error
    assert by_hash[intact].status == "done"
    summary_table(records), training_table(records)  # no ValueError from the damaged cell
    shown = {row["runs of"] for row in time_table(records)}
    assert shown == ({"selector: magnitude"} if kind == "train" else {"training: base models"})


def test_intact_rows_pass_the_check(tmp_path):
    study, runs = _stored(tmp_path)
    with Store(study.store_path(), readonly=True) as db:
        rows = {row["hash"]: row for row in db.rows()}
    assert all(stored_row_problem(rows[run.hash], run.hash) is None for run in runs.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = read_records(study)
    assert {r.status for r in records} == {"done"}
    segmentation = {**rows[runs["train"].hash], "metrics": {"miou": float("nan"), "iou": [0.5, None]}}
    assert stored_row_problem(segmentation) is None  # a NaN score of a class no pixel has is a number
