"""Images in class folders (torchvision's ``ImageFolder`` layout), read with Pillow from a folder the user gives.

Two layouts are read:

- ``root/<class name>/<image files>``: one folder per class; ``train``, ``val`` and ``test`` are cut from
  it per class with a fixed seed (``val_fraction``, ``test_fraction``).
- ``root/train/<class name>/...`` and ``root/test/<class name>/...`` (and optionally ``root/val/...``):
  the split folders are used as they are; without ``root/val``, ``val`` is cut from ``root/train``. Split folders
  are recognized whatever their case (``Train/``, ``Test/``).

Class names are the class folders' names, sorted; label ``k`` is the ``k``-th name. Files are found in each
class folder and its sub-folders in sorted order (hidden files and folders, whose names start with ``.``,
are skipped); every other entry must be a regular file (a named pipe or device is refused by name) holding an
image Pillow reads. Grey images deeper than 8 bits (16-bit PNG) are scaled by their own depth. Only the images of
the split asked for are decoded, and the loader refuses (before decoding) more than ``max_images`` images or
``max_bytes`` bytes of float32 pixels.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import torch

from workbench.datasets.base import ArrayDataset
from workbench.datasets.catalog import register_dataset
from workbench.datasets.files import require_folder
from workbench.datasets.options import check_fraction, check_int
from workbench.datasets.splits import fractions_hint, pick_split, stratified_split
from workbench.errors import ConfigError, DataError

SPLIT_SEED = 0
MODES = {"RGB": 3, "L": 1}
#: Pillow modes of grey images deeper than 8 bits, and the value read as white in each. Pillow opens 16-bit PNG,
#: PGM and TIFF files as ``"I;16"`` variants or as ``"I"`` (32-bit integers holding 16-bit values); ``"F"`` is
#: float (TIFF), read as it is.
DEEP_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0, "I": 65535.0, "F": 1.0}
#: File name endings Pillow reads that are taken for images (as torchvision's ``IMG_EXTENSIONS``).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
SPLIT_FOLDERS = ("train", "val", "test")
MAX_IMAGES = 200_000
MAX_BYTES = 2**31  # 2 GiB of float32 pixels
_CONTENTS = "one folder of images per class (root/<class>/*.png), or root/train/<class>/... and root/test/<class>/..."


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_folders(folder: Path) -> list[Path]:
    """The class folders of ``folder``, sorted by name; a DataError when there are fewer than two."""
    classes = sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)
    if len(classes) < 2:
        found = f"only the class folder {classes[0].name!r}" if classes else "no class folder"
        raise DataError(
            f"{folder}: {found}; an image-folder data set needs at least two, one per class "
            f"({folder}/<class name>/<images>)."
        )
    return classes


def _check_regular(path: Path) -> None:
    """A DataError naming what ``path`` is unless it is a regular file (or a link to one): reading a named pipe or
    a device would block or never end."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        kind = "a broken link" if path.is_symlink() else f"unreadable ({exc.strerror or exc})"
    else:
        if stat.S_ISREG(mode):
            return
        kinds = {stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device"}
        kind = next((name for test, name in kinds.items() if test(mode)), "a device")
    raise DataError(
        f"{path}: {kind}, not a regular file; the class folders may hold only image files. Remove it or replace it "
        "with the image."
    )


def _image_files(folder: Path) -> list[Path]:
    """The image files under class folder ``folder`` (sub-folders included, sorted); DataError for a file that
    is not an image and for a folder with no image."""
    files = []
    for directory, subfolders, names in os.walk(folder):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        for name in sorted(names):
            path = Path(directory) / name
            if not _visible(path):
                continue
            _check_regular(path)
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"{path}: not an image file (the class folders may hold only images: "
                    f"{', '.join(IMAGE_SUFFIXES)}); move it out of {folder.parent}."
                )
            files.append(path)
    if not files:
        raise DataError(
            f"{folder}: class folder {folder.name!r} holds no image; put its images in it or remove the folder."
        )
    return files


def _listing(folder: Path, classes: list[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """Every image file under ``folder``'s class folders, its label and the class names.

    ``classes`` (the training folder's class names) fixes the labels: ``folder`` may hold only those.
    """
    found = _class_folders(folder) if classes is None else [p for p in folder.iterdir() if p.is_dir() and _visible(p)]
    names = [p.name for p in found] if classes is None else classes
    unknown = sorted(p.name for p in found if p.name not in names)
    if unknown:
        raise DataError(
            f"{folder}: class folder(s) {', '.join(map(repr, unknown))} are not in the training folder "
            f"(classes: {', '.join(names)}); every split must use the training classes."
        )
    files: list[Path] = []
    labels: list[int] = []
    for path in sorted(found, key=lambda p: names.index(p.name)):
        images = _image_files(path)
        files.extend(images)
        labels.extend([names.index(path.name)] * len(images))
    return files, np.asarray(labels, dtype=np.int64), names


def _split_layout(folder: Path) -> dict[str, Path] | None:
    """``{"train": ..., "test": ..., ["val": ...]}`` when ``folder`` holds split folders, else None.

    Split folders are recognized whatever their case (``Train/``, ``TEST/``), so that they are never taken
    for classes; two folders naming one split (``train/`` and ``Train/``) are refused."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.lower() in SPLIT_FOLDERS and path.is_dir():
            found.setdefault(path.name.lower(), []).append(path)
    twice = {name: paths for name, paths in found.items() if len(paths) > 1}
    if twice:
        name, paths = next(iter(twice.items()))
        raise DataError(
            f"{folder}: the folders {', '.join(p.name for p in paths)} all name the {name!r} split; keep one of them."
        )
    present = {name: paths[0] for name, paths in found.items()}
    if not present:
        return None
    if "train" not in present or "test" not in present:
        raise DataError(
            f"{folder}: found the split folder(s) {', '.join(sorted(present))} but not both 'train' and 'test'; "
            "give root/train/<class>/... and root/test/<class>/... (root/val is optional), or one folder per class."
        )
    return present


def _rows(
    folder: Path, split: str, val_fraction: float, test_fraction: float
) -> tuple[list[Path], np.ndarray, list[str], np.ndarray]:
    """The files and labels the split is read from, the class names, and the positions of the split's rows."""
    layout = _split_layout(folder)
    if layout is None:
        files, labels, names = _listing(folder)
        if val_fraction + test_fraction >= 1.0:
            raise ConfigError(
                f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves no training images; "
                "their sum must be below 1."
            )
        parts = stratified_split(labels, (1.0 - val_fraction - test_fraction, val_fraction, test_fraction), SPLIT_SEED)
        hint = fractions_hint(val_fraction=val_fraction, test_fraction=test_fraction)
        return files, labels, names, pick_split(split, dict(zip(("train", "val", "test"), parts)), hint)
    names = [p.name for p in _class_folders(layout["train"])]
    if split in ("test", "val") and split in layout:
        files, labels, _ = _listing(layout[split], names)
        return files, labels, names, np.arange(len(files))
    if split == "trainval" and "val" in layout:
        train_files, train_labels, _ = _listing(layout["train"], names)
        val_files, val_labels, _ = _listing(layout["val"], names)
        files, labels = train_files + val_files, np.concatenate([train_labels, val_labels])
        return files, labels, names, np.arange(len(files))
    files, labels, _ = _listing(layout["train"], names)
    if "val" in layout:
        return files, labels, names, np.arange(len(files))
    train, val = stratified_split(labels, (1.0 - val_fraction, val_fraction), SPLIT_SEED)
    hint = fractions_hint(val_fraction=val_fraction)
    return files, labels, names, pick_split(split, {"train": train, "val": val}, hint)


def _deep_grey(image, path: Path):  # PIL.Image.Image -> PIL.Image.Image
    """A grey image of more than 8 bits (:data:`DEEP_MODES`) as a float image (mode ``"F"``) of values in [0, 1],
    scaled by its own bit depth; a DataError for values outside the depth its mode declares."""
    from PIL import Image

    white = DEEP_MODES[image.mode]
    values = np.asarray(image, dtype=np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low and high <= white):
        raise DataError(
            f"{path}: a {image.mode!r} image with values {low:g}..{high:g}, outside 0..{white:g}, the range read as "
            "black..white for that mode; save it as an 8- or 16-bit image."
        )
    return Image.fromarray((values / white).astype(np.float32), mode="F")


def _open(path: Path, mode: str | None):  # -> PIL.Image.Image, or (width, height) for mode None
    """The image at ``path`` converted to ``mode`` (its size alone, read from the header, for ``mode=None``);
    a DataError naming the file when Pillow cannot read it.

    Grey images of more than 8 bits (16-bit PNG, PGM and TIFF; :data:`DEEP_MODES`) come back as float images
    (mode ``"F"``) of values in [0, 1], scaled by their own bit depth, whatever ``mode`` is: Pillow's
    conversion to ``"L"`` or ``"RGB"`` would clip them to 8 bits."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if mode is None:
                return image.size
            return _deep_grey(image, path) if image.mode in DEEP_MODES else image.convert(mode)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: too many pixels to read safely ({exc}); shrink the image.") from None
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for unknown, truncated or corrupt files
        raise DataError(f"{path}: not an image Pillow can read ({exc}); replace or remove the file.") from None


def _check_budget(count: int, shape: tuple[int, ...], max_images: int, max_bytes: int, where: Path) -> None:
    """Refuse, before decoding, more than ``max_images`` images or ``max_bytes`` bytes of float32 pixels."""
    nbytes = count * int(np.prod(shape)) * 4
    if count > max_images or nbytes > max_bytes:
        raise DataError(
            f"{where}: this split has {count:,} images of {' x '.join(map(str, shape))} "
            f"({nbytes / 2**20:,.1f} MiB as float32), more than max_images={max_images:,} or "
            f"max_bytes={max_bytes:,}; pass a smaller size=, or raise max_images= / max_bytes= if the memory is there."
        )


def read_images(
    files: list[Path],
    size: tuple[int, int] | None,
    mode: str,
    max_images: int = MAX_IMAGES,
    max_bytes: int = MAX_BYTES,
) -> np.ndarray:
    """The images ``files`` as float32 ``(N, C, H, W)`` in [0, 1], converted to ``mode`` (``"RGB"`` or ``"L"``).

    Each image is resized (bilinear) to ``size``, ``(width, height)``; with ``size=None`` they keep their size,
    which must then be the same for all. The memory is checked (``max_images``, ``max_bytes``) before any image
    is decoded.

    Raises
    ------
    DataError
        A file is not a readable image, sizes differ with ``size=None``, or the images exceed the bounds.
    """
    from PIL import Image

    if not files:
        raise DataError("no image to read: the split is empty; give more images per class.")
    width, height = size if size is not None else common_size(files)
    shape = (MODES[mode], height, width)
    _check_budget(len(files), shape, max_images, max_bytes, files[0].parent.parent)
    out = np.empty((len(files), *shape), dtype=np.float32)
    for row, path in enumerate(files):
        image = _open(path, mode)
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32)
        if image.mode != "F":  # 8 bits a channel; float images of deeper grey are in [0, 1] already
            pixels = pixels / np.float32(255.0)
        out[row] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # one grey channel fills all
    return out


def common_size(files: list[Path]) -> tuple[int, int]:
    """The ``(width, height)`` all ``files`` share, read from their headers; a DataError naming two that differ."""
    first = _open(files[0], None)
    for path in files[1:]:
        found = _open(path, None)
        if found != first:
            raise DataError(
                f"{path}: {found[0]} x {found[1]} pixels, but {files[0].name} has {first[0]} x {first[1]}; "
                "with size=None every image must have the same size. Pass size=N to resize them to N x N."
            )
    return first


def _every_image(folder: Path) -> list[Path]:
    """Every image of the data set at ``folder``, in all its splits (listed, not decoded)."""
    layout = _split_layout(folder)
    if layout is None:
        return _listing(folder)[0]
    names = [p.name for p in _class_folders(layout["train"])]
    return [path for part in layout.values() for path in _listing(part, names)[0]]


@register_dataset(
    "folder", "images in class folders (root/<class>/*.png, or root/train, root/test), read with Pillow; on disk"
)
def folder(
    root: str | os.PathLike | None,
    split: str,
    *,
    size: int | None = 32,
    mode: str = "RGB",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    max_images: int = MAX_IMAGES,
    max_bytes: int = MAX_BYTES,
) -> ArrayDataset:
    """Images from class folders (see the module docstring), scaled to [0, 1].

    With one folder per class, ``"train"``, ``"val"`` and ``"test"`` are cut per class with a fixed seed;
    ``indices`` are positions in the sorted list of every image (class by class). With ``root/train`` and
    ``root/test``, ``"test"`` is ``root/test`` and ``indices`` are positions in the split folder read.

    Parameters
    ----------
    size
        Images are resized to ``size`` x ``size``; ``None`` keeps their size (the same for all).
    mode
        ``"RGB"`` (3 channels) or ``"L"`` (1 grey channel).
    val_fraction, test_fraction
        Shares of each class held out as ``val`` and ``test`` (``test_fraction`` only without ``root/test``,
        ``val_fraction`` only without ``root/val``).
    max_images, max_bytes
        The most images, and bytes of float32 pixels, one split may hold; more is refused before decoding.
    """
    folder_path = require_folder(root, "folder", _CONTENTS)
    if mode not in MODES:
        raise ConfigError(f"mode must be 'RGB' (colour) or 'L' (grey), got {mode!r}.")
    size = None if size is None else check_int(size, "size", 1, 4096)
    max_images = check_int(max_images, "max_images", 1)
    max_bytes = check_int(max_bytes, "max_bytes", 1)
    val_fraction = check_fraction(val_fraction, "val_fraction")
    test_fraction = check_fraction(test_fraction, "test_fraction")
    files, labels, names, rows = _rows(folder_path, split, val_fraction, test_fraction)
    # with size=None every image of every split must have one size, not only this split's
    target = (size, size) if size is not None else common_size(_every_image(folder_path))
    images = read_images([files[i] for i in rows], target, mode, max_images, max_bytes)
    return ArrayDataset(
        torch.from_numpy(images),
        torch.from_numpy(labels[rows]),
        name="folder",
        split=split,
        num_classes=len(names),
        task="classification",
        class_names=names,
        indices=rows,
    )
