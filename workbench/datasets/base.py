"""The in-memory data set every loader returns: :class:`ArrayDataset`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from workbench.errors import ConfigError

TASKS = ("classification", "segmentation")


class ArrayDataset(Dataset):
    """A labelled data set held in two tensors.

    Parameters
    ----------
    inputs
        float32 tensor ``(N, *input_shape)``.
    targets
        int64 tensor: ``(N,)`` class labels for classification, ``(N, H, W)`` per-pixel labels for
        segmentation (``H, W`` equal to the last two input dimensions).
    name, split
        The registry name and the split (``"train"``, ``"val"``, ``"test"``, ``"trainval"``).
    num_classes
        Number of classes (for segmentation it counts the background class 0).
    task
        ``"classification"`` or ``"segmentation"``.
    class_names
        One name per class; ``"0", "1", ...`` when omitted.
    indices
        Positions of the samples in the source they were drawn from (see each data set's
        documentation); used to check that splits are disjoint.

    Attributes
    ----------
    input_shape : tuple of int
        Shape of one input, without the batch dimension.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        name: str,
        split: str,
        num_classes: int,
        task: str = "classification",
        class_names: Sequence[str] | None = None,
        indices: np.ndarray | None = None,
    ) -> None:
        if not isinstance(inputs, torch.Tensor) or inputs.dtype != torch.float32 or inputs.dim() < 2:
            raise ConfigError("inputs must be a float32 tensor of shape (N, *input_shape).")
        if not isinstance(targets, torch.Tensor) or targets.dtype != torch.int64:
            raise ConfigError("targets must be an int64 tensor.")
        if len(inputs) != len(targets):
            raise ConfigError(f"{len(inputs)} inputs but {len(targets)} targets; they must match one to one.")
        if task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {task!r}.")
        if task == "classification" and targets.dim() != 1:
            raise ConfigError(f"classification targets must have shape (N,), got {tuple(targets.shape)}.")
        if task == "segmentation" and (targets.dim() != 3 or tuple(targets.shape[1:]) != tuple(inputs.shape[-2:])):
            raise ConfigError(
                f"segmentation targets must have shape (N, H, W) matching inputs {tuple(inputs.shape)}, "
                f"got {tuple(targets.shape)}."
            )
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}.")
        names = [str(i) for i in range(int(num_classes))] if class_names is None else [str(c) for c in class_names]
        if len(names) != int(num_classes):
            raise ConfigError(f"{len(names)} class names given for {num_classes} classes.")
        if indices is not None and len(indices) != len(inputs):
            raise ConfigError(f"{len(indices)} indices given for {len(inputs)} samples.")
        self.inputs = inputs
        self.targets = targets
        self.name = name
        self.split = split
        self.num_classes = int(num_classes)
        self.task = task
        self.class_names = names
        self.input_shape = tuple(int(d) for d in inputs.shape[1:])
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: int | slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]

    def __repr__(self) -> str:
        return (
            f"ArrayDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, task={self.task!r})"
        )


def make_dataset(
    inputs: np.ndarray,
    targets: np.ndarray,
    indices: np.ndarray,
    *,
    divide_by: float | None = None,
    **attributes: object,
) -> ArrayDataset:
    """Build an :class:`ArrayDataset` from the rows ``indices`` of numpy ``inputs`` and ``targets``.

    The selected inputs are converted to float32 and, if ``divide_by`` is given, divided by it
    (e.g. 255 for byte images), so only the rows kept are ever converted.
    """
    rows = np.ascontiguousarray(inputs[indices], dtype=np.float32)
    if divide_by is not None:
        rows /= np.float32(divide_by)
    x = torch.from_numpy(rows)
    y = torch.from_numpy(np.ascontiguousarray(targets[indices], dtype=np.int64))
    return ArrayDataset(x, y, indices=indices, **attributes)  # type: ignore[arg-type]
