"""Model zoo: ``create_model(name, **kw)`` and ``list_models()``.

Every model built here carries its architecture spec (``model.workbench_spec``: the registry name and
keyword arguments), its expected input shape without the batch dimension (``model.input_shape``) and its
task (``model.task``: "classification" or "segmentation"), so that checkpoints can rebuild it and tools
can make an example input (:func:`example_input`). Every zoo model traces with ``torch.fx``.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from workbench.errors import ConfigError, ModelError
from workbench.registry import Registry
from workbench.utils import RandomState, example_batch, seed_from

MODELS: Registry[nn.Module] = Registry("model")
register_model = MODELS.register

_LOADED = False


def _load_builtin_models() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from workbench.zoo import models  # noqa: F401  (registers the built-in models)


def list_models() -> list[str]:
    """Names of all registered models."""
    _load_builtin_models()
    return MODELS.names()


def describe_models() -> dict[str, str]:
    """Name -> one-line description of every registered model."""
    _load_builtin_models()
    return MODELS.describe()


def create_model(name: str, random_state: RandomState = None, **kwargs: Any) -> nn.Module:
    """Build the zoo model ``name`` with keyword arguments ``kwargs``.

    Parameters
    ----------
    name
        A registered model (:func:`list_models`).
    random_state
        Seed of the weight initialization (an int or a :class:`numpy.random.Generator`, which is advanced):
        the same seed builds bit-identical weights, as a study's base model of that seed starts from. The
        caller's global torch random state is left as it was. None: torch's global generator, as it stands.
    kwargs
        The model's arguments (``workbench models`` lists them); recorded in ``model.workbench_spec``.

    Raises
    ------
    UnknownNameError
        ``name`` is not registered (the message names the closest one).
    ConfigError
        An argument is invalid for that model, or ``random_state`` is not a seed.
    """
    _load_builtin_models()
    factory = MODELS.get(name)
    with _seeded(random_state):
        try:
            model = factory(**kwargs)
        except TypeError as exc:
            raise ConfigError(
                f"bad arguments for model {name!r}: {exc}. See `workbench models` for what it takes."
            ) from exc
    model.workbench_spec = {"name": name, "kwargs": copy.deepcopy(kwargs)}
    return model


@contextmanager
def _seeded(random_state: RandomState) -> Iterator[None]:
    """Inside the block torch's CPU generator (which initializes the weights of a model built on the CPU) is
    seeded from ``random_state``, and restored after it; nothing changes for ``random_state`` None."""
    if random_state is None:
        yield
        return
    seed = seed_from(random_state)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The architecture spec (``{"name", "kwargs"}``) of a zoo model; ModelError for other modules."""
    spec = getattr(model, "workbench_spec", None)
    if spec is None:
        raise ModelError(
            f"{type(model).__name__} was not built by workbench.zoo.create_model, so it has no architecture spec; "
            "build it with create_model(name, **kw) or pass the spec explicitly."
        )
    return copy.deepcopy(spec)


def example_input(model: nn.Module, batch_size: int = 1, random_state: int = 0) -> torch.Tensor:
    """A random input batch of the shape ``model`` expects (``model.input_shape``), on the model's device."""
    return example_batch(model, batch_size, random_state)


_DATA_ARGS = {
    # factory argument -> how to derive it from (input_shape, num_classes)
    "inputs": lambda shape, classes: int(math.prod(shape)),
    "classes": lambda shape, classes: int(classes),
    "in_channels": lambda shape, classes: int(shape[0]),
    "input_size": lambda shape, classes: int(shape[-1]),
    "resolution": lambda shape, classes: int(shape[-1]),
    "length": lambda shape, classes: int(shape[-1]),
}


def create_model_for_data(
    name: str, input_shape: tuple[int, ...], num_classes: int, random_state: RandomState = None, **kwargs: Any
) -> nn.Module:
    """Build zoo model ``name`` sized for data of ``input_shape`` (no batch dim) and ``num_classes``.

    Arguments the factory takes and ``kwargs`` does not give (``inputs``, ``classes``, ``in_channels``,
    ``input_size``, ``resolution``, ``length``) are derived from the data; an ``mlp`` without ``widths``
    gets one hidden layer of 100 units. Explicit ``kwargs`` always win. ``random_state`` seeds the
    initialization, as in :func:`create_model`.
    """
    _load_builtin_models()
    factory = MODELS.get(name)
    params = inspect.signature(factory).parameters
    derived = {
        arg: rule(tuple(input_shape), num_classes)
        for arg, rule in _DATA_ARGS.items()
        if arg in params and arg not in kwargs
    }
    if "widths" in params and "widths" not in kwargs:
        derived["widths"] = [int(math.prod(input_shape)), 100, int(num_classes)]
    return create_model(name, random_state, **derived, **kwargs)


from workbench.zoo.models._common import INIT_SCHEMES, init_weights_  # noqa: E402

__all__ = [
    "INIT_SCHEMES",
    "init_weights_",
    "create_model",
    "create_model_for_data",
    "list_models",
    "describe_models",
    "model_spec",
    "example_input",
    "register_model",
    "MODELS",
]
