"""workbench.datasets.batches: one adapter from tensors, pairs, data sets and loaders to batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from workbench.datasets import ArrayDataset
from workbench.datasets.batches import Batches, input_batches, sample_count
from workbench.errors import ConfigError, DataError


def _data(n: int = 70) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, generator=g), torch.arange(n) % 4


def _forms(x: torch.Tensor, y: torch.Tensor) -> dict[str, object]:
    dataset = ArrayDataset(x, y, name="toy", split="train", num_classes=4)
    return {
        "tensor": x,
        "array": x.numpy(),
        "pair": (x, y),
        "ArrayDataset": dataset,
        "TensorDataset": TensorDataset(x, y),
        "DataLoader": DataLoader(dataset, batch_size=16, shuffle=False),
    }


def test_every_form_gives_the_same_input_batches_up_to_max_samples():
    x, y = _data()
    for name, data in _forms(x, y).items():
        batches = list(input_batches(data, max_samples=50, batch_size=16))
        assert [len(b) for b in batches] == [16, 16, 16, 2], name
        assert torch.equal(torch.cat(batches), x[:50]), name
    assert torch.equal(torch.cat(list(input_batches(x, batch_size=16))), x)  # no cap: every sample


def test_labelled_batches_agree_across_forms_for_the_same_seed():
    x, y = _data()
    runs = {}
    for name, data in _forms(x, y).items():
        if name in ("tensor", "array", "DataLoader"):
            continue  # unlabelled, or batched by the loader itself
        generator = torch.Generator().manual_seed(3)
        runs[name] = list(Batches(data, 16, shuffle=True, generator=generator))
    reference = runs.pop("pair")
    assert len(reference) == 5
    for name, batches in runs.items():
        for (xa, ya), (xb, yb) in zip(reference, batches):
            assert torch.equal(xa, xb) and torch.equal(ya, yb), name
    assert sorted(torch.cat([b[1] for b in reference]).tolist()) == sorted(y.tolist())  # a permutation
    assert sample_count((x, y)) == 70 and sample_count(DataLoader(TensorDataset(x), batch_size=8)) == 70


def test_bad_data_is_named_with_the_accepted_types():
    with pytest.raises(DataError, match=r"data must be a tensor or array of inputs.*DataLoader, got str"):
        input_batches("images/")
    with pytest.raises(DataError, match=r"train_data must be a map-style torch Dataset.*got dict"):
        Batches({"inputs": torch.zeros(2, 3)}, 4, name="train_data")
    empty = DataLoader(TensorDataset(torch.zeros(0, 3)), batch_size=4)
    for data in (torch.zeros(0, 3), empty, (np.zeros((0, 3)), np.zeros(0))):
        with pytest.raises(DataError, match="data is empty"):
            input_batches(data)
    with pytest.raises(DataError, match="3 inputs but 2 targets"):
        Batches((torch.zeros(3, 2), torch.zeros(2)), 4)
    with pytest.raises(ConfigError, match="max_samples must be an integer >= 1"):
        input_batches(torch.zeros(4, 3), max_samples=0)
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        input_batches(torch.zeros(4, 3), batch_size=0)
