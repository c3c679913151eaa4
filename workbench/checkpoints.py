"""Checkpoints: a model's architecture spec with its edit history (JSON) and its weights, loaded without
running pickled code.

A checkpoint is a ``torch.save`` file holding one dict::

    {"format": "workbench-checkpoint", "version": 2,
     "spec": '{"name": "mlp", "kwargs": {...}, "edits": [...], "parametrizations": [...]}',  # JSON text
     "metadata": '{...}',                           # JSON text: anything the caller wants to keep
     "state_dict": {...}}                           # the weights, masks and quantizer buffers, as tensors

:func:`load_checkpoint` reads it with ``torch.load(..., weights_only=True)`` and rebuilds the model with
:func:`build_from_spec`: the zoo architecture, then every edit of its history that changes the
architecture replayed in order (unit surgery plans, factorizations, inserted or wrapped modules; see
:mod:`workbench.edits`), then the weight parametrizations the model had when it was saved (pruning
masks, fixed point, shared weights, binary / ternary / power-of-two, DCT and hashed weights), and last
the ``state_dict``. So a model pruned, factorized and quantized in any order is saved and restored
exactly, masks included. This module sits above ``surgery``, ``quantize`` and ``sparse``: it restores
architectures, it does not train.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.edits import PARAMETRIZATIONS, SPEC, user_spec
from workbench.errors import CheckpointError, ConfigError, WorkbenchError
from workbench.numeric import unusable_numbers
from workbench.utils import MAX_JSON_DEPTH, atomic_write_bytes, check_path, json_depth, physical_memory

FORMAT = "workbench-checkpoint"
VERSION = 2
_RESAVE = "re-save it with workbench.checkpoints.save_checkpoint(path, model)"


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, torch.device, torch.dtype)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _to_json(what: str, value: Any) -> str:
    try:
        return json.dumps(value, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"the checkpoint {what} must be JSON-serializable (numbers, strings, lists, dicts): {exc}."
        ) from None


def check_spec(spec: Any) -> dict[str, Any]:
    """``spec`` if it is a dict with a string ``name`` (a zoo model) or ``user`` (a user's class) and a dict
    ``kwargs``; ConfigError otherwise."""
    if (
        not isinstance(spec, dict)
        or not (isinstance(spec.get("name"), str) or isinstance(spec.get("user"), str))
        or not isinstance(spec.get("kwargs", {}), dict)
    ):
        raise ConfigError(
            f"an architecture spec is a dict {{'name': <zoo model name>, 'kwargs': {{...}}}} or {{'user': "
            f"'module:Class'}}, got {str(spec)[:200]}."
        )
    bad = unusable_numbers(spec.get("kwargs", {}), "kwargs")
    if bad:
        places = ", ".join(f"{place} = {number!r}" for place, number in bad[:5])
        raise ConfigError(
            f"an architecture spec's arguments are finite numbers that fit in 64 bits; this one has {places}."
        )
    return spec


def _base_model(spec: dict[str, Any], base: Any) -> nn.Module:
    """A fresh copy of the user's architecture ``base`` (a module or a factory) for a ``user`` spec."""
    if base is None:
        raise CheckpointError(
            f"this checkpoint holds a model of your own ({spec['user']}), which the workbench never imports from "
            "a file: pass its architecture, load_checkpoint(path, base=MyNet()) or base=make_my_net."
        )
    if not (isinstance(base, nn.Module) or callable(base)):
        raise CheckpointError(f"base must be an nn.Module or a function returning one, got {type(base).__name__}.")
    try:
        model = copy.deepcopy(base) if isinstance(base, nn.Module) else base()
    except Exception as exc:  # the user's factory failed
        raise CheckpointError(f"base() failed: {type(exc).__name__}: {str(exc)[:300]}") from exc
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"base must be an nn.Module or a function returning one, got {type(model).__name__}.")
    found = f"{type(model).__module__}:{type(model).__qualname__}"
    if found.split(":")[-1] != spec["user"].split(":")[-1]:
        raise CheckpointError(
            f"the checkpoint was saved from {spec['user']}, but base is a {found}; pass the architecture it was "
            "saved from."
        )
    for edit in spec.get("edits", []):  # a base that already carries edits would replay them twice
        if edit in getattr(model, "workbench_spec", {}).get("edits", []):
            raise CheckpointError("base already carries edits; pass the original, unedited architecture.")
    return model


def _replays() -> dict[str, Callable[[nn.Module, dict[str, Any]], nn.Module]]:
    """Edit op -> the function that rebuilds the architecture that edit made (other ops change only
    numbers, restored from the parametrizations and the state_dict)."""
    from workbench.quantize.binary import replay_quantized_backprop, replay_sign_activations
    from workbench.quantize.fixed_point import replay_activation_quantizers
    from workbench.surgery.apply import replay_plan
    from workbench.surgery.factorize import refactorize
    from workbench.surgery.sparse_conv import replay_sparse_decompose

    return {
        "plan": replay_plan,
        "factorize": refactorize,
        "sparse-decompose": replay_sparse_decompose,
        "activation-quantizers": replay_activation_quantizers,
        "sign-activations": replay_sign_activations,
        "quantized-backprop": replay_quantized_backprop,
    }


def _history(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The spec's edits, reading specs written before edit histories (``plans``, then ``steps``) too."""
    if "edits" in spec:
        return list(spec["edits"])
    plans = [{"op": "plan", "plan": plan} for plan in spec.get("plans", [])]
    return plans + [{"op": "factorize", **step} for step in spec.get("steps", [])]


def _describe(edit: dict[str, Any]) -> str:
    return f"edit {edit.get('op')!r}" + (f" of layers {', '.join(edit['layers'])}" if edit.get("layers") else "")


def build_from_spec(spec: dict[str, Any], base: Any = None) -> nn.Module:
    """Build the (untrained) model an architecture spec describes.

    ``spec`` is ``{"name": <registered zoo model>, "kwargs": {...}}`` as made by
    :func:`workbench.zoo.model_spec`, or ``{"user": "module:Class"}`` for a user's model (rebuilt on a copy
    of ``base``, a module or a factory), optionally with ``"edits"`` (the edit history, replayed in order)
    and ``"parametrizations"`` (attached last, as :func:`save_checkpoint` records them).

    Raises
    ------
    UnknownNameError
        The model name is not registered.
    ConfigError
        The spec is malformed or its arguments do not fit the model.
    CheckpointError
        An edit of the history cannot be replayed, or a parametrization is unknown.
    """
    from workbench.zoo import create_model
    from workbench.zoo.memory import check_memory

    spec = check_spec(spec)
    if "user" in spec and "name" not in spec:
        model = _base_model(spec, base)
    else:
        check_memory(spec["name"], 1, **spec.get("kwargs", {}))  # refuse a size this machine cannot hold
        model = create_model(spec["name"], **spec.get("kwargs", {}))
    replays = _replays()
    for index, edit in enumerate(_history(spec)):
        replay = replays.get(edit.get("op"))
        if replay is None:
            continue
        try:
            model = replay(model, edit)
        except (WorkbenchError, KeyError, AttributeError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"cannot replay {_describe(edit)} (number {index} of the history) on "
                f"{spec.get('name', spec.get('user'))!r}: "
                f"{type(exc).__name__}: {str(exc)[:300]}"
            ) from None
    _attach_parametrizations(model, spec.get("parametrizations", []))
    model.workbench_spec = {key: value for key, value in spec.items() if key != "parametrizations"}
    return model


def parametrizations_of(model: nn.Module) -> list[dict[str, Any]]:
    """Every weight parametrization of ``model`` as JSON: layer, tensor and the chain of registered
    parametrizations with their settings (see :func:`workbench.edits.restorable`).

    Raises
    ------
    CheckpointError
        A parametrization is not registered as restorable (the message names the layer and class).
    """
    from torch.nn.utils import parametrize

    _register_builtin()
    found = []
    for name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor, chain in module.parametrizations.items():
            entries = []
            for p in chain:
                key = getattr(type(p), "restorable_name", None)
                if key is None or key not in PARAMETRIZATIONS:
                    raise CheckpointError(
                        f"layer {name!r} has a {type(p).__name__} parametrization on its {tensor}, which checkpoints "
                        "cannot restore: register its class with workbench.edits.restorable (config() and "
                        "placeholder()), or bake it in first (workbench.sparse.bake)."
                    )
                entries.append({"type": key, "config": p.config()})
            found.append(
                {"layer": name, "tensor": tensor, "shape": list(getattr(module, tensor).shape), "chain": entries}
            )
    return found


def _attach_parametrizations(model: nn.Module, entries: list[dict[str, Any]]) -> None:
    from workbench.sparse.layers import register

    _register_builtin()
    for entry in entries:
        try:
            module = model.get_submodule(entry["layer"])
            shape = tuple(entry["shape"])
            for item in entry["chain"]:
                cls = PARAMETRIZATIONS.get(item["type"])
                register(module, cls.placeholder(item["config"], shape), entry["tensor"])
        except (WorkbenchError, KeyError, AttributeError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"cannot restore the parametrization of {entry.get('layer')!r}.{entry.get('tensor')}: "
                f"{type(exc).__name__}: {str(exc)[:300]}"
            ) from None


def _register_builtin() -> None:
    """Import the packages whose parametrization classes register themselves."""
    import workbench.quantize  # noqa: F401
    import workbench.sparse  # noqa: F401


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    spec: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s architecture spec (with its edit history and weight parametrizations), ``metadata``
    and weights to ``path`` atomically; return the path.

    Parameters
    ----------
    spec
        How to rebuild the architecture; default the model's own (a zoo model's name and arguments with its
        edit history, or for a model of your own its class and edit history: load it with ``base=``).
    metadata
        JSON-serializable information kept with the weights (data set, scores, seed...); numpy and
        tensor scalars are stored as numbers.

    Raises
    ------
    CheckpointError
        The model has a weight parametrization checkpoints cannot restore.
    ConfigError
        ``path`` cannot be written: not a usable path, or an existing device, folder or read-only file
        (:func:`workbench.utils.check_writable_target`).
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"save_checkpoint needs a torch.nn.Module, got {type(model).__name__}.")
    if spec is None:
        spec = copy.deepcopy(getattr(model, SPEC, None) or user_spec(model))
    spec = check_spec(spec)
    spec["parametrizations"] = parametrizations_of(model)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": _to_json("spec", spec),
        "metadata": _to_json("metadata", {} if metadata is None else metadata),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _unsafe_globals(path: Path, error: Exception) -> list[str]:
    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if finder is not None:
        try:
            return list(finder(str(path)))
        except Exception:  # noqa: BLE001 - only a hint for the message
            pass
    text = str(error)
    marker = "GLOBAL "
    return [text.split(marker, 1)[1].split()[0]] if marker in text else []


def _read(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path}: check the path, or write one with workbench.checkpoints.save_checkpoint."
        )
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file; give the path of a checkpoint file.")
    size, memory = path.stat().st_size, physical_memory()
    if memory and size > memory:
        raise CheckpointError(
            f"{path} holds {size / 2**30:.1f} GiB, more than this machine's {memory / 2**30:.1f} GiB of memory: it "
            "cannot be a checkpoint this machine could use; check the path."
        )
    try:  # mapped, not read whole: a file that is not a torch archive fails before its bytes are read
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        names = _unsafe_globals(path, exc)
        if any(name.startswith("torch.nn.") for name in names):
            raise CheckpointError(
                f"{path}: this file holds a pickled module, not a workbench checkpoint; "
                f"load it where its code is trusted and {_RESAVE}."
            ) from None
        found = f" (it refers to {', '.join(names[:5])})" if names else ""
        raise CheckpointError(
            f"{path} holds pickled Python objects that a safe load refuses{found}; it is not a workbench "
            f"checkpoint. If you trust it, load the model yourself and {_RESAVE}."
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a file it cannot read
        raise CheckpointError(
            f"{path} is not a readable torch file (corrupt, truncated or another format: {type(exc).__name__}: "
            f"{str(exc)[:200]}); write checkpoints with workbench.checkpoints.save_checkpoint."
        ) from None


def _check_format(path: Path, payload: Any) -> None:
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        version = payload.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise CheckpointError(
                f"{path} is a workbench checkpoint of version {version!r}; this workbench reads version {VERSION}. "
                "Upgrade the workbench."
            )
        missing = [key for key in ("spec", "metadata", "state_dict") if key not in payload]
        if missing:
            raise CheckpointError(f"{path} is a damaged workbench checkpoint: it lacks {', '.join(missing)}.")
        return
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(
            f"{path} holds a bare state_dict, not a workbench checkpoint: it has no architecture spec. "
            f"Load it into a model built with workbench.zoo.create_model (model.load_state_dict(...)) and {_RESAVE}."
        )
    keys = f" (keys: {', '.join(map(str, list(payload)[:6]))})" if isinstance(payload, dict) else ""
    raise CheckpointError(
        f"{path} is a torch file of type {type(payload).__name__}{keys} without the '{FORMAT}' format marker, "
        f"so it is not a workbench checkpoint; {_RESAVE}."
    )


def _parse_json(path: Path, payload: dict[str, Any], key: str) -> Any:
    text = payload[key]
    if isinstance(text, str) and json_depth(text) > MAX_JSON_DEPTH:
        raise CheckpointError(
            f"{path} is a damaged workbench checkpoint: its {key} is nested deeper than {MAX_JSON_DEPTH} levels."
        )
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is a damaged workbench checkpoint: its {key} is not valid JSON ({exc})."
        ) from None


def _mismatch(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> str:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
            parts.append(f"{label} {', '.join(items[:5])}{more}")
    return "; ".join(parts)


def load_checkpoint(path: str | os.PathLike, base: Any = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path``; return ``(model in eval mode, metadata)``.

    The file is read with ``torch.load(..., weights_only=True)`` (no pickled code runs), the architecture
    rebuilt by :func:`build_from_spec` and the weights loaded strictly. A model of your own (not the zoo's)
    is rebuilt on ``base``: its architecture as you built it before any edit (a module, copied, or a
    function returning one); its edit history (plans, factorizations, quantizers) is replayed on it.

    Raises
    ------
    CheckpointError
        ``path`` is not a usable path (None, empty, names too long: :func:`workbench.utils.check_path`), or the
        file is missing, unreadable, a pickled module or bare state_dict rather than a workbench
        checkpoint, names an unknown model, or holds weights that do not fit the architecture.
    """
    path = check_path(path, "the checkpoint path", CheckpointError)
    payload = _read(path)
    _check_format(path, payload)
    spec = _parse_json(path, payload, "spec")
    metadata = _parse_json(path, payload, "metadata")
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"{path} is a damaged workbench checkpoint: its metadata is a JSON {type(metadata).__name__}, "
            f"not an object; {_RESAVE}."
        )
    if isinstance(spec, dict):
        for key in ("edits", "plans", "steps", "parametrizations"):
            items = spec.get(key, [])
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise CheckpointError(
                    f"{path} is a damaged workbench checkpoint: its spec's {key!r} is not a list of JSON objects."
                )
    try:
        model = build_from_spec(spec, base)
    except WorkbenchError as exc:
        named = isinstance(spec, dict) and "name" in spec
        what = (
            f"{spec.get('name', spec.get('user'))!r} with {len(_history(spec))} edits"
            if isinstance(spec, dict)
            else type(spec).__name__
        )
        hint = (
            " If the model is your own, register it with workbench.zoo.register_model before loading." if named else ""
        )
        raise CheckpointError(f"{path}: cannot rebuild its architecture ({what}): {exc}{hint}") from None
    state_dict = payload["state_dict"]
    if not isinstance(state_dict, dict):
        raise CheckpointError(
            f"{path} is a damaged workbench checkpoint: its state_dict is a {type(state_dict).__name__}."
        )
    odd = [
        f"{key!r} ({type(value).__name__})" for key, value in state_dict.items() if not isinstance(value, torch.Tensor)
    ]
    if odd:
        more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
        raise CheckpointError(
            f"{path} is a damaged workbench checkpoint: its state_dict holds entries that are not tensors: "
            f"{', '.join(odd[:5])}{more}."
        )
    problems = _mismatch(model, state_dict)
    if problems:
        raise CheckpointError(
            f"{path}: the weights do not fit the architecture {spec.get('name')!r}: {problems}. "
            "The checkpoint was saved from a different model than its spec describes; re-save it with the right spec."
        )
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not load into {spec.get('name')!r}: {exc}") from None
    model.eval()
    return model, metadata
