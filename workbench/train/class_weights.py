"""Class weights for the cross-entropy loss, from the label frequencies of the training data.

Segmentation data are dominated by the background (86% of the pixels of ``shapes-seg``): unweighted,
a network first learns to predict background everywhere and leaves it slowly. ENet (Paszke et al. 2016,
section 5.1) weights class ``c`` by ``1 / ln(1.02 + p_c)``, ``p_c`` its share of the labels, which bounds
the weights between 1 and 50; ``"balanced"`` is scikit-learn's ``n / (k * count_c)``.
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.datasets.batches import Batches, data_attribute
from workbench.errors import ConfigError, DataError
from workbench.metrics.scores import IGNORE_INDEX

#: Weighting schemes :func:`class_weights` knows (``"none"``: no weights).
CLASS_WEIGHTINGS = ("none", "enet", "balanced")
#: The constant of ENet's weighting ``1 / ln(c + p)``.
ENET_C = 1.02


def class_counts(data: Any, num_classes: int | None = None) -> torch.Tensor:
    """How often each class occurs among the targets of ``data`` (pixels for segmentation; 255 ignored).

    ``num_classes`` defaults to the data set's ``num_classes`` attribute, else the largest label + 1.
    """
    counts = torch.zeros(0, dtype=torch.long)
    for _, targets in Batches(data, 1024, name="train_data"):
        if targets is None:
            raise DataError("class weights need labelled data: (input, target) items or an (inputs, targets) pair.")
        labels = torch.as_tensor(targets).reshape(-1).long()
        labels = labels[labels != IGNORE_INDEX]
        if labels.numel() and int(labels.min()) < 0:
            raise DataError(f"class weights need class indices >= 0, found {int(labels.min())}.")
        found = torch.bincount(labels, minlength=len(counts))  # never shorter than the counts so far
        counts = found + torch.nn.functional.pad(counts, (0, len(found) - len(counts)))
    num_classes = num_classes or data_attribute(data, "num_classes") or len(counts)
    if len(counts) > num_classes:
        raise DataError(f"targets hold label {len(counts) - 1}, but the data have {num_classes} classes.")
    return torch.nn.functional.pad(counts, (0, int(num_classes) - len(counts)))


def class_weights(data: Any, scheme: str, num_classes: int | None = None) -> torch.Tensor | None:
    """Per-class loss weights of ``scheme`` (:data:`CLASS_WEIGHTINGS`) from the labels of ``data``.

    Returns ``None`` for ``"none"``. A class absent from ``data`` gets the largest weight of the
    scheme (ENet: ``1 / ln 1.02``; balanced: that of a class seen once), so it is never divided by zero.

    Raises
    ------
    ConfigError
        An unknown scheme (the message lists the known ones).
    DataError
        Data without labels, or labels outside the classes.
    """
    if scheme not in CLASS_WEIGHTINGS:
        raise ConfigError(f"unknown class weighting {scheme!r}; use one of {', '.join(CLASS_WEIGHTINGS)}.")
    if scheme == "none":
        return None
    counts = class_counts(data, num_classes).double()
    total = counts.sum()
    if total == 0:
        raise DataError("class weights need labelled data; the training data hold no labels.")
    if scheme == "enet":
        weights = 1.0 / torch.log(ENET_C + counts / total)
    else:
        weights = total / (len(counts) * counts.clamp(min=1.0))
    return weights.float()
