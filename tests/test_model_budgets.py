"""A [[models]] entry's own retraining budget, selectors, budgets and fusion modes (issue 14)."""

from __future__ import annotations

import copy

import pytest

from workbench.errors import StudyError
from workbench.study import expand
from workbench.study.grid import count_runs
from workbench.study.schema import study_from_dict

STUDY = {
    "study": {"name": "budgets", "seeds": [0, 1]},
    "models": [
        {"name": "lenet300", "data": "digits", "training": {"epochs": 2}},
        {"name": "resnet", "args": {"depth": 8}, "data": "shapes", "label": "ResNet-8", "training": {"epochs": 2}},
    ],
    "selectors": {"random": {}, "magnitude": {"criterion": "l1"}, "spectral": {}},
    "compression": {"budgets": [0.25, 0.5], "fuse": ["drop", "lsq"]},
    "finetune": {"epochs": 10, "lr": 1e-3},
    "pipelines": {"fp8": [{"do": "fixed-point", "weight_bits": 8}, {"do": "retrain", "epochs": 3}]},
}

# Hashes of STUDY's runs of seed 0 before models could carry their own compression settings: stored runs must match.
FROZEN = {
    "lenet300 train": "382f00a0394e21fadb7d3db0ff3070545fe13c8128ca1880993ded933b47bb86",
    "lenet300 magnitude 0.25 lsq": "132e9dba2332dd4e2f83eca406b6605db47199a1e6ba67231e0a314ee31833be",
    # pipeline runs carry the study's one retraining configuration since selector and pipeline runs became one
    # computation (workbench.compression.run_compression): their hashes changed once then (before: 6ba76ef6...)
    "lenet300 fp8": "374291f91112635093bcf5baf6e549239ad2482a3d9673a5cf914e57392f2326",
    "resnet spectral 0.5 drop": "2cf09f316ab93d562276096cd6163bfcfa94b11865972faf8a5dc2937eba91e0",
}


def _runs(study: dict) -> list:
    return expand(study_from_dict(copy.deepcopy(study)))


def _name(run) -> str:
    model = run.config["model"]["name"]
    if run.kind == "train":
        return f"{model} train"
    if run.kind == "pipeline":
        return f"{model} {run.config['pipeline']}"
    return f"{model} {run.config['selector']} {run.config['budget']['keep']:g} {run.config['fuse']}"


def test_studies_without_per_model_settings_keep_their_run_hashes():
    hashes = {_name(run): run.hash for run in _runs(STUDY) if run.config["seed"] == 0}
    assert {name: hashes[name] for name in FROZEN} == FROZEN


def test_a_models_own_finetune_replaces_the_studys_for_all_its_methods_and_nothing_else():
    study = copy.deepcopy(STUDY)
    study["models"][1]["finetune"] = {"epochs": 1, "lr": 3e-3, "max_batches": 20}
    before, after = _runs(STUDY), _runs(study)
    assert len(before) == len(after) == count_runs(study_from_dict(copy.deepcopy(study)))
    unchanged = {run.hash for run in before if run.config["model"]["name"] == "lenet300"}
    assert unchanged == {run.hash for run in after if run.config["model"]["name"] == "lenet300"}
    bases = {run.hash for run in before if run.kind == "train"}
    assert bases == {run.hash for run in after if run.kind == "train"}  # the same cached base models
    conv = [run for run in after if run.config["model"]["name"] == "resnet" and run.kind != "train"]
    budgets = {run.config["finetune"]["epochs"] for run in conv if run.kind == "compress"}
    assert budgets == {1} and {run.config["finetune"]["max_batches"] for run in conv if run.kind == "compress"} == {20}
    pipelines = [run.config for run in conv if run.kind == "pipeline"]
    assert {(c["finetune"]["epochs"], c["schedule"]) for c in pipelines} == {(1, "budget")}  # one configuration
    lenet = [run for run in after if run.config["model"]["name"] == "lenet300" and run.kind == "compress"]
    assert {run.config["finetune"]["epochs"] for run in lenet} == {10}


def test_a_model_may_narrow_the_selectors_budgets_and_fusion_modes():
    study = copy.deepcopy(STUDY)
    study["models"][1].update(
        {"selectors": ["spectral", "magnitude"], "budgets": [0.5], "fuse": ["drop"], "pipelines": []}
    )
    assert not [run for run in _runs(study) if run.kind == "pipeline" and run.config["model"]["name"] == "resnet"]
    runs = [run for run in _runs(study) if run.kind == "compress" and run.config["model"]["name"] == "resnet"]
    assert sorted({run.config["selector"] for run in runs}) == ["magnitude", "spectral"]
    assert {(run.config["budget"]["keep"], run.config["fuse"]) for run in runs} == {(0.5, "drop")}
    assert len(runs) == 2 * 2  # selectors x seeds
    assert count_runs(study_from_dict(copy.deepcopy(study))) == len(_runs(study))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("selectors", ["magnitud"], "models\\[1\\].selectors names 'magnitud'"),
        ("finetune", {"epochs": 1, "own_schedule": ["fp8"]}, "own_schedule belongs to the study"),
        ("finetune", {"epoch": 1}, "models\\[1\\].finetune: unknown key 'epoch'"),
        ("budgets", [1.5], "fraction of units kept"),
        ("pipelines", ["fp9"], "models\\[1\\].pipelines names 'fp9'"),
    ],
)
def test_bad_per_model_settings_name_the_entry_and_the_fix(key, value, message):
    study = copy.deepcopy(STUDY)
    study["models"][1][key] = value
    with pytest.raises(StudyError, match=message):
        study_from_dict(study)


def test_baselines_are_not_compressed_so_they_take_no_compression_keys():
    study = copy.deepcopy(STUDY)
    study["baselines"] = {"models": [{"name": "lenet5", "data": "digits", "finetune": {"epochs": 1}}]}
    with pytest.raises(StudyError, match="baselines are trained, not compressed"):
        study_from_dict(study)
