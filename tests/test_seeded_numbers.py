"""Same seed, same model (the CLI and create_model seed the initialization); one retraining learning rate."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from workbench.checkpoints import load_checkpoint
from workbench.cli import main
from workbench.compression import RETRAIN_METHODS, Retraining
from workbench.datasets import load_dataset
from workbench.study import expand
from workbench.study.execute import _untrained
from workbench.study.schema import study_from_dict
from workbench.train import RETRAIN_LR
from workbench.zoo import create_model, create_model_for_data

STUDY = {
    "study": {"name": "s", "seeds": [3]},
    "models": [{"name": "lenet300", "data": "digits"}],
    "selectors": {"magnitude": {}},
    "compression": {"budgets": [0.5]},
    "finetune": {"epochs": 1},
}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def cli_train(tmp_path, seed: int, name: str) -> dict[str, torch.Tensor]:
    out = tmp_path / name
    args = ["train", "--model", "lenet300", "--data", "digits", "--epochs", "1", "--seed", str(seed)]
    assert main([*args, "--quiet", "--json", "--out", str(out)]) == 0
    return load_checkpoint(out)[0].state_dict()


def test_two_cli_trainings_with_one_seed_give_the_same_model_and_other_seeds_another(tmp_path, capsys):
    first, again, other = (cli_train(tmp_path, seed, f"{k}.pt") for k, seed in enumerate((0, 0, 1)))
    assert same(first, again)
    assert not any(torch.equal(first[key], other[key]) for key in first if key.endswith("weight"))


def test_create_model_seeds_the_initialization_and_leaves_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = create_model("lenet300", random_state=7)
    assert torch.equal(torch.rand(3), expected)  # the global generator did not move
    assert same(a.state_dict(), create_model("lenet300", random_state=7).state_dict())
    assert not same(a.state_dict(), create_model("lenet300", random_state=8).state_dict())
    from_rng = [create_model("lenet300", random_state=np.random.default_rng(0)).state_dict() for _ in range(2)]
    assert same(*from_rng)  # a Generator seeds it too
    assert a.workbench_spec == {"name": "lenet300", "kwargs": {}}  # the seed is not part of the architecture


def test_create_model_for_data_builds_what_a_study_starts_training_from():
    config = next(run.config for run in expand(study_from_dict(copy.deepcopy(STUDY))) if run.kind == "train")
    train = load_dataset("digits", split="train")
    mine = create_model_for_data("lenet300", train.input_shape, train.num_classes, random_state=3)
    assert same(mine.state_dict(), _untrained(config)[0].state_dict())


def test_every_retraining_method_defaults_to_one_learning_rate():
    assert {Retraining(method=m).learning_rate for m in RETRAIN_METHODS} == {RETRAIN_LR} and RETRAIN_LR == 1e-3
    assert Retraining(method="distill", lr=3e-3).learning_rate == 3e-3
    train = load_dataset("digits", split="train")
    teacher = create_model_for_data("mlp", train.input_shape, train.num_classes, widths=[64, 8, 10], random_state=0)
    for method in ("finetune", "distill", "reconstruct"):
        retraining = Retraining(method=method, epochs=1, schedule="constant", max_batches=1)
        history = retraining.run(copy.deepcopy(teacher), train, teacher, random_state=0, quiet=True)
        assert history.lr == [pytest.approx(RETRAIN_LR)], method


def test_a_study_that_leaves_lr_unset_keeps_it_unset_in_its_run_hashes():
    """The hash records ``lr: null``, whose meaning changed (finetune and reconstruct ran at 1e-4 before): the
    results version, not the hash, makes such stored runs computed again (tests/test_results_version.py)."""
    (run,) = [run for run in expand(study_from_dict(copy.deepcopy(STUDY))) if run.kind == "compress"]
    assert run.config["finetune"]["lr"] is None
