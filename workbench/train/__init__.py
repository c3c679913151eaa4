"""Training and scoring: :func:`fit`, :func:`finetune`, :func:`distill`, :func:`evaluate`, :func:`predict`.

- :func:`fit` trains any module on a data set, DataLoader or ``(inputs, targets)`` pair (seeded, with
  optimizers and schedules by name, an optional penalty and :class:`TrainHook` objects) and returns a
  :class:`History`.
- :func:`distill` trains a student on one or several teachers (Hinton loss, logit regression, noisy teachers);
  :func:`retrain` is fit or distill, for the compression transforms that retrain.
- :func:`reconstruct` trains a rebuilt network to reproduce the original's outputs on inputs alone (no labels).
- :func:`evaluate` gives accuracy (classification) or mIoU and pixel accuracy (segmentation).

Checkpoints (which restore edited architectures, not training) are :mod:`workbench.checkpoints`.
"""

from __future__ import annotations

from workbench.train.distill import distill, retrain
from workbench.train.evaluation import evaluate, predict
from workbench.train.history import History, SampleCount, counting_samples
from workbench.train.loop import RETRAIN_LR, TrainHook, finetune, fit
from workbench.train.optim import OPTIMIZERS, SCHEDULES
from workbench.train.reconstruct import reconstruct

__all__ = [
    "fit",
    "finetune",
    "RETRAIN_LR",
    "distill",
    "retrain",
    "reconstruct",
    "evaluate",
    "predict",
    "History",
    "SampleCount",
    "counting_samples",
    "TrainHook",
    "OPTIMIZERS",
    "SCHEDULES",
]
