"""Selection and the classic pipelines are one computation (``run_compression``), retrained by one configuration."""

from __future__ import annotations

import pytest
import torch
from toy import tiny_mlp, toy_data

from workbench.compression import Retraining, compress, run_compression
from workbench.study import Store, load_study, run_study


@pytest.fixture(scope="module")
def trained():
    from workbench.train import fit

    model = tiny_mlp()
    model.input_shape = (8,)
    fit(model, toy_data(256), epochs=10, lr=1e-2, quiet=True)
    return model


def test_compress_is_a_select_step_followed_by_the_retraining(trained):
    data, test = toy_data(256), toy_data(256, seed=1)
    retrain = Retraining(method="finetune", epochs=2, lr=1e-2)
    made = compress(trained, method="magnitude", keep=0.5, train=data, test=test, retrain=retrain, latency=False)
    step = {"do": "select", "method": "magnitude", "keep": 0.5}
    same = run_compression(trained, [step], train=data, test=test, retrain=retrain, latency=False)
    assert all(torch.equal(a, b) for a, b in zip(made.model.state_dict().values(), same.model.state_dict().values()))
    assert same.plan.kept_fraction == made.plan.kept_fraction == 0.5 and same.rebuilt == made.rebuilt
    assert [s["do"] for s in same.steps] == ["select", "retrain"]  # the retraining is recorded as a step
    assert same.steps[-1]["samples"] == same.retrain_samples == 2 * 256


def test_steps_that_do_not_train_get_the_budget_and_steps_that_train_are_scaled_to_it(trained):
    data = toy_data(256)
    retrain = Retraining(method="distill", epochs=3, lr=1e-2)
    shared = run_compression(trained, [{"do": "share", "bits": 3}], train=data, retrain=retrain, latency=False)
    assert shared.retrain_samples == 3 * 256 and shared.teacher == "base model"
    assert shared.plan is None and shared.steps[-1]["learned_from"] == "teacher and labels"
    logits = Retraining(method="distill", loss="logits", epochs=1, lr=1e-2)  # logit regression: alpha 1, no labels
    regressed = run_compression(trained, [{"do": "share", "bits": 3}], train=data, retrain=logits, latency=False)
    assert (
        regressed.steps[-1]["learned_from"] == "teacher (no labels)" and regressed.teacher == "base model (no labels)"
    )
    steps = [{"do": "prune", "rate": 0.5}, {"do": "retrain", "epochs": 10}]
    scaled = run_compression(trained, steps, train=data, retrain=retrain, latency=False)
    assert scaled.retrain_samples == 3 * 256 and [s["do"] for s in scaled.steps] == ["prune", "retrain"]
    assert scaled.steps[-1]["epochs"] == 3 and scaled.teacher == "base model"  # the pipeline's retrain distilled
    own = run_compression(trained, steps, train=data, retrain=retrain, own_schedule=True, latency=False)
    assert own.retrain_samples == 10 * 256
    untaught = run_compression(trained, steps, train=data, retrain=Retraining(method="none"), latency=False)
    assert untaught.retrain_samples == 0 and [s["do"] for s in untaught.steps] == ["prune"]  # no budget: no retrain


STUDY = """
[study]
name = "one"
seeds = [0]
latency = false

[[models]]
label = "tiny MLP"
name = "mlp"
args = { widths = [64, 16, 10] }
data = "digits"
training = { epochs = 3, lr = 1e-2 }

[selectors]
magnitude = {}

[compression]
budgets = [0.5]
fuse = ["drop"]

[finetune]
epochs = 1

[pipelines]
selected = [{ do = "select", method = "magnitude", keep = 0.5 }]
"""


def test_a_selector_run_and_the_same_selection_as_a_pipeline_give_one_result(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text(STUDY)
    outcome = run_study(load_study(path), quiet=True)
    assert outcome.failed == 0
    with Store(tmp_path / "one.sqlite", readonly=True) as store:
        rows = {row["kind"]: row for row in store.rows()}
    selector, pipeline = rows["compress"]["metrics"], rows["pipeline"]["metrics"]
    assert rows["compress"]["config"]["finetune"] == rows["pipeline"]["config"]["finetune"]
    for key in ("accuracy", "params", "stored_bytes", "retrain_samples", "teacher"):
        assert selector[key] == pipeline[key], key
    assert selector["retrain_samples"] > 0 and selector["stored_bytes"] < selector["base_stored_bytes"]
