"""Recovery without labels: reconstruction of the original network's outputs (Lin et al. 2016)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from workbench.compression import Retraining, compress
from workbench.errors import ConfigError
from workbench.selection import Selection
from workbench.surgery import Plan, apply
from workbench.train import evaluate, finetune, fit, reconstruct
from workbench.zoo import create_model


@pytest.fixture(scope="module")
def digits():
    from workbench.datasets import load_dataset

    return load_dataset("digits", split="train"), load_dataset("digits", split="test")


@pytest.fixture(scope="module")
def lenet(digits):
    torch.manual_seed(0)
    model = create_model("lenet300", inputs=64)
    fit(model, digits[0], epochs=10, quiet=True, random_state=0)
    return model.eval()


def wrong_labels(data) -> TensorDataset:
    """The inputs of ``data`` with every label 0: training on these labels teaches nothing true."""
    return TensorDataset(data.inputs, torch.zeros(len(data), dtype=torch.long))


def pruned(model) -> torch.nn.Module:
    """LeNet-300-100 with every fourth hidden unit kept, the others dropped (accuracy falls)."""
    plan = Plan(
        {
            name: Selection(
                group=name, n_units=n, keep=np.arange(0, n, 4), assign=np.arange(n) // 4 * 4, scores=np.zeros(n)
            )
            for name, n in (("layers.1", 300), ("layers.3", 100))
        }
    )
    return apply(model, plan, fuse="drop")


def test_reconstruction_recovers_accuracy_from_inputs_alone(lenet, digits):
    train, test = digits
    base = evaluate(lenet, test)["accuracy"]
    student = pruned(lenet)
    start = evaluate(student, test)["accuracy"]
    history = reconstruct(student, lenet, wrong_labels(train), epochs=10, lr=3e-3, quiet=True)
    recovered = evaluate(student, test)["accuracy"]
    assert recovered > start + 0.1 and recovered > base - 0.1
    assert history.total_samples == 10 * len(train)  # counted like fit
    misled = pruned(lenet)
    finetune(misled, wrong_labels(train), epochs=10, lr=3e-3, quiet=True)
    assert evaluate(misled, test)["accuracy"] < recovered - 0.5  # the same labels, read, would ruin it


def test_unlabelled_inputs_are_enough(lenet, digits):
    student = pruned(lenet)
    history = reconstruct(student, lenet, digits[0].inputs[:200], epochs=1, quiet=True)
    assert history.samples == [200]


def test_feature_matching_at_the_kept_layers(lenet, digits):
    train, test = digits
    student = pruned(lenet)
    kept = {"layers.1": list(range(0, 300, 4)), "layers.3": list(range(0, 100, 4))}
    x = test.inputs[:256].flatten(1)

    def hidden_error(model):
        with torch.no_grad():
            return float(((model.layers[:4](x) - lenet.layers[:4](x)[:, ::4]) ** 2).mean())  # second hidden layer

    plain = pruned(lenet)
    reconstruct(plain, lenet, train.inputs, epochs=3, lr=1e-3, quiet=True)
    reconstruct(student, lenet, train.inputs, epochs=3, lr=1e-3, features=kept, feature_weight=10.0, quiet=True)
    assert hidden_error(student) < 0.5 * hidden_error(plain)  # the kept layers' outputs are held to the original's
    with pytest.raises(ConfigError, match="teacher channels"):
        reconstruct(pruned(lenet), lenet, train.inputs, epochs=1, features={"layers.1": None}, quiet=True)
    with pytest.raises(ConfigError, match="does not have"):
        reconstruct(pruned(lenet), lenet, train.inputs, epochs=1, features={"nope": None}, quiet=True)


def test_compress_reconstructs_without_labels_and_says_so(lenet, digits):
    train, test = digits
    result = compress(
        lenet,
        method="magnitude",
        keep=0.1,
        train=wrong_labels(train),
        test=test,
        latency=False,
        retrain=Retraining(method="reconstruct", epochs=3, lr=1e-3, features=True),
    )
    assert result.teacher == "base model (no labels)"
    assert result.retrain_samples == 3 * len(train)
    assert result.after["accuracy"] > result.rebuilt["accuracy"]


def test_a_pipeline_retrains_without_labels_when_given_logit_regression_options(lenet, digits):
    from workbench.edits import note
    from workbench.pipeline import run_pipeline

    train, test = digits
    steps = [{"do": "prune", "rate": 0.9}, {"do": "retrain", "epochs": 5, "lr": 3e-3}]
    label_free = run_pipeline(
        lenet, steps, wrong_labels(train), teacher=lenet, distill_options={"loss": "logits", "alpha": 1.0}
    )
    misled = run_pipeline(lenet, steps, wrong_labels(train))
    pruned_only = evaluate(run_pipeline(lenet, steps[:1]), test)["accuracy"]  # 0.35
    free, fitted = evaluate(label_free, test)["accuracy"], evaluate(misled, test)["accuracy"]  # 0.82, 0.10
    assert free > pruned_only + 0.3 and fitted < free - 0.5  # the wrong labels were never read
    assert [s["learned_from"] for s in note(label_free, "pipeline")] == ["-", "teacher (no labels)"]
    assert [s["learned_from"] for s in note(misled, "pipeline")] == ["-", "labels"]
    with pytest.raises(ConfigError, match="teacher"):
        run_pipeline(lenet, steps, train, distill_options={"loss": "logits"})
