"""Models and data of the researcher's own, named in a study file by import path: ``"package.module:callable"``.

A ``[[models]]`` entry's ``model = "mypkg.nets:resnet56"`` (with ``args``, its keyword arguments) and
``data = "mypkg.data:make_dataset"`` (called as ``make_dataset(split, **data_options)``) are imported and
called as the study author asks, the way running their own script would: the module must be importable where
the study runs (installed, or on ``PYTHONPATH``; on every worker of a Dask cluster). The workbench imports
nothing else by name: checkpoints of a user's model are rebuilt on the architecture this callable builds.

Every failure is a :class:`~workbench.errors.StudyError` naming the import path and what to do.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.errors import StudyError, closest

_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_import_path(text: str) -> bool:
    """Whether ``text`` names an object by import path (``"module:name"``) rather than a registered name."""
    return ":" in text


def resolve(path: str, what: str) -> Callable[..., Any]:
    """The callable that ``path`` (``"package.module:attribute"``) names, imported now.

    ``what`` says what it should make (``"a model"``, ``"a data set"``) in messages.

    Raises
    ------
    StudyError
        ``path`` is malformed, its module cannot be imported, it has no such attribute, or that is not callable.
    """
    if not _IMPORT_PATH.match(path):
        raise StudyError(
            f"{path!r} is not an import path; write 'package.module:function' (a module Python can import, a "
            f"colon, and the function or class in it that makes {what})."
        )
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        raise StudyError(
            f"{path!r}: module {missing!r} not found; install the package or put its folder on PYTHONPATH "
            "(on every worker, for a cluster)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while being imported
        raise StudyError(f"{path!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            names = [
                name
                for name, value in vars(module).items()
                if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == module_name
            ]
            raise StudyError(
                f"{path!r}: module {module_name!r} has no {attribute!r}.{closest(attribute, names)} "
                f"Its callables: {', '.join(names[:20]) or 'none'}."
            )
        found = getattr(found, part)
    if not callable(found):
        raise StudyError(f"{path!r} is a {type(found).__name__}, not a function or class that makes {what}.")
    return found


def check_arguments(path: str, function: Callable[..., Any], args: dict[str, Any], fixed: int = 0) -> None:
    """StudyError when ``function`` cannot take the keyword arguments ``args`` (after ``fixed`` positional ones)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin or C function: its arguments are checked when it is called
    try:
        signature.bind(*([None] * fixed), **args)
    except TypeError as exc:
        taken = ", ".join(p for p in list(signature.parameters)[fixed:]) or "none"
        raise StudyError(f"{path!r} cannot take the arguments {sorted(args)} ({exc}); it takes: {taken}.") from None


def build_model(path: str, args: dict[str, Any] | None = None) -> Any:
    """The ``nn.Module`` that the callable at ``path`` returns for the keyword arguments ``args``.

    Raises
    ------
    StudyError
        The callable cannot be imported (:func:`resolve`), fails, or returns something that is not an ``nn.Module``.
    """
    from torch import nn

    factory = resolve(path, "a model")
    try:
        model = factory(**(args or {}))
    except Exception as exc:  # noqa: BLE001 - the user's code failed
        raise StudyError(
            f"model {path!r} failed when called with {args or {}}: {type(exc).__name__}: {exc}; fix the function "
            "or its args."
        ) from None
    if not isinstance(model, nn.Module):
        raise StudyError(
            f"model {path!r} returned a {type(model).__name__}, not a torch.nn.Module; it must build the network."
        )
    return model


def model_factory(config: dict[str, Any]) -> Callable[[], Any] | None:
    """For a run's model config naming a user model (``model``), a function building it (from the current torch
    random state, which it leaves as it was); None for a zoo model."""
    path = config.get("model")
    if not path:
        return None
    args = dict(config.get("args") or {})

    def factory() -> Any:
        import torch

        with torch.random.fork_rng():  # the caller seeds it; building never shifts the caller's random stream
            return build_model(path, args)

    return factory


def load_data(path: str, split: str, options: dict[str, Any] | None = None) -> Any:
    """Split ``split`` of the user's data set: ``callable(split, **options)`` as a torch ``Dataset``.

    The callable returns a map-style ``torch.utils.data.Dataset`` of ``(input, target)`` items (used as it is)
    or a pair ``(inputs, targets)`` of tensors or arrays (integer class labels ``(N,)`` make an
    :class:`~workbench.datasets.ArrayDataset` of ``max + 1`` classes; other targets a ``TensorDataset``).

    Raises
    ------
    StudyError
        The callable cannot be imported, fails, or returns something else.
    """
    from torch.utils.data import Dataset

    function = resolve(path, "a data set")
    try:
        result = function(split, **(options or {}))
    except Exception as exc:  # noqa: BLE001 - the user's code failed
        raise StudyError(
            f"data {path!r} failed for split {split!r}: {type(exc).__name__}: {exc}; it is called as "
            f"{path.partition(':')[2]}(split, **data_options) with split 'train', 'val' or 'test'."
        ) from None
    if isinstance(result, Dataset):
        return result
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return _pair(path, split, *result)
    raise StudyError(
        f"data {path!r} returned a {type(result).__name__} for split {split!r}; return a torch Dataset of "
        "(input, target) items or an (inputs, targets) pair of tensors."
    )


def _pair(path: str, split: str, inputs: Any, targets: Any) -> Any:
    import numpy as np
    import torch
    from torch.utils.data import TensorDataset

    from workbench.datasets import ArrayDataset

    try:
        inputs, targets = (
            x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)) for x in (inputs, targets)
        )
    except (TypeError, ValueError, RuntimeError) as exc:
        raise StudyError(f"data {path!r}: the (inputs, targets) pair is not two arrays ({exc}).") from None
    if inputs.dim() == 0 or targets.dim() == 0 or len(inputs) != len(targets):
        raise StudyError(
            f"data {path!r}, split {split!r}: inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} must "
            "have one row per sample, as many of each."
        )
    if inputs.is_floating_point():
        inputs = inputs.float()
    labels = targets.dim() == 1 and len(targets) and not (targets.is_floating_point() or targets.dtype == torch.bool)
    if labels and inputs.dtype == torch.float32 and inputs.dim() > 1 and int(targets.min()) >= 0:
        targets = targets.long()
        return ArrayDataset(inputs, targets, name=path, split=split, num_classes=int(targets.max()) + 1)
    return TensorDataset(inputs, targets)


def input_shape_of(data: Any) -> tuple[int, ...]:
    """The shape of one input of ``data`` (its ``input_shape``, else that of its first sample)."""
    from workbench.datasets.batches import data_attribute, split_batch

    shape = data_attribute(data, "input_shape")
    if shape is not None:
        return tuple(int(d) for d in shape)
    inputs, _ = split_batch(data[0])
    return tuple(int(d) for d in getattr(inputs, "shape", ()))


def num_classes_of(data: Any) -> int:
    """The number of classes of ``data`` (its ``num_classes``, else one more than the largest label)."""
    from workbench.datasets.batches import Batches, data_attribute

    classes = data_attribute(data, "num_classes")
    if classes is not None:
        return int(classes)
    highest = -1
    for _, targets in Batches(data, 256, name="the training data"):
        if targets is None:
            raise StudyError("the training data has no targets; a zoo model needs class labels to size its output.")
        highest = max(highest, int(targets.max()))
    return highest + 1


def source_digest(path: str) -> str | None:
    """sha256 of the source file of the module ``path`` names (so that edited code makes new runs); None when
    the module has no source file."""
    module = importlib.import_module(path.partition(":")[0])
    try:
        source = inspect.getsourcefile(module)
    except TypeError:
        return None
    return hashlib.sha256(Path(source).read_bytes()).hexdigest() if source and Path(source).is_file() else None
