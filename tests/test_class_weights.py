"""Class weights of the loss: ENet's 1 / ln(1.02 + p) and balanced weights from the training labels, used by
fit, fine-tuning after compression and study files."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from workbench.compression import Retraining
from workbench.errors import ConfigError, DataError, StudyError
from workbench.study import expand, load_study
from workbench.train import fit
from workbench.train.class_weights import class_counts, class_weights
from workbench.train.tasks import default_loss


def _segmentation_pair() -> tuple[torch.Tensor, torch.Tensor]:
    targets = torch.zeros(4, 5, 5, dtype=torch.long)  # 100 pixels: 90 background, 10 of class 1, class 2 absent
    targets[0, :2, :5] = 1
    targets[1, 0, 0] = 255  # ignored
    return torch.rand(4, 3, 5, 5), targets


def test_enet_and_balanced_weights_follow_their_formulas_from_the_label_counts():
    pair = _segmentation_pair()
    counts = class_counts(pair, num_classes=3)
    assert counts.tolist() == [89, 10, 0]  # the ignored pixel is not counted
    enet = class_weights(pair, "enet", num_classes=3)
    expected = [1 / math.log(1.02 + c / 99) for c in (89, 10, 0)]
    assert enet.tolist() == pytest.approx(expected, rel=1e-6)
    assert enet[2] == pytest.approx(1 / math.log(1.02))  # an absent class gets the largest weight, not a division by 0
    balanced = class_weights(pair, "balanced", num_classes=3)
    assert balanced.tolist() == pytest.approx([99 / (3 * 89), 99 / (3 * 10), 99 / 3])
    assert class_weights(pair, "none") is None


def test_bad_weighting_settings_name_the_problem():
    pair = _segmentation_pair()
    with pytest.raises(ConfigError, match="enet"):
        class_weights(pair, "inverse")
    with pytest.raises(DataError, match="label 1"):
        class_counts(pair, num_classes=1)
    with pytest.raises(ConfigError, match="loss_fn"):
        fit(nn.Conv2d(3, 3, 1), pair, epochs=1, loss_fn=lambda a, b: a.sum(), class_weights="enet", quiet=True)
    with pytest.raises(DataError, match="3 class weights"):
        default_loss(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), "classification", weight=torch.ones(3))
    with pytest.raises(ConfigError, match="teacher"):
        Retraining(method="distill", epochs=1, class_weights="enet")


def test_default_loss_with_weights_is_weighted_cross_entropy_per_pixel():
    logits, (_, targets) = torch.randn(4, 3, 5, 5), _segmentation_pair()
    weight = torch.tensor([0.5, 2.0, 3.0])
    got = default_loss(logits, targets, "segmentation", weight=weight)
    valid = targets != 255
    picked = -torch.log_softmax(logits, 1).gather(1, targets.clamp(max=2)[:, None])[:, 0]
    w = weight[targets.clamp(max=2)] * valid
    assert float(got) == pytest.approx(float((picked * w).sum() / w.sum()), rel=1e-5)


def test_weighted_training_recalls_a_rare_class_that_unweighted_training_ignores():
    generator = torch.Generator().manual_seed(0)
    n_rare, n_common = 20, 380  # 5% of the samples, overlapping the common class
    inputs = torch.cat(
        [torch.randn(n_rare, 2, generator=generator) + 1.0, torch.randn(n_common, 2, generator=generator)]
    )
    targets = torch.cat([torch.ones(n_rare, dtype=torch.long), torch.zeros(n_common, dtype=torch.long)])
    recall = {}
    for scheme in ("none", "balanced"):
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        fit(model, (inputs, targets), epochs=30, lr=0.05, class_weights=scheme, quiet=True, random_state=0)
        with torch.no_grad():
            recall[scheme] = float((model(inputs[:n_rare]).argmax(1) == 1).float().mean())
    assert recall["none"] <= 0.2
    assert recall["balanced"] >= 0.6


STUDY = """
[study]
name = "weights"
seeds = [0]

[[models]]
name = "mlp"
args = { widths = [64, 8, 10] }
data = "digits"
training = { epochs = 1 CLASS }

[selectors]
magnitude = {}

[compression]
budgets = [0.5]

[finetune]
epochs = 1
METHOD
"""


def test_study_files_take_class_weights_and_keep_the_hashes_of_unweighted_runs(tmp_path):
    path = tmp_path / "w.toml"

    def hashes(study: str) -> set[str]:
        path.write_text(study)
        return {run.hash for run in expand(load_study(path))}

    plain = hashes(STUDY.replace(" CLASS", "").replace("METHOD", ""))
    explicit = hashes(STUDY.replace(" CLASS", ', class_weights = "none"').replace("METHOD", 'class_weights = "none"'))
    assert explicit == plain  # runs stored before the setting existed keep their hashes
    weighted_study = STUDY.replace(" CLASS", ', class_weights = "enet"').replace("METHOD", 'class_weights = "enet"')
    weighted = hashes(weighted_study)
    assert weighted.isdisjoint(plain)
    path.write_text(weighted_study)
    runs = expand(load_study(path))
    assert {run.config["model"]["training"]["class_weights"] for run in runs if run.kind == "train"} == {"enet"}
    assert {run.config["finetune"]["class_weights"] for run in runs if run.kind == "compress"} == {"enet"}
    for bad, word in (
        ('class_weights = "inverse"', "class_weights"),
        ('method = "distill"\nclass_weights = "enet"', "teacher"),
    ):
        path.write_text(STUDY.replace(" CLASS", "").replace("METHOD", bad))
        with pytest.raises(StudyError, match=word):
            load_study(path)
