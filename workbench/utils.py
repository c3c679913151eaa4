"""Small shared helpers: random states, seeding, atomic file writes, and parametrized modules made safe to edit."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ConfigError, ModelError

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
        if random_state < 0:
            raise ConfigError(f"random_state must be a non-negative int, got {random_state}.")
        return np.random.default_rng(int(random_state))
    raise ConfigError(
        f"random_state must be None, an int or a numpy.random.Generator, got {type(random_state).__name__}."
    )


def seed_from(random_state: RandomState) -> int:
    """A deterministic 32-bit seed drawn from ``random_state`` (for torch or legacy numpy APIs)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        check_random_state(random_state)  # validates
        return int(random_state) % (2**32)
    return int(check_random_state(random_state).integers(0, 2**32 - 1))


def legacy_random_state(random_state: RandomState) -> np.random.RandomState:
    """A legacy :class:`numpy.random.RandomState` (for libraries such as dppy) seeded from ``random_state``."""
    return np.random.RandomState(seed_from(random_state))


def check_writable_target(path: str | os.PathLike) -> Path:
    """``path`` as a Path when writing a file there replaces nothing but a regular file of ours.

    Raises
    ------
    ConfigError
        ``path`` exists and is not a regular file (a device such as ``/dev/null``, a pipe, a socket, a
        folder), or its folder is not a folder: renaming a new file over it would replace it.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:  # a dangling link, or no permission to look
            raise ConfigError(f"{path} cannot be checked before writing ({exc.strerror}); give another path.") from None
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
            raise ConfigError(
                f"{path} exists and is {what}, not a regular file; the workbench writes only regular files and "
                "never replaces anything else: give a file path."
            )
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"{path.parent} is not a folder, so {path.name} cannot be written there; give another path.")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, then rename.

    A ``path`` that exists and is not a regular file is refused (:func:`check_writable_target`)."""
    path = check_writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode(encoding))


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
