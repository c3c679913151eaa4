"""Helpers shared by the on-disk data sets: checking ``root`` and reading (possibly gzipped) files."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from workbench.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"


def require_folder(root: str | os.PathLike | None, name: str, contents: str) -> Path:
    """The folder ``root`` as a Path; a :class:`DataError` saying what to pass when it is missing.

    ``contents`` describes what the folder should hold (used in the messages).
    """
    if root is None:
        raise DataError(f"data set {name!r} is read from disk: pass root=PATH to the folder containing {contents}.")
    folder = Path(root).expanduser()
    if not folder.exists():
        raise DataError(f"{folder}: folder not found. Pass root=PATH to the folder containing {contents}.")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder. Pass root=PATH to the folder containing {contents}.")
    return folder


def read_maybe_gzipped(path: Path) -> bytes:
    """The bytes of ``path``, decompressed when it is gzipped (``.gz`` suffix or gzip magic bytes)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    if path.suffix == ".gz" or data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path}: corrupt gzip data ({exc}); download the file again or store it unpacked."
            ) from exc
    return data
