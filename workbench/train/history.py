"""The record of a training run."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import ConfigError

# Validation metrics where larger is better; any other metric (a loss) is minimised.
_HIGHER_IS_BETTER = ("miou", "accuracy", "pixel_accuracy")


@dataclass
class History:
    """Per-epoch record of :func:`~workbench.train.fit`.

    Attributes
    ----------
    train_loss
        Mean training loss of each epoch (the data loss, without the penalty).
    val
        Validation metrics of each epoch (as returned by :func:`~workbench.train.evaluate`); empty dicts
        when no validation data was given.
    seconds
        Wall time of each epoch, validation included.
    penalty
        Mean penalty of each epoch (0.0 without a penalty).
    lr
        Learning rate at the end of each epoch.
    samples
        Training samples seen in each epoch (the retraining budget spent).
    """

    train_loss: list[float] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    penalty: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)

    def epoch(self, index: int) -> dict[str, Any]:
        """Everything recorded for epoch ``index`` (0-based; negative counts from the end), flat."""
        index = range(len(self))[index]
        return {
            "epoch": index,
            "train_loss": self.train_loss[index],
            "penalty": self.penalty[index],
            "lr": self.lr[index],
            "seconds": self.seconds[index],
            "samples": self.samples[index] if index < len(self.samples) else None,
            **{f"val_{k}": v for k, v in self.val[index].items()},
        }

    @property
    def total_samples(self) -> int:
        """Training samples seen over all epochs."""
        return int(sum(self.samples))

    def last(self) -> dict[str, Any]:
        """The record of the last epoch (see :meth:`epoch`)."""
        if not self.train_loss:
            raise IndexError("the history is empty: no epoch has finished.")
        return self.epoch(-1)

    def best(self, metric: str | None = None) -> dict[str, Any]:
        """The record of the best epoch.

        ``metric`` names a validation metric (``"accuracy"``, ``"miou"``, ``"loss"``...); by default the
        first of mIoU, accuracy and loss that was recorded, else the training loss. Accuracy-type metrics
        are maximised, losses minimised; NaN values never win.
        """
        if not self.train_loss:
            raise IndexError("the history is empty: no epoch has finished.")
        if metric is None:
            recorded = self.val[-1] if self.val else {}
            metric = next((m for m in ("miou", "accuracy", "loss") if m in recorded), "train_loss")
        if metric == "train_loss":
            values = list(self.train_loss)
        else:
            if not all(metric in record for record in self.val):
                known = sorted({k for record in self.val for k in record}) or ["(none: no validation data)"]
                raise ConfigError(f"validation metric {metric!r} was not recorded; recorded: {', '.join(known)}.")
            values = [record[metric] for record in self.val]
        sign = 1.0 if metric in _HIGHER_IS_BETTER else -1.0
        scores = [sign * v if not math.isnan(v) else -math.inf for v in values]
        return self.epoch(max(range(len(scores)), key=scores.__getitem__))

    def as_dict(self) -> dict[str, Any]:
        """The history as a JSON-friendly dict of lists."""
        return {
            "epochs": len(self),
            "train_loss": list(self.train_loss),
            "val": [dict(record) for record in self.val],
            "seconds": list(self.seconds),
            "penalty": list(self.penalty),
            "lr": list(self.lr),
        }


@dataclass(eq=False)
class SampleCount:
    """Training samples seen by every :func:`~workbench.train.fit` call inside :func:`counting_samples`
    (the retraining budget of a transform or pipeline that trains in several calls).

    Attributes
    ----------
    samples
        Samples seen so far (one sample counted once per epoch it is trained on).
    calls
        Number of training calls (``fit``) that ran.
    """

    samples: int = 0
    calls: int = 0


_ACTIVE_COUNTS: list[SampleCount] = []


@contextmanager
def counting_samples() -> Iterator[SampleCount]:
    """Count the training samples seen by every ``fit`` call in the ``with`` block (nested blocks each count
    theirs)::

        with counting_samples() as count:
            run_pipeline(model, steps, train)
        count.samples  # the pipeline's whole training budget
    """
    count = SampleCount()
    _ACTIVE_COUNTS.append(count)
    try:
        yield count
    finally:
        _ACTIVE_COUNTS.remove(count)


def record_samples(seen: int) -> None:
    """Add ``seen`` samples to every active :func:`counting_samples` block (``fit`` calls it per epoch)."""
    for count in _ACTIVE_COUNTS:
        count.samples += int(seen)


def record_call() -> None:
    """Count one training call in every active :func:`counting_samples` block."""
    for count in _ACTIVE_COUNTS:
        count.calls += 1
