"""MobileNet v1 at widths 0.25-1.0 and resolutions 32 and 64 on shapes images made at that size."""

from __future__ import annotations

import pytest
import torch

from workbench.datasets import load_dataset
from workbench.metrics import count_macs
from workbench.zoo import create_model_for_data, example_input


@pytest.mark.parametrize("width", [0.25, 0.5, 0.75, 1.0])
def test_mobilenet_takes_shapes_at_32_and_64_pixels(width):
    macs = {}
    for size in (32, 64):
        data = load_dataset("shapes", split="val", num_samples=60, size=size, difficulty="medium")
        model = create_model_for_data("mobilenet_v1", data.input_shape, data.num_classes, width=width).eval()
        assert model.input_shape == (3, size, size)
        with torch.no_grad():
            assert model(data.inputs[:2]).shape == (2, 6)
        macs[size] = count_macs(model, example_input(model, 1))
    assert macs[64] / macs[32] == pytest.approx(4.0, rel=0.05)  # the resolution multiplier's cost
