"""Recovery without labels: train a rebuilt network to reproduce the original's outputs on inputs alone.

Global error reconstruction (Lin et al. 2016): after surgery, the smaller network (the student) is trained
so that its logits match the original network's (the teacher's) in mean squared error, optionally with the
outputs of intermediate layers as well (each student layer against the same layer of the teacher, on the
channels the student kept). Only the inputs of the data are read: the teacher's outputs are the targets,
so unlabelled data, or data whose labels are wrong, serve as well as labelled data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from workbench.datasets.batches import input_batches
from workbench.errors import ConfigError
from workbench.numeric import as_float
from workbench.train.history import History
from workbench.train.loop import RETRAIN_LR, fit
from workbench.train.optim import OPTIMIZERS, check_choice
from workbench.train.outputs import check_teacher_outputs, outputs_on

#: Layer name -> the teacher's output channels the student's layer of the same name keeps (None: all).
FeatureMap = Mapping[str, Sequence[int] | None]


class _Capture:
    """Forward hooks that keep the latest output of named layers."""

    def __init__(self, model: nn.Module, names: Sequence[str], role: str) -> None:
        modules = dict(model.named_modules())
        missing = [name for name in names if name not in modules]
        if missing:
            raise ConfigError(
                f"features names layer {missing[0]!r}, which the {role} does not have; name layers of both "
                f"networks (the {role} has {', '.join(n for n in list(modules)[1:8] if n)}, ...)."
            )
        self.outputs: dict[str, torch.Tensor] = {}
        self.handles = [modules[name].register_forward_hook(self._keeper(name)) for name in names]

    def _keeper(self, name: str):
        def keep(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            self.outputs[name] = output

        return keep

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _teacher_targets(
    teacher: nn.Module, student: nn.Module, data: Any, features: FeatureMap, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(inputs, teacher outputs, teacher features on the kept channels) over ``data``, teacher in eval mode (its
    modes are restored); the teacher's outputs on the first batch are checked to be of the student's shape."""
    capture = _Capture(teacher, list(features), "teacher")
    inputs, outputs, kept = [], [], {name: [] for name in features}
    try:
        for x in input_batches(data, batch_size=batch_size, name="the data for reconstruction"):
            outputs.append(outputs_on(teacher, x).cpu())
            inputs.append(x)
            for name, channels in features.items():
                found = capture.outputs[name]
                kept[name].append((found if channels is None else found[:, list(channels)]).cpu())
            if len(outputs) == 1:
                check_teacher_outputs(student, teacher, outputs_on(student, x[:2]), outputs[0])
    finally:
        capture.remove()
    return torch.cat(inputs), torch.cat(outputs), {name: torch.cat(parts) for name, parts in kept.items()}


class ReconstructionLoss:
    """Mean squared error to the teacher's outputs (and features) of the samples whose indices are the targets."""

    def __init__(
        self,
        outputs: torch.Tensor,
        features: dict[str, torch.Tensor],
        captured: _Capture,
        feature_weight: float,
    ) -> None:
        self.outputs, self.features, self.captured, self.feature_weight = outputs, features, captured, feature_weight

    def __call__(self, output: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        index = index.cpu()
        loss = F.mse_loss(output, self.outputs[index].to(output.device, output.dtype))
        for name, target in self.features.items():
            found = self.captured.outputs[name]
            if found.shape[1:] != target.shape[1:]:
                raise ConfigError(
                    f"the student's layer {name!r} outputs shape {tuple(found.shape[1:])}, but the teacher's kept "
                    f"channels give {tuple(target.shape[1:])}; give features the teacher channels the student kept."
                )
            loss = loss + self.feature_weight * F.mse_loss(found, target[index].to(found.device, found.dtype))
        return loss


def reconstruct(
    student: nn.Module,
    teacher: nn.Module,
    data: Any,
    *,
    epochs: int = 5,
    features: FeatureMap | None = None,
    feature_weight: float = 1.0,
    **fit_kwargs: Any,
) -> History:
    """Train ``student`` in place to reproduce ``teacher``'s outputs on the inputs of ``data``; labels are never read.

    Parameters
    ----------
    student, teacher
        The rebuilt network and the original one (not changed); their outputs have the same shape.
    data
        Inputs: a tensor, a Dataset or DataLoader (targets, if any, are ignored), or an ``(inputs, targets)`` pair.
    epochs
        Passes over the data.
    features
        Layer name -> the teacher's output channels that the student's layer of that name kept (None: all):
        those layers' outputs are matched too (the kept layers' outputs).
    feature_weight
        Weight of each layer's feature error against the output error.
    fit_kwargs
        Passed to :func:`workbench.train.fit` (``lr`` -- default :data:`~workbench.train.loop.RETRAIN_LR`,
        ``batch_size``, ``optimizer``, ``schedule``, ``max_batches``, ``random_state``, ``quiet``...).

    Returns
    -------
    History
        As :func:`~workbench.train.fit`'s; ``samples`` counts the inputs seen, the budget spent.
    """
    if "loss_fn" in fit_kwargs:
        raise ConfigError("reconstruct sets the loss itself (mean squared error to the teacher's outputs).")
    feature_weight = as_float(feature_weight, "feature_weight", low=0.0)
    check_choice("optimizer", fit_kwargs.get("optimizer", "adam"), OPTIMIZERS)  # before the teacher runs
    fit_kwargs.setdefault("lr", RETRAIN_LR)
    features = dict(features or {})
    inputs, outputs, targets = _teacher_targets(
        teacher, student, data, features, max(fit_kwargs.get("batch_size", 64), 256)
    )
    captured = _Capture(student, list(features), "student")
    try:
        return fit(
            student,
            TensorDataset(inputs, torch.arange(len(inputs))),
            epochs=epochs,
            loss_fn=ReconstructionLoss(outputs, targets, captured, float(feature_weight)),
            **fit_kwargs,
        )
    finally:
        captured.remove()
