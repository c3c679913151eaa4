"""workbench.metrics: parameter, multiply-add and byte counts against formulas, latency, profile, tables, scores."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from workbench.errors import ConfigError, DataError, ModelError
from workbench.metrics import (
    confusion_matrix,
    count_macs,
    count_params,
    dense_bytes,
    format_bytes,
    format_count,
    format_table,
    mean_iou,
    measure_latency,
    param_bytes,
    pixel_accuracy,
    profile,
)


def test_count_params_linear_conv_frozen_and_shared():
    assert count_params(nn.Linear(10, 5)) == 10 * 5 + 5
    assert count_params(nn.Conv2d(3, 8, 3)) == 8 * 3 * 9 + 8
    layer = nn.Linear(10, 5)
    layer.bias.requires_grad_(False)
    assert count_params(layer) == 55 and count_params(layer, trainable_only=True) == 50
    shared = nn.Linear(4, 4)
    assert count_params(nn.Sequential(shared, nn.ReLU(), shared)) == 20


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        (nn.Linear(10, 5), (4, 10), 4 * 10 * 5),
        (nn.Conv2d(3, 8, 3, padding=1), (1, 3, 16, 16), 8 * 3 * 9 * 256),
        (nn.Conv2d(3, 8, 3), (2, 3, 16, 16), 2 * 8 * 3 * 9 * 14 * 14),
        (nn.Conv2d(4, 8, 3, padding=1, groups=2), (1, 4, 8, 8), 8 * (4 // 2) * 9 * 64),
        (nn.Conv2d(8, 8, 3, padding=1, groups=8), (1, 8, 8, 8), 8 * 1 * 9 * 64),
        (nn.Conv1d(2, 6, 5), (1, 2, 20), 6 * 2 * 5 * 16),
    ],
)
def test_count_macs_matches_formulas(layer, shape, expected):
    assert count_macs(layer, torch.randn(*shape)) == expected


def test_count_macs_sums_layers_and_restores_modes():
    model = nn.Sequential(nn.Linear(6, 4), nn.Dropout(0.5), nn.BatchNorm1d(4), nn.Linear(4, 3))
    model.train()
    model[2].eval()
    before = model[2].running_mean.clone()
    assert count_macs(model, torch.randn(2, 6)) == 2 * (6 * 4 + 4 * 3)
    assert model.training and model[1].training and not model[2].training
    assert torch.equal(model[2].running_mean, before)  # eval mode: statistics untouched


def test_dense_bytes_fp32_fp16_and_buffers():
    layer = nn.Linear(10, 5)
    assert dense_bytes(layer) == param_bytes(layer) == 55 * 4
    assert dense_bytes(layer.half()) == 55 * 2
    norm = nn.BatchNorm1d(4)  # weight, bias (params) + running mean, var (fp32) + num_batches_tracked (int64)
    assert param_bytes(norm) == 8 * 4
    assert dense_bytes(norm) == 8 * 4 + 8 * 4 + 8


def fake_clock(monkeypatch, stamps: list[float]) -> None:
    """``time.perf_counter`` of the latency module reads ``stamps`` (seconds), then steps by 1 ms."""
    from workbench.metrics import latency

    ticks, last = iter(stamps), [0.0]

    def perf_counter() -> float:
        last[0] = next(ticks, last[0] + 1e-3)
        return last[0]

    monkeypatch.setattr(latency, "time", SimpleNamespace(perf_counter=perf_counter))


def test_measure_latency_positive_and_threads_restored(monkeypatch):
    threads = torch.get_num_threads()
    result = measure_latency(nn.Linear(32, 32), torch.randn(8, 32), warmup=1, repeats=5, threads=1)
    assert result["median_ms"] > 0 and result["min_ms"] <= result["median_ms"]
    assert result["repeats"] == 5 and result["threads"] == 1
    # known answer: an untimed warmup (one tick), then passes of 4, 1, 3, 5 and 2 ms
    fake_clock(monkeypatch, [0.0, 1.0, 1.004, 2.0, 2.001, 3.0, 3.003, 4.0, 4.005, 5.0, 5.002])
    timed = measure_latency(nn.Linear(32, 32), torch.randn(8, 32), warmup=1, repeats=5)
    assert timed["median_ms"] == pytest.approx(3.0) and timed["min_ms"] == pytest.approx(1.0)
    assert timed["iqr_ms"] == pytest.approx(4.0 - 2.0)
    assert torch.get_num_threads() == threads
    with pytest.raises(ConfigError, match="repeats"):
        measure_latency(nn.Linear(2, 2), torch.randn(1, 2), repeats=0)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (10,)
        self.fc = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_profile_fields_and_json(monkeypatch):
    fake_clock(monkeypatch, [0.0, 1.0, 1.004, 2.0, 2.001, 3.0, 3.002])  # warmup, then 4, 1 and 2 ms
    result = profile(_Net(), torch.randn(1, 10), warmup=1, repeats=3)
    assert (result.params, result.macs, result.dense_bytes) == (33, 30, 132)
    assert result.latency_ms == pytest.approx(2.0) and result.latency_iqr_ms == pytest.approx(3.0 - 1.5)
    assert result.latency_b64_ms == pytest.approx(1.0) and result.input_shape == (1, 10)  # then 1 ms ticks
    row = json.loads(json.dumps(result.as_dict()))
    assert row["input_shape"] == [1, 10] and row["macs"] == 30
    quick = profile(_Net(), torch.randn(1, 10), latency=False)
    assert quick.latency_ms is None and quick.latency_iqr_ms is None


def test_profile_wrong_shape_names_expected_and_given():
    with pytest.raises(ModelError) as info:
        profile(_Net(), torch.randn(1, 3, 8, 8))
    message = str(info.value)
    assert "(N, 10)" in message and "(1, 3, 8, 8)" in message
    with pytest.raises(ModelError, match="must be a tensor"):
        profile(_Net(), [1.0] * 10)


def test_human_numbers():
    assert format_count(4_230_000) == "4.23M"
    assert format_count(569_300_000) == "569.3M"
    assert format_count(812) == "812"
    assert format_count(1_500) == "1.50K"
    assert format_bytes(1_234_567) == "1.2 MB"
    assert format_bytes(512) == "512 B"


def test_format_table_aligns_and_formats():
    rows = [
        {"model": "lenet300", "params": 266_610, "dense_bytes": 1_066_440, "accuracy": 0.98123},
        {"model": "mobilenet_v1", "params": 4_230_000, "macs": 569_300_000, "accuracy": None},
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["model", "params", "dense_bytes", "accuracy", "macs"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["lenet300", "266.6K", "1.1", "MB", "0.9812", "-"]
    assert lines[3].split() == ["mobilenet_v1", "4.23M", "-", "-", "569.3M"]
    # numbers are right-aligned: the params column ends at the same position in every line
    end = lines[0].index("params") + len("params")
    assert lines[2][:end].endswith("266.6K") and lines[3][:end].endswith("4.23M")
    assert format_table(rows, columns=["accuracy"]).splitlines()[2].strip() == "0.9812"


def test_confusion_matrix_miou_with_absent_class_and_ignore():
    predictions = torch.tensor([0, 1, 1, 0, 0, 1, 0, 2])
    targets = torch.tensor([0, 1, 0, 0, 0, 1, 1, 255])  # the last position is ignored
    confusion = confusion_matrix(predictions, targets, num_classes=3)
    assert confusion.tolist() == [[3, 1, 0], [1, 2, 0], [0, 0, 0]]
    # class 0: 3 / (3 + 1 + 1); class 1: 2 / (2 + 1 + 1); class 2 is in neither and is left out
    assert mean_iou(confusion) == pytest.approx((3 / 5 + 2 / 4) / 2)
    assert pixel_accuracy(confusion) == pytest.approx(5 / 7)
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), num_classes=3)


def test_dense_bytes_count_what_a_parametrized_layer_computes_with():
    from workbench.quantize import share_weights
    from workbench.sparse import prune

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
    plain = dense_bytes(model)
    assert plain == 4 * (10 * 20 + 20 + 20 * 3 + 3)
    pruned = prune(model, rate=0.5)  # a boolean mask per weight: not part of the dense size
    assert dense_bytes(pruned) == plain
    shared = share_weights(pruned, bits=3)  # int64 indices and a codebook: the dense weights count
    assert dense_bytes(shared) == plain
