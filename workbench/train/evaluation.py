"""Scoring a model on a data set: :func:`evaluate` (accuracy or mIoU) and :func:`predict` (logits)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from workbench.datasets.batches import Batches, Data, check_positive_int, data_attribute
from workbench.errors import DataError, NumericsWarning
from workbench.metrics.forward import evaluation_mode, model_dtype
from workbench.metrics.scores import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy
from workbench.train.devices import resolve_device, to_device
from workbench.train.outputs import forward_logits
from workbench.train.tasks import check_labels, check_task, declared_task, default_loss, task_from_shapes


def predict(
    model: nn.Module, data: Data | torch.Tensor, batch_size: int = 256, device: str | torch.device | None = None
) -> torch.Tensor:
    """Logits of ``model`` for every sample of ``data`` in order, concatenated on the CPU.

    ``data`` is a data set, a DataLoader, an ``(inputs, targets)`` pair or a tensor of inputs. The model
    runs in eval mode under ``torch.no_grad`` (its mode is restored) on ``device`` (default: where it is).
    """
    if isinstance(data, torch.Tensor):
        data = TensorDataset(data)
    device = resolve_device(model, device)
    model.to(device)
    dtype = model_dtype(model)
    outputs = []
    with evaluation_mode(model), torch.no_grad():
        for inputs, _ in Batches(data, batch_size, name="data"):
            inputs, _ = to_device(inputs, None, device, dtype)
            outputs.append(forward_logits(model, inputs).cpu())
    return torch.cat(outputs)


def evaluate(
    model: nn.Module,
    data: Data,
    *,
    batch_size: int = 256,
    task: str | None = None,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Quality of ``model`` on the labelled ``data``.

    Parameters
    ----------
    task
        ``"classification"`` or ``"segmentation"``; by default the data set's (or the model's) ``task``
        attribute, else read from the shapes of outputs and targets.
    num_classes
        Number of classes for the confusion matrix (segmentation); by default the data set's
        ``num_classes``, else the number of output channels. Targets outside ``[0, num_classes)`` are refused.
    device
        Where to run (default: where the model is). The model runs in eval mode; its mode is restored.

    Returns
    -------
    dict
        Classification: ``accuracy``, ``loss`` (mean cross-entropy) and ``n`` (samples).
        Segmentation: ``miou`` (mean intersection over union over the classes present in the targets or
        the predictions, from the confusion matrix accumulated over all pixels), ``iou`` (the list of
        per-class IoUs, NaN for a class absent from both), ``pixel_accuracy``, ``loss`` (mean per-pixel
        cross-entropy) and ``n`` (images); pixels labelled 255 are ignored.
        When any output is NaN or infinite every metric but ``n`` is NaN, with a
        :class:`~workbench.errors.NumericsWarning`.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    task = check_task(task) or declared_task(data, model)
    source = f"num_classes={num_classes}"
    if num_classes is None:
        num_classes = data_attribute(data, "num_classes")
        source = f"the data's {num_classes} classes (its num_classes)"
    if num_classes is not None:
        num_classes = check_positive_int("num_classes", num_classes)
    device = resolve_device(model, device)
    model.to(device)
    dtype = model_dtype(model)
    n = 0
    correct = 0
    loss_sum = 0.0
    counted = 0  # samples (classification) or labelled pixels (segmentation) in the loss
    non_finite = 0  # samples with a NaN or infinite output
    confusion: torch.Tensor | None = None
    with evaluation_mode(model), torch.no_grad():
        for inputs, targets in Batches(data, batch_size, name="data"):
            if targets is None:
                raise DataError("evaluate needs labelled data: (input, target) items; use predict for inputs only.")
            inputs, targets = to_device(inputs, targets, device, dtype)
            logits = forward_logits(model, inputs)
            non_finite += int((~torch.isfinite(logits)).flatten(1).any(dim=1).sum())
            task = task or task_from_shapes(logits, targets)
            if num_classes is not None:
                check_labels(targets, num_classes, task, source, "Give num_classes the number of classes of the data.")
            loss_sum += float(default_loss(logits, targets, task, reduction="sum"))
            n += len(targets)
            predictions = logits.argmax(dim=1)
            if task == "classification":
                correct += int((predictions == targets).sum())
                counted += len(targets)
            else:
                classes = num_classes or logits.shape[1]
                batch_confusion = confusion_matrix(predictions, targets, classes)
                confusion = batch_confusion if confusion is None else confusion + batch_confusion
                counted += int(batch_confusion.sum())
    if n == 0:
        raise DataError("data yielded no batches; give at least one labelled sample.")
    loss = loss_sum / counted if counted else float("nan")
    if non_finite:
        nan = float("nan")
        warnings.warn(
            f"the model's outputs are NaN or infinite for {non_finite} of {n} samples (a diverged training run, or "
            "inputs far outside the training range?); every metric is reported as NaN.",
            NumericsWarning,
            stacklevel=2,
        )
        if task == "classification":
            return {"accuracy": nan, "loss": nan, "n": n}
        classes = num_classes or (0 if confusion is None else len(confusion))
        return {"miou": nan, "iou": [nan] * classes, "pixel_accuracy": nan, "loss": nan, "n": n}
    if task == "classification":
        return {"accuracy": correct / n, "loss": loss, "n": n}
    assert confusion is not None
    return {
        "miou": mean_iou(confusion),
        "iou": [float(v) for v in iou_per_class(confusion)],
        "pixel_accuracy": pixel_accuracy(confusion),
        "loss": loss,
        "n": n,
    }
