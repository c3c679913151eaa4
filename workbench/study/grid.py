"""Expand a study into runs, each with a stable hash.

Four kinds of run:

- ``"train"``: train (or load) one model on its data set and profile it; ``role`` is ``"base"`` for
  the models that are compressed and ``"baseline"`` for the architectures of the comparison chart.
- ``"compress"``: select, rebuild, retrain and profile one base model for one selector, budget,
  fusion mode and seed.
- ``"pipeline"``: apply one classic compression pipeline (:mod:`workbench.pipeline`) to one base model
  and seed, and count its stored bytes. Selector and pipeline runs are one computation
  (:func:`workbench.compression.run_compression`: a selector run's steps are one ``select``), retrained by one
  configuration, the run's ``finetune``: a pipeline's training steps are scaled to its epochs (``schedule``
  ``"budget"``, or ``"own"``: the paper's) and learn as its method says.
- ``"control"`` (only with ``[controls]``): train one network of the widths a compression run kept
  (``control`` ``"scratch"``), or of random widths of the same cost (``"random-widths"``), from scratch
  (:mod:`workbench.study.controls`); ``source`` is the hash of that compression run.

A run's hash is the sha256 of the canonical JSON (sorted keys, no spaces) of its configuration
without presentation fields (labels, role), so the same computation has the same hash in every study, and a
compression run's ``base`` hash names the cached base model it starts from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import StudyError
from workbench.study.schema import COMPRESSION_KEYS, Finetune, ModelEntry, Study, budget_heading, file_digest

# Where a run config holds fields that only change how the run is shown, not what it computes.
PRESENTATION_KEYS = (("role",), ("model", "label"), ("budget", "label"))
#: Where a run config holds what the runner adds at run time from other stored runs (a control run's source
#: plan and metrics): not part of what the run is, so not hashed.
RUNTIME_KEYS = (("source_run",),)


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config`` without its presentation fields (:data:`PRESENTATION_KEYS`) and
    what the runner adds at run time (:data:`RUNTIME_KEYS`)."""
    stripped = json.loads(json.dumps({k: v for k, v in config.items() if (k,) not in RUNTIME_KEYS}))
    for path in PRESENTATION_KEYS:
        holder = stripped
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder.pop(path[-1], None)
    text = json.dumps(stripped, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class RunConfig:
    """One run of a study: a JSON-safe ``config`` and its ``hash`` (see the module docstring)."""

    config: dict[str, Any]
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", config_hash(self.config))

    @property
    def kind(self) -> str:
        """``"train"``, ``"compress"``, ``"pipeline"`` or ``"control"``."""
        return self.config["kind"]

    @property
    def role(self) -> str:
        """``"base"``, ``"baseline"``, ``"compress"`` or ``"control"``."""
        return self.config["role"]

    @property
    def label(self) -> str:
        """A short human-readable name of the run."""
        model = self.config["model"]["label"]
        if self.kind == "train":
            return f"{model} / {self.config['model']['data']} seed {self.config['seed']}"
        if self.kind == "pipeline":
            return f"{model} / {self.config['model']['data']} pipeline {self.config['pipeline']} seed {self.config['seed']}"
        if self.kind == "control":
            from workbench.study.controls import control_label

            return (
                f"{model} / {self.config['model']['data']} {control_label(self.config)} "
                f"{budget_heading(self.config['budget']['label'])} seed {self.config['seed']}"
            )
        return (
            f"{model} / {self.config['model']['data']} {self.config['selector']} {budget_heading(self.config['budget']['label'])} "
            f"{self.config['fuse']} seed {self.config['seed']}"
        )

    @property
    def base_hash(self) -> str | None:
        """The hash of the train run whose model this compression run starts from."""
        return self.config.get("base")

    @property
    def source_hash(self) -> str | None:
        """The hash of the compression run whose widths this control run trains (None for other runs)."""
        return self.config.get("source")


#: Settings added after studies were stored, at their defaults: left out of a run's configuration, so that
#: runs stored before the setting existed keep their hashes.
LATER_DEFAULTS = {"init": "kaiming", "class_weights": "none"}


def _drop_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    for key, default in LATER_DEFAULTS.items():
        if settings.get(key) == default:
            settings.pop(key)
    return settings


#: Model-entry keys added after studies were stored: left out of a run's configuration when not given.
LATER_MODEL_KEYS = ("model", "input_shape")


def _model_config(study: Study, entry: ModelEntry) -> dict[str, Any]:
    config = entry.model_dump(mode="json", exclude={"label", *COMPRESSION_KEYS})  # the base model, not its compression
    config["label"] = entry.display
    _drop_defaults(config.get("training", {}))
    for key in LATER_MODEL_KEYS:
        if config.get(key) is None:
            config.pop(key, None)
    _user_code_digests(config)
    if entry.checkpoint is not None:
        path = study.resolve(entry.checkpoint)
        config["checkpoint"] = str(path)
        config["checkpoint_sha256"] = file_digest(path)
        config.pop("training")  # a checkpoint is used as it is
    return config


def _user_code_digests(config: dict[str, Any]) -> None:
    """Add the sha256 of the source file of a user's model (``model_sha256``) and data (``data_sha256``)
    module, so that edited code makes new runs (as a changed checkpoint does)."""
    from workbench.study.imports import is_import_path, source_digest

    for key in ("model", "data"):
        path = config.get(key)
        if path and is_import_path(path):
            digest = source_digest(path)
            if digest is not None:
                config[f"{key}_sha256"] = digest


def _train_run(study: Study, entry: ModelEntry, role: str, seed: int) -> RunConfig:
    return RunConfig(
        {
            "kind": "train",
            "role": role,
            "model": _model_config(study, entry),
            "seed": seed,
            "latency": study.study.latency,
        }
    )


def count_runs(study: Study) -> int:
    """How many runs ``study`` expands to at most (before identical runs are merged), without expanding it."""
    per_seed = len(study.baselines.models)
    for entry in study.models:
        selectors, budgets, fuse = study.grid_for(entry)
        per_seed += 1 + len(study.pipelines_for(entry)) + len(selectors) * len(budgets) * len(fuse)
        if _runs_controls(study, entry):
            per_seed += len(budgets) * len(study.controls.enabled)
    return len(study.study.seeds) * per_seed


def _runs_controls(study: Study, entry: ModelEntry) -> bool:
    """Whether ``entry`` gets control runs: controls are on and its grid runs their source method."""
    if not study.controls.enabled or not entry.controls:
        return False
    selector, _, fuse = study.controls_source.partition("/")
    selectors, _, fuses = study.grid_for(entry)
    return selector in selectors and fuse in fuses


def _control_runs(study: Study, source: RunConfig) -> list[RunConfig]:
    """The control runs (:class:`~workbench.study.schema.Controls`) of the compression run ``source``."""
    runs = []
    for kind in study.controls.enabled:
        config = {
            "kind": "control",
            "role": "control",
            "control": kind,
            "model": source.config["model"],
            "seed": source.config["seed"],
            "base": source.config["base"],
            "source": source.hash,
            "widths_from": study.controls_source,
            "budget": source.config["budget"],
            "latency": study.study.latency,
        }
        if kind == "random-widths":
            config.update(match=study.controls.match, tolerance=study.controls.tolerance)
        runs.append(RunConfig(config))
    return runs


def _own_schedules(study: Study, finetune: Finetune, own: bool) -> bool:
    """Whether every pipeline keeps its own schedule: a study of pipelines alone that gives no retraining budget."""
    return not study.selectors and not own and "epochs" not in finetune.model_fields_set


def check_size(study: Study, force: bool = False) -> int:
    """The number of runs of ``study`` (:func:`count_runs`); StudyError above ``study.max_runs`` unless ``force``."""
    count = count_runs(study)
    limit = study.study.max_runs
    if count > limit and not force:
        raise StudyError(
            f"study {study.study.name!r} expands to {count:,} runs, more than study.max_runs = {limit:,}; "
            "shrink the grid (models x seeds x selectors x budgets x fusion modes), raise max_runs in [study], "
            "or pass --force."
        )
    return count


def expand(study: Study, force: bool = False) -> list[RunConfig]:
    """All runs of ``study``: base-model and baseline training first, then every compression run, then the
    control runs (``[controls]``).

    The compression grid is models x seeds x (pipelines + selectors x budgets x fusion modes), where a model's
    own ``finetune``, ``selectors``, ``budgets``, ``fuse`` and ``pipelines`` replace the study's for it. Each
    control switched on adds one run per model, budget and seed, after the compression run it takes its widths
    from (:attr:`~workbench.study.schema.Study.controls_source`).

    Raises
    ------
    StudyError
        The grid has more than ``study.max_runs`` runs and ``force`` is not given (:func:`check_size`).
    """
    check_size(study, force)
    runs: list[RunConfig] = []
    compress: list[RunConfig] = []
    controls: list[RunConfig] = []
    source = study.controls_source.partition("/")
    for entry in study.models:
        finetune = study.finetune_for(entry)
        retraining = _drop_defaults(finetune.model_dump(mode="json", exclude={"own_schedule"}))
        own_schedules = _own_schedules(study, finetune, own=entry.finetune is not None)
        selectors, budgets, fuses = study.grid_for(entry)
        round_to = study.compression.round_to if study.compression is not None else None
        for seed in study.study.seeds:
            base = _train_run(study, entry, "base", seed)
            runs.append(base)
            for name in study.pipelines_for(entry):
                compress.append(
                    RunConfig(
                        {
                            "kind": "pipeline",
                            "role": "compress",
                            "model": base.config["model"],
                            "seed": seed,
                            "base": base.hash,
                            "pipeline": name,
                            "steps": study.pipelines[name],
                            "finetune": retraining,
                            "schedule": "own" if own_schedules or name in study.finetune.own_schedule else "budget",
                            "latency": study.study.latency,
                        }
                    )
                )
            for selector in selectors:
                for budget in budgets:
                    for fuse in fuses:
                        compress.append(
                            RunConfig(
                                {
                                    "kind": "compress",
                                    "role": "compress",
                                    "model": base.config["model"],
                                    "seed": seed,
                                    "base": base.hash,
                                    "selector": selector,
                                    "selector_params": dict(study.selectors[selector]),
                                    "budget": {**budget.config(), "label": budget.display},
                                    "fuse": fuse,
                                    "source": study.compression.source,
                                    **({"sequential": True} if study.compression.sequential else {}),
                                    **({"round_to": round_to} if round_to is not None else {}),
                                    "finetune": retraining,
                                    "latency": study.study.latency,
                                }
                            )
                        )
                        if (selector, "/", fuse) == source and _runs_controls(study, entry):
                            controls.extend(_control_runs(study, compress[-1]))
    for entry in study.baselines.models:
        for seed in study.study.seeds:
            runs.append(_train_run(study, entry, "baseline", seed))
    unique: dict[str, RunConfig] = {}
    for run in [*runs, *compress, *controls]:
        unique.setdefault(run.hash, run)  # a baseline identical to a base model is run once
    return list(unique.values())
