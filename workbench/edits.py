"""What was done to a model: its architecture spec with one ordered edit history, restorable weight
parametrizations, and the notes transforms leave on it.

A model built by :func:`workbench.zoo.create_model` carries ``model.workbench_spec``::

    {"name": "lenet300", "kwargs": {...},
     "edits": [{"op": "plan", "plan": {...}},                 # unit surgery (workbench.surgery.apply)
               {"op": "factorize", "method": "svd", ...},     # low-rank layers
               {"op": "prune", "rate": 0.9, ...},             # pruning masks
               {"op": "fixed-point", "weight_bits": 8, ...}]} # quantizers, DCT / hashing, ...

Any other model gets ``{"user": "mypkg.nets:ResNet56", "edits": [...]}`` at its first edit
(:func:`user_spec`); its checkpoint is rebuilt on the architecture the user passes.

Every transform appends one edit with :func:`record_edit`, in the order the edits were made.
:mod:`workbench.checkpoints` replays the edits that change the architecture (plans, factorizations,
inserted or wrapped modules) in that order, and restores the weight parametrizations (masks,
quantizers, shared weights, hashed buckets) a model has when it is saved; their values come from the
``state_dict``. A parametrization class is restorable when it is registered with :func:`restorable` and
implements ``config() -> dict`` (JSON) and ``placeholder(config, shape)`` (an instance whose buffers
have the right shapes for ``load_state_dict`` to fill).

Side results of transforms (a pruning log, a pipeline's record, soft weight-sharing's prior, Deep
Compression's encoded streams, the plan a shrink applied) are notes: :func:`set_note` / :func:`note`,
kept in one dictionary ``model.workbench_notes``.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from workbench.registry import Registry

SPEC = "workbench_spec"
NOTES = "workbench_notes"

#: Weight parametrization classes a checkpoint can restore, by name.
PARAMETRIZATIONS: Registry[type] = Registry("weight parametrization")


def restorable(name: str):
    """Class decorator: register a weight parametrization class so that checkpoints restore it.

    The class implements ``config(self) -> dict`` (JSON-serializable constructor settings) and the
    classmethod ``placeholder(cls, config, shape)`` returning an instance for a weight of ``shape``
    whose buffers and ``right_inverse`` have the shapes of the saved ones.
    """

    def decorator(cls: type) -> type:
        for method in ("config", "placeholder"):
            if not callable(getattr(cls, method, None)):
                raise TypeError(f"restorable parametrization {cls.__name__} lacks {method}()")
        cls.restorable_name = name
        return PARAMETRIZATIONS.register(name)(cls)

    return decorator


def edits_of(model: nn.Module) -> list[dict[str, Any]]:
    """The ordered edit history of ``model`` (empty for a model without a spec or without edits)."""
    spec = getattr(model, SPEC, None)
    return copy.deepcopy(spec.get("edits", [])) if spec else []


def user_spec(model: nn.Module) -> dict[str, Any]:
    """The spec of a model the zoo did not build: its class (``"module:QualName"``), for checks only: a
    checkpoint of it is rebuilt on the architecture its user passes, never by importing that name."""
    return {"user": f"{type(model).__module__}:{type(model).__qualname__}"}


def record_edit(model: nn.Module, op: str, **details: Any) -> nn.Module:
    """Append the edit ``{"op": op, **details}`` to ``model``'s history (a user's model gets a
    :func:`user_spec` first); returns ``model``. ``details`` must be JSON-serializable (numbers, strings,
    lists, dicts)."""
    spec = getattr(model, SPEC, None)
    spec = copy.deepcopy(spec) if spec is not None else user_spec(model)  # never share a history with a copy
    spec.setdefault("edits", []).append({"op": op, **details})
    setattr(model, SPEC, spec)
    return model


def note(model: nn.Module, key: str, default: Any = None) -> Any:
    """The note ``key`` a transform left on ``model`` (``default`` if none)."""
    return getattr(model, NOTES, {}).get(key, default)


def set_note(model: nn.Module, key: str, value: Any) -> nn.Module:
    """Keep ``value`` as note ``key`` of ``model`` (not a submodule, not saved in checkpoints); returns ``model``."""
    notes = dict(getattr(model, NOTES, {}))
    notes[key] = value
    object.__setattr__(model, NOTES, notes)  # a plain attribute even when a value is a module
    return model
