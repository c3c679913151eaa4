"""Small shared helpers: random states, seeding, atomic file writes, and parametrized modules made safe to edit."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ConfigError, ModelError, WorkbenchError

RandomState = int | np.random.Generator | None


def check_random_state(random_state: RandomState) -> np.random.Generator:
    """Turn ``None``, an int or a Generator into a :class:`numpy.random.Generator`.

    The same int always gives the same stream; a Generator is used as it is (and advanced).
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if not 0 <= random_state < 2**64:
            raise ConfigError(f"random_state must be an int in [0, 2**64), got {random_state}.")
        return np.random.default_rng(int(random_state))
    raise ConfigError(
        f"random_state must be None, an int or a numpy.random.Generator, got {type(random_state).__name__}."
    )


def seed_from(random_state: RandomState) -> int:
    """A deterministic 32-bit seed drawn from ``random_state`` (for torch or legacy numpy APIs).

    An int below 2**32 is its own seed; a larger one is mixed down to 32 bits by :class:`numpy.random.SeedSequence`
    (not reduced mod 2**32, so that 0 and 2**32 give different streams). Two ints can still meet one seed (rarely,
    when one is 2**32 or more): a study refuses seeds that do.
    """
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        check_random_state(random_state)  # validates
        value = int(random_state)
        if value < 2**32:
            return value
        return int(np.random.SeedSequence(value).generate_state(1, np.uint32)[0])
    return int(check_random_state(random_state).integers(0, 2**32 - 1))


def legacy_random_state(random_state: RandomState) -> np.random.RandomState:
    """A legacy :class:`numpy.random.RandomState` (for libraries such as dppy) seeded from ``random_state``."""
    return np.random.RandomState(seed_from(random_state))


#: Longest name of one path component and of a whole path where the file system does not say (POSIX's usual).
DEFAULT_NAME_MAX, DEFAULT_PATH_MAX = 255, 4096
#: Characters of an output's name kept in the name of its temporary file (which adds a few of its own), so that
#: a name within the file system's limit still leaves room for them.
TEMP_NAME = 100


def _path_limits(path: Path) -> tuple[int, int]:
    """Longest name and longest path (in bytes) the file system of ``path``'s nearest existing folder accepts."""
    folder = Path(os.path.abspath(path))
    while not os.path.isdir(folder) and folder != folder.parent:
        folder = folder.parent
    limits = []
    for name, default in (("PC_NAME_MAX", DEFAULT_NAME_MAX), ("PC_PATH_MAX", DEFAULT_PATH_MAX)):
        try:
            limits.append(int(os.pathconf(folder, name)))
        except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or the system does not say
            limits.append(default)
    return limits[0], limits[1]


def check_path(path: Any, what: str = "path", error: type[WorkbenchError] = ConfigError) -> Path:
    """``path`` as a Path when it can name a file here, for every reader and writer of files.

    A path is a ``str`` or an ``os.PathLike`` giving one: not None, not empty, without a NUL character, every
    name in it within the file system's limit (``os.pathconf`` ``PC_NAME_MAX``, in bytes) and the whole within
    ``PC_PATH_MAX``.

    Parameters
    ----------
    what
        How messages name the path (``"--out"``, ``"the checkpoint path"``).
    error
        The :class:`~workbench.errors.WorkbenchError` subclass raised (callers keep their own: a checkpoint
        reader raises ``CheckpointError``).

    Raises
    ------
    error
        ``path`` is of another type, empty, holds a NUL character or names longer than the file system allows.
    """
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str):
        raise error(
            f"{what} must be a str or os.PathLike naming a file, got {type(path).__name__}"
            + (f" {path!r}" if isinstance(path, bytes) else "")
            + "."
        )
    if not text:
        raise error(f"{what} is empty; give a file path.")
    if "\0" in text:
        raise error(f"{what} {text!r} holds a NUL character, which no file name can hold; give another path.")
    try:
        encoded = os.fsencode(os.path.abspath(text))
    except UnicodeError:
        raise error(f"{what} {text!r} holds characters this system cannot encode in a file name.") from None
    path = Path(text)
    name_max, path_max = _path_limits(path)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            raise error(
                f"{what}: the name {part[:40]}... is {size} bytes long, more than the {name_max} bytes this file "
                "system allows in one name; give a shorter name."
            )
    if len(encoded) > path_max:
        raise error(
            f"{what}: the path is {len(encoded)} bytes long, more than the {path_max} bytes this file system allows; "
            "give a shorter path."
        )
    return path


def _same_file(a: Path, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (or cannot be looked at): not the same file
        return False


def check_writable_target(
    path: Any,
    inputs: Mapping[str, str | os.PathLike | None] | None = None,
    error: type[WorkbenchError] = ConfigError,
) -> Path:
    """``path`` as a Path when writing a file there replaces nothing but a regular, writable file of ours.

    Parameters
    ----------
    inputs
        What the writing command reads, by what it is (``{"the store": store_path}``): a target that is one of
        them (the same file, through any link) is refused, so that an output never replaces its own input.
    error
        The :class:`~workbench.errors.WorkbenchError` subclass raised.

    Raises
    ------
    error
        ``path`` is not a usable path (:func:`check_path`); it exists and is not a regular file (a device such as
        ``/dev/null``, a pipe, a socket, a folder), is read-only, or is one of ``inputs``; or its folder is not a
        folder: renaming a new file over it would replace it.
    """
    path = check_path(path, "the output path", error)
    if path.exists() or path.is_symlink():
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:  # a dangling link, or no permission to look
            raise error(f"{path} cannot be checked before writing ({exc.strerror}); give another path.") from None
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
            raise error(
                f"{path} exists and is {what}, not a regular file; the workbench writes only regular files and "
                "never replaces anything else: give a file path."
            )
        for name, source in (inputs or {}).items():
            if source is not None and _same_file(path, source):
                raise error(
                    f"{path} is {name} this command reads ({source}); writing the output there would replace it and "
                    "lose what it holds: give another path."
                )
        if not mode & stat.S_IWUSR or not os.access(path, os.W_OK):
            raise error(
                f"{path} is read-only (mode {stat.S_IMODE(mode):o}): the workbench does not replace a file that was "
                f"write-protected; make it writable first (chmod u+w '{path}') to overwrite it, or give another path."
            )
    if path.parent.exists() and not path.parent.is_dir():
        raise error(f"{path.parent} is not a folder, so {path.name} cannot be written there; give another path.")
    return path


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, inputs: Mapping[str, str | os.PathLike | None] | None = None
) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, then rename.

    A ``path`` that exists and is not a regular, writable file, or that is one of the writer's ``inputs``, is
    refused (:func:`check_writable_target`)."""
    path = check_writable_target(path, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:TEMP_NAME]}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual permissions
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(
    path: str | os.PathLike,
    text: str,
    encoding: str = "utf-8",
    inputs: Mapping[str, str | os.PathLike | None] | None = None,
) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode(encoding), inputs)


def lazy_exports(package: str, exports: dict[str, str]):
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) on first access of ``name``.

    Packages use it so that importing them stays cheap: ``__getattr__ = lazy_exports(__name__, {...})``.
    """
    import importlib

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def own_class(module: Any) -> Any:
    """Give a parametrized ``module`` a class of its own, in place; returns it.

    torch keeps a parametrized tensor's property on the module's (generated) class, and a deep copy
    shares that class with its original, so adding or removing a parametrization on the copy would
    change the original too. Call it before adding or removing a parametrization on a copied module.
    """
    from torch.nn.utils import parametrize

    if parametrize.is_parametrized(module):
        cls = type(module)
        body = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
        module.__class__ = type(cls.__name__, cls.__bases__, body)
    return module


def example_batch(model: Any, batch_size: int = 1, random_state: int = 0) -> Any:
    """A seeded random batch of the shape ``model`` declares (``model.input_shape``), on the model's device.

    Raises
    ------
    ModelError
        The model declares no ``input_shape``: the caller must pass an example input itself.
    """
    import torch

    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ModelError(
            f"{type(model).__name__} has no `input_shape` attribute; pass an example input of the right shape "
            "yourself (example_input=x, a batch of what the model takes)."
        )
    generator = torch.Generator().manual_seed(random_state)
    parameter = next(iter(model.parameters()), None)
    batch = torch.randn(batch_size, *shape, generator=generator)
    return batch if parameter is None else batch.to(device=parameter.device)


def to_model(batch: Any, model: Any) -> Any:
    """``batch`` on ``model``'s device, floating inputs in the model's floating dtype (token ids stay integers)."""
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    if parameter is None:
        return batch
    if batch.is_floating_point():
        return batch.to(device=parameter.device, dtype=parameter.dtype)
    return batch.to(device=parameter.device)


#: Deepest nesting of lists and objects accepted in JSON the workbench reads (plans, checkpoint specs).
MAX_JSON_DEPTH = 100


def json_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON ``text`` (brackets inside strings ignored), without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def physical_memory() -> int:
    """Bytes of physical memory of this machine (0 where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0
