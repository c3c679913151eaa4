"""Data sets: ``load_dataset(name, root=None, split="train", **options)``.

Embedded (nothing to download): ``digits`` (scikit-learn), ``mnist1d`` (generated locally),
``shapes`` and ``shapes-seg`` (synthetic). On disk, from a folder the user gives as ``root``:
``idx`` (MNIST-style IDX files: MNIST, Fashion-MNIST, KMNIST), ``cifar10`` (CIFAR-10 python
batches) and ``folder`` (images in class folders, read with Pillow). Every loader returns an
:class:`ArrayDataset`; splits are ``"train"``, ``"val"``, ``"test"`` and ``"trainval"`` (train and val
together), deterministic and disjoint. Every split loaded is checked (:mod:`workbench.datasets.limits`): an empty
split, inputs of no value or fewer than two classes are refused, a training split of one class is warned about,
and a generated set whose options need more memory than is free is refused before it is generated.
"""

from __future__ import annotations

from workbench.datasets.base import ArrayDataset
from workbench.datasets.catalog import DATASETS, describe_datasets, list_datasets, load_dataset, register_dataset
from workbench.datasets.splits import SPLITS

# Importing the built-in loaders registers them.
from workbench.datasets import digits as _digits  # noqa: E402,F401  isort: skip
from workbench.datasets import mnist1d as _mnist1d  # noqa: E402,F401  isort: skip
from workbench.datasets import shapes as _shapes  # noqa: E402,F401  isort: skip
from workbench.datasets import idx as _idx  # noqa: E402,F401  isort: skip
from workbench.datasets import cifar as _cifar  # noqa: E402,F401  isort: skip
from workbench.datasets import folder as _folder  # noqa: E402,F401  isort: skip

__all__ = [
    "ArrayDataset",
    "DATASETS",
    "SPLITS",
    "describe_datasets",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
