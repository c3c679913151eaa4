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
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.edits import PARAMETRIZATIONS, SPEC, edit_problem, user_spec
from workbench.errors import CheckpointError, ConfigError, NumericsWarning, WorkbenchError
from workbench.numeric import unusable_numbers
from workbench.utils import MAX_JSON_DEPTH, atomic_write_bytes, check_path, json_depth, physical_memory

FORMAT = "workbench-checkpoint"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: specs with "plans" and "steps" instead of one edit history
#: Floating-point dtypes a spec's "dtype" may name (a model saved in it is restored in it).
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
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
    if "dtype" in spec and spec["dtype"] not in DTYPES:
        raise ConfigError(
            f"an architecture spec's dtype is one of {', '.join(DTYPES)}, got {str(spec['dtype'])[:100]!r}."
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
        problem = edit_problem(edit)
        if problem:
            raise CheckpointError(
                f"edit number {index} of the history {problem}; the checkpoint was written by another version or "
                "edited."
            )
        replay = replays.get(edit.get("op"))
        if replay is None:  # an op that changes only numbers: restored from parametrizations and the state_dict
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
    if "dtype" in spec:
        model.to(DTYPES[spec["dtype"]])
    model.workbench_spec = {key: value for key, value in spec.items() if key not in ("parametrizations", "dtype")}
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

    A model whose weights share one floating-point dtype other than float32 (float16, bfloat16, float64) is
    recorded in it and loaded back in it. A zoo spec is rebuilt on the meta device first (shapes only): a model
    whose parameters it does not rebuild (layers replaced by hand) is refused, since its checkpoint could not be
    loaded; a ``spec`` given that does not rebuild them is warned about.

    Parameters
    ----------
    spec
        How to rebuild the architecture; default the model's own (a zoo model's name and arguments with its
        edit history, or for a model of your own its class and edit history: load it with ``base=``); it is not
        changed.
    metadata
        JSON-serializable information kept with the weights (data set, scores, seed...); numpy and
        tensor scalars are stored as numbers.

    Raises
    ------
    CheckpointError
        The model has a weight parametrization checkpoints cannot restore, its weights are on the meta device
        (no values), or its own zoo spec does not rebuild its parameters.
    ConfigError
        ``path`` cannot be written: not a usable path, or an existing device, folder or read-only file
        (:func:`workbench.utils.check_writable_target`).
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"save_checkpoint needs a torch.nn.Module, got {type(model).__name__}.")
    state = model.state_dict()
    on_meta = [key for key, value in state.items() if value.is_meta]
    if on_meta:
        raise CheckpointError(
            f"the model's weights are on the meta device, shapes without values ({', '.join(on_meta[:3])}"
            f"{' and more' if len(on_meta) > 3 else ''}): there is nothing to save. Give it weights first "
            "(model.to_empty(device='cpu'), then load or initialize them)."
        )
    given = spec
    spec = copy.deepcopy(check_spec((getattr(model, SPEC, None) or user_spec(model)) if given is None else given))
    spec["parametrizations"] = parametrizations_of(model)
    spec.pop("dtype", None)
    dtype = _floating_dtype(state)
    if dtype is not None and dtype != torch.float32:
        spec["dtype"] = str(dtype).removeprefix("torch.")
    problem = _rebuild_problem(spec, state)
    if problem and given is None:
        raise CheckpointError(
            f"the model no longer has the architecture its spec describes: {problem}; its layers were changed after "
            "it was built, so a checkpoint of it could not be loaded. Save it as a model of your own, "
            "save_checkpoint(path, model, spec=workbench.edits.user_spec(model)), and load it with "
            "load_checkpoint(path, base=...) given the architecture as changed."
        )
    if problem:
        warnings.warn(
            f"the spec given does not rebuild the model's weights: {problem}; the checkpoint will not load.",
            UserWarning,
            stacklevel=2,
        )
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": _to_json("spec", spec),
        "metadata": _to_json("metadata", {} if metadata is None else metadata),
        "state_dict": {key: value.detach().cpu() for key, value in state.items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _floating_dtype(state: dict[str, torch.Tensor]) -> torch.dtype | None:
    """The one floating-point dtype of the tensors of ``state`` that a spec can record (None: none, or several,
    said in a warning: they are restored as the architecture builds them)."""
    kinds = {value.dtype for value in state.values() if value.is_floating_point()}
    if len(kinds) == 1 and next(iter(kinds)) in DTYPES.values():
        return next(iter(kinds))
    if kinds:
        names = ", ".join(sorted(str(kind).removeprefix("torch.") for kind in kinds))
        warnings.warn(
            f"the model's floating-point weights are {names}, which a checkpoint does not record (it records one "
            f"of {', '.join(DTYPES)}): loaded, they take the dtypes the architecture builds. Cast the model to one "
            "dtype (model.float(), model.half()) before saving to keep it.",
            UserWarning,
            stacklevel=3,
        )
    return None


def _rebuild_problem(spec: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    """How the zoo architecture ``spec`` rebuilds (on the meta device: shapes only, cheap) to other parameter names
    or shapes than ``state``'s, e.g. after the user replaced layers by hand; empty when it matches. A user's spec
    (rebuilt on ``base=``) and an architecture the meta device cannot build or replay are not checked."""
    if "name" not in spec:
        return ""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problems = _mismatch(build_from_spec(spec), state, ours="the model", theirs="the spec")
    except Exception:  # noqa: BLE001 - not every architecture or edit runs on the meta device: nothing is known
        return ""
    return f"{spec['name']!r} with {len(_history(spec))} edits rebuilds with {problems}" if problems else ""


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
    with open(path, "rb") as handle:
        zipped = handle.read(4) == b"PK\x03\x04"  # torch's zip format; older files are torch's legacy format
    try:  # mapped, not read whole: a file that is not a torch archive fails before its bytes are read
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
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
    problem = _record_problem(path) if zipped else None
    if problem:
        raise CheckpointError(f"{path} is a damaged torch archive: {problem}; {_RESAVE} from where it was trained.")
    return payload


def _record_problem(path: Path) -> str | None:
    """Which storage record of the torch archive ``path`` holds fewer bytes than its tensors need (cut short), or
    is compressed: a mapped load would read other bytes as weights. None when every record fits (or the archive
    cannot be checked; it loaded, so torch read it).

    The archive's ``data.pkl`` is read again by torch's safe unpickler with every storage on the meta device (its
    declared size, no bytes), and each size is compared with its record in the zip directory."""
    try:
        from torch import _weights_only_unpickler
    except ImportError:  # another torch: not checked
        return None
    declared: dict[str, int] = {}
    owner: dict[int, str] = {}

    def storage(saved_id: Any) -> Any:
        _, kind, key, _, numel = saved_id
        dtype = torch.uint8 if kind is torch.UntypedStorage else kind.dtype
        meta = torch.UntypedStorage(int(numel) * torch.empty(0, dtype=dtype).element_size(), device="meta")
        declared[str(key)], owner[meta._cdata] = meta.nbytes(), str(key)
        return torch.storage.TypedStorage(wrap_storage=meta, dtype=dtype, _internal=True)

    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            pickled = next(name for name in infos if name.endswith("/data.pkl") and name.count("/") == 1)
            root = pickled.removesuffix("data.pkl")  # the archive's one folder
            unpickler = _weights_only_unpickler.Unpickler(io.BytesIO(archive.read(pickled)), encoding="utf-8")
            unpickler.persistent_load = storage
            shapes = unpickler.load()
    except Exception:  # noqa: BLE001 - torch loaded it; what this reading cannot follow is not checked
        return None
    state = shapes.get("state_dict") if isinstance(shapes, dict) else None
    tensors = state.items() if isinstance(state, dict) else []
    users = {}
    for name, tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.layout == torch.strided:
            users.setdefault(owner.get(tensor.untyped_storage()._cdata), name)
    for key, need in declared.items():
        info, what = infos.get(f"{root}data/{key}"), f"the weights {users[key]!r}" if key in users else "a tensor"
        if info is None:
            return f"{what} lack their storage record data/{key}"
        if info.compress_type != zipfile.ZIP_STORED:
            return f"the storage record data/{key} of {what} is compressed, which torch.save never writes"
        if info.file_size < need:
            return (
                f"the storage record data/{key} of {what} holds {info.file_size} bytes where {need} are needed (the "
                "record was cut short)"
            )
    return None


def _check_format(path: Path, payload: Any) -> None:
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        version = payload.get("version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            newer = type(version) is int and version > VERSION
            raise CheckpointError(
                f"{path} is a workbench checkpoint of version {repr(version)[:50]}; this workbench reads versions "
                f"{' and '.join(map(str, READABLE_VERSIONS))}. "
                + ("Upgrade the workbench." if newer else f"The file was damaged or edited; {_RESAVE}.")
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


def _mismatch(
    model: nn.Module, state_dict: dict[str, torch.Tensor], ours: str = "checkpoint", theirs: str = "model"
) -> str:
    """How the names and shapes of ``state_dict`` (``ours``) differ from ``model``'s (``theirs``); empty: not."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: {ours} {tuple(state_dict[k].shape)} vs {theirs} {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
            parts.append(f"{label} {', '.join(items[:5])}{more}")
    return "; ".join(parts)


def _kind(tensor: torch.Tensor) -> str:
    if tensor.is_complex():
        return "complex"
    if tensor.is_floating_point():
        return "real floating-point"
    return "boolean" if tensor.dtype == torch.bool else "integer"


def _kind_mismatch(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> str:
    """Which tensors of ``state_dict`` are of another kind (complex, real, integer, boolean) than the model's
    (empty: none); loading would cast them."""
    expected = model.state_dict()
    wrong = [
        f"{key} is {state_dict[key].dtype} where {_kind(value)} values ({value.dtype}) are expected"
        for key, value in expected.items()
        if key in state_dict and _kind(state_dict[key]) != _kind(value)
    ]
    more = f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""
    return f"weights of the wrong kind: {'; '.join(wrong[:5])}{more}" if wrong else ""


def load_checkpoint(path: str | os.PathLike, base: Any = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path``; return ``(model in eval mode, metadata)``.

    The file is read with ``torch.load(..., weights_only=True)`` (no pickled code runs), the architecture
    rebuilt by :func:`build_from_spec` and the weights loaded strictly. A model of your own (not the zoo's)
    is rebuilt on ``base``: its architecture as you built it before any edit (a module, copied, or a
    function returning one); its edit history (plans, factorizations, quantizers) is replayed on it.

    A torch zip archive is memory-mapped, each storage record checked to hold the bytes its tensors
    declare; a file in torch's legacy format is read whole (its size bounded by the machine's memory). Weights
    holding NaN or infinite values are loaded (a diverged run is worth inspecting) with a
    :class:`~workbench.errors.NumericsWarning` naming the tensors and how many values.

    Raises
    ------
    CheckpointError
        ``path`` is not a usable path (None, empty, names too long: :func:`workbench.utils.check_path`), or the
        file is missing, unreadable, a pickled module or bare state_dict rather than a workbench
        checkpoint, of a version this workbench does not read (:data:`READABLE_VERSIONS`), a torch archive whose
        storage records are cut short, names an unknown model, records an edit this workbench cannot replay, or
        holds weights that do not fit the architecture.
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
    wrong = _kind_mismatch(model, state_dict)
    if wrong:
        raise CheckpointError(
            f"{path}: {wrong}; loading would cast them (an imaginary part dropped, a fraction rounded), so the "
            "checkpoint is refused. Re-save it from the model with save_checkpoint."
        )
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not load into {spec.get('name')!r}: {exc}") from None
    _warn_nonfinite(path, model)
    model.eval()
    return model, metadata


def _warn_nonfinite(path: Path, model: nn.Module) -> None:
    """A NumericsWarning naming the tensors of ``model``'s state that hold NaN or infinite values, and how many.
    Such a model is still loaded: a diverged run is worth inspecting."""
    found = []
    for key, value in model.state_dict().items():
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value.sum())):
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                found.append(f"{key} ({bad} of {value.numel()})")
    if found:
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        warnings.warn(
            f"{path}: the weights hold NaN or infinite values: {', '.join(found[:5])}{more}. The model is loaded "
            "for inspection; its outputs, graphs and compressions are meaningless until it is retrained.",
            NumericsWarning,
            stacklevel=3,
        )
