"""MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST), read from a folder the user gives.

The folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
and ``t10k-labels-idx1-ubyte``, each raw or gzipped (``.gz``); ``train-images.idx3-ubyte`` style
names are accepted too. An IDX file is a big-endian header -- two zero bytes, a type byte, the number
of dimensions, then one 32-bit size per dimension -- followed by the values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from workbench.datasets.base import ArrayDataset, make_dataset
from workbench.datasets.catalog import register_dataset
from workbench.datasets.files import is_gzipped, read_head, read_maybe_gzipped, require_folder
from workbench.datasets.options import check_fraction, check_int
from workbench.datasets.splits import fractions_hint, pick_split, stratified_split
from workbench.errors import ConfigError, DataError
from workbench.utils import physical_memory

#: IDX type byte -> numpy dtype (big-endian where it matters).
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)
SPLIT_SEED = 0
_MAX_HEADER = 4 + 4 * 255  # magic number and up to 255 dimension sizes
_CONTENTS = "the MNIST-style IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)"


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (raw or gzipped) into a numpy array of the shape its header declares.

    Parameters
    ----------
    path
        The file.
    expected_magic
        If given, the 4-byte magic number the file must start with (e.g. ``0x00000803``).

    Raises
    ------
    DataError
        Wrong magic number, unknown type byte, truncated or overlong payload, or corrupt gzip data.
    """
    path = Path(path)
    dtype, dims, header = _parse_header(path, read_head(path, _MAX_HEADER), expected_magic)
    expected = math.prod(dims) * dtype.itemsize
    memory = physical_memory()
    if memory and expected > memory // 2:
        raise DataError(
            f"{path}: the header declares {' x '.join(map(str, dims))} values ({expected / 2**30:.1f} GiB), more than "
            "this machine can hold; not a data set it could use (or a damaged header)."
        )
    data = read_maybe_gzipped(path, limit=header + expected)  # never more than a valid file holds, plus one byte
    payload = len(data) - header
    shape = " x ".join(map(str, dims))
    if payload < expected:
        raise DataError(
            f"{path}: truncated: the header declares {shape} values ({expected} bytes) but only {payload} bytes "
            "follow it. Download the file again."
        )
    if payload > expected:  # only one byte past a valid file was read: a raw file's size says how many more
        extra = "more bytes" if is_gzipped(path) else f"{path.stat().st_size - header - expected} bytes more"
        raise DataError(
            f"{path}: {extra} than the {shape} values ({expected} bytes) the header declares; not a valid IDX file."
        )
    return np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header).reshape(dims)


def read_idx_shape(path: str | os.PathLike, expected_magic: int | None = None) -> tuple[int, ...]:
    """The shape an IDX file's header declares, read without loading (or decompressing) the values."""
    path = Path(path)
    return _parse_header(path, read_head(path, _MAX_HEADER), expected_magic)[1]


def _parse_header(path: Path, data: bytes, expected_magic: int | None) -> tuple[np.dtype, tuple[int, ...], int]:
    """The value type, the dimensions and the header length of the IDX file whose first bytes are ``data``."""
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes, too short for an IDX header (at least 4 bytes expected).")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path}: magic number 0x{magic:08X} read, expected 0x{expected_magic:08X} "
            f"({_describe_magic(expected_magic)}); is this the right file of an IDX data set?"
        )
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{path}: magic number 0x{magic:08X} is not that of an IDX file (0x0000TTDD expected).")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated header: {ndim} dimension sizes declared, file has {len(data)} bytes.")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return dtype, dims, header


def _describe_magic(magic: int) -> str:
    kind = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}.get(magic, "IDX data")
    return f"{kind}: unsigned bytes in {magic & 0xFF} dimension(s)"


def _find(folder: Path, stem: str, ndim: int) -> Path:
    names = [f"{stem}-idx{ndim}-ubyte", f"{stem}.idx{ndim}-ubyte"]
    candidates = [name + suffix for name in names for suffix in ("", ".gz")]
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    raise DataError(f"{folder}: missing {stem} file; expected one of: {', '.join(candidates)}.")


def _read_labels(folder: Path, prefix: str) -> tuple[np.ndarray, Path]:
    path = _find(folder, f"{prefix}-labels", 1)
    return read_idx(path, LABELS_MAGIC).astype(np.int64), path


def _read_images(path: Path, labels: np.ndarray, labels_path: Path) -> np.ndarray:
    """The byte images ``(N, 1, rows, columns)`` in ``path``, checked to match ``labels`` in number."""
    images = read_idx(path, IMAGES_MAGIC)
    if len(images) != len(labels):
        raise DataError(
            f"{path}: {len(images)} images but {labels_path.name} has {len(labels)} labels; "
            "the two files must come from the same data set."
        )
    return images[:, None, :, :]


def _check_image_sizes(train_path: Path, test_path: Path) -> None:
    """Refuse images of no pixel, and train and test images of different sizes (read from the headers only),
    before any training."""
    train_size, test_size = read_idx_shape(train_path, IMAGES_MAGIC)[1:], read_idx_shape(test_path, IMAGES_MAGIC)[1:]
    for path, size in ((train_path, train_size), (test_path, test_size)):
        if 0 in size:
            raise DataError(
                f"{path}: the header declares images of {' x '.join(map(str, size))} pixels, which hold no pixel; "
                "not an image data set (or a damaged header). Download the file again."
            )
    if train_size != test_size:
        raise DataError(
            f"{test_path}: images of {' x '.join(map(str, test_size))} pixels, but {train_path.name} holds images of "
            f"{' x '.join(map(str, train_size))}; a model trained on one cannot run on the other. Use the train and "
            "t10k files of the same data set."
        )


def _infer_num_classes(train_labels: np.ndarray, labels_by_path: dict[Path, np.ndarray]) -> int:
    """One more than the largest label, provided every class up to it has training samples.

    A gap means a corrupt label (a 200 among 0..9 would make a 201-class model) or labels that are not
    0-based class indices; the caller then has to declare ``num_classes``.
    """
    path, highest = max(((p, int(labels.max(initial=0))) for p, labels in labels_by_path.items()), key=lambda x: x[1])
    num_classes = highest + 1
    if num_classes < 2:
        found = f"every label is {highest}" if any(len(labels) for labels in labels_by_path.values()) else "no label"
        raise DataError(
            f"{path}: {found}, a data set of one class at most; a classifier needs at least two. Use the label files "
            "of the data set, or pass num_classes=N if the other classes have no sample here."
        )
    missing = np.setdiff1d(np.arange(num_classes), train_labels)
    if missing.size:
        examples = ", ".join(map(str, missing[:5])) + (", ..." if missing.size > 5 else "")
        raise DataError(
            f"{path}: label {highest} would make a {num_classes}-class model, but {missing.size} of those classes "
            f"have no training sample ({examples}): a corrupt label, or labels that are not 0-based class indices. "
            "Pass num_classes=N to declare the number of classes (labels must then be below N)."
        )
    return num_classes


@register_dataset("idx", "MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST) from a folder: 1x28x28 images; on disk")
def idx(
    root: str | os.PathLike | None,
    split: str,
    *,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    val_fraction: float = 0.1,
) -> ArrayDataset:
    """Images and labels from an IDX folder; pixel values scaled to [0, 1].

    ``"test"`` is the ``t10k`` files. ``"train"`` and ``"val"`` come from the ``train`` files: ``val``
    is ``val_fraction`` of each class, chosen with a fixed seed (6000 of MNIST's 60000 by default),
    and ``"trainval"`` is all of them. ``indices`` are positions in the files read (``train`` files
    for train/val/trainval, ``t10k`` files for test).

    Parameters
    ----------
    num_classes
        Number of classes; by default one more than the largest label in the train and test label files,
        provided every class up to it has training samples (otherwise a :class:`DataError` asks for it).
    class_names
        Names of the classes (e.g. Fashion-MNIST's); ``"0", "1", ...`` by default.
    val_fraction
        Share of the train files held out as ``val``.
    """
    folder = require_folder(root, "idx", _CONTENTS)
    val_fraction = check_fraction(val_fraction, "val_fraction")
    train_labels, train_labels_path = _read_labels(folder, "train")
    test_labels, test_labels_path = _read_labels(folder, "t10k")
    train_images_path, test_images_path = _find(folder, "train-images", 3), _find(folder, "t10k-images", 3)
    _check_image_sizes(train_images_path, test_images_path)
    if num_classes is None:
        num_classes = _infer_num_classes(train_labels, {train_labels_path: train_labels, test_labels_path: test_labels})
    else:
        num_classes = check_int(num_classes, "num_classes", 2)
    for labels, path in ((train_labels, train_labels_path), (test_labels, test_labels_path)):
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"{path}: labels range over {labels.min()}..{labels.max()}, expected 0..{num_classes - 1}.")
    if class_names is not None and len(class_names) != num_classes:
        raise ConfigError(f"{len(class_names)} class_names given for {num_classes} classes.")

    if split == "test":
        labels, labels_path, rows = test_labels, test_labels_path, np.arange(len(test_labels))
        images = _read_images(test_images_path, labels, labels_path)
    else:
        labels, labels_path = train_labels, train_labels_path
        images = _read_images(train_images_path, labels, labels_path)
        train, val = stratified_split(labels, (1.0 - val_fraction, val_fraction), SPLIT_SEED)
        rows = pick_split(split, {"train": train, "val": val}, fractions_hint(val_fraction=val_fraction))
    return make_dataset(
        images,
        labels,
        rows,
        divide_by=255.0,
        name="idx",
        split=split,
        num_classes=int(num_classes),
        task="classification",
        class_names=None if class_names is None else list(class_names),
    )
