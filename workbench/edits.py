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

#: Every edit op a transform records (:func:`record_edit` refuses any other), by the module that records it. A
#: checkpoint whose history holds another op is refused (it was written by another version, or edited by hand).
EDIT_OPS = frozenset(
    {
        "plan",  # surgery.apply: unit surgery, replayed
        "factorize",  # surgery.factorize: low-rank layers, replayed
        "sparse-decompose",  # surgery.sparse_conv, replayed
        "activation-quantizers",  # quantize.fixed_point, replayed
        "fixed-point",  # quantize.fixed_point
        "fixed-point-biases",  # quantize.fixed_point
        "sign-activations",  # quantize.binary, replayed
        "quantized-backprop",  # quantize.binary, replayed
        "binary-connect",  # quantize.binary
        "ternary-connect",  # quantize.binary
        "power-of-two",  # quantize.binary
        "share",  # quantize.sharing
        "soft-sharing",  # quantize.soft_sharing
        "dct",  # quantize.frequency
        "hashed-dct",  # quantize.frequency
        "prune",  # sparse.magnitude
        "dynamic-surgery",  # sparse.dynamic_surgery
        "finish-surgery",  # sparse.dynamic_surgery
    }
)

#: Edit op -> {field: the values it may hold}, declared by the module that records the op (:func:`edit_fields`).
_FIELD_CHOICES: dict[str, dict[str, tuple[Any, ...]]] = {}


def _require_known(op: str) -> None:
    """ValueError for a transform recording an op that is not one of :data:`EDIT_OPS` (a programming error)."""
    if op not in EDIT_OPS:
        raise ValueError(
            f"edit op {op!r} is not in workbench.edits.EDIT_OPS; add it there with the module recording it"
        )


def edit_fields(op: str, **choices: Any) -> None:
    """Declare the values each named field of an ``op`` edit may hold, e.g. ``edit_fields("plan", fuse=FUSE_MODES)``
    (called by the module that records ``op``); :func:`edit_problem` holds recorded and loaded edits to them."""
    _require_known(op)
    _FIELD_CHOICES.setdefault(op, {}).update({field: tuple(values) for field, values in choices.items()})


def edit_problem(edit: Any) -> str | None:
    """Why ``edit`` is not an edit record this workbench can replay (None when it is): it must be a dict whose
    ``op`` is one of :data:`EDIT_OPS` and whose fields declared with :func:`edit_fields` hold allowed values. The
    one check of an edit record, used when it is recorded and when a checkpoint is loaded."""
    if not isinstance(edit, dict):
        return f"is a {type(edit).__name__}, not an edit record (a dict with an 'op')"
    op = edit.get("op")
    if not isinstance(op, str) or op not in EDIT_OPS:
        return f"has op {op!r}, which this workbench does not know (known: {', '.join(sorted(EDIT_OPS))})"
    for field, allowed in _FIELD_CHOICES.get(op, {}).items():
        value = edit.get(field)
        if field in edit and not any(type(value) is type(a) and value == a for a in allowed):
            return f"has {field} {value!r}, which a {op!r} edit does not take (one of: {', '.join(map(repr, allowed))})"
    return None


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
    lists, dicts). ``op`` is one of :data:`EDIT_OPS` (a new transform adds its op there)."""
    _require_known(op)
    problem = edit_problem({"op": op, **details})
    if problem:
        raise ValueError(f"the {op!r} edit {problem}; a checkpoint of it could not be loaded")
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
