"""The orchestration layer: one call from a trained model to a compressed, retrained, profiled one.

:func:`run_compression` runs any compression pipeline's steps (:mod:`workbench.pipeline`) under one retraining
configuration, :class:`Retraining`, and measures before and after; :func:`compress` is its ``select`` step
(graph -> select -> surgery, :func:`workbench.rebuild.select_and_rebuild`) followed by that retraining. The study
runner (:mod:`workbench.study.execute`: selector runs and pipeline runs alike) and the ``workbench compress``
command call them, so a study run and a command-line run of the same settings do the same steps. The parts
themselves know nothing of each other beyond their data contracts (:class:`~workbench.selection.Selection`,
:class:`~workbench.surgery.Plan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.edits import note, set_note
from workbench.errors import ConfigError
from workbench.numeric import as_float, as_int
from workbench.train.history import History
from workbench.train.outputs import check_model
from workbench.utils import example_batch

#: Score columns taken from :func:`workbench.train.evaluate` (classification / segmentation).
SCORE_KEYS = ("accuracy", "miou")
RETRAIN_METHODS = ("none", "finetune", "distill", "reconstruct")


@dataclass(frozen=True)
class Retraining:
    """How the rebuilt network is retrained (the study file's ``[finetune]`` table has the same fields).

    Attributes
    ----------
    method
        ``"finetune"`` (:func:`workbench.train.finetune`: labels), ``"distill"``
        (:func:`workbench.train.distill` from a teacher, by default the uncompressed model), ``"reconstruct"``
        (:func:`workbench.train.reconstruct`: the teacher's outputs on the training inputs, no labels; Lin et
        al. 2016's global error reconstruction) or ``"none"``.
    epochs
        Passes over the training data (0: no retraining).
    lr
        Learning rate; None: :data:`workbench.train.RETRAIN_LR` (1e-3) for every method and optimizer, so that
        methods compared at their defaults retrain at one rate (:attr:`learning_rate` is the rate used). It is
        the rate the demo study's numbers were measured with (``[finetune] lr = 1e-3``).
    batch_size, optimizer, schedule, max_batches
        Passed to :func:`workbench.train.fit`.
    loss, temperature, alpha
        Distillation loss settings (``method="distill"`` only).
    class_weights
        ``method="finetune"`` only: the loss weights per class (:func:`workbench.train.fit`'s ``class_weights``,
        e.g. ``"enet"``), as the base model was trained.
    features
        ``method="reconstruct"`` only: match the kept layers' outputs (each plan group's layer, on the kept
        units) as well as the logits.
    """

    method: str = "finetune"
    epochs: int = 0
    lr: float | None = None
    batch_size: int = 64
    optimizer: str = "adam"
    schedule: str = "cosine"
    max_batches: int | None = None
    loss: str = "hinton"
    temperature: float = 4.0
    alpha: float | None = None
    class_weights: str = "none"
    features: bool = False

    def __post_init__(self) -> None:
        if self.method not in RETRAIN_METHODS:
            raise ConfigError(f"unknown retraining method {self.method!r}; use one of {', '.join(RETRAIN_METHODS)}.")
        if self.class_weights != "none" and self.method in ("distill", "reconstruct"):
            raise ConfigError(
                f"class_weights weigh the label loss of fine-tuning; {self.method!r} learns from the teacher's "
                'outputs. Set class_weights = "none" or method = "finetune".'
            )
        numbers = {
            "epochs": as_int(self.epochs, "epochs", low=0, what="a number of epochs (0: no retraining)"),
            "batch_size": as_int(self.batch_size, "batch_size", low=1),
            "temperature": as_float(self.temperature, "temperature", low=0.0, low_open=True),
        }
        if self.lr is not None:
            numbers["lr"] = as_float(self.lr, "lr", low=0.0, low_open=True)
        if self.max_batches is not None:
            numbers["max_batches"] = as_int(self.max_batches, "max_batches", low=1)
        if self.alpha is not None:
            numbers["alpha"] = as_float(self.alpha, "alpha", low=0.0, high=1.0)
        for name, value in numbers.items():  # plain numbers, whatever numpy or tensor scalars were given
            object.__setattr__(self, name, value)

    @property
    def learning_rate(self) -> float:
        """The learning rate :meth:`run` trains with: ``lr``, or the one default of every method."""
        from workbench.train import RETRAIN_LR

        return RETRAIN_LR if self.lr is None else self.lr

    @property
    def active(self) -> bool:
        """Whether any retraining happens."""
        return self.method != "none" and self.epochs > 0

    @property
    def budget_epochs(self) -> int:
        """The epochs a pipeline's training steps are scaled to (:func:`workbench.pipeline.with_budget`): ``epochs``,
        or 0 for ``method="none"``."""
        return 0 if self.method == "none" else self.epochs

    def teaching(self) -> dict[str, Any] | None:
        """How every training step of a pipeline learns under this retraining: None to fit the labels
        (``"finetune"``, ``"none"``), else the ``distill_options`` of :func:`workbench.pipeline.run_pipeline` with
        the uncompressed model as teacher: this loss, temperature and alpha (``"distill"``), or the teacher's
        logits alone, without labels (``"reconstruct"``: logit regression, alpha 1)."""
        if self.method == "distill":
            options = {"loss": self.loss, "temperature": self.temperature}
            return options | ({"alpha": self.alpha} if self.alpha is not None else {})
        if self.method == "reconstruct":
            return {"loss": "logits", "alpha": 1.0}
        return None

    def run(
        self,
        model: nn.Module,
        train: Any,
        teacher: nn.Module,
        random_state: int,
        quiet: bool,
        kept_channels: Mapping[str, Any] | None = None,
    ) -> History:
        """Retrain ``model`` in place on ``train`` (``teacher`` is read by distillation and reconstruction;
        ``kept_channels``, layer -> the teacher's channels ``model`` kept, by reconstruction with ``features``);
        returns the training :class:`~workbench.train.History` (its ``samples`` are the budget spent)."""
        from workbench.train import distill, finetune, reconstruct

        kwargs: dict[str, Any] = {
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "max_batches": self.max_batches,
            "random_state": random_state,
            "quiet": quiet,
            "lr": self.learning_rate,
        }
        if self.method == "distill":
            return distill(
                model,
                teacher,
                train,
                epochs=self.epochs,
                loss=self.loss,
                temperature=self.temperature,
                alpha=self.alpha,
                **kwargs,
            )
        if self.method == "reconstruct":
            features = dict(kept_channels or {}) if self.features else None
            return reconstruct(model, teacher, train, epochs=self.epochs, features=features, **kwargs)
        return finetune(model, train, epochs=self.epochs, class_weights=self.class_weights, **kwargs)


@dataclass
class CompressionResult:
    """What :func:`compress` made and measured.

    Attributes
    ----------
    model
        The rebuilt (and retrained) network.
    plan
        The :class:`~workbench.surgery.Plan` it was rebuilt from (of the last ``select`` step; None when no step
        selected).
    before, after
        :func:`measure` of the input model and of the result (scores on ``test`` when given, then the profile).
    rebuilt
        Scores on ``test`` after steps that do not train, before the retraining that follows them (empty without
        ``test`` or when the steps trained themselves).
    retrained
        Whether the result was retrained.
    retrain_samples, teacher
        The retraining budget spent (training samples seen after the rebuild, 0 without retraining) and the
        teacher it learned from: ``"none"`` (labels only), ``"base model"`` (the uncompressed input),
        ``"base model (no labels)"`` (reconstruction of its outputs) or ``"given"`` (the ``teacher`` passed to
        :func:`compress`; ``"given (no labels)"`` for reconstruction).
    notes
        The plan's :class:`~workbench.errors.PlanWarning` and the selector's
        :class:`~workbench.errors.SelectionWarning` messages (groups left out of the plan, fallbacks used).
    budget
        The budget compressed to (:func:`workbench.surgery.budgets.check_budget` form); for a cost or latency
        target also ``reached``, the result's share of the base's multiply-adds or parameters (profiled) or
        latency (median ratio over rounds; ``measured`` holds the spread and the timings).
    steps
        What each step did (:func:`workbench.pipeline.run_pipeline`'s record: its settings, seconds, training samples
        and what it learned from).
    """

    model: nn.Module
    plan: Any
    before: dict[str, Any]
    after: dict[str, Any]
    rebuilt: dict[str, float] = field(default_factory=dict)
    retrained: bool = False
    retrain_samples: int = 0
    teacher: str = "none"
    notes: list[str] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)


def scores(model: nn.Module, test: Any) -> dict[str, float]:
    """Accuracy (classification) or mIoU (segmentation) of ``model`` on ``test``, and ``n`` (the samples scored);
    empty when ``test`` is None."""
    if test is None:
        return {}
    from workbench.train import evaluate

    found = evaluate(model, test)
    return {**{key: float(found[key]) for key in SCORE_KEYS if key in found}, "n": int(found["n"])}


def measure(
    model: nn.Module, test: Any = None, *, latency: bool = True, example_input: torch.Tensor | None = None
) -> dict[str, Any]:
    """:func:`scores` on ``test`` followed by :func:`workbench.metrics.profile` (params, MACs, bytes, latency)
    of ``model`` on one example input (the first of ``example_input``, default a batch of its ``input_shape``)."""
    from workbench.metrics import profile

    one = example_batch(model, 1) if example_input is None else example_input[:1]
    return {**scores(model, test), **profile(model, one, latency=latency).as_dict()}


def _reached(
    model: nn.Module,
    smaller: nn.Module,
    budget: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    example_input: torch.Tensor,
) -> dict[str, Any]:
    """What a cost or latency budget reached: the result's share of the base's multiply-adds or parameters (as
    profiled), or its :func:`workbench.surgery.budgets.latency_ratio` (median over rounds, with the spread)."""
    from workbench.surgery.budgets import COSTS, budget_target, latency_ratio

    target = budget_target(budget)
    if target in COSTS:
        return {"reached": float(after[target]) / max(float(before[target]), 1e-12)}
    measured = latency_ratio(model, smaller, example_input, batch=budget["batch"], rounds=5)
    return {"reached": measured.ratio, "measured": measured.as_dict()}


def _kept_channels(plan: Any, graph: Any) -> dict[str, list[int]]:
    """Each plan group's named layer -> the output channels of that layer (in the original) its kept units have."""
    channels = {}
    for name, selection in plan.items():
        unit_map = graph.group(name).unit_maps.get(name)
        if unit_map is not None:
            kept = set(selection.keep.tolist())
            channels[name] = [c for c, unit in enumerate(unit_map) if int(unit) in kept]
    return channels


def compress(
    model: nn.Module,
    *,
    method: str = "magnitude",
    selector_params: Mapping[str, Any] | None = None,
    keep: float | None = None,
    per_layer: Mapping[str, float] | None = None,
    budget: Mapping[str, Any] | None = None,
    fuse: str = "drop",
    source: str = "weights",
    sequential: bool = False,
    train: Any = None,
    test: Any = None,
    retrain: Retraining | None = None,
    teacher: nn.Module | None = None,
    latency: bool = True,
    base_latency: bool | None = None,
    random_state: int = 0,
    quiet: bool = True,
    example_input: torch.Tensor | None = None,
    round_to: int | None = None,
    fuse_options: Mapping[str, Any] | None = None,
    sensitivity: Any = None,
) -> CompressionResult:
    """Select units with selector ``method`` in every group surgery can rebuild, rebuild, retrain, measure.

    Parameters
    ----------
    model
        A trained network (not modified), on any device.
    method, selector_params
        Selector name and its parameters (:func:`workbench.select.get_selector`).
    keep, per_layer
        Fraction of each group's units kept (default 0.5); group name -> fraction, for the groups that differ.
    budget
        Instead of ``keep``: a target share of the base's cost (:func:`workbench.surgery.budgets.check_budget`),
        ``{"macs": 0.5}``, ``{"params": 0.33, "scope": "global", "min_keep": 0.1}`` (predicted per-group fractions,
        :func:`workbench.surgery.budgets.cost_fractions`) or ``{"latency": 0.5, "batch": 64}`` (CPU latency at that
        batch, found by timed rebuilds, :func:`workbench.surgery.budgets.latency_fractions`); ``{"keep": 0.5,
        "per_layer": {...}}`` is the same as ``keep``. The fractions are chosen on ``model`` (with ``sequential``
        too: each group is then rebuilt at its fraction in turn); :attr:`CompressionResult.budget` records the
        target and the share reached.
    fuse
        A :data:`workbench.surgery.FUSE_MODES` name: ``"drop"``, ``"merge"``, ``"lsq"`` (fits on ``train``),
        graph summarization with a partition selector: ``"summarize"``, ``"summarize-medoid"``,
        ``"summarize-lsq"`` (:mod:`workbench.surgery.summarize`), or Model Folding, ``"fold"`` (k-means clusters
        of each group's units, k = the selector's kept count, each folded into one unit;
        :mod:`workbench.surgery.folding`).
    source
        What the unit views read: ``"weights"``, ``"activations"`` or ``"pooled"`` (both of ``train``).
    sequential
        Select and rebuild group by group in network order, each group on the network already rebuilt and
        fused for the groups before it (Diversity Networks' procedure), instead of all groups at once on
        ``model``.
    train, test
        Data sets: ``train`` for activations, lsq and retraining; ``test`` for the score columns.
    retrain
        How the rebuilt network is retrained (default: not at all).
    teacher
        The teacher of distillation and reconstruction (default: ``model``, the uncompressed network).
    latency, base_latency
        Measure the latency of the result, and of ``model`` (default: as ``latency``).
    random_state
        Seed of the selector, the fusion and the retraining.
    quiet
        No progress bar while retraining.
    example_input
        A batch of what the model takes (tracing, profiling); default a random batch of its ``input_shape``.
    round_to
        Keep a multiple of this many units in every group (hardware-friendly widths; see
        :func:`workbench.surgery.plan_from`).
    fuse_options
        More options of :func:`workbench.surgery.apply`: ``{"repair": "batches"}`` (REPAIR on ``train``),
        ``{"repair": "data-free"}`` with ``fuse="fold"`` (Model Folding's repair, from the weights alone),
        ``{"merge_threshold": 0.3}`` for ``fuse="neuron-merging"``.
    sensitivity
        For a budget of ``scope="sensitivity"`` (``{"macs": 0.5, "scope": "sensitivity"}``): the per-layer
        sensitivity measured on val (:func:`sensitivity`); each group is cut as far as its predicted loss stays
        within one tolerance for the whole network.
    """
    from workbench.rebuild import resolve_budget

    step = {
        "do": "select",
        "method": method,
        "selector_params": dict(selector_params or {}),
        "budget": resolve_budget(keep, per_layer, budget),  # checked before anything runs
        "fuse": fuse,
        "fuse_options": dict(fuse_options) if fuse_options is not None else None,
        "source": source,
        "sequential": sequential,
        "round_to": round_to,
        "sensitivity": sensitivity,
    }
    return run_compression(
        model,
        [step],
        train=train,
        test=test,
        retrain=retrain,
        teacher=teacher,
        latency=latency,
        base_latency=base_latency,
        random_state=random_state,
        quiet=quiet,
        example_input=example_input,
    )


def _teacher_words(record: list[dict[str, Any]], given: bool) -> str:
    """What the training of a compression learned from, from each step's ``learned_from``: ``"none"`` (labels
    only), ``"base model"`` (the uncompressed input; ``"given"`` for a teacher passed in), ``" (no labels)"`` added
    when every taught step learned from the teacher's outputs alone, ``" and labels"`` when some steps could only
    fit the labels."""
    learned = {step.get("learned_from", "labels") for step in record} - {"-"}
    taught = {"teacher and labels", "teacher (no labels)"} & learned
    if not taught:
        return "none"
    name = "given" if given else "base model"
    name += " (no labels)" if taught == {"teacher (no labels)"} else ""
    return f"{name} and labels" if "labels" in learned else name


def run_compression(
    model: nn.Module,
    steps: Any,
    *,
    train: Any = None,
    test: Any = None,
    retrain: Retraining | None = None,
    own_schedule: bool = False,
    teacher: nn.Module | None = None,
    latency: bool = True,
    base_latency: bool | None = None,
    random_state: int = 0,
    quiet: bool = True,
    example_input: torch.Tensor | None = None,
) -> CompressionResult:
    """Compress ``model`` by pipeline ``steps`` and retrain it by one configuration, ``retrain``; measure both.

    The one orchestrator of every compression: :func:`compress` is a ``select`` step, a study's selector runs and
    pipeline runs are its steps (:mod:`workbench.study.execute`). ``retrain`` decides the retraining budget and
    what every training step learns from:

    - steps that train (``retrain``, ``iterative-prune``, ``group-lasso``...) are scaled so that together they train
      ``retrain.epochs`` epochs, each keeping its share of the pipeline's schedule
      (:func:`workbench.pipeline.with_budget`; ``own_schedule`` keeps theirs), and learn as ``retrain.method`` says
      (:meth:`Retraining.teaching`: labels, distillation from the uncompressed model, or its logits alone);
    - steps that do not train (a selection and rebuild, weight sharing...) are followed by ``retrain`` itself.

    Parameters
    ----------
    model
        A trained network (not modified), on any device.
    steps
        ``[{"do": name, **params}, ...]`` (:func:`workbench.pipeline.check_steps`); a ``select`` step selects and
        rebuilds (:func:`workbench.rebuild.select_and_rebuild`), and the result's ``plan``, ``notes`` and ``budget``
        are the last such step's.
    train, test
        Data sets: ``train`` for the steps and the retraining; ``test`` for the score columns.
    retrain
        How the result is retrained (default: not at all).
    own_schedule
        Let the steps that train keep their own epochs (a paper's schedule) instead of the budget's.
    teacher
        The teacher of distillation and reconstruction (default: ``model``, the uncompressed network).
    latency, base_latency
        Measure the latency of the result, and of ``model`` (default: as ``latency``).
    random_state
        Seed of every step and of the retraining.
    quiet
        No progress bar while retraining.
    example_input
        A batch of what the model takes (tracing, profiling); default a random batch of its ``input_shape``.
    """
    from workbench.pipeline import check_steps, learned_from, planned_epochs, run_pipeline, with_budget
    from workbench.surgery.budgets import budget_target
    from workbench.train.history import counting_samples

    retrain = retrain or Retraining(method="none")
    steps = check_steps(steps)
    if example_input is None:
        example_input = example_batch(model, 2)
    options = retrain.teaching()
    check_model(model, example_input, teacher=teacher if options is not None else None)  # weights, one output
    trains = planned_epochs(steps, model) > 0
    if trains and not own_schedule:
        steps = with_budget(steps, retrain.budget_epochs, model)  # the one retraining budget
    before = measure(
        model, test, latency=latency if base_latency is None else base_latency, example_input=example_input
    )
    source = (teacher if teacher is not None else model) if options is not None else None
    rebuilds: list[Any] = []
    rebuilt: dict[str, float] = {}
    final = retrain.active and not trains  # steps that do not train are followed by the retraining
    with counting_samples() as count:
        smaller = run_pipeline(
            model,
            steps,
            train,
            teacher=source,
            distill_options=options if source is not None else None,
            random_state=random_state,
            example_input=example_input,
            rebuilds=rebuilds,
        )
        record = list(note(smaller, "pipeline") or [])
        if not trains:
            rebuilt = scores(smaller, test)
        if final:
            last = rebuilds[-1] if rebuilds else None
            kept = _kept_channels(last.plan, last.graph) if retrain.features and last is not None else None
            history = retrain.run(smaller, train, source if source is not None else model, random_state, quiet, kept)
            record.append(
                {
                    "do": "retrain",
                    "method": retrain.method,
                    "epochs": retrain.epochs,
                    "seconds": round(float(sum(history.seconds)), 3),
                    "samples": history.total_samples,
                    "learned_from": learned_from(source, options),
                }
            )
    set_note(smaller, "pipeline", record)
    after = measure(smaller, test, latency=latency, example_input=example_input)
    plan = rebuilds[-1].plan if rebuilds else None
    notes = [text for made in rebuilds for text in made.notes]
    budget = dict(rebuilds[-1].budget) if rebuilds else {}
    if budget and budget_target(budget) != "keep":
        budget.update(_reached(model, smaller, budget, before, after, example_input))
        plan.meta["budget"] = budget
        target = budget_target(budget)
        if abs(budget["reached"] - budget[target]) > budget["tolerance"]:
            spread = budget.get("measured")
            rounds = f" (rounds from {spread['low']:.3f} to {spread['high']:.3f})" if spread else ""
            notes.append(
                f"the result has {budget['reached']:.3f} of the base's {target}{rounds}, not {budget[target]:g} "
                f"+- {budget['tolerance']:g}."
            )
    return CompressionResult(
        budget=budget,
        model=smaller,
        plan=plan,
        before=before,
        after=after,
        rebuilt=rebuilt,
        retrained=count.samples > 0,
        retrain_samples=count.samples,
        teacher=_teacher_words(record, given=teacher is not None),
        notes=notes,
        steps=record,
    )


@dataclass
class Sensitivity:
    """What :func:`sensitivity` measured: the score on ``val`` when one group alone is compressed.

    Attributes
    ----------
    metric
        The score: ``"accuracy"`` or ``"miou"``.
    base
        The uncompressed model's score.
    fractions
        The kept fractions tried, ascending.
    curves
        Group -> score at each of ``fractions`` (no retraining).
    n
        Samples scored.
    selector, fuse
        How the units were chosen and fused.
    """

    metric: str
    base: float
    fractions: tuple[float, ...]
    curves: dict[str, list[float]]
    n: int
    selector: str
    fuse: str

    def drops(self) -> dict[str, float]:
        """Group -> mean loss of score over the fractions (base minus score), most sensitive first."""
        found = {name: self.base - sum(scores) / len(scores) for name, scores in self.curves.items()}
        return dict(sorted(found.items(), key=lambda item: -item[1]))

    def losses(self) -> dict[str, dict[float, float]]:
        """Group -> {kept fraction: loss of score} (base minus score): what a ``scope="sensitivity"`` budget reads
        (:func:`workbench.surgery.budgets.cost_fractions`)."""
        return {
            name: {f: self.base - score for f, score in zip(self.fractions, scores)}
            for name, scores in self.curves.items()
        }

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict (what :func:`workbench.viz.sensitivity_figure` also reads)."""
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def sensitivity(
    model: nn.Module,
    val: Any,
    *,
    selector: str = "magnitude",
    fractions: tuple[float, ...] = (0.25, 0.5, 0.75),
    fuse: str = "drop",
    example_input: torch.Tensor | None = None,
    selector_params: Mapping[str, Any] | None = None,
    train: Any = None,
    random_state: int = 0,
) -> Sensitivity:
    """Per-layer sensitivity (Li et al. 2017): the ``val`` score when each rebuildable group alone keeps each of
    ``fractions`` of its units, chosen by ``selector`` and fused by ``fuse``, without retraining.

    Parameters
    ----------
    model
        A trained network (not modified).
    val
        The data set scored (:func:`scores`); the validation split, so that budgets chosen from it stay off test.
    selector, selector_params
        Selector name and parameters (:func:`workbench.select.get_selector`).
    fractions
        Kept fractions, each in (0, 1].
    fuse
        A :data:`workbench.surgery.FUSE_MODES` name; ``"lsq"`` fits on ``train``.
    example_input
        A batch of what the model takes (default a random batch of its ``input_shape``).
    train
        Data for ``fuse="lsq"`` (default none).
    random_state
        Seed of the selector and the fusion.
    """
    from workbench.graph import from_model
    from workbench.rebuild import applied_plan
    from workbench.select import get_selector
    from workbench.surgery import apply, plan_from
    from workbench.surgery.plan_builder import unrebuildable_groups

    if val is None:
        raise ConfigError("sensitivity scores each rebuilt network on val; give the validation data set.")
    if not fractions:
        raise ConfigError("fractions is empty; give the kept fractions to try, e.g. (0.25, 0.5, 0.75).")
    from workbench.surgery.budgets import check_budget

    tried = tuple(sorted(check_budget({"keep": f})["keep"] for f in fractions))
    if example_input is None:
        example_input = example_batch(model, 2)
    graph = from_model(model, example_input)
    base = scores(model, val)
    metric = next(key for key in SCORE_KEYS if key in base)
    unsupported = unrebuildable_groups(graph)
    groups = [g.name for g in graph.prunable_groups() if g.name not in unsupported]
    chosen = get_selector(selector, budget=tried[0], random_state=random_state, **dict(selector_params or {}))
    curves: dict[str, list[float]] = {}
    for name in groups:
        curves[name] = []
        for fraction in tried:
            plan = plan_from(graph, chosen, keep=fraction, groups=[name])
            plan = applied_plan(model, plan, graph, fuse, random_state)
            smaller = apply(model, plan, fuse=fuse, graph=graph, data=train, random_state=random_state)
            curves[name].append(scores(smaller, val)[metric])
    return Sensitivity(metric, base[metric], tried, curves, base["n"], selector, fuse)
