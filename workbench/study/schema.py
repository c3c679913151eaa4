"""The study file: a TOML document checked by a pydantic schema.

A study names its base models (zoo name and arguments, a checkpoint, or a model of the researcher's own by
import path, ``model = "mypkg.nets:resnet56"``) with their data set (registered, or by import path) and
training budget, the selectors with their parameters, the budgets (fraction of units kept, global or
per layer, or a share of the base's multiply-adds, parameters or CPU latency: ``{ macs = 0.5 }``,
``{ params = 0.33, scope = "global" }``, ``{ latency = 0.5, batch = 64 }``; a selector's ``preset`` names a paper's settings, e.g. ``dpp = { preset = "diversity-networks" }``,
see :func:`workbench.select.list_presets`), the fusion modes, the fine-tuning or distillation budget, the seeds, and the baseline
architectures of the accuracy-vs-operations chart. ``[pipelines]`` names classic compression
pipelines, each a list of steps ``{do = "<transform>", ...}`` of :mod:`workbench.pipeline` (e.g.
``dc = [{do = "iterative-prune", rates = [0.5, 0.9], retrain_epochs = 5}, {do = "share", bits = 5}]``);
their retraining steps learn from what the selector runs learn from: the labels, the base model by distillation
with the study's settings (``finetune.method = "distill"``), or the base model's logits alone, without labels
(``"reconstruct"``; steps that cannot take a teacher still fit labels, and the ``teacher`` column says so); their
training is scaled to
the study's one retraining budget, ``finetune.epochs`` (:func:`workbench.pipeline.with_budget`), unless
``finetune.own_schedule`` names them (they then keep their paper's schedule, and tables say so). Every run is
scored on ``val`` and ``test``; summaries rank on ``val``. :func:`load_study` reads and validates it; every
problem is reported at once in a :class:`~workbench.errors.StudyError` that names the key (e.g.
``models[0].training.epochs``), what is allowed there and, for names, the closest known one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from workbench.errors import StudyError, WorkbenchError, closest
from workbench.numeric import INT64_MAX, MAX_WAIT_SECONDS, as_float, as_int, unusable_numbers
from workbench.utils import MAX_JSON_DEPTH, check_path, seed_from

# Arguments that workbench.zoo.create_model_for_data derives from the data set when they are not given.
_DERIVED_ARGS = ("inputs", "classes", "in_channels", "input_size", "resolution", "length", "widths")


def _known(kind: str) -> list[str]:
    if kind == "model":
        from workbench.zoo import list_models

        return list_models()
    if kind == "data set":
        from workbench.datasets import list_datasets

        return list_datasets()
    from workbench.select import list_selectors

    return list_selectors()


def _check_name(kind: str, name: str) -> str:
    known = _known(kind)
    if name not in known:
        raise ValueError(f"unknown {kind} {name!r}.{closest(name, known)} Known {kind}s: {', '.join(known)}")
    return name


def _integer(low: int | None = None, high: int | None = None, optional: bool = False) -> Any:
    """An int field checked by :func:`workbench.numeric.as_int` (whole-number floats such as ``2.0`` accepted,
    bools, NaN, infinities and integers beyond 64 bits refused); ``optional``: None too."""

    def check(value: Any) -> int | None:
        return None if value is None and optional else as_int(value, "", low=low, high=high, integral_floats=True)

    return Annotated[int | None if optional else int, BeforeValidator(check)]


def _real(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    what: str | None = None,
    optional: bool = False,
) -> Any:
    """A float field checked by :func:`workbench.numeric.as_float` (finite, within the bounds, no bools);
    ``optional``: None too."""

    def check(value: Any) -> float | None:
        if value is None and optional:
            return None
        return as_float(value, "", low=low, high=high, low_open=low_open, high_open=high_open, what=what)

    return Annotated[float | None if optional else float, BeforeValidator(check)]


PositiveInt = _integer(low=1)
OptionalPositiveInt = _integer(low=1, optional=True)
Epochs = _integer(low=0)
PositiveReal = _real(low=0.0, low_open=True)
OptionalPositiveReal = _real(low=0.0, low_open=True, optional=True)
NonNegativeReal = _real(low=0.0)
OptionalProbability = _real(0.0, 1.0, optional=True)
#: A relative gap, strictly between 0 and 1.
Gap = _real(0.0, 1.0, low_open=True, high_open=True)
#: Seconds to wait, at most :data:`workbench.numeric.MAX_WAIT_SECONDS`.
Seconds = _real(0.0, MAX_WAIT_SECONDS, low_open=True)
#: Keep a multiple of this many units (:func:`workbench.surgery.plan_from`'s ``round_to``).
RoundTo = _integer(low=1, high=2**20, optional=True)
#: A seed: a non-negative integer that fits in 64 bits (stored, hashed and passed to numpy and torch as one).
Seed = _integer(low=0, high=INT64_MAX)
#: A budget's fraction of units kept.
Fraction = _real(0.0, 1.0, low_open=True, what="a budget: the fraction of units kept")


def _usable_numbers(value: Any, where: str = "") -> Any:
    """``value`` (free-form settings: model arguments, data options, selector parameters, pipeline steps) unchanged
    when every number in it is finite and fits in 64 bits; ValueError naming each one that is not."""
    bad = unusable_numbers(value)
    if bad:
        places = ", ".join(f"{where}{place} = {number!r}" for place, number in bad)
        raise ValueError(
            f"{places}: not a number a study can use (NaN, an infinity or an integer beyond 64 bits); "
            "give a finite number"
        )
    return value


def _not_a_name(value: Any, where: str, example: str) -> str | None:
    """The problem when ``value``, which names something, is not a string (a list or table cannot name anything);
    None when it is one."""
    if isinstance(value, str):
        return None
    return f"{where} is a name, a string such as {example}; got a {type(value).__name__}, {value!r}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Training(_Section):
    """How a base model or baseline is trained (``workbench.train.fit``)."""

    epochs: PositiveInt = 10
    lr: PositiveReal = 1e-3
    batch_size: PositiveInt = 64
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    schedule: Literal["cosine", "step", "constant", "onecycle"] = "cosine"
    weight_decay: NonNegativeReal = 0.0
    split: Literal["train", "trainval"] = "train"
    max_batches: OptionalPositiveInt = None
    init: Literal["kaiming", "torch", "xavier", "orthogonal"] = "kaiming"  # a study axis: how the base starts
    class_weights: Literal["none", "enet", "balanced"] = "none"  # loss weights per class (ENet: 1 / ln(1.02 + p))


Share = _real(0.0, 1.0, low_open=True, what="a share of the base model's cost", optional=True)
#: What a budget aims at: the fraction of units kept, or a share of one cost of the base model.
BUDGET_TARGETS = ("keep", "macs", "params", "latency")
#: Options of a budget, and the targets they go with (``workbench.surgery.budgets.BUDGET_OPTIONS``).
BUDGET_OPTIONS = {
    "per_layer": ("keep",),
    "scope": ("macs", "params", "latency"),
    "min_keep": ("macs", "params", "latency"),
    "tolerance": ("macs", "params", "latency"),
    "batch": ("latency",),
}


class Budget(_Section):
    """A budget: fraction of units kept in every group (``keep``, with optional per-group overrides), or a share of
    the base model's multiply-adds, parameters or CPU latency at ``batch`` (``macs``, ``params``, ``latency``;
    :func:`workbench.compression.compress`'s ``budget``), uniform, on one global scale, or placed by the base model's
    per-layer sensitivity on val (``scope``)."""

    keep: Fraction | None = None
    per_layer: dict[str, Fraction] = Field(default_factory=dict)
    macs: Share = None
    params: Share = None
    latency: Share = None
    scope: Literal["uniform", "global", "sensitivity"] | None = None
    min_keep: Share = None
    tolerance: Share = None
    batch: OptionalPositiveInt = None

    @model_validator(mode="after")
    def _one_target(self) -> Budget:
        targets = [key for key in BUDGET_TARGETS if getattr(self, key) is not None]
        if len(targets) != 1:
            raise ValueError(
                f"a budget aims at exactly one of {', '.join(BUDGET_TARGETS)} (given: {', '.join(targets) or 'none'}); "
                "e.g. 0.5, { keep = 0.5 } or { macs = 0.5 }"
            )
        misplaced = [
            key for key, allowed in BUDGET_OPTIONS.items() if key in self.model_fields_set and targets[0] not in allowed
        ]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} does not go with a {targets[0]} budget; remove it")
        return self

    @property
    def target(self) -> str:
        """``"keep"``, ``"macs"``, ``"params"`` or ``"latency"``."""
        return next(key for key in BUDGET_TARGETS if getattr(self, key) is not None)

    def config(self) -> dict[str, Any]:
        """The budget of a run's configuration: ``keep`` and ``per_layer`` (as stored before budgets by cost, so that
        those runs keep their hashes), or the target and the options given."""
        if self.target == "keep":
            return {"keep": self.keep, "per_layer": dict(self.per_layer)}
        return self.model_dump(mode="json", exclude_none=True, exclude={"per_layer"})

    @property
    def display(self) -> str:
        """``"0.5"``, ``"0.5 +2 layers"`` when groups are overridden, ``"macs 0.5"``, ``"params 0.33 global"``,
        ``"latency 0.5 b64"`` (the batch when given)."""
        if self.target == "keep":
            return f"{self.keep:g}" + (f" +{len(self.per_layer)} layers" if self.per_layer else "")
        text = f"{self.target} {getattr(self, self.target):g}"
        text += f" b{self.batch}" if self.batch is not None else ""
        text += f" min {self.min_keep:g}" if self.min_keep is not None else ""
        return text + (f" {self.scope}" if self.scope in ("global", "sensitivity") else "")


def budget_heading(label: str) -> str:
    """A budget's column or heading in tables, from its :attr:`Budget.display` label: ``"keep 0.5"`` for a fraction
    of units, the label itself (``"macs 0.5"``, ``"params 0.33 global"``) for a share of a cost."""
    return label if label[:1].isalpha() else f"keep {label}"


def _budget(value: Any) -> Any:
    """A budget given as anything but a table is the fraction of units kept (checked as one: ``0.5``, not ``"0.5"``)."""
    return value if isinstance(value, (dict, Budget)) else {"keep": value}


#: Fusion modes (``workbench.surgery.FUSE_MODES``, kept here so that reading a study needs no torch).
FUSE_MODES = ("drop", "merge", "neuron-merging", "lsq", "summarize", "summarize-medoid", "summarize-lsq", "fold")
#: Repairs after a fusion (``workbench.surgery.apply``'s ``repair``), written after the mode: ``"fold+data-free"``.
REPAIRS = ("batches", "data-free")


def _fuse(value: Any) -> Any:
    """A fusion mode, optionally followed by the repair run after it: ``"drop"``, ``"drop+batches"`` (REPAIR on
    training batches), ``"fold+data-free"`` (Model Folding's data-free repair, which only folding takes)."""
    if not isinstance(value, str):
        raise ValueError(f"a fuse mode is a string such as 'drop' or 'fold+data-free', got {value!r}")
    mode, sep, repair = value.partition("+")
    if mode not in FUSE_MODES or (sep and repair not in REPAIRS):
        raise ValueError(
            f"unknown fuse {value!r}; use one of {', '.join(map(repr, FUSE_MODES))}, optionally followed by "
            f"{' or '.join('+' + r for r in REPAIRS)} (e.g. 'lsq', 'drop+batches', 'fold+data-free')"
        )
    if repair == "data-free" and mode != "fold":
        raise ValueError(f"{value!r}: the data-free repair follows folding only; use 'fold+data-free'")
    return value


#: A fuse entry of a study: a mode of :data:`FUSE_MODES`, optionally ``+`` a repair of :data:`REPAIRS`.
FuseMode = Annotated[str, BeforeValidator(_fuse)]


class Finetune(_Section):
    """Retraining after the rebuild: none, fine-tuning, or distillation from the base model."""

    method: Literal["none", "finetune", "distill", "reconstruct"] = "finetune"
    epochs: Epochs = 0
    lr: OptionalPositiveReal = None
    batch_size: PositiveInt = 64
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    schedule: Literal["cosine", "step", "constant", "onecycle"] = "cosine"
    max_batches: OptionalPositiveInt = None
    loss: Literal["hinton", "logits"] = "hinton"
    temperature: PositiveReal = 4.0
    alpha: OptionalProbability = None
    class_weights: Literal["none", "enet", "balanced"] = "none"  # fine-tuning only: as the base model's training
    own_schedule: list[str] = Field(default_factory=list)  # pipelines that keep their own training schedule

    @model_validator(mode="after")
    def _weights_need_labels(self) -> Finetune:
        if self.class_weights != "none" and self.method in ("distill", "reconstruct"):
            raise ValueError(
                f"class_weights weigh the label loss of fine-tuning; method {self.method!r} learns from the "
                'teacher\'s outputs. Set class_weights = "none" or method = "finetune"'
            )
        return self


#: The keys of a ``[[models]]`` entry that say how it is compressed, not which base model it is.
COMPRESSION_KEYS = ("finetune", "selectors", "budgets", "fuse", "pipelines", "controls")


class ModelEntry(_Section):
    """One network on data set ``data``: a zoo model (``name`` and ``args``), a saved ``checkpoint``, or a
    model of the researcher's own (``model``).

    ``model = "mypkg.nets:resnet56"`` names, by import path, a function or class returning an ``nn.Module``;
    it is called with ``args`` as keyword arguments (under the run's seed) and trained like a zoo model.
    **Naming it imports that module and runs its code**, as running the author's own script would: it must be
    importable where the study runs (installed, or on ``PYTHONPATH``; on every Dask worker). ``input_shape``
    (e.g. ``[3, 32, 32]``, without the batch dimension) is the shape of the random example batch it is traced
    on, when the model has no ``input_shape`` attribute of its own (default: the data's input shape). With
    ``checkpoint`` as well, the checkpoint (saved by ``workbench.checkpoints.save_checkpoint`` from that
    model) is loaded on the architecture ``model`` builds. ``data`` is a registered data set or, by import
    path too, a function ``(split, **data_options)`` returning a torch Dataset of ``(input, target)`` items or
    an ``(inputs, targets)`` pair (:mod:`workbench.study.imports`).

    A base model may narrow how it is compressed: ``finetune`` (a table like ``[finetune]``) replaces the
    study's retraining budget for its selector runs and pipelines, so that every method of this model still
    retrains on one equal budget; ``selectors`` (names from ``[selectors]``), ``budgets``, ``fuse`` and
    ``pipelines`` (names from ``[pipelines]``, ``[]`` for none) replace the study's lists for it. Absent, the
    study's apply (:data:`COMPRESSION_KEYS`). ``controls = false`` leaves this model out of the study's
    scratch-trained controls (``[controls]``), e.g. where training it again costs more than the study can pay.
    """

    name: str | None = None
    model: str | None = None
    checkpoint: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    input_shape: list[PositiveInt] | None = Field(None, min_length=1)
    data: str
    data_options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    training: Training = Field(default_factory=Training)
    finetune: Finetune | None = None
    selectors: list[str] | None = Field(None, min_length=1)
    budgets: list[Annotated[Budget, BeforeValidator(_budget)]] | None = Field(None, min_length=1)
    fuse: list[FuseMode] | None = Field(None, min_length=1)
    pipelines: list[str] | None = None
    controls: bool = True
    _auto_label: str | None = PrivateAttr(default=None)

    @field_validator("finetune")
    @classmethod
    def _no_own_schedule(cls, finetune: Finetune | None) -> Finetune | None:
        if finetune is not None and finetune.own_schedule:
            raise ValueError("own_schedule belongs to the study's [finetune] table, not to a model's finetune")
        return finetune

    @field_validator("args", "data_options")
    @classmethod
    def _finite_arguments(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _usable_numbers(value)

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str | None) -> str | None:
        return None if name is None else _check_name("model", name)

    @field_validator("model")
    @classmethod
    def _importable_model(cls, model: str | None) -> str | None:
        return None if model is None else _check_import("a model", model)

    @field_validator("data")
    @classmethod
    def _known_data(cls, data: str) -> str:
        from workbench.study.imports import is_import_path

        return _check_import("a data set", data) if is_import_path(data) else _check_name("data set", data)

    @model_validator(mode="after")
    def _model_or_checkpoint(self) -> ModelEntry:
        if self.name is not None and self.model is not None:
            raise ValueError(
                "give name (a zoo model) or model (an import path 'package.module:function' to your own), not both"
            )
        if self.name is None and self.model is None and self.checkpoint is None:
            raise ValueError(
                "give name (a zoo model, see `workbench models`), model (an import path 'package.module:function' "
                "to your own) or checkpoint (a file path)"
            )
        if self.name is not None and self.checkpoint is not None:
            raise ValueError(
                "give either name (a zoo model, see `workbench models`) or checkpoint (a file path), not both"
            )
        if self.checkpoint is not None and self.args and self.model is None:
            raise ValueError("args cannot be combined with checkpoint: the checkpoint fixes the architecture")
        if self.input_shape is not None and self.model is None:
            raise ValueError("input_shape is for a model of your own (model = ...); a zoo model knows its input")
        if self.model is not None:
            from workbench.study.imports import check_arguments, resolve

            try:
                check_arguments(self.model, resolve(self.model, "a model"), self.args)
            except WorkbenchError as exc:
                raise ValueError(str(exc)) from None
        if self.name is not None:
            from workbench.zoo import MODELS

            allowed = [p for p in inspect.signature(MODELS.get(self.name)).parameters]
            unknown = [key for key in self.args if key not in allowed]
            if unknown:
                raise ValueError(
                    f"model {self.name!r} has no argument(s) {', '.join(map(repr, unknown))}"
                    f"{closest(unknown[0], allowed)} It takes: {', '.join(allowed)}"
                )
        return self

    @property
    def display(self) -> str:
        """The label; without one, ``name`` (or checkpoint file name) with its arguments, followed by what
        tells it apart from another unlabelled entry of the same name (e.g. ``"mlp (lr 0.01)"``)."""
        if self.label:
            return self.label
        return self._auto_label or self.default_label

    @property
    def default_label(self) -> str:
        """``name`` (the function of ``model``, or the checkpoint file name) with its arguments."""
        if self.checkpoint is not None:
            return Path(self.checkpoint).stem
        if self.model is not None:
            args = ", ".join(f"{k}={v}" for k, v in self.args.items())
            function = self.model.partition(":")[2]
            return f"{function}({args})" if args else function
        args = ", ".join(f"{k}={v}" for k, v in self.args.items() if k not in _DERIVED_ARGS or k == "widths")
        return f"{self.name}({args})" if args else str(self.name)


def _check_import(what: str, path: str) -> str:
    """``path`` if it names an importable callable (:func:`workbench.study.imports.resolve`); ValueError otherwise."""
    from workbench.study.imports import resolve

    try:
        resolve(path, what)
    except WorkbenchError as exc:
        raise ValueError(str(exc)) from None
    return path


def _settings(entry: ModelEntry) -> dict[str, Any]:
    """An entry's settings as flat ``{"lr": 0.01, "widths": [...], "data": "digits"}`` (nested tables
    flattened, the innermost key kept), for telling entries apart."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(key if prefix in ("", "args", "training") else f"{prefix}.{key}", inner)
        else:
            flat[prefix] = value

    walk("", entry.model_dump(mode="json", exclude={"label", "name"}))
    return flat


def _label_entries(entries: list[ModelEntry], where: str) -> None:
    """Check that explicit labels are unique and give unlabelled entries that share a default label an
    automatic one naming the settings that differ; ValueError naming both entries for a repeated label, or for
    one model entered twice under two labels (its runs are the same, so one label would vanish from the results:
    a repeat is a mistake to name, not two results to show)."""
    first: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.label is None:
            continue
        if entry.label in first:
            raise ValueError(
                f"{where}[{first[entry.label]}] and {where}[{index}] have the same label {entry.label!r}: "
                "their results would be averaged as one model; give each entry its own label"
            )
        first[entry.label] = index
    groups: dict[str, list[ModelEntry]] = {}
    for entry in entries:
        if entry.label is None:
            groups.setdefault(entry.default_label, []).append(entry)
    for default, group in groups.items():
        if default not in first and len({json.dumps(_settings(e), sort_keys=True) for e in group}) < 2:
            continue  # one entry (or the same entry repeated: the same runs, stored once)
        settings = [_settings(e) for e in group]
        keys = sorted({key for s in settings for key in s})
        differing = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1]
        for entry, values in zip(group, settings):
            parts = ", ".join(f"{k} {_show(values.get(k))}" for k in differing)
            entry._auto_label = f"{default} ({parts})" if parts else f"{default} (unlabelled)"
    labels: dict[str, int] = {}
    for index, entry in enumerate(entries):
        other = labels.setdefault(entry.display, index)
        if other != index and _settings(entries[other]) != _settings(entry):
            raise ValueError(
                f"{where}[{other}] and {where}[{index}] are both shown as {entry.display!r}: give them distinct labels"
            )
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        other = seen.setdefault(json.dumps(entry.model_dump(mode="json", exclude={"label"}), sort_keys=True), index)
        if other != index and entries[other].display != entry.display:
            raise ValueError(
                f"{where}[{other}] ({entries[other].display!r}) and {where}[{index}] ({entry.display!r}) are the same "
                "model with the same settings under two labels: they are one computation, run once and shown under "
                "one label only; remove one, or change what should differ between them (to repeat a model, add "
                "seeds to [study] seeds)"
            )


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "-".join(map(str, value))
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


class Compression(_Section):
    """What is tried on each base model: budgets, fusion modes, what the unit views read, whether groups
    are selected one by one on the network rebuilt so far (``sequential``), and ``round_to``: keep a multiple
    of this many units in every group (hardware-friendly widths, :func:`workbench.surgery.plan_from`)."""

    budgets: list[Annotated[Budget, BeforeValidator(_budget)]] = Field(min_length=1)
    fuse: list[FuseMode] = Field(default_factory=lambda: ["drop"], min_length=1)
    source: Literal["weights", "activations", "pooled"] = "weights"
    sequential: bool = False
    round_to: RoundTo = None


class Baselines(_Section):
    """Architectures trained on the same data, for the accuracy-vs-operations chart."""

    models: list[ModelEntry] = Field(default_factory=list)
    note: str | None = None


#: What a random-width control matches: the compressed model's parameters or multiply-adds.
CONTROL_COSTS = ("params", "macs")


class Controls(_Section):
    """Scratch-trained controls (Liu et al. 2019, "Rethinking the Value of Network Pruning"), off by default.

    ``scratch``: for every model, budget and seed, the architecture at the widths the ``widths_from`` method kept
    (``"selector/fuse"``, default the study's reference, ``magnitude/drop``), freshly initialized and trained from
    scratch for as many samples as the base training and that method's retraining together. ``random_widths``:
    the same, at random per-group widths (seeded) whose ``match`` cost (``"params"`` or ``"macs"``) is within
    ``tolerance`` (a relative gap) of that compressed model's.
    """

    scratch: bool = False
    random_widths: bool = False
    widths_from: str | None = None
    match: Literal[CONTROL_COSTS] = "params"
    tolerance: Gap = 0.02

    @property
    def enabled(self) -> list[str]:
        """The control kinds switched on: ``"scratch"``, ``"random-widths"``."""
        return [kind for kind, on in (("scratch", self.scratch), ("random-widths", self.random_widths)) if on]


class Cluster(_Section):
    """How a study runs on a Dask cluster."""

    worker_timeout: Seconds = 60.0  # seconds without any worker before the study stops


class StudyInfo(_Section):
    """Name, description, seeds, where results go, the largest grid run without ``--force``
    (``max_runs``: a study that expands to more runs is refused, so that a typo cannot start months of work),
    and the ``reference`` method (``"selector/fuse"``, default ``"magnitude/drop"``) that the summaries'
    paired differences compare against."""

    name: str = Field(min_length=1)
    description: str = ""
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    store: str | None = None
    latency: bool = True
    max_runs: PositiveInt = 5000
    reference: str | None = None

    @field_validator("reference")
    @classmethod
    def _reference(cls, reference: str | None) -> str | None:
        if reference is None:
            return None
        selector, sep, fuse = reference.partition("/")
        try:
            _fuse(fuse)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(
                f"reference must be 'selector/fuse' with fuse one of {', '.join(FUSE_MODES)} (e.g. 'magnitude/drop'), "
                f"got {reference!r}"
            )
        _check_name("selector", selector)
        return reference

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
        streams: dict[int, int] = {}
        for seed in seeds:  # a seed of 2**32 or more is mixed down to 32 bits (workbench.utils.seed_from)
            other = streams.setdefault(seed_from(seed), seed)
            if other != seed:
                raise ValueError(
                    f"seeds {other} and {seed} give the same random stream (seeds of 2**32 or more are mixed down to "
                    "32 bits), so their runs would be one run counted twice; replace one of them"
                )
        return seeds


class Study(_Section):
    """A validated study file (see the module docstring); ``path`` is the file it was read from."""

    study: StudyInfo
    models: list[ModelEntry] = Field(min_length=1)
    selectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    compression: Compression | None = None
    pipelines: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    finetune: Finetune = Field(default_factory=Finetune)
    baselines: Baselines = Field(default_factory=Baselines)
    controls: Controls = Field(default_factory=Controls)
    cluster: Cluster = Field(default_factory=Cluster)
    _path: Path | None = PrivateAttr(default=None)

    @field_validator("selectors")
    @classmethod
    def _known_selectors(cls, selectors: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from workbench.select import get_selector

        problems = []
        for name, params in selectors.items():
            fixed = sorted({"budget", "random_state"} & set(params))
            try:
                _check_name("selector", name)
                _usable_numbers(params, f"{name}.")
                wrong = "preset" in params and _not_a_name(
                    params["preset"], f"{name}.preset", "'diversity-networks' (workbench.select.list_presets())"
                )
                if wrong:
                    raise ValueError(wrong)
                if fixed:
                    raise ValueError(
                        f"selector {name!r}: {' and '.join(fixed)} {'is' if len(fixed) == 1 else 'are'} set by the study "
                        "(compression.budgets, study.seeds); remove them"
                    )
                get_selector(name, **params)
            except ValueError as exc:
                problems.append(str(exc).rstrip("."))
            except WorkbenchError as exc:
                problems.append(f"selector {name!r}: {exc}".rstrip("."))
        if problems:
            raise ValueError("; ".join(problems))
        return selectors

    @field_validator("pipelines")
    @classmethod
    def _known_pipelines(cls, pipelines: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        from workbench.pipeline import check_steps

        problems = []
        for name, steps in pipelines.items():
            try:
                _usable_numbers(steps, name)
                for i, step in enumerate(steps if isinstance(steps, list) else []):
                    wrong = (
                        isinstance(step, dict)
                        and "do" in step
                        and _not_a_name(step["do"], f"{name}[{i}].do", "'prune' (`workbench transforms`)")
                    )
                    if wrong:
                        raise ValueError(wrong)
                check_steps(steps)
            except WorkbenchError as exc:
                problems.append(f"pipeline {name!r}: {exc}".rstrip("."))
            except ValueError as exc:  # found here: the message names the place
                problems.append(str(exc).rstrip("."))
        if problems:
            raise ValueError("; ".join(problems))
        return pipelines

    @model_validator(mode="after")
    def _distinct_labels(self) -> Study:
        _label_entries(self.models, "models")
        _label_entries(self.baselines.models, "baselines.models")
        return self

    @model_validator(mode="after")
    def _known_own_schedules(self) -> Study:
        unknown = [name for name in self.finetune.own_schedule if name not in self.pipelines]
        if unknown:
            known = ", ".join(sorted(self.pipelines)) or "none: the study has no [pipelines]"
            raise ValueError(
                f"finetune.own_schedule names {', '.join(map(repr, unknown))}, which is not a pipeline of this study "
                f"(pipelines: {known})"
            )
        return self

    @model_validator(mode="after")
    def _controls_source(self) -> Study:
        controls = self.controls
        given = [key for key in ("widths_from", "match", "tolerance") if key in controls.model_fields_set]
        if not controls.enabled:
            if given:
                raise ValueError(
                    f"controls.{given[0]} is set but no control is switched on: add scratch = true or "
                    "random_widths = true to [controls], or remove it"
                )
            return self
        if not self.selectors or self.compression is None:
            raise ValueError(
                "[controls] train the widths a selector kept: they need [selectors] and [compression] "
                "(pipelines alone have no kept widths)"
            )
        loaded = [f"models[{k}]" for k, entry in enumerate(self.models) if entry.checkpoint is not None]
        if loaded:
            raise ValueError(
                f"{', '.join(loaded)} {'is' if len(loaded) == 1 else 'are'} loaded from a checkpoint: the study does "
                "not know how it was trained, so [controls] cannot train the small network the same way; train the "
                "model in the study (training = {...}) or switch the controls off"
            )
        source = self.controls_source
        selector, sep, fuse = source.partition("/")
        fuses = {mode for entry in self.models for mode in (entry.fuse or self.compression.fuse)}
        if not sep or selector not in self.selectors or fuse not in fuses:
            methods = ", ".join(f"{s}/{f}" for s in self.selectors for f in sorted(fuses))
            where = "controls.widths_from" if controls.widths_from else "the reference (controls.widths_from unset)"
            raise ValueError(
                f"{where} is {source!r}, not a method of this study; set controls.widths_from to one of {methods}"
            )
        return self

    @property
    def controls_source(self) -> str:
        """The ``"selector/fuse"`` method whose kept widths the controls train: ``controls.widths_from``, else the
        study's reference, else ``"magnitude/drop"``."""
        return self.controls.widths_from or self.study.reference or "magnitude/drop"

    @model_validator(mode="after")
    def _model_subsets(self) -> Study:
        problems = []
        for index, entry in enumerate(self.models):
            unknown = [name for name in entry.selectors or [] if name not in self.selectors]
            if unknown:
                problems.append(
                    f"models[{index}].selectors names {', '.join(map(repr, unknown))}, not in [selectors] "
                    f"(known: {', '.join(self.selectors) or 'none'}); list only selectors of this study"
                )
            unknown = [name for name in entry.pipelines or [] if name not in self.pipelines]
            if unknown:
                problems.append(
                    f"models[{index}].pipelines names {', '.join(map(repr, unknown))}, not in [pipelines] "
                    f"(known: {', '.join(self.pipelines) or 'none'}); list only pipelines of this study"
                )
            if (entry.budgets or entry.fuse) and self.compression is None:
                problems.append(f"models[{index}] gives budgets or fuse, but the study has no [compression] table")
        for index, entry in enumerate(self.baselines.models):
            given = [key for key in COMPRESSION_KEYS if key in entry.model_fields_set]
            if given:
                problems.append(
                    f"baselines.models[{index}] gives {', '.join(given)}: baselines are trained, not compressed; "
                    "move the entry to [[models]] or remove the key(s)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _known_reference(self) -> Study:
        reference = self.study.reference
        if reference is None or reference in self.methods:
            return self
        known = ", ".join(self.methods) or "none: the study has no [selectors] with [compression]"
        raise ValueError(
            f"study.reference is {reference!r}, not a method (selector/fuse) this study runs; choose one of {known}"
        )

    @property
    def methods(self) -> list[str]:
        """Every ``selector/fuse`` method the study runs on at least one model, in ``[selectors]`` and fuse order."""
        found: dict[str, None] = {}
        for entry in self.models:
            selectors, _, fuses = self.grid_for(entry)
            found.update({f"{selector}/{fuse}": None for selector in selectors for fuse in fuses})
        return list(found)

    def finetune_for(self, entry: ModelEntry) -> Finetune:
        """The retraining budget of ``entry``: its own ``finetune`` table, or the study's."""
        return entry.finetune if entry.finetune is not None else self.finetune

    def pipelines_for(self, entry: ModelEntry) -> list[str]:
        """The pipelines (in ``[pipelines]`` order) applied to ``entry``."""
        return [name for name in self.pipelines if entry.pipelines is None or name in entry.pipelines]

    def grid_for(self, entry: ModelEntry) -> tuple[list[str], list[Budget], list[str]]:
        """The selectors (in ``[selectors]`` order), budgets and fusion modes that compress ``entry``."""
        if not self.selectors or self.compression is None:
            return [], [], []
        selectors = [name for name in self.selectors if entry.selectors is None or name in entry.selectors]
        return selectors, entry.budgets or self.compression.budgets, entry.fuse or self.compression.fuse

    @model_validator(mode="after")
    def _something_to_compress(self) -> Study:
        if not self.selectors and not self.pipelines:
            raise ValueError("a study compresses its models: give [selectors] (with [compression]) or [pipelines]")
        if self.selectors and self.compression is None:
            raise ValueError("[selectors] need a [compression] table with the budgets, e.g. budgets = [0.5, 0.25]")
        return self

    @property
    def path(self) -> Path | None:
        """The study file, when read by :func:`load_study`."""
        return self._path

    @property
    def folder(self) -> Path:
        """The folder relative paths are resolved against (the study file's, or the current one)."""
        return self._path.parent if self._path is not None else Path.cwd()

    def resolve(self, path: str | Path) -> Path:
        """``path`` resolved against :attr:`folder`."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.folder / path).resolve()

    def store_path(self) -> Path:
        """The SQLite store: ``study.store``, or ``<study file stem>.sqlite`` beside the study file."""
        if self.study.store:
            return self.resolve(self.study.store)
        stem = self._path.stem if self._path is not None else self.study.name
        return self.folder / f"{stem}.sqlite"


# --------------------------------------------------------------------------------------------------
# loading and error messages


def _where(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif str(part).startswith("function-"):  # pydantic's name for a BeforeValidator step
            continue
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema class of the table at ``loc`` (to list the keys allowed there)."""
    current: Any = Study
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return None
        annotation = fields[part].annotation
        current = _model_in(annotation)
        if current is None:
            return None
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field annotation (``list[X]``, ``X | None``, ``Annotated[X, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for inner in (*(getattr(annotation, "__args__", None) or ()), getattr(annotation, "__origin__", None)):
        if inner is not None and inner is not annotation:
            found = _model_in(inner)
            if found is not None:
                return found
    return None


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    where = _where(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        section = _section_at(loc[:-1])
        allowed = list(section.model_fields) if section is not None else []
        hint = closest(key, allowed) if allowed else ""
        listed = f" Allowed keys here: {', '.join(allowed)}." if allowed else ""
        return f"{_where(loc[:-1])}: unknown key {key!r}.{hint}{listed}"
    if kind == "missing":
        return f"{where}: required, but missing."
    message = str(error.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if kind == "literal_error":
        message = f"{message}; got {error.get('input')!r}"
    elif "input" in error and kind not in ("value_error",) and not isinstance(error["input"], dict):
        message = f"{message}; got {error['input']!r}"
    return f"{where}: {message.rstrip('.')}."


def study_from_dict(data: dict[str, Any], path: str | Path | None = None) -> Study:
    """Validate a parsed study document; a :class:`StudyError` listing every problem otherwise."""
    source = str(path) if path is not None else "the study"
    try:
        study = Study.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(error) for error in exc.errors())
        raise StudyError(f"{source} is not a valid study file:\n  {problems}") from None
    study._path = Path(path).resolve() if path is not None else None
    for entry in [*study.models, *study.baselines.models]:
        if entry.checkpoint is not None and not study.resolve(entry.checkpoint).is_file():
            raise StudyError(
                f"{source}: checkpoint {entry.checkpoint!r} of model {entry.display!r} does not exist "
                f"(relative paths are read from {study.folder})."
            )
    return study


def load_study(path: str | Path) -> Study:
    """Read and validate the TOML study file at ``path``.

    Raises
    ------
    StudyError
        The file is missing or unreadable, is not TOML, or does not fit the schema (every bad key is
        named, with what is allowed there); ``path`` is not a usable path (:func:`workbench.utils.check_path`).
    """
    path = check_path(path, "the study file path", StudyError)
    if not path.is_file():
        raise StudyError(
            f"no study file at {path}: give the path of a TOML study file (e.g. workbench/studies/demo.toml)."
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StudyError(f"cannot read the study file {path}: {exc.strerror or exc}.") from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if toml_depth(text) <= MAX_JSON_DEPTH else None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StudyError(
            f"{path} is not a valid TOML file ({exc}); a study file is TOML, "
            "see workbench/studies/demo.toml for an example."
        ) from None
    except RecursionError:  # deeper than toml_depth saw (it does not parse): refused all the same
        data = None
    if data is None:
        raise StudyError(
            f"{path} nests arrays or inline tables more than {MAX_JSON_DEPTH} levels deep; a study file is a few "
            "levels deep (see workbench/studies/demo.toml)."
        )
    return study_from_dict(data, path)


def toml_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` in TOML ``text`` (brackets inside strings and comments ignored), without
    recursion: tomllib recurses once per level, so a file nested thousands deep is refused before it is parsed."""
    depth = deepest = i = 0
    while i < len(text):
        char = text[i]
        if char == "#":  # a comment, to the end of its line
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif char in "\"'":
            quote = char * 3 if text.startswith(char * 3, i) else char
            i += len(quote)
            while i < len(text) and not text.startswith(quote, i) and not (len(quote) == 1 and text[i] == "\n"):
                i += 2 if char == '"' and text[i] == "\\" else 1  # a basic string's escape skips the next character
            i += len(quote)
            while len(quote) == 3 and text.startswith(char, i) and text.startswith(quote, i - 2):
                i += 1  # a multi-line string may end in up to two quotes of its own: """a"""" is 'a"'
        else:
            if char in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif char in "]}":
                depth -= 1
            i += 1
    return deepest


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (so that a changed checkpoint makes new runs)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
