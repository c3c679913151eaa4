"""Helpers shared by the on-disk data sets: checking ``root``, reading (possibly gzipped) files, and unpickling
with a restricted unpickler that runs no code from the file."""

from __future__ import annotations

import gzip
import os
import pickle
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

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


def is_gzipped(path: Path) -> bool:
    """Whether ``path`` is gzipped (``.gz`` suffix or the gzip magic bytes)."""
    with path.open("rb") as handle:
        return path.suffix == ".gz" or handle.read(2) == _GZIP_MAGIC


def read_maybe_gzipped(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path``, decompressed when it is gzipped (``.gz`` suffix or gzip magic bytes).

    With ``limit``, at most ``limit + 1`` bytes are read or decompressed (a caller that knows the size a valid
    file has sees an overlong one without reading it whole)."""
    try:
        gzipped = is_gzipped(path)
        with path.open("rb") as handle:
            if not gzipped:
                return handle.read(-1 if limit is None else limit + 1)
            with gzip.open(handle) as unpacked:
                return unpacked.read(-1 if limit is None else limit + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc}); download the file again or store it unpacked.") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc


def read_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of ``path`` (decompressed when it is gzipped), without reading the rest."""
    try:
        with path.open("rb") as handle:
            head = handle.read(size)
            if path.suffix == ".gz" or head[:2] == _GZIP_MAGIC:
                handle.seek(0)
                with gzip.open(handle) as unpacked:
                    head = unpacked.read(size)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc}); download the file again or store it unpacked.") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    return head


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only the globals in ``allowed``; any other is refused before it is imported.

    A pickle runs code only through the classes and functions it names (``find_class``), so limiting
    them to plain data constructors makes reading a file safe. ``allowed`` maps ``(module, name)`` to the
    object to use; ``contents`` says what the file should hold (used in the message). Strings pickled by
    Python 2 are returned as ``bytes``.
    """

    def __init__(self, handle: BinaryIO, path: Path, allowed: Mapping[tuple[str, str], Any], contents: str) -> None:
        super().__init__(handle, encoding="bytes")
        self._path, self._allowed, self._contents = path, allowed, contents

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"{self._path}: refused to unpickle {module}.{name}: {self._contents}, nothing else; this file is "
                "not one (it may be crafted to run code). Nothing from it was run: download the data set again."
            ) from None


def load_restricted_pickle(
    path: Path, allowed: Mapping[tuple[str, str], Any], contents: str, what: str = "pickle"
) -> Any:
    """Unpickle ``path`` with a :class:`RestrictedUnpickler`; every failure is a :class:`DataError` naming the file
    (``what`` names the kind of file in the message)."""
    try:
        with path.open("rb") as handle:
            return RestrictedUnpickler(handle, path, allowed, contents).load()
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    except Exception as exc:  # a corrupt pickle can fail in many ways (UnpicklingError, EOFError, ValueError, ...)
        raise DataError(
            f"{path}: not a readable {what} ({type(exc).__name__}: {exc}); download the file again."
        ) from exc
