"""CIFAR-10 in its "python version" layout (``cifar-10-batches-py``), read from a folder the user gives.

The folder holds ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and (optionally) ``batches.meta``.
Each batch is a pickled dict with ``b"data"`` (N x 3072 unsigned bytes: the red, green and blue
32 x 32 planes of each image) and ``b"labels"`` (N ints). These files are unpickled, which runs
whatever code a crafted pickle holds: only point ``root`` at a copy of CIFAR-10 you trust.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.datasets.base import ArrayDataset, make_dataset
from workbench.datasets.catalog import register_dataset
from workbench.datasets.files import require_folder
from workbench.datasets.options import check_fraction
from workbench.datasets.splits import pick_split, stratified_split
from workbench.errors import DataError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
FOLDER = "cifar-10-batches-py"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
SPLIT_SEED = 0
_CONTENTS = f"the CIFAR-10 python batches ({FOLDER}: data_batch_1..5, test_batch), or its parent"


def _batch_folder(root: str | os.PathLike | None) -> Path:
    folder = require_folder(root, "cifar10", _CONTENTS)
    for candidate in (folder, folder / FOLDER):
        if any((candidate / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH)):
            return candidate
    raise DataError(
        f"{folder}: no CIFAR-10 batches found here or in {folder / FOLDER}; expected files "
        f"{', '.join(TRAIN_BATCHES)}, {TEST_BATCH}. Pass root=PATH to {_CONTENTS}."
    )


def _unpickle(path: Path) -> Any:
    if not path.is_file():
        raise DataError(
            f"{path.parent}: missing CIFAR-10 file {path.name}; expected {', '.join(TRAIN_BATCHES)}, "
            f"{TEST_BATCH} (and optionally {META})."
        )
    try:
        with path.open("rb") as handle:
            return pickle.load(handle, encoding="bytes")
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    except Exception as exc:  # a corrupt pickle can fail in many ways (UnpicklingError, EOFError, ValueError, ...)
        raise DataError(
            f"{path}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc}); download the batch again."
        ) from exc


def _field(batch: dict, key: str) -> Any:
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise KeyError(key)


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch: uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``, validated."""
    path = Path(path)
    batch = _unpickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: holds a {type(batch).__name__}, expected a dict with b'data' and b'labels'.")
    try:
        data, labels = _field(batch, "data"), _field(batch, "labels")
    except KeyError as exc:
        found = ", ".join(repr(k) for k in list(batch)[:10])
        raise DataError(f"{path}: no {exc.args[0]!r} entry; expected b'data' and b'labels', found {found}.") from None
    data = np.asarray(data)
    size = int(np.prod(IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size:
        raise DataError(f"{path}: b'data' is {data.dtype} of shape {data.shape}, expected uint8 of shape (N, {size}).")
    labels = np.asarray(labels)
    if labels.size and labels.dtype.kind not in "iu":
        raise DataError(f"{path}: b'labels' holds {labels.dtype} values, expected a list of integer class labels.")
    labels = labels.astype(np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but b'labels' has shape {labels.shape}; expected ({len(data)},).")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels range over {labels.min()}..{labels.max()}, expected 0..{NUM_CLASSES - 1}.")
    return data.reshape(len(data), *IMAGE_SHAPE), labels


def _read_batches(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: missing CIFAR-10 file(s) {', '.join(missing)}; expected {', '.join(names)}.")
    parts = [read_batch(folder / name) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _class_names(folder: Path) -> list[str]:
    path = folder / META
    if not path.is_file():
        return list(CLASS_NAMES)
    meta = _unpickle(path)
    try:
        names = _field(meta, "label_names") if isinstance(meta, dict) else None
    except KeyError:
        names = None
    if not isinstance(names, (list, tuple)) or len(names) != NUM_CLASSES:
        raise DataError(f"{path}: expected a dict whose b'label_names' lists {NUM_CLASSES} class names.")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


@register_dataset("cifar10", "CIFAR-10 python batches from a folder: 3x32x32 colour images, 10 classes; on disk")
def cifar10(
    root: str | os.PathLike | None, split: str, *, normalize: bool = False, val_fraction: float = 0.1
) -> ArrayDataset:
    """CIFAR-10 images scaled to [0, 1].

    ``root`` is the ``cifar-10-batches-py`` folder or its parent. ``"test"`` is ``test_batch``;
    ``"train"`` and ``"val"`` come from ``data_batch_1..5``: ``val`` is ``val_fraction`` of each
    class chosen with a fixed seed (5000 of 50000 by default), ``"trainval"`` all of them. ``indices``
    are positions in the batches read (the five training batches in order, or the test batch).

    Parameters
    ----------
    normalize
        Standardize each channel with the mean and standard deviation of all training batches
        (the same constants for every split).
    val_fraction
        Share of the training batches held out as ``val``.
    """
    folder = _batch_folder(root)
    val_fraction = check_fraction(val_fraction, "val_fraction")
    class_names = _class_names(folder)
    if split == "test":
        images, labels = _read_batches(folder, (TEST_BATCH,))
        rows = np.arange(len(labels))
    else:
        images, labels = _read_batches(folder, TRAIN_BATCHES)
        train, val = stratified_split(labels, (1.0 - val_fraction, val_fraction), SPLIT_SEED)
        rows = pick_split(split, {"train": train, "val": val})
    dataset = make_dataset(
        images,
        labels,
        rows,
        divide_by=255.0,
        name="cifar10",
        split=split,
        num_classes=NUM_CLASSES,
        task="classification",
        class_names=class_names,
    )
    if normalize:
        train_images = images if split != "test" else _read_batches(folder, TRAIN_BATCHES)[0]
        mean, std = _channel_stats(train_images)
        dataset.inputs.sub_(mean[:, None, None]).div_(std[:, None, None])
    return dataset


def _channel_stats(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (in [0, 1] units) of byte images ``(N, C, H, W)``."""
    counts = np.stack([np.bincount(images[:, c].ravel(), minlength=256) for c in range(images.shape[1])])
    values = np.arange(256) / 255.0
    total = counts.sum(axis=1)
    mean = counts @ values / total
    var = counts @ values**2 / total - mean**2
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(np.sqrt(np.maximum(var, 1e-12)), dtype=torch.float32)
