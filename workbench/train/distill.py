"""Knowledge distillation: train a (smaller, pruned) student to mimic one or several teachers.

Losses:

- ``"hinton"`` (Hinton, Vinyals & Dean 2015): ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T))
  + (1 - alpha) * CE(s, y)``.
- ``"logits"`` (Ba & Caruana 2014, "Do deep nets really need to be deep?"): L2 regression of the student's
  logits on the teacher's, ``alpha * mean((s - t)^2) + (1 - alpha) * CE(s, y)``.

Teachers' logits are computed once on the training inputs (teachers are fixed). With several teachers
the target is their mean (``teachers="mean"``) or, per sample and step, one teacher drawn at random
(``teachers="random"``). The noisy-teacher mode (Sau & Balasubramanian 2016) perturbs the teacher logits
with multiplicative Gaussian noise ``t * (1 + noise * xi)``, ``xi ~ N(0, 1)``, on a fraction
``noise_prob`` of the samples of each batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from workbench.datasets.batches import Batches
from workbench.errors import ConfigError, DataError
from workbench.numeric import as_float
from workbench.train.history import History
from workbench.train.loop import RETRAIN_LR, fit
from workbench.train.outputs import check_teacher_outputs, outputs_on
from workbench.utils import seed_from

LOSSES = ("hinton", "logits")
TEACHER_MODES = ("mean", "random")


def _check_range(name: str, value: float, low: float, high: float | None) -> float:
    return as_float(value, name, low=low, high=high)


def teacher_logits(
    teachers: Sequence[nn.Module], data: Any, batch_size: int = 256, *, student: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs, labels, logits of shape (teachers, N, classes)) over ``data``, teachers in eval mode (their modes
    are restored). With ``student``, each teacher's outputs on the first batch are checked to be of its shape."""
    inputs, labels, outputs = [], [], []
    for x, y in Batches(data, batch_size, name="data"):
        if y is None:
            raise DataError("distill needs labelled data: (input, target) items.")
        logits = [outputs_on(teacher, x).cpu() for teacher in teachers]
        if student is not None and not outputs:
            mine = outputs_on(student, x[:2])
            for teacher, theirs in zip(teachers, logits):
                check_teacher_outputs(student, teacher, mine, theirs)
        if logits[0].dim() != 2:
            raise ConfigError(
                "distill supports classification (logits of shape (N, classes)); "
                f"the teacher returned shape {tuple(logits[0].shape)}."
            )
        inputs.append(x)
        labels.append(y)
        outputs.append(torch.stack(logits))
    return torch.cat(inputs), torch.cat(labels), torch.cat(outputs, dim=1)


class DistillationLoss:
    """The distillation loss on packed targets ``[label, teacher_1 logits, ..., teacher_T logits]``.

    Parameters are those of :func:`distill`; ``generator`` drives the teacher choice and the noise.
    """

    def __init__(
        self,
        loss: str,
        temperature: float,
        alpha: float,
        n_teachers: int,
        teachers: str,
        noise: float,
        noise_prob: float,
        generator: torch.Generator,
    ) -> None:
        self.loss, self.temperature, self.alpha = loss, temperature, alpha
        self.n_teachers, self.teachers = n_teachers, teachers
        self.noise, self.noise_prob, self.generator = noise, noise_prob, generator

    def targets(self, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels, teacher logits after teacher choice and noise) from packed targets."""
        labels = packed[:, 0].long()
        logits = packed[:, 1:].reshape(len(packed), self.n_teachers, -1)
        if self.teachers == "random" and self.n_teachers > 1:
            pick = torch.randint(self.n_teachers, (len(packed),), generator=self.generator)
            teacher = logits[torch.arange(len(packed)), pick]
        else:
            teacher = logits.mean(dim=1)
        if self.noise > 0:
            xi = torch.randn(teacher.shape, generator=self.generator)
            chosen = (torch.rand(len(packed), 1, generator=self.generator) < self.noise_prob).to(teacher.dtype)
            teacher = teacher * (1 + self.noise * xi * chosen)
        return labels, teacher

    def __call__(self, student: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        labels, teacher = self.targets(packed)
        if self.loss == "hinton":
            t = self.temperature
            soft = F.kl_div(F.log_softmax(student / t, dim=1), F.softmax(teacher / t, dim=1), reduction="batchmean")
            mimic = soft * t * t
        else:
            mimic = F.mse_loss(student, teacher)
        if self.alpha >= 1.0:
            return mimic
        return self.alpha * mimic + (1 - self.alpha) * F.cross_entropy(student, labels)


def distill(
    student: nn.Module,
    teacher: nn.Module | Sequence[nn.Module],
    data: Any,
    *,
    epochs: int = 10,
    loss: str = "hinton",
    temperature: float = 4.0,
    alpha: float | None = None,
    teachers: str = "mean",
    noise: float = 0.0,
    noise_prob: float = 0.5,
    random_state: int = 0,
    **fit_kwargs: Any,
) -> History:
    """Train ``student`` in place to mimic ``teacher`` (one module or a list) on ``data``.

    Parameters
    ----------
    student, teacher
        Classification networks with the same number of outputs; teachers are not changed.
    data
        Labelled training data (Dataset, DataLoader or an ``(inputs, targets)`` pair).
    loss
        ``"hinton"`` or ``"logits"`` (see the module docstring).
    temperature
        Softmax temperature of the Hinton loss.
    alpha
        Weight of the mimic term against the hard-label cross-entropy; default 0.9 for ``"hinton"`` and
        1.0 (pure logit regression, as Ba & Caruana) for ``"logits"``.
    teachers
        With several teachers: ``"mean"`` of their logits or a ``"random"`` one per sample and step.
    noise, noise_prob
        Noisy teacher: multiplicative Gaussian noise of this standard deviation on this share of samples.
    random_state
        Seed of the data order, the teacher choice and the noise.
    fit_kwargs
        Passed to :func:`workbench.train.fit` (``val_data``, ``lr`` -- default
        :data:`~workbench.train.loop.RETRAIN_LR`, as every retraining method's --, ``batch_size``, ``quiet``, hooks...).
    """
    if loss not in LOSSES:
        raise ConfigError(f"unknown distillation loss {loss!r}; use one of {', '.join(LOSSES)}.")
    if teachers not in TEACHER_MODES:
        raise ConfigError(f"teachers must be one of {', '.join(TEACHER_MODES)}, got {teachers!r}.")
    if "loss_fn" in fit_kwargs:
        raise ConfigError("distill sets the loss itself; choose it with loss='hinton' or loss='logits'.")
    temperature = _check_range("temperature", temperature, 1e-6, None)
    alpha = _check_range("alpha", default_alpha(loss, alpha), 0.0, 1.0)
    noise = _check_range("noise", noise, 0.0, None)
    noise_prob = _check_range("noise_prob", noise_prob, 0.0, 1.0)
    teacher_list = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teacher_list:
        raise ConfigError("distill needs at least one teacher.")
    fit_kwargs.setdefault("lr", RETRAIN_LR)
    inputs, labels, logits = teacher_logits(teacher_list, data, student=student)
    packed = torch.cat([labels.to(logits.dtype)[:, None], logits.permute(1, 0, 2).reshape(len(labels), -1)], dim=1)
    generator = torch.Generator().manual_seed(seed_from(random_state) + 1)
    loss_fn = DistillationLoss(loss, temperature, alpha, len(teacher_list), teachers, noise, noise_prob, generator)
    return fit(
        student, TensorDataset(inputs, packed), epochs=epochs, loss_fn=loss_fn, random_state=random_state, **fit_kwargs
    )


def default_alpha(loss: str, alpha: float | None) -> float:
    """``alpha`` when given, else distillation's default: 0.9 for Hinton's loss (the labels weigh 0.1), 1.0 for
    logit regression (no label is read)."""
    if alpha is not None:
        return alpha
    return 0.9 if loss == "hinton" else 1.0


def retrain(
    model: nn.Module,
    data: Any,
    *,
    epochs: int,
    teacher: nn.Module | Sequence[nn.Module] | None = None,
    distill_options: dict[str, Any] | None = None,
    **fit_kwargs: Any,
) -> History:
    """Retrain ``model`` in place: :func:`fit` on the labels, or :func:`distill` from ``teacher`` when given.

    The compression transforms (pruning rounds, trained quantization, ...) retrain through this, so each
    of their retraining steps can learn from the uncompressed network. ``distill_options`` (``loss``,
    ``temperature``, ``alpha``, ...) go to :func:`distill`, every other keyword to :func:`fit`.
    """
    if teacher is None:
        if distill_options:
            raise ConfigError("distill_options were given without a teacher; pass teacher=... or drop them.")
        return fit(model, data, epochs=epochs, **fit_kwargs)
    return distill(model, teacher, data, epochs=epochs, **(distill_options or {}), **fit_kwargs)
