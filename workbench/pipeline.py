"""Compression pipelines: a list of named model transforms, runnable on its own or named in a study.

Each step is a dict ``{"do": <transform>, <parameter>: <value>, ...}``; the transforms are the classic
compressors of ``workbench.sparse``, ``workbench.quantize`` and ``workbench.surgery`` plus ``retrain``
(fine-tuning, or distillation from the uncompressed model). Deep Compression, for instance::

    steps = [
        {"do": "iterative-prune", "rates": [0.5, 0.8, 0.9], "retrain_epochs": 10},
        {"do": "share", "bits": 5},
        {"do": "retrain", "epochs": 5, "lr": 1e-3},
    ]
    small = run_pipeline(model, steps, train_data, teacher="input", random_state=0)

:func:`check_steps` validates a pipeline before anything runs (unknown transforms and parameters are named
with the allowed ones); :func:`list_transforms` lists the transforms with a line each.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import numbers
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.errors import ConfigError, closest
from workbench.numeric import as_int, is_number
from workbench.registry import Registry

_FIXED = (
    "model",
    "train_data",
    "data",
    "val_data",
    "inplace",
    "teacher",
    "random_state",
    "example_input",
)  # set by the pipeline


@dataclass(frozen=True)
class Transform:
    """A named pipeline step: ``function(model, data, teacher, random_state, **params) -> model``."""

    name: str
    summary: str
    function: Callable[..., nn.Module]
    target: Callable[..., Any]  # whose keyword arguments the step's parameters are checked against
    fit_kwargs: bool = False  # also accepts ``workbench.train.fit`` keywords
    needs_data: bool = True  # trains, so the pipeline needs training data
    exclude: tuple[str, ...] = ()  # fit keywords the transform sets itself
    teacher: bool = False  # retrains against the pipeline's teacher (and takes ``distill_options``)

    def __call__(
        self, model: nn.Module, data: Any, teacher: nn.Module | None, random_state: int, **params: Any
    ) -> nn.Module:
        """Run the step on ``model`` (the pipeline passes its data, teacher and seed)."""
        return self.function(model, data, teacher, random_state, **params)

    def parameters(self) -> list[str]:
        """The parameters a step of this transform may set."""
        names = [
            name
            for name, p in inspect.signature(self.target).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in _FIXED
        ]
        if self.fit_kwargs:
            from workbench.train import fit

            names += [
                name for name in inspect.signature(fit).parameters if name not in (*_FIXED, *self.exclude, *names)
            ]
        return names

    def annotations(self) -> dict[str, Any]:
        """Parameter -> its type annotation, resolved (a parameter whose annotation cannot be resolved is absent)."""
        hints = _hints(self.target)
        if self.fit_kwargs:
            from workbench.train import fit

            hints = {**_hints(fit), **hints}
        return hints


@functools.cache
def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """``function``'s resolved annotations ({} when one names what cannot be imported here: nothing is checked)."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # an unresolvable annotation only means its values go unchecked
        return {}


_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
_MAPPINGS = (dict, collections.abc.Mapping)


def _fits(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is of the type ``annotation`` names (a list for a tuple too: TOML has no tuples; a string
    is not a list of strings); annotations this check does not know (protocols, ``Any``) let every value pass."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is typing.Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if annotation is type(None) or annotation is None:
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return is_number(value)
    if annotation is str:
        return isinstance(value, str)
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        if not isinstance(value, collections.abc.Mapping):
            return False
        key, item = args if len(args) == 2 else (Any, Any)
        return all(_fits(k, key) and _fits(v, item) for k, v in value.items())
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return all(_fits(v, args[0]) for v in value) if args else True
    if annotation is collections.abc.Callable or origin is collections.abc.Callable:
        return callable(value)
    if isinstance(annotation, type) and annotation is not typing.Any:
        try:
            return isinstance(value, annotation)
        except TypeError:  # a protocol that cannot be checked at run time
            return True
    return True


def _kind(annotation: Any) -> str:
    """What ``annotation`` asks for, in words: ``"an integer or a table"``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_kind(arg) for arg in args if arg is not type(None)))  # None: left out
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "none"}
    if annotation in words:
        return words[annotation]
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        return "a table"
    if annotation in _SEQUENCES or origin in _SEQUENCES:
        return "a list"
    if annotation is collections.abc.Callable or origin is collections.abc.Callable:
        return "a Python function (it cannot be written in a study file)"
    return f"a {getattr(annotation, '__name__', annotation)}"


def _device_problem(value: Any) -> str | None:
    """Why the device ``value`` cannot be used here (not a device name, or not on this machine); None if it can."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        return f"{value!r} is not a device name; use 'cpu', 'cuda', 'cuda:0' or 'mps'"
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            have = f"CUDA devices 0 to {count - 1}" if count else "no CUDA device"
            return f"{value!r} is not on this machine ({have}); use 'cpu' or a device it has"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return f"{value!r} is not on this machine (no MPS device); use 'cpu'"
    return None


def _value_problem(key: str, value: Any, annotation: Any) -> str | None:
    """What is wrong with a step's ``key = value`` that can be told without a model: a value of another type than
    the transform's annotation, or a device this machine lacks; None when nothing is."""
    if annotation is None:
        return None
    if not _fits(value, annotation):
        return f"{key} is {_kind(annotation)}, got {value!r}"
    args = typing.get_args(annotation)
    if isinstance(value, str) and torch.device in (annotation, *args):
        problem = _device_problem(value)
        return None if problem is None else f"{key}: {problem}"
    return None


def _seeded(function: Callable[..., nn.Module], params: dict[str, Any], random_state: int) -> dict[str, Any]:
    """``params`` with the pipeline's seed, for functions that take one (directly or on to ``fit``)."""
    parameters = inspect.signature(function).parameters
    if "random_state" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return {"random_state": random_state, **params}
    return params


def _model_only(function: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    def step(model, data, teacher, random_state, **params):
        return function(model, **_seeded(function, params, random_state))

    return step


def _with_data(function: Callable[..., nn.Module], teacher_arg: bool, fit_kwargs: bool) -> Callable[..., nn.Module]:
    def step(model, data, teacher, random_state, **params):
        extra = {"teacher": teacher} if teacher_arg and teacher is not None else {}
        if fit_kwargs:
            params = {"quiet": True, **params}
        return function(model, data, **extra, **_seeded(function, params, random_state))

    return step


def _retrain(model, data, teacher, random_state, *, epochs: int, distill_options: dict | None = None, **fit_kwargs):
    """Retrain in place (masks and quantizers kept): fit, or distil from the pipeline's teacher."""
    from workbench.train import retrain

    retrain(
        model,
        data,
        epochs=epochs,
        teacher=teacher,
        distill_options=distill_options if teacher is not None else None,
        random_state=random_state,
        **{"quiet": True, **fit_kwargs},
    )
    return model


def _network_surgery(
    model,
    data,
    teacher,
    random_state,
    *,
    c_rate: float | dict = 1.0,
    epochs: int = 10,
    gamma: float = 1e-4,
    power: float = 1.0,
    interval: int = 1,
    finish_epochs: int = 0,
    layers: Sequence[str] | None = None,
    **fit_kwargs,
):
    """Dynamic network surgery (Guo et al. 2016): prune and splice while training, then retrain the masks."""
    from workbench.sparse import SurgeryHook, dynamic_surgery, finish_surgery

    model = dynamic_surgery(model, c_rate=c_rate, layers=layers, inplace=True)  # the pipeline works on a copy
    hook = SurgeryHook(interval=interval, gamma=gamma, power=power, random_state=random_state)
    fit_kwargs = {"quiet": True, **fit_kwargs}
    _retrain(
        model, data, teacher, random_state, epochs=epochs, hooks=(*fit_kwargs.pop("hooks", ()), hook), **fit_kwargs
    )
    finish_surgery(model)
    if finish_epochs:
        _retrain(model, data, teacher, random_state, epochs=finish_epochs, **fit_kwargs)
    return model


def _group_lasso(
    model,
    data,
    teacher,
    random_state,
    *,
    strength: float | dict = 0.1,
    kinds: Sequence[str] = ("filters", "channels"),
    layers: Sequence[str] | None = None,
    depth_layers: Sequence[str] | None = None,
    epochs: int = 10,
    lr: float = 5e-2,
    shrink: bool = True,
    tol: float = 1e-3,
    **fit_kwargs,
):
    """Structured sparsity learning (Wen et al. 2016): proximal group-lasso SGD, then (``shrink``) the
    zeroed filters and neurons removed by surgery (constant units re-fitted by least squares).

    Each step shrinks every group's norm by ``lr * strength``; the defaults take LeNet-300-100 on digits
    from 50.6k to about 10k parameters in 20 epochs at about 1.4 points of accuracy.
    """
    from workbench.datasets.batches import input_batches
    from workbench.graph import from_model
    from workbench.sparse import GroupLasso
    from workbench.surgery.zeroed import shrink_zeroed, zeroed_plan

    lasso = GroupLasso(strength=strength, kinds=kinds, layers=layers, depth_layers=depth_layers)
    fit_kwargs = {"optimizer": "sgd", "schedule": "constant", "quiet": True, **fit_kwargs}
    _retrain(
        model,
        data,
        teacher,
        random_state,
        epochs=epochs,
        lr=lr,
        hooks=(*fit_kwargs.pop("hooks", ()), lasso.prox_hook(lr)),
        **fit_kwargs,
    )
    if not shrink:
        return model
    example = None if getattr(model, "input_shape", None) is not None else next(input_batches(data, 2))
    graph = from_model(model, example)
    plan = zeroed_plan(model, tol=tol, constant=True, graph=graph)
    if not len(plan):
        return model
    return shrink_zeroed(
        model, plan=plan, graph=graph, constant=True, data=data, example_input=example, random_state=random_state
    )


def _select(
    model,
    data,
    teacher,
    random_state,
    *,
    method: str = "magnitude",
    selector_params: dict[str, Any] | None = None,
    keep: float | None = None,
    per_layer: dict[str, float] | None = None,
    budget: dict[str, Any] | None = None,
    fuse: str = "drop",
    fuse_options: dict[str, Any] | None = None,
    source: str = "weights",
    sequential: bool = False,
    round_to: int | None = None,
    sensitivity: Any = None,
    example_input: torch.Tensor | None = None,
):
    """Select the units each group keeps and rebuild the network smaller (:func:`workbench.rebuild.select_and_rebuild`,
    the engine of :func:`workbench.compression.compress`); ``fuse="lsq"``, REPAIR and activation views read
    the pipeline's training data. ``sensitivity`` (:func:`workbench.compression.sensitivity`, or group -> {kept
    fraction: loss}) places a ``scope="sensitivity"`` budget. The :class:`~workbench.rebuild.Rebuilt` record is left as the model's note
    ``"rebuilt"`` (:func:`run_pipeline` hands it to its caller's ``rebuilds``)."""
    from workbench.edits import set_note
    from workbench.rebuild import example_from, select_and_rebuild

    made = select_and_rebuild(
        model,
        method=method,
        selector_params=selector_params,
        keep=keep,
        per_layer=per_layer,
        budget=budget,
        fuse=fuse,
        fuse_options=fuse_options,
        source=source,
        sequential=sequential,
        train=data,
        random_state=random_state,
        example_input=example_input if example_input is not None else example_from(model, data),
        round_to=round_to,
        sensitivity=sensitivity,
    )
    return set_note(made.model, "rebuilt", made)


def _register_all(registry: Registry[nn.Module]) -> None:
    """Register every transform of the reading list in ``registry``."""
    from workbench import quantize, sparse, surgery
    from workbench.surgery.zeroed import shrink_zeroed

    def model_only(name, summary, function):
        return Transform(name, summary, _model_only(function), function, needs_data=False)

    def with_data(name, summary, function, target=None, teacher=True, fit_kwargs=False):
        return Transform(
            name,
            summary,
            _with_data(function, teacher, fit_kwargs),
            target or function,
            fit_kwargs,
            exclude=("epochs",) if fit_kwargs else (),
            teacher=teacher,
        )

    items = [
        Transform(
            "select",
            "graph-based selection of the units to keep, and a rebuild with fewer units (drop, merge, lsq, ...)",
            _select,
            _select,
            needs_data=False,
        ),
        model_only("prune", "magnitude pruning to a rate or quality threshold (Han et al. 2015)", sparse.prune),
        with_data(
            "iterative-prune",
            "prune-retrain rounds with masks held (Han et al. 2015)",
            sparse.iterative_prune,
            fit_kwargs=True,
        ),
        Transform(
            "network-surgery",
            "dynamic network surgery: pruning and splicing (Guo et al. 2016)",
            _network_surgery,
            _network_surgery,
            fit_kwargs=True,
            teacher=True,
        ),
        Transform(
            "group-lasso",
            "structured sparsity by group lasso, zeroed units removed (Wen et al. 2016)",
            _group_lasso,
            _group_lasso,
            fit_kwargs=True,
            teacher=True,
        ),
        model_only("shrink-zeroed", "remove units whose weights are zero (surgery)", shrink_zeroed),
        model_only("share", "k-means weight sharing, trainable centroids (Han et al. 2016)", quantize.share_weights),
        with_data(
            "deep-compression",
            "prune, share, fine-tune centroids, Huffman (Han et al. 2016)",
            deep_compress,
            target=DeepCompression,
        ),
        model_only(
            "huffman",
            "Huffman-code the shared layers into real bit streams (checked by decoding)",
            quantize.huffman_code,
        ),
        with_data(
            "soft-sharing",
            "Gaussian-mixture prior, then quantized to its means (Ullrich et al. 2017)",
            quantize.soft_weight_sharing,
            teacher=False,
        ),
        model_only("fixed-point", "Q-format weights and activations (Lin & Talathi 2016)", quantize.fixed_point),
        with_data(
            "fixed-point-iterative",
            "fixed point layer by layer with fine-tuning (Lin & Talathi 2016)",
            quantize.iterative_fixed_point,
            teacher=False,
            fit_kwargs=True,
        ),
        model_only("fixed-point-biases", "Q-format biases", quantize.fixed_point_biases),
        model_only("binary", "BinaryConnect weights (Courbariaux et al. 2015)", quantize.binary_connect),
        model_only("binarize", "binary weights and activations (Hubara et al. 2016)", quantize.binarize_network),
        model_only("ternary", "ternary weights (Lin et al. 2016)", quantize.ternary_connect),
        model_only("power-of-two", "power-of-two weights (Lin et al. 2016)", quantize.power_of_two),
        model_only(
            "quantized-backprop",
            "power-of-two quantized back-propagation (Lin et al. 2016)",
            quantize.quantized_backprop,
        ),
        model_only(
            "dct", "DCT filter coefficients pruned and shared (CNNpack, Wang et al. 2016)", quantize.dct_compress
        ),
        model_only(
            "hashed-dct", "hashed weight sharing in the DCT domain (FreshNets, Chen et al. 2016)", quantize.hashed_dct
        ),
        model_only("factorize", "low-rank (SVD) or tensor (Tucker-2, CP) factorization of layers", surgery.factorize),
        model_only(
            "sparse-decompose",
            "conv kernels as channel basis, basis kernels and sparse mixing (Liu et al. 2015)",
            surgery.sparse_decompose,
        ),
        Transform(
            "retrain",
            "retrain: fine-tune, or distil from the pipeline's teacher",
            _retrain,
            _retrain,
            fit_kwargs=True,
            teacher=True,
        ),
    ]
    for transform in items:
        registry.register(transform.name, transform.summary)(transform)


_TRANSFORMS: Registry[nn.Module] = Registry("transform")


def transforms() -> Registry[nn.Module]:
    """The registry of every step a pipeline can name: name -> :class:`Transform` (filled on first use, as
    the transforms' packages are imported then)."""
    if not _TRANSFORMS.names():
        _register_all(_TRANSFORMS)
    return _TRANSFORMS


def list_transforms() -> list[str]:
    """The transform names a step's ``do`` may take (sorted)."""
    return transforms().names()


def describe_transforms() -> dict[str, str]:
    """Name -> its summary and the parameters a step may set (``workbench transforms`` prints it)."""
    registry = transforms()
    return {
        name: f"{summary}; parameters: {', '.join(registry.get(name).parameters())}"
        for name, summary in registry.describe().items()
    }


def check_steps(steps: Any) -> list[dict[str, Any]]:
    """Validate a pipeline; returns its steps as plain dicts.

    Raises
    ------
    ConfigError
        Naming every bad step at once: not a table, no ``do``, an unknown transform or parameter
        (with the closest names and the allowed ones), a parameter the pipeline sets itself, or a value that
        is not of the type the transform's signature gives (``bits = 5.5`` for an integer, a string where a
        function goes) or names a device this machine lacks.
    """
    if not isinstance(steps, (list, tuple)) or not steps:
        raise ConfigError(
            f"a pipeline is a non-empty list of steps like {{'do': 'prune', 'rate': 0.9}}, got {steps!r}."
        )
    known = transforms()
    problems, out = [], []
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or "do" not in step:
            problems.append(f"step {i}: a step is a table with a 'do' key naming the transform, got {step!r}")
            continue
        name, params = step["do"], {k: v for k, v in step.items() if k != "do"}
        if name not in known:
            problems.append(
                f"step {i}: unknown transform {name!r}.{closest(str(name), known.names())} "
                f"Known: {', '.join(known.names())}"
            )
            continue
        allowed = known.get(name).parameters()
        annotations = known.get(name).annotations()
        for key, value in params.items():
            if key in _FIXED:
                problems.append(
                    f"step {i} ({name}): {key!r} is set by the pipeline (its data, teacher and seed); remove it"
                )
            elif key not in allowed:
                problems.append(
                    f"step {i} ({name}): unknown parameter {key!r}.{closest(key, allowed)} "
                    f"Allowed: {', '.join(allowed)}"
                )
            elif (wrong := _value_problem(key, value, annotations.get(key))) is not None:
                problems.append(f"step {i} ({name}): {wrong}")
        out.append({"do": name, **params})
    if problems:
        raise ConfigError("; ".join(problems) + ".")
    return out


def _rounds(key: str) -> Callable[[dict[str, Any], nn.Module], int]:
    """How many times a per-round epoch setting is spent: once per entry of the step's ``key`` list."""

    def count(step: dict[str, Any], model: nn.Module) -> int:
        return max(len(step.get(key) or [None]), 1)

    return count


def _once(step: dict[str, Any], model: nn.Module) -> int:
    return 1


def _per_layer(step: dict[str, Any], model: nn.Module) -> int:
    from workbench.sparse.layers import weight_layers

    return len(weight_layers(model, step.get("layers"), what="fixed point"))


#: Transform -> its epoch settings: (name, how many times it is spent, its least value). A step that trains
#: under a penalty or with masks (group lasso, soft sharing, network surgery) needs at least one epoch.
_EPOCH_SETTINGS: dict[str, tuple[tuple[str, Callable[[dict[str, Any], nn.Module], int], int], ...]] = {
    "iterative-prune": (("retrain_epochs", _rounds("rates"), 0),),
    "network-surgery": (("epochs", _once, 1), ("finish_epochs", _once, 0)),
    "group-lasso": (("epochs", _once, 1),),
    "deep-compression": (("retrain_epochs", _rounds("prune_rounds"), 0), ("quant_epochs", _once, 0)),
    "soft-sharing": (("epochs", _once, 1),),
    "fixed-point-iterative": (("epochs_per_layer", _per_layer, 0),),
    "retrain": (("epochs", _once, 0),),  # a retraining step given no epochs is left out
}


def _default(transform: Transform, name: str) -> int:
    parameter = inspect.signature(transform.target).parameters.get(name)
    default = None if parameter is None else parameter.default
    return int(default) if isinstance(default, int) else 0


def _epoch_slots(steps: Sequence[dict[str, Any]], model: nn.Module) -> list[tuple[int, str, int, int, int]]:
    """``(step index, setting, times spent, epochs, least epochs)`` of every epoch setting of ``steps``."""
    slots = []
    for i, step in enumerate(check_steps(steps)):
        transform = transforms().get(step["do"])
        for name, times, least in _EPOCH_SETTINGS.get(step["do"], ()):
            epochs = as_int(step.get(name, _default(transform, name)), f"step {i} ({step['do']}): {name}", low=0)
            slots.append((i, name, times(step, model), epochs, min(least, epochs)))
    return slots


def planned_epochs(steps: Sequence[dict[str, Any]], model: nn.Module) -> int:
    """Epochs of training that ``steps`` plan on ``model`` (every retraining, pruning round and regularized
    training counted; a round's epochs times the rounds)."""
    return sum(times * epochs for _, _, times, epochs, _ in _epoch_slots(steps, model))


def with_budget(steps: Sequence[dict[str, Any]], epochs: int, model: nn.Module) -> list[dict[str, Any]]:
    """``steps`` with their epoch settings scaled so that together they train ``epochs`` epochs (as near as
    whole epochs allow, never more): the study's equal retraining budget applied to a pipeline.

    Each setting keeps its share of the pipeline's own schedule (Deep Compression's 3 rounds x 10 epochs plus 5
    of centroid tuning, scaled to 10 epochs, become 3 x 3 plus 1); a ``retrain`` step left with no epochs is
    left out. A pipeline that does not train is returned unchanged.

    Raises
    ------
    ConfigError
        ``epochs`` is negative, or less than the pipeline's steps need (a group lasso trains at least one epoch).
    """
    epochs = int(epochs)
    if epochs < 0:
        raise ConfigError(f"a retraining budget is a number of epochs >= 0, got {epochs}.")
    out = [dict(step) for step in check_steps(steps)]
    slots = _epoch_slots(out, model)
    planned = sum(times * value for _, _, times, value, _ in slots)
    if planned == 0:
        return out
    least = sum(times * low for _, _, times, _, low in slots)
    if epochs < least:
        needs = ", ".join(f"{out[i]['do']} {name} >= {low}" for i, name, _, _, low in slots if low)
        raise ConfigError(
            f"a retraining budget of {epochs} epochs is less than these steps need ({least}: {needs}); give a larger "
            "budget ([finetune] epochs), or let the pipeline keep its own schedule ([finetune] own_schedule)."
        )
    factor = epochs / planned
    target = [value * factor for _, _, _, value, _ in slots]
    chosen = [max(int(t), low) for t, (*_, low) in zip(target, slots)]
    left = epochs - sum(times * c for (_, _, times, _, _), c in zip(slots, chosen))
    while True:
        fits = [j for j, (_, _, times, _, _) in enumerate(slots) if times <= left]
        if not fits:
            break
        j = max(fits, key=lambda j: (target[j] - chosen[j], -j))
        chosen[j] += 1
        left -= slots[j][2]
    for (i, name, _, _, _), value in zip(slots, chosen):
        out[i][name] = value
    return [step for step in out if not (step["do"] == "retrain" and step["epochs"] == 0)]


def run_pipeline(
    model: nn.Module,
    steps: Sequence[dict[str, Any]],
    train_data: Any = None,
    *,
    val_data: Any = None,
    teacher: nn.Module | str | None = None,
    distill_options: dict[str, Any] | None = None,
    random_state: int = 0,
    log: Callable[[str], None] | None = None,
    example_input: torch.Tensor | None = None,
    rebuilds: list[Any] | None = None,
) -> nn.Module:
    """Apply ``steps`` to a copy of ``model`` in order and return the compressed model.

    Parameters
    ----------
    model
        The trained network (left unchanged).
    steps
        ``[{"do": name, **params}, ...]`` (see :func:`list_transforms`, checked by :func:`check_steps`).
    train_data
        The training data of steps that train (retraining, iterative pruning, Deep Compression...).
    val_data
        When given, the validation accuracy after each step is recorded (nothing is tuned on it here).
    teacher
        Retraining distils from this network (``"input"``: a frozen copy of ``model``); None fits labels.
    distill_options
        How every step that retrains against ``teacher`` distils, unless the step sets its own
        (``workbench.train.distill``'s ``loss``, ``temperature``, ``alpha``): e.g. ``{"loss": "logits",
        "alpha": 1.0}`` retrains on the teacher's logits alone, without labels. Steps that cannot take a
        teacher (``soft-sharing``, ``fixed-point-iterative``) still fit the labels; each step's record says
        what it learned from (``learned_from``).
    random_state
        Seed of every step that takes one.
    log
        Called with a line after each step.
    example_input
        A batch of what the model takes, for the steps that trace it (``select``); default one from
        ``train_data`` or the model's ``input_shape``.
    rebuilds
        When a list, each ``select`` step's :class:`~workbench.rebuild.Rebuilt` (its plan, graph, notes and budget)
        is appended to it.

    The result's note ``"pipeline"`` (``workbench.edits.note``) holds the steps and, per step, its seconds and
    the training samples it saw (``samples``: its retraining budget; :func:`with_budget` sets one).
    """
    import copy
    import time

    from workbench.edits import note, set_note
    from workbench.sparse.layers import resolve_teacher
    from workbench.train.history import counting_samples

    steps = check_steps(steps)
    teacher = resolve_teacher(teacher, model)
    if distill_options and teacher is None:
        raise ConfigError("distill_options were given without a teacher; pass teacher=... or drop them.")
    current = copy.deepcopy(model)
    record = []
    for i, step in enumerate(steps):
        transform = transforms().get(step["do"])
        if train_data is None and transform.needs_data:
            raise ConfigError(f"step {i} ({step['do']}) trains; pass train_data to run_pipeline.")
        params = {k: v for k, v in step.items() if k != "do"}
        if distill_options and transform.teacher:
            params.setdefault("distill_options", dict(distill_options))
        if example_input is not None and "example_input" in inspect.signature(transform.target).parameters:
            params["example_input"] = example_input
        clock = time.perf_counter()
        with counting_samples() as count:
            current = transform(current, train_data, teacher, random_state, **params)
        made = note(current, "rebuilt")
        if made is not None:
            set_note(current, "rebuilt", None)
            if rebuilds is not None:
                rebuilds.append(made)
        record.append(
            {
                **step,
                "seconds": round(time.perf_counter() - clock, 3),
                "samples": count.samples,
                "learned_from": _learned_from(transform, teacher, params.get("distill_options"))
                if count.samples
                else "-",
            }
        )
        if val_data is not None:
            from workbench.train import evaluate

            record[-1]["val_accuracy"] = evaluate(current, val_data)["accuracy"]
        if log is not None:
            log(f"step {i} {step['do']}: {record[-1]['seconds']:.1f} s")
    return set_note(current, "pipeline", record)


def _learned_from(transform: Transform, teacher: Any, options: dict[str, Any] | None) -> str:
    """What a step that trained learned from (:func:`learned_from`; a step that takes no teacher fits labels)."""
    return learned_from(teacher if transform.teacher else None, options)


def learned_from(teacher: Any, options: dict[str, Any] | None) -> str:
    """What training with ``teacher`` (None: none) and distillation ``options`` learns from: ``"labels"``,
    ``"teacher and labels"`` or ``"teacher (no labels)"`` (distillation's defaults: Hinton's loss weighs the labels
    by 0.1, logit regression not at all)."""
    from workbench.train.distill import default_alpha

    if teacher is None:
        return "labels"
    options = options or {}
    alpha = default_alpha(options.get("loss", "hinton"), options.get("alpha"))
    return "teacher (no labels)" if alpha >= 1.0 else "teacher and labels"


@dataclass
class DeepCompression:
    """Deep Compression (Han, Mao & Dally, ICLR 2016) as a pipeline: prune (magnitude, per layer) -> retrain
    with masks -> k-means weight sharing -> (optionally fixed-point biases) -> trained quantization
    (retrain the centroids) -> Huffman coding of the codebook indices and relative sparse indices.

    :attr:`steps` is the pipeline (step dicts, as :func:`run_pipeline` takes them); :meth:`run` runs it.

    Parameters
    ----------
    rate, quality
        Pruning: a fraction per layer (number or dict by layer / kind) or Han's ``quality x std`` rule.
    prune_rounds
        Cumulative pruning schedule; overrides ``rate`` (e.g. ``[0.5, 0.8, 0.92]``).
    bits
        Codebook index bits per layer (paper: 8 for conv, 5 for fully connected).
    index_bits
        Relative-index gap bits per layer (paper: 8 for conv, 5 for fully connected).
    retrain_epochs, quant_epochs
        Epochs of retraining after each pruning round, and of centroid fine-tuning.
    fit_kwargs, quant_fit_kwargs
        ``workbench.train.fit`` keywords of the retraining after pruning, and of the centroid fine-tuning
        (default: the same); the seed is ``random_state``, and data and teacher those of :meth:`run`.
    bias_bits
        Store biases as fixed point with this many bits (quantized before the centroid fine-tuning, which
        then adapts to them); None keeps them fp32, as the paper, whose ratios count weights only.
    teacher, distill_options
        Retrain by distillation (``workbench.train.distill``) from this network, or from a frozen copy of
        the model given to :meth:`run` with ``"input"``; None fits the labels alone, as the paper.
    """

    rate: float | dict | None = 0.9
    quality: float | dict | None = None
    prune_rounds: list | None = None
    bits: int | dict = field(default_factory=lambda: {"conv": 8, "linear": 5})
    index_bits: int | dict = field(default_factory=lambda: {"conv": 8, "linear": 5})
    init: str = "linear"
    retrain_epochs: int = 3
    quant_epochs: int = 2
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    quant_fit_kwargs: dict[str, Any] | None = None
    bias_bits: int | dict | None = None
    teacher: nn.Module | list | str | None = None
    distill_options: dict[str, Any] | None = None
    random_state: int = 0
    log: list[dict[str, Any]] = field(default_factory=list, init=False)

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The pipeline's steps, ``[{"do": "prune", "rate": 0.5}, {"do": "retrain", ...}, ...]``."""
        distill = {"distill_options": self.distill_options} if self.distill_options else {}
        fit_kwargs = {k: v for k, v in self.fit_kwargs.items() if k not in _FIXED}  # the pipeline sets those
        prune = (
            [{"do": "prune", "quality": self.quality}]
            if self.quality is not None and self.prune_rounds is None
            else [{"do": "prune", "rate": rate} for rate in self.prune_rounds or [self.rate]]
        )
        steps: list[dict[str, Any]] = []
        for step in prune:
            steps.append(step)
            if self.retrain_epochs > 0:
                steps.append({"do": "retrain", "epochs": self.retrain_epochs, **fit_kwargs, **distill})
        steps.append({"do": "share", "bits": self.bits, "init": self.init, "index_bits": self.index_bits})
        if self.bias_bits is not None:
            steps.append({"do": "fixed-point-biases", "bits": self.bias_bits})
        if self.quant_epochs > 0:
            quant_fit = fit_kwargs if self.quant_fit_kwargs is None else self.quant_fit_kwargs
            quant_fit = {k: v for k, v in quant_fit.items() if k not in _FIXED}
            steps.append({"do": "retrain", "epochs": self.quant_epochs, **quant_fit, **distill})
        steps.append({"do": "huffman"})
        return steps

    def run(self, model: nn.Module, train_data: Any, val_data: Any = None) -> nn.Module:
        """Run :attr:`steps` on a copy of ``model``; :attr:`log` records each step (with its validation
        accuracy when ``val_data`` is given). The encoded layers are the result's note ``"encoded"``."""
        out = run_pipeline(
            model, self.steps, train_data, val_data=val_data, teacher=self.teacher, random_state=self.random_state
        )
        from workbench.edits import note

        self.log = note(out, "pipeline")
        return out


def deep_compress(model: nn.Module, train_data: Any, val_data: Any = None, **options: Any) -> nn.Module:
    """Run :class:`DeepCompression` with ``options`` on a copy of ``model`` (the encoded layers are the note
    ``"encoded"`` of the result, its step log the note ``"pipeline"``; see ``workbench.edits.note``)."""
    return DeepCompression(**options).run(model, train_data, val_data)
