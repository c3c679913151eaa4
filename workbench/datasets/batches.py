"""One adapter from tensors, ``(inputs, targets)`` pairs, data sets and loaders to batches.

- :class:`Batches` -- labelled ``(inputs, targets)`` batches for training and evaluation, in order or
  shuffled by a seeded generator.
- :func:`input_batches` -- input tensors only, in order, at most ``max_samples`` rows (graph views,
  least-squares fusion, example inputs).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

from workbench.errors import DataError
from workbench.numeric import as_int

Data = Dataset | DataLoader | tuple | list

_UNSIZED = (
    "is a DataLoader over an iterable data set of unknown length; give a map-style Dataset or a sized DataLoader."
)


def data_attribute(data: Any, name: str) -> Any:
    """Attribute ``name`` of ``data``, of the data set behind a loader, or of the set behind a ``Subset``."""
    seen = 0
    while data is not None and seen < 8:
        value = getattr(data, name, None)
        if value is not None:
            return value
        data = getattr(data, "dataset", None)
        seen += 1
    return None


def check_positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """``value`` as an int >= 1 (or ``None`` when allowed); ConfigError otherwise."""
    if value is None and allow_none:
        return None
    return as_int(value, name, low=1)


class Batches:
    """Batches of ``(inputs, targets)`` from a map-style data set, a DataLoader or an ``(inputs, targets)`` pair.

    Parameters
    ----------
    data
        A map-style :class:`~torch.utils.data.Dataset` whose items are ``(input, target)`` (or a bare input),
        a :class:`~torch.utils.data.DataLoader` (iterated as it is: its own batch size and order apply),
        or a pair ``(inputs, targets)`` of tensors or arrays.
    batch_size
        Samples per batch (data sets and pairs only).
    shuffle
        Visit the samples in a new random order each pass.
    generator
        Source of the shuffling order (seeded by the caller for reproducible runs).
    name
        How error messages call ``data`` (``"train_data"``).

    Data sets that hold their samples in tensors (:class:`~torch.utils.data.TensorDataset`, and any set with
    tensor attributes ``inputs`` and ``targets`` such as the workbench's ``ArrayDataset``) are batched by
    indexing those tensors directly; other sets item by item with ``default_collate``. Both give the same
    batches for the same generator state. When shuffling (training), a last batch of a single sample is
    merged into the one before it, since batch normalization cannot train on one sample.
    """

    def __init__(
        self,
        data: Data,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        name: str = "data",
    ) -> None:
        self.name = name
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.shuffle = shuffle
        self.generator = generator
        _check_kind(data, name, "a map-style torch Dataset, a DataLoader or an (inputs, targets) pair")
        if isinstance(data, (tuple, list)):
            data = _pair_dataset(data, name)
        self.data = data
        self.loader = data if isinstance(data, DataLoader) else None
        self._tensors = None if self.loader is not None else _tensor_columns(data)
        n = self._length()
        if n == 0:
            raise DataError(f"{name} is empty (0 samples); give it at least one sample.")
        self.n_samples = n

    def _length(self) -> int | None:
        target = self.loader.dataset if self.loader is not None else self.data
        try:
            return len(target)
        except TypeError:
            if self.loader is not None:
                return None  # an iterable-style data set: its length shows when it is iterated
            raise DataError(f"{self.name} has no length; a map-style Dataset needs __len__.") from None

    def __len__(self) -> int:
        """Number of batches per pass; DataError when a loader cannot tell."""
        if self.loader is not None:
            try:
                return len(self.loader)
            except TypeError:
                raise DataError(f"{self.name} {_UNSIZED}") from None
        return len(self._starts())

    def _starts(self) -> list[int]:
        starts = list(range(0, self.n_samples, self.batch_size))
        if self.shuffle and len(starts) > 1 and self.n_samples - starts[-1] == 1:
            starts.pop()  # a lone last sample joins the previous batch (batch norm cannot train on one sample)
        return starts

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if self.loader is not None:
            for batch in self.loader:
                yield split_batch(batch, self.name)
            return
        n = self.n_samples
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        starts = self._starts()
        for start, stop in zip(starts, starts[1:] + [n]):
            index = order[start:stop]
            if self._tensors is not None:
                yield split_batch(tuple(t[index] for t in self._tensors), self.name)
            else:
                yield split_batch(default_collate([self.data[int(i)] for i in index]), self.name)


def _check_kind(data: Any, name: str, accepted: str) -> None:
    """DataError naming ``accepted`` unless ``data`` is a loader, a pair or a map-style (indexable) data set."""
    indexable = isinstance(data, (Dataset, DataLoader, tuple, list)) or hasattr(data, "__getitem__")
    if not indexable or isinstance(data, (str, bytes, Mapping)):
        raise DataError(f"{name} must be {accepted}, got {type(data).__name__}.")


def _pair_dataset(pair: tuple | list, name: str) -> TensorDataset:
    if len(pair) != 2:
        raise DataError(f"{name} given as a sequence must be an (inputs, targets) pair, got {len(pair)} items.")
    inputs, targets = (torch.as_tensor(np.asarray(p)) if not isinstance(p, torch.Tensor) else p for p in pair)
    if len(inputs) != len(targets):
        raise DataError(f"{name}: {len(inputs)} inputs but {len(targets)} targets; they must match one to one.")
    return TensorDataset(inputs, targets)


def _tensor_columns(data: Any) -> tuple[torch.Tensor, ...] | None:
    """The tensors a data set's items are rows of, when it has them (for fast batching)."""
    if isinstance(data, TensorDataset):
        return tuple(data.tensors)
    inputs, targets = getattr(data, "inputs", None), getattr(data, "targets", None)
    if isinstance(inputs, torch.Tensor) and isinstance(targets, torch.Tensor):
        try:
            n = len(data)
        except TypeError:
            return None
        if len(inputs) == n and len(targets) == n:
            return inputs, targets
    return None


def split_batch(batch: Any, name: str = "data") -> tuple[Any, Any]:
    """``(inputs, targets)`` of one batch; ``targets`` is ``None`` for unlabelled data."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and len(batch) >= 1:
        return batch[0], batch[1] if len(batch) > 1 else None
    if isinstance(batch, dict) and "inputs" in batch:
        return batch["inputs"], batch.get("targets")
    raise DataError(
        f"{name} yields batches of type {type(batch).__name__}; expected (inputs, targets) pairs or input tensors."
    )


def sample_count(data: Data, name: str = "data") -> int:
    """Number of samples in ``data`` (anything :class:`Batches` takes); DataError when it cannot tell."""
    n = Batches(data, 1, name=name).n_samples
    if n is None:
        raise DataError(f"{name} {_UNSIZED}")
    return n


def input_batches(
    data: Data | torch.Tensor | np.ndarray,
    max_samples: int | None = None,
    batch_size: int = 256,
    *,
    name: str = "data",
) -> Iterator[torch.Tensor]:
    """Input tensors of ``data`` batch by batch, in order, at most ``max_samples`` rows in all.

    ``data`` is anything :class:`Batches` takes (its targets are ignored, and may be absent) or a tensor
    or array of inputs. The data are checked when this function is called, not when iteration starts:
    a wrong type or an empty set raises :class:`DataError` at once.
    """
    max_samples = check_positive_int("max_samples", max_samples, allow_none=True)
    _check_kind(data, name, "a tensor or array of inputs, an (inputs, targets) pair, a Dataset or a DataLoader")
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        data = TensorDataset(data)
    return _capped(Batches(data, batch_size, name=name), max_samples)


def _capped(batches: Batches, max_samples: int | None) -> Iterator[torch.Tensor]:
    seen = 0
    for inputs, _ in batches:
        if max_samples is not None:
            inputs = inputs[: max_samples - seen]
        seen += len(inputs)
        yield inputs
        if max_samples is not None and seen >= max_samples:
            return
    if seen == 0:
        raise DataError(f"{batches.name} yielded no samples; give at least one input.")
