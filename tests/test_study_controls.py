"""Scratch-trained controls ([controls]): the kept widths, or random widths of the same cost, trained from scratch
for the same number of samples, and compared seed by seed with the compressed models."""

from __future__ import annotations

import pytest
import torch

from workbench.datasets import load_dataset
from workbench.errors import StudyError
from workbench.study import Store, controls, expand, load_study, run_study, write_report
from workbench.study.controls import ControlError, random_width_plan, scratch_model
from workbench.study.execute import execute
from workbench.study.summary import compare_table, format_compare, read_records

TINY = """
[study]
name = "tiny-controls"
seeds = [0, 1]
latency = false

[[models]]
label = "mlp"
name = "mlp"
args = { widths = [64, 32, 16, 10] }
data = "digits"
training = { epochs = 1 }

[selectors]
magnitude = {}

[compression]
budgets = [0.5]

[finetune]
epochs = 1
"""

CONTROLS = """
[controls]
scratch = true
random_widths = true
tolerance = 0.05
"""


def _study(tmp_path, text, name="tiny.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_study(path)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The tiny study with both controls, run once: (study, stored rows by hash)."""
    study = _study(tmp_path_factory.mktemp("controls"), TINY + CONTROLS)
    outcome = run_study(study, quiet=True)
    assert (outcome.done, outcome.failed) == (8, 0), outcome.errors
    with Store(study.store_path(), readonly=True) as db:
        rows = {row["hash"]: row for row in db.rows()}
    return study, rows


def test_each_model_budget_and_seed_gets_both_controls_after_its_source_run(ran):
    study, _ = ran
    runs = expand(study)
    controls = [run for run in runs if run.kind == "control"]
    assert sorted((run.config["control"], run.config["seed"]) for run in controls) == [
        ("random-widths", 0),
        ("random-widths", 1),
        ("scratch", 0),
        ("scratch", 1),
    ]
    by_hash = {run.hash: run for run in runs}
    for run in controls:
        source = by_hash[run.source_hash]
        assert (source.kind, source.config["selector"], source.config["fuse"]) == ("compress", "magnitude", "drop")
        assert source.config["seed"] == run.config["seed"] and run.base_hash == source.base_hash
    assert len({run.hash for run in runs}) == len(runs) == 2 + 2 + 4


def test_scratch_has_the_kept_widths_random_the_same_cost_and_both_the_same_training_budget(ran):
    study, rows = ran
    n_train = len(load_dataset("digits", split="train"))
    for run in (run for run in expand(study) if run.kind == "control"):
        row, source = rows[run.hash], rows[run.source_hash]
        metrics = row["metrics"]
        # base training (1 epoch) plus the source run's retraining (1 epoch), counted by the training loop
        assert metrics["train_samples"] == metrics["samples_target"] == n_train + source["metrics"]["retrain_samples"]
        assert source["metrics"]["retrain_samples"] == n_train
        assert row["plan"]["meta"]["source"] == run.source_hash
        kept = {group: len(selection["keep"]) for group, selection in source["plan"]["selections"].items()}
        if run.config["control"] == "scratch":
            assert metrics["widths"] == kept == {"layers.1": 16, "layers.3": 8}
            assert metrics["params"] == source["metrics"]["params"]
        else:
            assert abs(metrics["params"] / source["metrics"]["params"] - 1) <= 0.05
            assert abs(metrics["cost_ratio"] - 1) <= 0.05
            assert set(metrics["widths"]) == set(kept)


def test_compare_and_report_pair_the_controls_with_the_compressed_model_of_each_seed(ran):
    study, _ = ran
    table = compare_table(read_records(study))
    controls = {row["method"]: row for row in table if row.get("control")}
    assert set(controls) == {"scratch, widths of magnitude/drop", "random widths, same params"}
    for row in controls.values():
        assert row["n"] == row["gain_n"] == row["vs_base_n"] == 2 and row["source"] == "magnitude/drop"
        assert row["gain"] == pytest.approx(row["source_mean"] - row["control_mean"], abs=1e-3)
        assert row["gain_low"] <= row["gain"] <= row["gain_high"]
        assert row["diff"] == pytest.approx(-row["gain"], abs=1e-3)  # vs the reference, which is the source here
    text = format_compare(table)
    assert "Does compression beat training the small network?" in text
    assert "scratch, widths of magnitude/drop (trained from scratch)" in text and "2 seeds paired" in text
    page = write_report(study).read_text()
    assert "Does compression beat training the small network?" in page
    assert "trained from scratch, keep 0.5" in page and "samples from scratch (base training + retraining)" in page
    assert "compressed minus control" in page
    table = page[page.rindex("Does compression beat training the small network?") :]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == 1 + len(controls) and "who wins" in table  # a row per control, and its verdict
    verdicts = [row["gain_distinguishable"] for row in controls.values()]
    assert f"Of {len(controls)} comparisons" in page and (any(verdicts) or "cannot be told apart in 2" in page)


def test_a_scratch_network_is_initialized_afresh_under_its_seed(ran):
    study, rows = ran
    run = next(run for run in expand(study) if run.kind == "control" and run.config["control"] == "scratch")
    config = {**run.config, "source_run": {"plan": rows[run.source_hash]["plan"], "metrics": {}}}
    first, _, plan, _ = scratch_model(config)
    again, *_ = scratch_model(config)
    other, *_ = scratch_model({**config, "seed": config["seed"] + 1})
    weights = [p for p in first.parameters()]
    assert [tuple(p.shape) for p in weights] == [(16, 64), (16,), (8, 16), (8,), (10, 8), (10,)]
    assert all(torch.equal(a, b) for a, b in zip(weights, again.parameters()))
    assert not torch.equal(weights[0], next(other.parameters()))
    # Kaiming (fan in) at the kept widths: the std of a layer with 64 inputs is sqrt(2 / 64)
    assert weights[0].std().item() == pytest.approx((2 / 64) ** 0.5, rel=0.2)


def test_studies_without_controls_keep_their_run_hashes(tmp_path):
    plain = [run.hash for run in expand(_study(tmp_path, TINY, "a.toml"))]
    off = [run.hash for run in expand(_study(tmp_path, TINY + "[controls]\nscratch = false\n", "b.toml"))]
    on = expand(_study(tmp_path, TINY + CONTROLS, "c.toml"))
    assert plain == off == [run.hash for run in on if run.kind != "control"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[controls]\nscratch = true\nwidths_from = "magnitude/lsq"', "controls.widths_from is 'magnitude/lsq'"),
        ("[controls]\nscratch = true\nwidths_from = 'dpp'", "set controls.widths_from to one of magnitude/drop"),
        ('[study2]\n[controls]\nrandom_widths = true\nmatch = "latency"', "match"),
        ("[controls]\ntolerance = 0.1", "no control is switched on"),
        ("[controls]\nscratch = true\nrandom = true", "Allowed keys here: scratch, random_widths"),
    ],
)
def test_bad_control_settings_are_named_with_what_to_do(tmp_path, extra, message):
    text = TINY + extra.replace("[study2]\n", "")
    with pytest.raises(StudyError, match="controls") as caught:
        _study(tmp_path, text)
    assert message in str(caught.value)


def test_controls_need_a_selector_and_a_model_the_study_trains(tmp_path):
    pipelines_only = TINY.split("[selectors]")[0] + '[pipelines]\nw8 = [{ do = "fixed-point", weight_bits = 8 }]\n'
    with pytest.raises(StudyError, match=r"need \[selectors\] and \[compression\]"):
        _study(tmp_path, pipelines_only + CONTROLS)
    torch.save({}, tmp_path / "x.pt")
    model = TINY[TINY.index("[[models]]") : TINY.index("[selectors]")]
    loaded = TINY.replace(model, '[[models]]\ncheckpoint = "x.pt"\ndata = "digits"\n\n')
    with pytest.raises(StudyError, match="loaded from a checkpoint"):
        _study(tmp_path, loaded + CONTROLS)


def test_a_control_without_its_source_plan_or_cost_match_fails_clearly(ran, tmp_path, monkeypatch):
    from workbench.graph import from_model
    from workbench.surgery import Plan

    study, rows = ran
    run = next(run for run in expand(study) if run.kind == "control")
    result = execute(run.config, tmp_path / "cache")
    assert result["status"] == "failed" and "run them with `workbench study run`" in result["error"]
    unpruned = {**run.config, "control": "scratch", "source_run": {"plan": Plan().to_dict()}}
    graph = from_model(scratch_model(unpruned)[0], torch.zeros(2, 64))
    monkeypatch.setattr(controls, "RANDOM_DRAWS", 1)  # one random profile cannot hit the cost exactly
    with pytest.raises(ControlError, match=r"raise \[controls\] tolerance"):
        random_width_plan(graph, Plan.from_dict(rows[run.source_hash]["plan"]), tolerance=1e-9)


def test_controls_whose_source_run_did_not_run_fail_and_say_why(tmp_path):
    study = _study(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0]") + CONTROLS)
    outcome = run_study(study, quiet=True, where=lambda run: run.kind != "compress")
    assert (outcome.done, outcome.failed) == (1, 2)
    assert all(
        "its source run mlp / digits magnitude keep 0.5 drop seed 0 did not finish" in e
        for e in outcome.errors.values()
    )


def test_a_model_can_leave_the_controls_without_changing_its_runs(tmp_path):
    second = TINY.split("[selectors]")[0].split("[[models]]")[1].replace('label = "mlp"', 'label = "mlp2"')
    second = second.replace("widths = [64, 32, 16, 10]", "widths = [64, 24, 10]")
    both = TINY.replace("[selectors]", "[[models]]" + second + "[selectors]")
    off = both.replace('label = "mlp2"', 'label = "mlp2"\ncontrols = false')
    on_runs, off_runs = (
        expand(_study(tmp_path, both + CONTROLS, "a.toml")),
        expand(_study(tmp_path, off + CONTROLS, "b.toml")),
    )
    controlled = {run.config["model"]["label"] for run in off_runs if run.kind == "control"}
    assert controlled == {"mlp"}
    assert sum(run.kind == "control" for run in on_runs) == 2 * sum(run.kind == "control" for run in off_runs)
    assert {r.hash for r in off_runs} <= {r.hash for r in on_runs}  # the model's own runs keep their hashes


def test_a_scratch_control_costs_what_the_compressed_model_it_copies_costs(ran):
    """Same widths, same parameters in the report's cost axis: a selector run's cost is its parameters (it stores
    its nonzero weights too, which leave out biases and BatchNorm), as a control's is."""
    from workbench.study.report_data import run_costs

    study, _ = ran
    records = read_records(study)
    by_hash = {r.hash: r for r in records}
    runs = {run.hash: run for run in expand(study)}
    scratch = [r for r in records if r.kind == "control" and runs[r.hash].config["control"] == "scratch"]
    assert scratch
    for control in scratch:
        source = by_hash[runs[control.hash].source_hash]
        assert source.metrics["nonzero"] < source.metrics["params"]  # weights only: the biases are left out
        assert run_costs(source)["params"] == run_costs(control)["params"] == source.metrics["params"]
