"""Difficulty settings of the `shapes` images: the same scenes, harder to read, at any resolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.test_datasets import _outline_features
from workbench.datasets import load_dataset
from workbench.datasets.shapes import ALL_SHAPES, DIFFICULTIES
from workbench.errors import ConfigError


def _outline_score(difficulty: str) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = load_dataset("shapes", split="train", difficulty=difficulty, num_samples=1200)
    test = load_dataset("shapes", split="test", difficulty=difficulty, num_samples=1200)
    outline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    outline.fit(_outline_features(train.inputs), train.targets.numpy())
    return outline.score(_outline_features(test.inputs), test.targets.numpy())


def test_difficulty_keeps_the_labels_and_makes_the_outline_harder_to_read():
    easy, hard = (load_dataset("shapes", split="train", difficulty=d, num_samples=300) for d in ("easy", "hard"))
    assert torch.equal(easy.targets, hard.targets)
    assert (hard.inputs - easy.inputs).abs().mean() > 0.1
    scores = {d: _outline_score(d) for d in DIFFICULTIES}
    assert scores["easy"] > 0.9
    assert scores["medium"] < scores["easy"] - 0.1 and scores["hard"] < scores["medium"]
    assert scores["medium"] < scores["moderate"] < scores["easy"]  # between: conv nets below 100%, above chance


def test_easy_is_the_original_generator_and_generation_is_deterministic():
    default = load_dataset("shapes", split="val", num_samples=120)
    assert torch.equal(default.inputs, load_dataset("shapes", split="val", num_samples=120, difficulty="easy").inputs)
    first = load_dataset("shapes", split="val", num_samples=120, difficulty="hard").inputs.clone()
    load_dataset("shapes", split="val", num_samples=130, difficulty="hard")  # another entry in the cache
    from workbench.datasets.shapes import generate_shapes

    generate_shapes.cache_clear()
    assert torch.equal(first, load_dataset("shapes", split="val", num_samples=120, difficulty="hard").inputs)


def test_the_same_scenes_at_another_resolution():
    small = load_dataset("shapes", split="train", num_samples=60, difficulty="medium", noise=0.0, size=32)
    large = load_dataset("shapes", split="train", num_samples=60, difficulty="medium", noise=0.0, size=64)
    assert large.input_shape == (3, 64, 64) and torch.equal(small.targets, large.targets)
    assert (F.avg_pool2d(large.inputs, 2) - small.inputs).abs().mean() < 0.03


def test_more_classes_and_bad_difficulty():
    ten = load_dataset("shapes", split="test", num_samples=200, classes=10)
    assert ten.num_classes == 10 and ten.class_names == list(ALL_SHAPES)
    assert set(ten.targets.tolist()) == set(range(10))
    with pytest.raises(ConfigError, match="difficulty 'hardest'.*Did you mean 'hard'"):
        load_dataset("shapes", difficulty="hardest")
    with pytest.raises(ConfigError, match="classes must be between 2 and 10"):
        load_dataset("shapes", classes=11)
