"""Latency at batch 1 and at batch 64 with the CPU threads fixed (profiles of conv nets show both)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from workbench.errors import ConfigError
from workbench.metrics import profile
from workbench.metrics.latency import LATENCY_THREADS, batch_latency


def _conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))


def test_batch_latency_times_a_large_batch_and_restores_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = batch_latency(_conv_net(), torch.randn(1, 3, 32, 32), 1, repeats=3)
        many = batch_latency(_conv_net(), torch.randn(1, 3, 32, 32), 64, repeats=3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert one["threads"] == many["threads"] == LATENCY_THREADS
    assert many["median_ms"] > 4 * one["median_ms"]  # 64x the work


def test_profile_stores_batch_1_and_batch_64_latency():
    result = profile(_conv_net(), torch.randn(1, 3, 16, 16), warmup=1, repeats=3)
    row = json.loads(json.dumps(result.as_dict()))
    assert row["input_shape"] == [1, 3, 16, 16]
    assert row["latency_b64_ms"] > row["latency_ms"] > 0
    quick = profile(_conv_net(), torch.randn(1, 3, 16, 16), latency=False)
    assert quick.latency_ms is None and quick.latency_b64_ms is None


def test_batch_latency_bad_input():
    with pytest.raises(ConfigError, match="batch_size"):
        batch_latency(_conv_net(), torch.randn(1, 3, 8, 8), 0)
    with pytest.raises(ConfigError, match="example_input"):
        batch_latency(_conv_net(), torch.randn(0, 3, 8, 8))
