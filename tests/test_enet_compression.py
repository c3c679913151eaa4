"""ENet on shapes-seg: encoder and decoder filters selected and rebuilt through compress, scored by mIoU."""

from __future__ import annotations

import pytest
import torch

from workbench.compression import Retraining, compress
from workbench.datasets import load_dataset
from workbench.train import evaluate
from workbench.zoo import create_model_for_data


def test_enet_compressed_with_lsq_on_segmentation_data():
    train = load_dataset("shapes-seg", split="train", num_samples=20, size=16)
    test = load_dataset("shapes-seg", split="test", num_samples=20, size=16)
    torch.manual_seed(0)
    model = create_model_for_data("enet", train.input_shape, train.num_classes).eval()
    found = evaluate(model, test)
    with torch.no_grad():  # the known answer: per-class IoU of the predicted pixels, counted here
        predicted = model(test.inputs).argmax(1)
    iou = []
    for c in range(train.num_classes):
        union = int(((predicted == c) | (test.targets == c)).sum())
        iou.append(int(((predicted == c) & (test.targets == c)).sum()) / union if union else float("nan"))
    assert torch.allclose(torch.tensor(found["iou"]), torch.tensor(iou), equal_nan=True)
    assert found["miou"] == pytest.approx(float(torch.tensor(iou).nanmean()))
    result = compress(
        model,
        method="magnitude",
        keep=0.5,
        fuse="lsq",
        train=train,
        test=test,
        retrain=Retraining(method="finetune", epochs=1, max_batches=1),
        latency=False,
    )
    names = {name for name in result.plan.selections}
    assert any(n.startswith(("stage1", "stage2", "down")) for n in names)  # encoder
    assert any(n.startswith(("up4", "stage4", "up5", "stage5")) for n in names)  # decoder
    assert result.after["params"] < 0.6 * result.before["params"]
    assert result.model.fullconv.in_channels < model.fullconv.in_channels or "up5.project" in names
    assert {"miou", "n"} <= set(result.after) and {"miou", "n"} <= set(result.rebuilt)
    with torch.no_grad():
        assert result.model(test.inputs[:2]).shape == (2, train.num_classes, 16, 16)
