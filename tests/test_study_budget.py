"""Equal retraining budgets and validation discipline in studies: every selector run and every pipeline trains on
the same number of samples after the base model unless the study says otherwise, every run is scored on val and
test, and methods are ranked on val."""

from __future__ import annotations

import pytest

from workbench.compression import Retraining
from workbench.datasets import load_dataset
from workbench.errors import ConfigError, StudyError
from workbench.pipeline import planned_epochs, run_pipeline, with_budget
from workbench.study import Store, load_study, run_study
from workbench.study.summary import compare_table, pipeline_table, read_records
from workbench.train import counting_samples, fit
from workbench.zoo import create_model

DEEP_COMPRESSION = [
    {"do": "iterative-prune", "rates": [0.5, 0.7, 0.8], "retrain_epochs": 10},
    {"do": "share", "bits": 5},
    {"do": "retrain", "epochs": 5},
]

STUDY = """
[study]
name = "budget"
seeds = [0]
latency = false

[[models]]
label = "tiny MLP"
name = "mlp"
args = { widths = [64, 16, 10] }
data = "digits"
training = { epochs = 5, lr = 1e-2 }

[selectors]
magnitude = {}
random = {}

[compression]
budgets = [0.5]

[finetune]
epochs = 2
own_schedule = ["paper"]

[pipelines]
equal = [{ do = "iterative-prune", rates = [0.5, 0.7], retrain_epochs = 3 }, { do = "retrain", epochs = 4 }]
paper = [{ do = "iterative-prune", rates = [0.5], retrain_epochs = 1 }]
"""


def test_with_budget_keeps_each_settings_share_and_never_exceeds_the_budget():
    model = create_model("mlp", widths=[64, 16, 10])
    assert planned_epochs(DEEP_COMPRESSION, model) == 3 * 10 + 5
    for budget in (0, 1, 4, 10, 35, 70):
        scaled = with_budget(DEEP_COMPRESSION, budget, model)
        assert planned_epochs(scaled, model) == budget
        if budget >= 4:
            assert [s["do"] for s in scaled] == [s["do"] for s in DEEP_COMPRESSION]
    assert [s["do"] for s in with_budget(DEEP_COMPRESSION, 0, model)] == ["iterative-prune", "share"]  # no retrain
    ten = with_budget(DEEP_COMPRESSION, 10, model)
    assert (ten[0]["retrain_epochs"], ten[2]["epochs"]) == (3, 1)
    # a round spent three times cannot take an odd remainder: the total stays at or under the budget
    assert planned_epochs(with_budget([DEEP_COMPRESSION[0]], 7, model), model) == 6
    untrained = [{"do": "fixed-point", "weight_bits": 8}]
    assert with_budget(untrained, 10, model) == untrained
    with pytest.raises(ConfigError, match="budget"):
        with_budget(DEEP_COMPRESSION, -1, model)
    lasso = [{"do": "group-lasso", "strength": 0.05, "epochs": 20}, {"do": "retrain", "epochs": 10}]
    assert [(s["do"], s["epochs"]) for s in with_budget(lasso, 1, model)] == [("group-lasso", 1)]
    assert [s["epochs"] for s in with_budget(lasso, 6, model)] == [4, 2]
    with pytest.raises(ConfigError, match="group-lasso epochs >= 1.*own_schedule"):
        with_budget(lasso, 0, model)


def test_a_pipeline_spends_the_samples_its_scaled_schedule_says_and_records_them_per_step():
    train = load_dataset("digits", split="train")
    model = create_model("mlp", widths=[64, 16, 10])
    fit(model, train, epochs=1, quiet=True)
    steps = with_budget(DEEP_COMPRESSION[:1] + DEEP_COMPRESSION[2:], 4, model)
    with counting_samples() as outer:
        out = run_pipeline(model, steps, train, random_state=0)
    from workbench.edits import note

    record = note(out, "pipeline")
    assert outer.samples == 4 * len(train) == sum(step["samples"] for step in record)
    assert outer.calls >= 2


def test_every_method_of_a_study_trains_on_the_same_budget_and_ranks_on_val(tmp_path):
    path = tmp_path / "budget.toml"
    path.write_text(STUDY)
    study = load_study(path)
    outcome = run_study(study, quiet=True)
    assert outcome.failed == 0
    n_train = len(load_dataset("digits", split="train"))
    with Store(tmp_path / "budget.sqlite", readonly=True) as store:
        rows = [row for row in store.rows() if row["status"] == "done"]
    spent = {}
    for row in rows:
        metrics = row["metrics"]
        assert metrics["val_n"] == len(load_dataset("digits", split="val"))
        assert 0.3 < metrics["val_accuracy"] <= 1  # chance is 0.1: the scores are of trained networks
        if row["kind"] != "train":
            key = row["config"].get("pipeline") or row["config"]["selector"]
            spent.setdefault(key, set()).add(metrics["retrain_samples"])
            assert metrics["teacher"] == "none"
    assert spent["magnitude"] == spent["random"] == spent["equal"] == {2 * n_train}
    assert spent["paper"] == {1 * n_train}  # kept its own schedule, as the study says
    records = read_records(study)
    rows = {row["pipeline"]: row for row in pipeline_table(records)}
    assert rows["paper"]["retraining"].endswith("(own schedule)")
    assert "own schedule" not in rows["equal"]["retraining"]
    table = compare_table(records)
    assert {row["ranked_on"] for row in table} == {"val"}
    vals = [row["val"] for row in table]
    assert vals == sorted(vals, reverse=True) and all(v is not None for v in vals)


def test_own_schedule_must_name_a_pipeline_of_the_study(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(STUDY.replace('own_schedule = ["paper"]', 'own_schedule = ["papr"]'))
    with pytest.raises(StudyError, match="papr"):
        load_study(path)


def test_the_base_models_initialization_is_a_study_axis_that_keeps_default_hashes(tmp_path):
    from workbench.study import expand

    path = tmp_path / "init.toml"
    path.write_text(STUDY)
    default = {run.hash for run in expand(load_study(path)) if run.kind == "train"}
    path.write_text(STUDY.replace("lr = 1e-2 }", 'lr = 1e-2, init = "kaiming" }'))
    assert {run.hash for run in expand(load_study(path)) if run.kind == "train"} == default  # stored runs still match
    path.write_text(STUDY.replace("lr = 1e-2 }", 'lr = 1e-2, init = "torch" }'))
    torch_init = [run for run in expand(load_study(path)) if run.kind == "train"]
    assert {run.hash for run in torch_init}.isdisjoint(default)
    path.write_text(STUDY.replace("lr = 1e-2 }", 'lr = 1e-2, init = "he" }'))
    with pytest.raises(StudyError, match="init"):
        load_study(path)


@pytest.mark.parametrize(
    ("method", "options", "teacher"),
    [
        ("reconstruct", {"loss": "logits", "alpha": 1.0}, "base model (no labels)"),
        ("distill", {"loss": "hinton", "temperature": 4.0}, "base model"),
    ],
)
def test_pipelines_learn_from_what_the_selector_runs_learn_from(tmp_path, method, options, teacher):
    """With [finetune] method = "reconstruct" a study's pipelines retrain on the base model's logits alone, like its
    selector runs (no labels); with "distill", with the study's distillation settings."""
    from workbench.study import expand

    path = tmp_path / f"{method}.toml"
    path.write_text(STUDY.replace("[finetune]\nepochs = 2", f'[finetune]\nmethod = "{method}"\nepochs = 2'))
    study = load_study(path)
    pipelines = [run for run in expand(study) if run.kind == "pipeline"]
    assert {json_key(Retraining(**run.config["finetune"]).teaching()) for run in pipelines} == {json_key(options)}
    outcome = run_study(study, quiet=True, where=lambda run: run.kind != "compress" and run.config["seed"] == 0)
    assert outcome.failed == 0
    with Store(tmp_path / f"{method}.sqlite", readonly=True) as store:
        done = [row for row in store.rows() if row["kind"] == "pipeline"]
    assert {row["metrics"]["teacher"] for row in done if row["metrics"]["retrain_samples"]} == {teacher}


def json_key(value) -> str:
    import json

    return json.dumps(value, sort_keys=True)
