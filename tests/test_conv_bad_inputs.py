"""Bad input around convolutional studies gets a WorkbenchError naming the layer or setting."""

from __future__ import annotations

import pytest
import torch

from workbench.compression import compress
from workbench.datasets import load_dataset
from workbench.errors import ConfigError, DataError, SurgeryError
from workbench.graph import from_model
from workbench.select import get_selector
from workbench.surgery import plan_from
from workbench.train import evaluate, fit
from workbench.zoo import create_model, create_model_for_data


def test_segmentation_data_given_to_a_classifier():
    seg = load_dataset("shapes-seg", split="val", num_samples=40, size=32)
    classifier = create_model("resnet", depth=8, classes=7, input_size=32)
    with pytest.raises(DataError, match="'shapes-seg' is for segmentation but CifarResNet is a classification"):
        evaluate(classifier, seg)
    with pytest.raises(DataError, match="pair a segmentation model"):
        fit(classifier, seg, epochs=1, quiet=True)


def test_an_image_size_the_model_was_not_built_for():
    data = load_dataset("shapes", split="val", num_samples=60, size=64)
    model = create_model("mobilenet_v1", width=0.25, resolution=32, classes=6)
    with pytest.raises(DataError, match=r"shape \(3, 64, 64\) but MobileNetV1 was built for \(3, 32, 32\)"):
        evaluate(model, data)
    assert evaluate(create_model_for_data("mobilenet_v1", data.input_shape, 6, width=0.25), data)["n"] == 12
    with pytest.raises(ConfigError, match="enet: input_size .* must be divisible by 8"):
        create_model_for_data("enet", (3, 60, 60), 7)
    with pytest.raises(ConfigError, match="vgg_small: input_size=4 is smaller than the 8x downsampling"):
        create_model_for_data("vgg_small", (3, 4, 4), 6)


def test_a_budget_that_would_remove_every_filter_of_a_group():
    model = create_model("vgg_small", cfg=[4, "M", 8], input_size=8, classes=3)
    graph = from_model(model, torch.randn(2, 3, 8, 8))
    with pytest.raises(ConfigError, match="'features.0'.*would remove every filter"):
        plan_from(graph, get_selector("magnitude", budget=0.5), keep=0.5, per_layer={"features.0": 0.0})


def test_a_group_that_cannot_be_rebuilt_is_named():
    model = create_model("vgg_small", cfg=[4, "M", 8], input_size=8, classes=3)
    graph = from_model(model, torch.randn(2, 3, 8, 8))
    with pytest.raises(SurgeryError, match="'classifier.2' is not a prunable group.*Prunable groups: features.0"):
        plan_from(graph, get_selector("magnitude", budget=0.5), groups=["classifier.2"])
    with pytest.raises(SurgeryError, match="features.0"):
        compress(model, keep=0.5, per_layer={"features.9": 0.5}, latency=False)
