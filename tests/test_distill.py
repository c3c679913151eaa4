"""Distillation: the student learns the teacher's function; losses, noise and several teachers behave."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.datasets import load_dataset
from workbench.errors import ConfigError
from workbench.train import distill, evaluate, fit
from workbench.train.distill import DistillationLoss
from workbench.zoo import create_model


@pytest.fixture(scope="module")
def digits_teacher():
    train = load_dataset("digits", split="train")
    torch.manual_seed(0)
    teacher = create_model("mlp", widths=[64, 128, 10])
    fit(teacher, train, epochs=30, lr=3e-3, quiet=True, random_state=0)
    return teacher, train, load_dataset("digits", split="test")


@pytest.mark.parametrize("loss", ["hinton", "logits"])
def test_student_learns_from_the_teacher(digits_teacher, loss):
    teacher, train, test = digits_teacher
    torch.manual_seed(1)
    student = create_model("mlp", widths=[64, 32, 10])
    before = evaluate(student, test)["accuracy"]
    distill(student, teacher, train, epochs=30, loss=loss, lr=1e-2, quiet=True)
    after = evaluate(student, test)["accuracy"]
    assert after > 0.85 > before
    # the student agrees with the teacher on most test inputs
    with torch.no_grad():
        agree = (student(test.inputs).argmax(1) == teacher(test.inputs).argmax(1)).float().mean()
    assert agree > 0.85


def test_logit_regression_matches_teacher_logits(digits_teacher):
    teacher, train, _ = digits_teacher
    torch.manual_seed(2)
    student = create_model("mlp", widths=[64, 128, 10])
    with torch.no_grad():
        start = nn.functional.mse_loss(student(train.inputs), teacher(train.inputs))
    distill(student, teacher, train, epochs=15, loss="logits", lr=3e-3, quiet=True)
    with torch.no_grad():
        end = nn.functional.mse_loss(student(train.inputs), teacher(train.inputs))
    assert end < 0.2 * start


def test_loss_values_by_hand():
    gen = torch.Generator().manual_seed(0)
    student = torch.tensor([[1.0, 0.0, -1.0]])
    teacher = torch.tensor([[2.0, 0.0, 0.0]])
    packed = torch.cat([torch.tensor([[0.0]]), teacher], dim=1)
    hinton = DistillationLoss("hinton", 2.0, 1.0, 1, "mean", 0.0, 0.0, gen)(student, packed)
    p = torch.softmax(teacher / 2, 1)
    q = torch.log_softmax(student / 2, 1)
    assert hinton == pytest.approx(float((p * (p.log() - q)).sum() * 4), rel=1e-5)
    l2 = DistillationLoss("logits", 1.0, 1.0, 1, "mean", 0.0, 0.0, gen)(student, packed)
    assert l2 == pytest.approx(float(((student - teacher) ** 2).mean()))


def test_several_teachers_and_noise():
    gen = torch.Generator().manual_seed(0)
    packed = torch.tensor([[1.0, 1.0, 2.0, 3.0, 5.0]] * 2000)  # two teachers of two classes: (1,2) and (3,5)
    _, mean = DistillationLoss("logits", 1.0, 1.0, 2, "mean", 0.0, 0.0, gen).targets(packed)
    assert torch.allclose(mean, torch.tensor([2.0, 3.5]))
    _, picked = DistillationLoss("logits", 1.0, 1.0, 2, "random", 0.0, 0.0, gen).targets(packed)
    first = (picked[:, 0] == 1.0).float().mean()
    assert 0.45 < first < 0.55 and set(picked[:, 0].tolist()) == {1.0, 3.0}
    _, noisy = DistillationLoss("logits", 1.0, 1.0, 1, "mean", 0.5, 0.3, gen).targets(packed[:, :3])
    changed = (noisy != packed[:, 1:3]).any(1).float().mean()
    assert 0.25 < changed < 0.35  # noise on about noise_prob of the samples
    ratio = noisy[:, 0] / packed[:, 1]
    assert abs(float(ratio.mean()) - 1.0) < 0.05  # multiplicative noise of mean zero


def test_bad_arguments(digits_teacher):
    teacher, train, _ = digits_teacher
    student = create_model("mlp", widths=[64, 8, 10])
    with pytest.raises(ConfigError, match="unknown distillation loss"):
        distill(student, teacher, train, loss="kl")
    with pytest.raises(ConfigError, match="alpha"):
        distill(student, teacher, train, alpha=1.5)
    with pytest.raises(ConfigError, match="teachers must be"):
        distill(student, [teacher, teacher], train, teachers="vote")
    with pytest.raises(ConfigError, match="at least one teacher"):
        distill(student, [], train)


def test_retrain_is_fit_without_a_teacher_and_distill_with_one():
    from workbench.train import retrain

    x = torch.randn(96, 8, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    teacher, start = nn.Linear(8, 2), nn.Linear(8, 2)
    kwargs = dict(epochs=2, lr=1e-2, quiet=True, random_state=3)
    pairs = []
    for with_teacher in (False, True):
        a, b = (nn.Linear(8, 2) for _ in range(2))
        a.load_state_dict(start.state_dict())
        b.load_state_dict(start.state_dict())
        if with_teacher:
            retrain(a, (x, y), teacher=teacher, distill_options={"temperature": 2.0}, **kwargs)
            distill(b, teacher, (x, y), temperature=2.0, **kwargs)
        else:
            retrain(a, (x, y), **kwargs)
            fit(b, (x, y), **kwargs)
        assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, start.weight)
        pairs.append(a.weight.detach().clone())
    assert not torch.equal(*pairs)
    with pytest.raises(ConfigError, match="without a teacher"):
        retrain(nn.Linear(8, 2), (x, y), distill_options={"temperature": 2.0}, **kwargs)
