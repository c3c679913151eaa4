"""Training and scoring: :func:`fit`, :func:`finetune`, :func:`evaluate`, :func:`predict` and checkpoints.

- :func:`fit` trains any module on a data set, DataLoader or ``(inputs, targets)`` pair (seeded, with
  optimizers and schedules by name, an optional penalty and :class:`TrainHook` objects) and returns a
  :class:`History`.
- :func:`distill` trains a student on one or several teachers (Hinton loss, logit regression, noisy teachers);
  :func:`retrain` is fit or distill, for the compression transforms that retrain.
- :func:`evaluate` gives accuracy (classification) or mIoU and pixel accuracy (segmentation).
- :func:`save_checkpoint` / :func:`load_checkpoint` store the architecture spec and the weights, read back
  with ``weights_only=True``; :func:`build_from_spec` rebuilds an architecture.
"""
from __future__ import annotations

from workbench.train.checkpoint import build_from_spec, load_checkpoint, save_checkpoint
from workbench.train.distill import distill, retrain
from workbench.train.evaluation import evaluate, predict
from workbench.train.history import History
from workbench.train.loop import TrainHook, finetune, fit
from workbench.train.optim import OPTIMIZERS, SCHEDULES

__all__ = [
    "fit", "finetune", "distill", "retrain", "evaluate", "predict", "History", "TrainHook",
    "save_checkpoint", "load_checkpoint", "build_from_spec", "OPTIMIZERS", "SCHEDULES",
]
