"""Quality scores: accuracy, and confusion-matrix based mIoU and pixel accuracy for segmentation."""

from __future__ import annotations

import torch

from workbench.errors import DataError

IGNORE_INDEX = 255


def confusion_matrix(
    predictions: torch.Tensor, targets: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """``(num_classes, num_classes)`` int64 counts: row = true class, column = predicted class.

    Positions whose target is ``ignore_index`` are left out; a target outside ``[0, num_classes)`` is a
    :class:`~workbench.errors.DataError`.
    """
    predictions = predictions.reshape(-1).long()
    targets = targets.reshape(-1).long()
    if predictions.shape != targets.shape:
        raise DataError(f"{predictions.numel()} predictions but {targets.numel()} targets; they must match.")
    keep = targets != ignore_index
    predictions, targets = predictions[keep], targets[keep]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise DataError(
            f"targets must be class indices in [0, {num_classes}) or {ignore_index} (ignored); "
            f"found values in [{int(targets.min())}, {int(targets.max())}]. Check num_classes and the labels."
        )
    if predictions.numel() and (int(predictions.min()) < 0 or int(predictions.max()) >= num_classes):
        raise DataError(
            f"predicted classes must lie in [0, {num_classes}), found {int(predictions.max())}; "
            "the model has more outputs than num_classes. Give the right num_classes."
        )
    flat = targets * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes).cpu()


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """Intersection over union of each class (NaN for a class absent from both predictions and targets)."""
    confusion = confusion.double()
    true_positive = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    return torch.where(union > 0, true_positive / union.clamp(min=1), torch.full_like(union, float("nan")))


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean IoU over the classes present in the targets or the predictions (NaN when there are none)."""
    iou = iou_per_class(confusion)
    present = ~torch.isnan(iou)
    return float(iou[present].mean()) if bool(present.any()) else float("nan")


def pixel_accuracy(confusion: torch.Tensor) -> float:
    """Share of counted positions predicted right (NaN when nothing was counted)."""
    total = int(confusion.sum())
    return float(confusion.diagonal().sum()) / total if total else float("nan")


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of rows of ``logits`` whose arg-max is the target class."""
    if len(targets) == 0:
        raise DataError("accuracy of an empty batch is undefined; give at least one sample.")
    return float((logits.argmax(dim=1) == targets).double().mean())
