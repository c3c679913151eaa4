"""What kind of prediction a model makes, and the default loss for it."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from workbench.datasets.batches import data_attribute
from workbench.errors import ConfigError, DataError
from workbench.metrics.scores import IGNORE_INDEX

TASKS = ("classification", "segmentation")


def check_task(task: str | None) -> str | None:
    """``task`` if it is ``None`` or a known task; ConfigError otherwise."""
    if task is not None and task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    return task


def check_pairing(data: Any, model: torch.nn.Module) -> None:
    """DataError when ``data`` and ``model`` both declare a task and differ, or both declare an image shape
    (``input_shape``, channels x height x width) and differ: the message names both and the fix."""
    data_task, model_task = data_attribute(data, "task"), getattr(model, "task", None)
    what = f"data set {data_attribute(data, 'name')!r}" if data_attribute(data, "name") else "the data"
    model_name = type(model).__name__
    if data_task is not None and model_task is not None and data_task != model_task:
        raise DataError(
            f"{what} is for {data_task} but {model_name} is a {model_task} model; pair a segmentation model "
            "(e.g. enet) with segmentation data (e.g. shapes-seg), or a classifier with classification data."
        )
    data_shape, model_shape = data_attribute(data, "input_shape"), getattr(model, "input_shape", None)
    if data_shape is not None and model_shape is not None and len(data_shape) == len(model_shape) == 3:
        if tuple(data_shape) != tuple(model_shape):
            raise DataError(
                f"{what} has images of shape {tuple(data_shape)} but {model_name} was built for "
                f"{tuple(model_shape)}; build the model for the data (workbench.zoo.create_model_for_data, or "
                "its input_size / resolution argument) or load the data at the model's size (data option size)."
            )


def declared_task(data: Any, model: torch.nn.Module) -> str | None:
    """The task the data set (``.task``) or else the model (``.task``) declares, if any; a DataError when
    the two do not belong together (:func:`check_pairing`)."""
    check_pairing(data, model)
    for source in (data_attribute(data, "task"), getattr(model, "task", None)):
        if source is not None:
            return check_task(source)
    return None


def task_from_shapes(logits: torch.Tensor, targets: torch.Tensor) -> str:
    """``classification`` for ``(N, C)`` logits and ``(N,)`` targets, ``segmentation`` for ``(N, C, H, W)`` and ``(N, H, W)``."""
    if logits.dim() == 2 and targets.dim() == 1:
        return "classification"
    if logits.dim() == 4 and targets.dim() == 3:
        return "segmentation"
    raise DataError(
        f"cannot tell the task from logits of shape {tuple(logits.shape)} and targets of shape "
        f"{tuple(targets.shape)}: expected (N, C) with (N,) for classification or (N, C, H, W) with (N, H, W) "
        "for segmentation. Pass task=... or a loss_fn."
    )


def check_shapes(logits: torch.Tensor, targets: torch.Tensor, task: str) -> None:
    """DataError when ``logits`` and ``targets`` do not have the layout ``task`` needs."""
    ok = (task == "classification" and logits.dim() == 2 and targets.dim() == 1 and len(logits) == len(targets)) or (
        task == "segmentation"
        and logits.dim() == 4
        and targets.dim() == 3
        and logits.shape[:1] + logits.shape[2:] == targets.shape
    )
    if not ok:
        want = (
            "(N, C) logits with (N,) targets"
            if task == "classification"
            else "(N, C, H, W) logits with (N, H, W) targets"
        )
        raise DataError(
            f"{task} needs {want}; got logits {tuple(logits.shape)} and targets {tuple(targets.shape)}. "
            "Check that the model and the data set belong together."
        )


def ignore_index(task: str) -> int:
    """The label the loss of ``task`` ignores: 255 for segmentation, -100 (cross-entropy's default) otherwise."""
    return IGNORE_INDEX if task == "segmentation" else -100


def label_range(targets: torch.Tensor, task: str) -> tuple[int, int] | None:
    """The smallest and largest class label among ``targets``, leaving out the ignored ones (:func:`ignore_index`);
    None when every target is ignored."""
    valid = targets[targets != ignore_index(task)]
    return (int(valid.min()), int(valid.max())) if valid.numel() else None


def check_labels(targets: torch.Tensor, num_classes: int, task: str, source: str, fix: str) -> None:
    """DataError unless ``targets`` are integer class indices in ``[0, num_classes)`` (ignored labels aside).

    ``source`` says where ``num_classes`` comes from (``"a model with 10 outputs"``), ``fix`` what to do.
    """
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise DataError(
            f"{task} needs integer class labels as targets, got {str(targets.dtype).removeprefix('torch.')} "
            "targets. Convert class indices with targets.long(); for targets that are values (regression, soft "
            "labels) give fit a loss_fn that takes them (e.g. loss_fn=torch.nn.functional.mse_loss)."
        )
    found = label_range(targets, task)
    if found is not None and (found[0] < 0 or found[1] >= num_classes):
        raise DataError(
            f"targets must be class indices in [0, {num_classes}) for {source}"
            f"{' (or 255, ignored)' if task == 'segmentation' else ''}; found values in [{found[0]}, {found[1]}]. "
            f"{fix}"
        )


def default_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    task: str,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy (``weight``: one per class); per pixel for segmentation, where targets equal to 255 are ignored."""
    check_shapes(logits, targets, task)
    num_classes = logits.shape[1]
    check_labels(
        targets,
        num_classes,
        task,
        f"a model with {num_classes} outputs",
        "Build the model for the data set's number of classes.",
    )
    if weight is not None and len(weight) != num_classes:
        raise DataError(f"{len(weight)} class weights for a model with {num_classes} outputs; weigh every class once.")
    return F.cross_entropy(logits, targets, weight=weight, ignore_index=ignore_index(task), reduction=reduction)
