"""The data-set registry and :func:`load_dataset`."""

from __future__ import annotations

import inspect
import os
from typing import Any

from workbench.datasets.base import ArrayDataset
from workbench.datasets.limits import check_loaded
from workbench.datasets.splits import check_split
from workbench.errors import ConfigError
from workbench.registry import Registry

DATASETS: Registry[ArrayDataset] = Registry("data set")
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    """Names of all registered data sets."""
    return DATASETS.names()


def describe_datasets() -> dict[str, str]:
    """Name -> one-line description of every registered data set."""
    return DATASETS.describe()


def load_dataset(name: str, root: str | os.PathLike | None = None, split: str = "train", **kwargs: Any) -> ArrayDataset:
    """Load split ``split`` of data set ``name``.

    Parameters
    ----------
    name
        A registered name (see :func:`list_datasets`).
    root
        Folder holding the files of an on-disk data set (``idx``, ``cifar10``); embedded data sets
        need none and ignore it.
    split
        ``"train"``, ``"val"``, ``"test"`` or ``"trainval"`` (train and val together).
    **kwargs
        Options of that data set (e.g. ``num_samples``, ``seed``, ``size``).

    Raises
    ------
    UnknownNameError
        ``name`` is not registered (the message names the closest one).
    ConfigError
        Unknown split, unknown option or an invalid option value.
    DataError
        The files of an on-disk data set are missing, truncated or corrupt, or the split is unusable: it holds
        no sample, its inputs hold no value, or the data set has fewer than two classes
        (:func:`~workbench.datasets.limits.check_loaded`; a training split of one class is warned about).
    """
    factory = DATASETS.get(name)
    check_split(split, name)
    signature = inspect.signature(factory)
    try:
        signature.bind(root, split, **kwargs)
    except TypeError:
        options = [p for p in signature.parameters if p not in ("root", "split")]
        unknown = sorted(set(kwargs) - set(options))
        raise ConfigError(
            f"data set {name!r} does not take option(s) {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(options) or 'none'}."
        ) from None
    return check_loaded(factory(root, split, **kwargs), name)
