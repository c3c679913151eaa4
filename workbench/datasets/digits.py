"""scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), shipped with scikit-learn."""

from __future__ import annotations

import functools
import os

import numpy as np

from workbench.datasets.base import ArrayDataset, make_dataset
from workbench.datasets.catalog import register_dataset
from workbench.datasets.splits import pick_split, stratified_split

#: train / val / test fractions, cut per class with :data:`SPLIT_SEED`.
FRACTIONS = (0.6, 0.2, 0.2)
SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # scikit-learn is slow to import; only load it when asked

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    images.setflags(write=False)
    labels = bunch.target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


@register_dataset("digits", "scikit-learn 8x8 digits: 1797 grey images (1x8x8, values in [0,1]), 10 classes; embedded")
def digits(root: str | os.PathLike | None, split: str) -> ArrayDataset:
    """scikit-learn's handwritten digits.

    Inputs ``(1, 8, 8)`` scaled to [0, 1] (the raw values 0..16 divided by 16). The 1797 images are
    cut per class into 60% train, 20% val and 20% test with a fixed seed (1078 / 360 / 359 images);
    ``indices`` are positions in ``sklearn.datasets.load_digits()``.
    """
    images, labels = _digits_arrays()
    train, val, test = stratified_split(labels, FRACTIONS, SPLIT_SEED)
    rows = pick_split(split, {"train": train, "val": val, "test": test})
    return make_dataset(
        images,
        labels,
        rows,
        name="digits",
        split=split,
        num_classes=10,
        task="classification",
        class_names=[str(d) for d in range(10)],
    )
