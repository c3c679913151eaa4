"""Compression pipelines: named steps, checked before they run, runnable alone and in a study."""

from __future__ import annotations

import re

import pytest
import torch
from toy import tiny_mlp, toy_data

from workbench.edits import note
from workbench.errors import ConfigError, StudyError
from workbench.metrics import storage_report
from workbench.pipeline import check_steps, list_transforms, run_pipeline
from workbench.study import Store, expand, load_study, run_study, write_report
from workbench.train import evaluate, fit


def test_every_transform_of_the_reading_list_can_be_named():
    names = set(list_transforms())
    assert {
        "prune",
        "iterative-prune",
        "network-surgery",
        "group-lasso",
        "share",
        "deep-compression",
        "soft-sharing",
        "fixed-point",
        "fixed-point-iterative",
        "binary",
        "binarize",
        "ternary",
        "power-of-two",
        "dct",
        "hashed-dct",
        "factorize",
        "retrain",
    } <= names


def test_bad_steps_are_all_named_with_the_fix():
    with pytest.raises(ConfigError) as info:
        check_steps(
            [
                {"do": "prun", "rate": 0.9},
                {"do": "share", "bitz": 3},
                {"do": "retrain", "random_state": 1},
                {"rate": 0.5},
            ]
        )
    text = str(info.value)
    assert "step 0: unknown transform 'prun'. Did you mean 'prune'?" in text
    assert "step 1 (share): unknown parameter 'bitz'. Did you mean 'bits'?" in text and "Allowed: bits" in text
    assert "step 2 (retrain): 'random_state' is set by the pipeline" in text
    assert "step 3: a step is a table with a 'do' key" in text
    with pytest.raises(ConfigError, match="non-empty list"):
        check_steps([])
    with pytest.raises(ConfigError, match="pass train_data"):
        run_pipeline(tiny_mlp(), [{"do": "retrain", "epochs": 1}])


def test_prune_share_retrain_keeps_sparsity_and_sharing_and_the_input_unchanged():
    model = tiny_mlp()
    fit(model, toy_data(256), epochs=20, lr=1e-2, quiet=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = [
        {"do": "prune", "rate": 0.75},
        {"do": "retrain", "epochs": 5, "lr": 1e-2},
        {"do": "share", "bits": 3},
        {"do": "retrain", "epochs": 2, "lr": 1e-3},
    ]
    small = run_pipeline(model, steps, toy_data(256), teacher="input", random_state=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    weight = small[0].weight.detach()
    assert (weight == 0).float().mean() >= 0.74  # the masks held through both retrainings
    assert torch.unique(weight).numel() <= 2**3 + 1  # and the shared values through the last one
    assert [s["do"] for s in note(small, "pipeline")] == ["prune", "retrain", "share", "retrain"]
    assert storage_report(model).stored_bytes / storage_report(small).stored_bytes > 2.5  # biases, code tables count
    test = toy_data(256, seed=1)
    assert evaluate(small, test)["accuracy"] > evaluate(model, test)["accuracy"] - 0.1


def test_group_lasso_step_really_shrinks_the_network():
    x, y = toy_data(512)
    model = tiny_mlp()
    small = run_pipeline(
        model,
        [
            {
                "do": "group-lasso",
                "strength": 0.05,
                "kinds": ["filters"],
                "layers": ["0"],
                "epochs": 50,
                "lr": 0.05,
                "tol": 1e-4,
            }
        ],
        (x, y),
        random_state=0,
    )
    assert small[0].out_features < 16 and small[2].in_features == small[0].out_features


STUDY = """
[study]
name = "pipes"
seeds = [0]
latency = false

[[models]]
name = "mlp"
args = { widths = [64, 32, 10] }
data = "digits"
training = { epochs = 3 }

[pipelines]
pruned = [{ do = "iterative-prune", rates = [0.5, 0.8], retrain_epochs = 1 }]
shared = [{ do = "prune", rate = 0.8 }, { do = "share", bits = 4 }, { do = "retrain", epochs = 1, lr = 1e-3 }]
broken = [{ do = "factorize", method = "tucker2", budget = 0.5 }]

[finetune]
method = "distill"
"""


def test_a_study_runs_pipelines_and_reports_their_stored_size(tmp_path):
    path = tmp_path / "pipes.toml"
    path.write_text(STUDY)
    study = load_study(path)
    runs = expand(study)
    assert sorted(run.kind for run in runs) == ["pipeline"] * 3 + ["train"]
    outcome = run_study(study, quiet=True)
    assert (outcome.done, outcome.failed) == (3, 1)  # an MLP has no convolution to factorize: a named error
    with Store(tmp_path / "pipes.sqlite", readonly=True) as store:
        rows = {row["config"].get("pipeline"): row for row in store.rows()}
    assert "has no Conv2d layer" in rows["broken"]["error"]
    shared = rows["shared"]["metrics"]
    assert shared["compression_ratio"] > 10 and shared["stored_bytes"] < shared["base_stored_bytes"] / 10
    assert (
        rows["shared"]["plan"]["steps"][1]["do"] == "share"
        and rows["shared"]["config"]["finetune"]["method"] == "distill"
    )
    assert rows["shared"]["metrics"]["teacher"] == "base model"  # its retrain step distilled, as the study says
    table = {row["pipeline"]: row for row in outcome.pipelines}
    assert table["pruned"]["compression_ratio"] > 2 and table["pruned"]["runs"] == "1/1"
    page = write_report(path).read_text()
    assert "compression pipelines" in page and "stored bytes" in page and re.search(r"\d\d+\.\dx smaller", page)
    assert re.search(r"shared<br><small>pipeline</small>", page)  # a row of the ranked table


def test_a_study_names_bad_pipelines_and_needs_something_to_compress(tmp_path):
    bad = STUDY.replace("bits = 4", "bitz = 4")
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    with pytest.raises(StudyError, match="pipeline 'shared': step 1 \\(share\\): unknown parameter 'bitz'"):
        load_study(path)
    path.write_text(STUDY.split("[pipelines]")[0])
    with pytest.raises(StudyError, match="give \\[selectors\\] .* or \\[pipelines\\]"):
        load_study(path)


def test_size_accuracy_figure_draws_each_point_and_names_missing_keys():
    from workbench.viz import size_accuracy_figure

    fig = size_accuracy_figure(
        [
            {"name": "a", "stored_bytes": 100, "accuracy": 0.9, "ratio": 4.0},
            {"name": "b", "stored_bytes": 50, "accuracy": 0.8, "accuracy_std": 0.01},
        ],
        base={"stored_bytes": 400, "accuracy": 0.95},
    )
    assert [trace.name for trace in fig.data] == ["a", "b", "base model (fp32)"]
    assert fig.layout.xaxis.type == "log" and "4.0x smaller" in fig.data[0].hovertemplate
    with pytest.raises(ConfigError, match="needs stored_bytes"):
        size_accuracy_figure([{"name": "a", "accuracy": 0.9}])
