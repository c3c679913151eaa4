"""Checks every data set passes: the memory a generated set needs, and what a loaded split holds.

- :func:`check_generated_memory` -- before a data set is generated, compare the bytes its options need
  (an estimate each generator gives) with the memory this machine has free, and refuse with the figures
  a set that cannot fit, instead of letting numpy fail deep inside the generator.
- :func:`check_loaded` -- after any loader ran (:func:`~workbench.datasets.load_dataset` calls it): a split
  must hold samples, each of at least one value, and a classification set at least two classes; a training
  split whose samples are all of one class is warned about, naming the class.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from workbench.datasets.base import ArrayDataset
from workbench.errors import ConfigError, DataError

#: Share of the memory free now that a generated data set may use (the rest is for the model and training).
MEMORY_SHARE = 0.5
_TRAINING_SPLITS = ("train", "trainval")


def free_memory() -> int:
    """Bytes of memory this machine can give a process now."""
    from workbench.zoo.memory import available_memory  # the one reading of free memory (zoo is a sibling package)

    return available_memory()


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:,.1f} MiB"


def check_generated_memory(name: str, need: int, options: Mapping[str, object], hint: str) -> None:
    """Refuse to generate data set ``name`` when ``need`` bytes exceed :data:`MEMORY_SHARE` of the free memory.

    ``options`` are the settings the estimate comes from (named in the message) and ``hint`` says which to
    lower.

    Raises
    ------
    ConfigError
        The estimate is above the limit; the message gives both figures.
    """
    limit = int(free_memory() * MEMORY_SHARE)
    if need > limit:
        shown = ", ".join(f"{key}={value!r}" for key, value in options.items())
        raise ConfigError(
            f"data set {name!r} with {shown} needs about {_gib(need)} of memory to generate, more than the "
            f"{_gib(limit)} allowed ({MEMORY_SHARE:.0%} of the {_gib(limit / MEMORY_SHARE)} free on this machine); "
            f"{hint}."
        )


def check_loaded(data: ArrayDataset, name: str) -> ArrayDataset:
    """``data`` (split ``data.split`` of data set ``name``) if it can be trained or evaluated on; a loader that
    returns something other than an :class:`ArrayDataset` is passed through unchecked.

    Raises
    ------
    DataError
        The split holds no sample, its samples hold no value (e.g. images of 0 x 0 pixels), or the data set
        has fewer than two classes.

    Warns
    -----
    UserWarning
        A training split (``"train"``, ``"trainval"``) whose classification labels are all one class.
    """
    if not isinstance(data, ArrayDataset):
        return data
    where = f"split {data.split!r} of data set {name!r}"
    if len(data) == 0:
        raise DataError(f"{where} holds no sample; give the data set more samples or hold fewer out of this split.")
    if data.inputs[0].numel() == 0:
        shape = " x ".join(map(str, data.input_shape))
        raise DataError(f"{where}: every input is empty ({shape} values); the files hold no pixels or signal.")
    if data.num_classes < 2:
        raise DataError(
            f"data set {name!r} has {data.num_classes} class ({', '.join(data.class_names)}); a model needs at least "
            "two classes to learn to tell them apart. Check the labels, or declare the number of classes."
        )
    if data.task == "classification" and data.split in _TRAINING_SPLITS:
        present = data.targets.unique()
        if len(present) == 1:
            label = int(present[0])
            shown = data.class_names[label] if 0 <= label < len(data.class_names) else str(label)
            warnings.warn(
                f"{where}: all {len(data)} samples are of one class, {shown!r} (label {label}) of "
                f"{data.num_classes}; a classifier trained on them learns only to answer {shown!r}.",
                UserWarning,
                stacklevel=3,
            )
    return data
