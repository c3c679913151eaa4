"""CIFAR-10 from a folder the user gives, in its "python version" or its "binary version" layout.

- ``cifar-10-batches-py``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and (optionally)
  ``batches.meta``. Each batch is a pickled dict with ``b"data"`` (N x 3072 unsigned bytes: the red,
  green and blue 32 x 32 planes of each image) and ``b"labels"`` (N ints). The batches are read with a
  restricted unpickler that builds only what they hold (dicts, lists, bytes, strings, numbers and numpy
  arrays) and refuses any other class or function, so a crafted batch cannot run code.
- ``cifar-10-batches-bin``: ``data_batch_1.bin`` .. ``data_batch_5.bin``, ``test_batch.bin`` and
  (optionally) ``batches.meta.txt``. Each record is one label byte followed by the 3072 pixel bytes,
  in the same plane order; no pickle at all.

Both layouts give the same arrays for the same images. A folder holding both is read in the binary layout.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.datasets.base import ArrayDataset, make_dataset
from workbench.datasets.catalog import register_dataset
from workbench.datasets.files import is_gzipped, load_restricted_pickle, read_maybe_gzipped, require_folder
from workbench.datasets.options import check_fraction
from workbench.datasets.splits import fractions_hint, pick_split, stratified_split
from workbench.errors import DataError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
IMAGE_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + IMAGE_BYTES  # binary layout: label byte, then the pixels
BATCH_IMAGES = 10_000  # images in each CIFAR-10 batch: no file of either layout holds more
#: Largest python batch file read: 10,000 images pickled with protocol 0 (up to 6 bytes a pixel byte), and labels
#: and file names; a larger file is refused before it is unpickled.
MAX_PICKLE_BYTES = 6 * BATCH_IMAGES * RECORD_BYTES + BATCH_IMAGES * 256
SPLIT_SEED = 0

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
BIN_FOLDER = "cifar-10-batches-bin"
BIN_TRAIN_BATCHES = tuple(f"{name}.bin" for name in TRAIN_BATCHES)
BIN_TEST_BATCH = f"{TEST_BATCH}.bin"
BIN_META = "batches.meta.txt"
_CONTENTS = (
    f"CIFAR-10 ({FOLDER}: data_batch_1..5, test_batch; or {BIN_FOLDER}: data_batch_1..5.bin, test_batch.bin), "
    "or its parent"
)
_PICKLE_CONTENTS = "a CIFAR-10 batch holds only dicts, lists, bytes, strings, numbers and numpy arrays"


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes with protocols 0-2, limited to the latin-1 codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError(f"_codecs.encode with {type(text).__name__} and codec {encoding!r}: only latin-1 bytes")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()`` as Python 3 pickles an empty bytes object with protocols 0-2; no other call is allowed (``bytes(n)``
    would allocate ``n`` bytes)."""
    if args:
        raise ValueError("bytes called with arguments: only the empty bytes object bytes() is read")
    return b""


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The globals a CIFAR-10 pickle may name: numpy's array reconstructors, ``ndarray`` and ``dtype``.

    The functions are taken from numpy's own pickling, so their module is ``numpy.core`` or ``numpy._core``
    (numpy 2) as the installed numpy has it; files written under either name are read.
    """
    reconstruct = np.zeros(0).__reduce__()[0]  # ndarray pickled with protocols 0-4
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # ndarray pickled with protocol 5
    scalar = np.float64(0).__reduce__()[0]  # numpy scalars
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    allowed[("_codecs", "encode")] = _latin1  # bytes in protocols 0-2 written by Python 3
    for builtins in ("__builtin__", "builtins"):  # the empty bytes in protocols 0-2 (Python 2's name, then 3's)
        allowed[(builtins, "bytes")] = _empty_bytes
    return allowed


_ALLOWED = _allowed_globals()


def _require_file(path: Path, layout: _Layout) -> None:
    if not path.is_file():
        raise DataError(
            f"{path.parent}: missing CIFAR-10 file {path.name}; expected {', '.join(layout.train)}, "
            f"{layout.test} (and optionally {layout.meta})."
        )


def _empty(path: Path) -> DataError:
    """The error for a batch file that holds nothing (or unpacks to nothing)."""
    return DataError(
        f"{path}: the file is empty ({'it unpacks to 0 bytes' if path.stat().st_size else '0 bytes'}), not a "
        "CIFAR-10 batch: a download or unpacking cut short? Download the data set again."
    )


def _unpickle(path: Path) -> Any:
    _require_file(path, PYTHON)
    size = path.stat().st_size
    if not size:  # said as such, not as an unreadable pickle
        raise _empty(path)
    if size > MAX_PICKLE_BYTES:
        raise DataError(
            f"{path}: {size:,} bytes, more than a CIFAR-10 batch of {BATCH_IMAGES:,} images can take "
            f"({MAX_PICKLE_BYTES:,} bytes pickled); not a CIFAR-10 batch. Download the data set again."
        )
    return load_restricted_pickle(path, _ALLOWED, _PICKLE_CONTENTS, what="CIFAR-10 pickle")


def _field(batch: dict, key: str) -> Any:
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise KeyError(key)


def _checked(path: Path, data: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` and int64 labels from the rows ``data`` (N x 3072) and ``labels``, validated
    (``what`` names the labels in messages)."""
    if labels.size and labels.dtype.kind not in "iu":
        raise DataError(f"{path}: {what} holds {labels.dtype} values, expected a list of integer class labels.")
    if not 0 < len(data) <= BATCH_IMAGES:
        state = "is empty: it holds no image" if not len(data) else f"holds {len(data):,} images"
        raise DataError(
            f"{path}: the batch {state}; a CIFAR-10 batch holds 1 to {BATCH_IMAGES:,} images (10,000 in the "
            "data set). Download the data set again."
        )
    labels = labels.astype(np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {what} has shape {labels.shape}; expected ({len(data)},).")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels range over {labels.min()}..{labels.max()}, expected 0..{NUM_CLASSES - 1}.")
    return data.reshape(len(data), *IMAGE_SHAPE), labels


def read_python_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the python layout: uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``, validated."""
    path = Path(path)
    batch = _unpickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: holds a {type(batch).__name__}, expected a dict with b'data' and b'labels'.")
    try:
        data, labels = _field(batch, "data"), _field(batch, "labels")
    except KeyError as exc:
        found = ", ".join(repr(k) for k in list(batch)[:10])
        raise DataError(f"{path}: no {exc.args[0]!r} entry; expected b'data' and b'labels', found {found}.") from None
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        raise DataError(
            f"{path}: b'data' is {data.dtype} of shape {data.shape}, expected uint8 of shape (N, {IMAGE_BYTES})."
        )
    try:
        labels = np.asarray(labels)
    except ValueError as exc:  # ragged nested lists
        raise DataError(f"{path}: b'labels' is not a list of integer class labels ({exc}).") from None
    return _checked(path, data, labels, "b'labels'")


def read_binary_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the binary layout (records of 1 label byte + 3072 pixel bytes), as :func:`read_python_batch`."""
    path = Path(path)
    _require_file(path, BINARY)
    most = BATCH_IMAGES * RECORD_BYTES
    raw = read_maybe_gzipped(path, limit=most)  # never more than a batch holds, plus one byte
    if len(raw) > most:
        size = "more bytes unpacked" if is_gzipped(path) else f"{path.stat().st_size:,} bytes, more"
        raise DataError(
            f"{path}: {size} than the {BATCH_IMAGES:,} records of {RECORD_BYTES} bytes ({most:,} bytes) a CIFAR-10 "
            "batch holds; not a CIFAR-10 binary batch. Download the data set again."
        )
    if not raw:
        raise _empty(path)
    if len(raw) % RECORD_BYTES:
        raise DataError(
            f"{path}: {len(raw)} bytes, not a whole number of {RECORD_BYTES}-byte CIFAR-10 records (1 label byte + "
            f"{IMAGE_BYTES} pixel bytes); the file is truncated or not a CIFAR-10 binary batch. Download it again."
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    return _checked(path, records[:, 1:], records[:, 0], "the label bytes")


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch of either layout (``.bin``: binary, otherwise python): uint8 images ``(N, 3, 32, 32)``
    and int64 labels ``(N,)``, validated."""
    reader = read_binary_batch if Path(path).suffix == ".bin" else read_python_batch
    return reader(path)


def _pickled_class_names(path: Path) -> list[str]:
    meta = _unpickle(path)
    try:
        names = _field(meta, "label_names") if isinstance(meta, dict) else None
    except KeyError:
        names = None
    if not isinstance(names, (list, tuple)) or len(names) != NUM_CLASSES:
        raise DataError(f"{path}: expected a dict whose b'label_names' lists {NUM_CLASSES} class names.")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _text_class_names(path: Path) -> list[str]:
    try:
        names = [line.strip() for line in read_maybe_gzipped(path).decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file of class names ({exc}).") from None
    if len(names) != NUM_CLASSES:
        raise DataError(f"{path}: {len(names)} class names, expected {NUM_CLASSES} (one per line).")
    return names


@dataclass(frozen=True)
class _Layout:
    """One on-disk layout of CIFAR-10: its folder and file names, and how to read them."""

    folder: str
    train: tuple[str, ...]
    test: str
    meta: str
    read: Callable[[Path], tuple[np.ndarray, np.ndarray]]
    read_names: Callable[[Path], list[str]]

    def holds_batches(self, folder: Path) -> bool:
        return any((folder / name).is_file() for name in (*self.train, self.test))

    def class_names(self, folder: Path) -> list[str]:
        path = folder / self.meta
        return self.read_names(path) if path.is_file() else list(CLASS_NAMES)

    def read_batches(self, folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            raise DataError(f"{folder}: missing CIFAR-10 file(s) {', '.join(missing)}; expected {', '.join(names)}.")
        parts = [self.read(folder / name) for name in names]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


PYTHON = _Layout(FOLDER, TRAIN_BATCHES, TEST_BATCH, META, read_python_batch, _pickled_class_names)
BINARY = _Layout(BIN_FOLDER, BIN_TRAIN_BATCHES, BIN_TEST_BATCH, BIN_META, read_binary_batch, _text_class_names)
_LAYOUTS = (BINARY, PYTHON)  # binary first: it needs no unpickling


def _locate(root: str | os.PathLike | None) -> tuple[Path, _Layout]:
    """The folder holding the batches and its layout: ``root`` itself, else its binary or python subfolder."""
    folder = require_folder(root, "cifar10", _CONTENTS)
    for candidate in (folder, *(folder / layout.folder for layout in _LAYOUTS)):
        for layout in _LAYOUTS:
            if layout.holds_batches(candidate):
                return candidate, layout
    raise DataError(
        f"{folder}: no CIFAR-10 batches found here or in {folder / BIN_FOLDER} or {folder / FOLDER}; expected "
        f"files {', '.join(TRAIN_BATCHES)}, {TEST_BATCH} (python layout) or {', '.join(BIN_TRAIN_BATCHES)}, "
        f"{BIN_TEST_BATCH} (binary layout). Pass root=PATH to {_CONTENTS}."
    )


@register_dataset(
    "cifar10", "CIFAR-10 python or binary batches from a folder: 3x32x32 colour images, 10 classes; on disk"
)
def cifar10(
    root: str | os.PathLike | None, split: str, *, normalize: bool = False, val_fraction: float = 0.1
) -> ArrayDataset:
    """CIFAR-10 images scaled to [0, 1].

    ``root`` is the ``cifar-10-batches-py`` or ``cifar-10-batches-bin`` folder, or their parent (the
    layout is detected). ``"test"`` is the test batch; ``"train"`` and ``"val"`` come from the five
    training batches: ``val`` is ``val_fraction`` of each class chosen with a fixed seed (5000 of 50000
    by default), ``"trainval"`` all of them. ``indices`` are positions in the batches read (the five
    training batches in order, or the test batch).

    Parameters
    ----------
    normalize
        Standardize each channel with the mean and standard deviation of all training batches
        (the same constants for every split).
    val_fraction
        Share of the training batches held out as ``val``.
    """
    folder, layout = _locate(root)
    val_fraction = check_fraction(val_fraction, "val_fraction")
    class_names = layout.class_names(folder)
    if split == "test":
        images, labels = layout.read_batches(folder, (layout.test,))
        rows = np.arange(len(labels))
    else:
        images, labels = layout.read_batches(folder, layout.train)
        train, val = stratified_split(labels, (1.0 - val_fraction, val_fraction), SPLIT_SEED)
        rows = pick_split(split, {"train": train, "val": val}, fractions_hint(val_fraction=val_fraction))
    dataset = make_dataset(
        images,
        labels,
        rows,
        divide_by=255.0,
        name="cifar10",
        split=split,
        num_classes=NUM_CLASSES,
        task="classification",
        class_names=class_names,
    )
    if normalize:
        train_images = images if split != "test" else layout.read_batches(folder, layout.train)[0]
        mean, std = _channel_stats(train_images)
        dataset.inputs.sub_(mean[:, None, None]).div_(std[:, None, None])
    return dataset


def _channel_stats(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (in [0, 1] units) of byte images ``(N, C, H, W)``."""
    counts = np.stack([np.bincount(images[:, c].ravel(), minlength=256) for c in range(images.shape[1])])
    values = np.arange(256) / 255.0
    total = counts.sum(axis=1)
    mean = counts @ values / total
    var = counts @ values**2 / total - mean**2
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(np.sqrt(np.maximum(var, 1e-12)), dtype=torch.float32)
