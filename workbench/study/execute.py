"""Run one study run (in any process): train or load the base model, then select, rebuild, retrain and
profile it, or apply a compression pipeline to it, or train a control network from scratch
(:mod:`workbench.study.controls`).

:func:`execute` never raises for a failing run: it returns a result dict with ``status`` ``"failed"``
and the error, so that the study goes on. Base models are trained once per (model, data, seed,
training budget): the first run that needs one saves it atomically as a checkpoint named by the base
run's hash in the cache folder, with the results version (:mod:`workbench.study.versions`) and that hash in
its metadata; later runs (in any process that sees the folder) load it. A cached file is used only when it
is of this results version, was saved for that hash and holds the architecture its configuration builds
(the same spec, parameter and buffer names and shapes); otherwise it is trained again and replaced, and the
result's ``notes`` say why.
"""

from __future__ import annotations

import time
import traceback
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, WorkbenchError
from workbench.study.versions import RESULTS_VERSION, stale_reason


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@lru_cache(maxsize=8)
def _dataset(name: str, split: str, options_json: str) -> Any:
    import json

    from workbench.datasets import load_dataset
    from workbench.study import imports

    if imports.is_import_path(name):
        return imports.load_data(name, split, json.loads(options_json))
    return load_dataset(name, split=split, **json.loads(options_json))


def load_data(model: dict[str, Any], split: str) -> Any:
    """Split ``split`` of the run's data set: a registered one, or the user's by import path (cached per
    process)."""
    import json

    return _dataset(model["data"], split, json.dumps(model.get("data_options", {}), sort_keys=True))


#: The metric columns of a run: scores and the test-set size (n), then costs (the profile's other fields are not stored).
_METRICS = ("accuracy", "miou", "n", "params", "macs", "dense_bytes", "latency_ms", "latency_b64_ms")


def _metrics(figures: dict[str, Any]) -> dict[str, Any]:
    """The stored columns of :func:`workbench.compression.measure`'s figures."""
    return {key: value for key, value in figures.items() if key in _METRICS}


def _class_scores(model: Any, test: Any) -> dict[str, Any]:
    """Per-class IoU of a segmentation ``model`` on ``test`` (``iou``, None for a class absent from the test
    scenes) with the data set's ``class_names``; empty for classification."""
    if getattr(test, "task", None) != "segmentation":
        return {}
    from workbench.train import evaluate

    iou = [None if value != value else round(float(value), 6) for value in evaluate(model, test)["iou"]]
    names = getattr(test, "class_names", None) or [str(k) for k in range(len(iou))]
    return {"iou": iou, "class_names": list(names)}


def _val_scores(model: Any, config: dict[str, Any]) -> dict[str, Any]:
    """``val_accuracy`` (or ``val_miou``) and ``val_n`` of ``model`` on the ``val`` split: what summaries rank on.

    Empty when the base model trained on ``val`` (training split ``"trainval"``): those runs rank on ``test``,
    and the summaries say so.
    """
    from workbench.compression import scores

    if config["model"].get("training", {}).get("split", "train") == "trainval":
        return {}
    return {f"val_{key}": value for key, value in scores(model, load_data(config["model"], "val")).items()}


#: Base run hash -> its measured sensitivity, so that the selectors of one base model measure it once per process.
_SENSITIVITIES: dict[str, Any] = {}


def _sensitivity(model: Any, config: dict[str, Any]) -> Any:
    """The base model's per-layer sensitivity on ``val`` (Li et al. 2017: magnitude selection, drop, each group alone
    at 0.25, 0.5 and 0.75 of its units), which a ``scope = "sensitivity"`` budget reads: the same for every
    selector of the study, so that their budgets are placed alike (measured once per base model and process)."""
    from workbench.compression import sensitivity

    if config["base"] in _SENSITIVITIES:
        return _SENSITIVITIES[config["base"]]
    if config["model"].get("training", {}).get("split", "train") == "trainval":
        raise ConfigError(
            "a scope = 'sensitivity' budget is measured on val, which this model trains on (split = 'trainval'); "
            "train on 'train', or use scope = 'uniform' or 'global'."
        )
    if len(_SENSITIVITIES) >= 8:
        _SENSITIVITIES.clear()
    _SENSITIVITIES[config["base"]] = sensitivity(
        model,
        load_data(config["model"], "val"),
        example_input=example_input(model, config["model"]),
        random_state=config["seed"],
    )
    return _SENSITIVITIES[config["base"]]


def _new_model(model_cfg: dict[str, Any], train: Any, batch: int) -> Any:
    """The untrained base model: the user's (``model``, an import path) or the zoo's, sized for ``train``."""
    from workbench.study import imports
    from workbench.zoo import create_model_for_data
    from workbench.zoo.memory import check_memory

    factory = imports.model_factory(model_cfg)
    if factory is not None:
        return factory()
    input_shape, num_classes = imports.input_shape_of(train), imports.num_classes_of(train)
    check_memory(
        model_cfg["name"], batch, training=True, input_shape=input_shape, num_classes=num_classes, **model_cfg["args"]
    )  # a ModelError with the figures, not the allocator's
    return create_model_for_data(model_cfg["name"], input_shape, num_classes, **model_cfg["args"])


def example_input(model: Any, model_cfg: dict[str, Any]) -> Any:
    """A seeded random batch of two inputs for a model without an ``input_shape`` attribute (a user's model):
    of the entry's ``input_shape``, else of the data's; None for a model that declares its own."""
    if getattr(model, "input_shape", None) is not None:
        return None
    import torch

    from workbench.study.imports import input_shape_of
    from workbench.utils import to_model

    shape = model_cfg.get("input_shape") or input_shape_of(load_data(model_cfg, "test"))
    return to_model(torch.randn(2, *shape, generator=torch.Generator().manual_seed(0)), model)


def _untrained(config: dict[str, Any]) -> tuple[Any, Any]:
    """The base model of a train run's ``config`` as it starts training (built and initialized under the run's
    seed; the caller's random state is left as it was), and its training split."""
    import torch

    from workbench.zoo import init_weights_

    model_cfg, training = config["model"], config["model"]["training"]
    train = load_data(model_cfg, training["split"])
    batch = min(training["batch_size"], len(train))
    with torch.random.fork_rng():
        torch.manual_seed(config["seed"])
        model = _new_model(model_cfg, train, batch)
        if training.get("init", "kaiming") != "kaiming":
            init_weights_(model, training["init"])
    return model, train


def _train(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from workbench.train import fit

    training, seed = config["model"]["training"], config["seed"]
    model, train = _untrained(config)
    history = fit(  # no per-epoch validation: only the final val score is stored (_val_scores)
        model,
        train,
        epochs=training["epochs"],
        batch_size=training["batch_size"],
        optimizer=training["optimizer"],
        lr=training["lr"],
        weight_decay=training["weight_decay"],
        schedule=training["schedule"],
        max_batches=training["max_batches"],
        class_weights=training.get("class_weights", "none"),
        random_state=seed,
        quiet=True,
    )
    return model, {"train_seconds": round(float(sum(history.seconds)), 3), "epochs": training["epochs"]}


def _architecture(model: Any) -> tuple[str, dict[str, tuple[int, ...]]]:
    """What a base model's architecture is: its spec (canonical JSON, without weight parametrizations) and
    the name and shape of every parameter and buffer."""
    import json

    from workbench.edits import SPEC, user_spec

    spec = {k: v for k, v in (getattr(model, SPEC, None) or user_spec(model)).items() if k != "parametrizations"}
    shapes = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    return json.dumps(spec, sort_keys=True, default=str), shapes


def _cache_problem(model: Any, meta: dict[str, Any], key: str, config: dict[str, Any]) -> str | None:
    """Why the cached base model ``model`` (with checkpoint ``meta``) cannot stand for the base run ``key`` of
    ``config``; None when it can."""
    stale = stale_reason(meta.get("results_version"), "a base model")
    if stale is not None:
        return f"holds {stale}"
    if meta.get("run") != key:
        return f"was saved for run {meta.get('run')!r}, not for {key}"
    (spec, shapes), (want_spec, want_shapes) = _architecture(model), _architecture(_untrained(config)[0])
    if spec != want_spec:
        return f"holds the architecture {spec[:200]}, not the configured {want_spec[:200]}"
    if shapes != want_shapes:
        differ = sorted(set(shapes) ^ set(want_shapes)) or [k for k in want_shapes if shapes[k] != want_shapes[k]]
        return f"holds other parameters than the configured architecture ({', '.join(differ[:5])})"
    return None


def base_model(
    config: dict[str, Any], cache_dir: str | Path, notes: list[str] | None = None
) -> tuple[Any, dict[str, Any]]:
    """The trained model of a train run's ``config``, from the cache or trained (and cached) now.

    A cached file that cannot be read, is of another results version, was saved for another run or does not
    hold the configured architecture is not used: the model is trained again, the file replaced, and why is
    appended to ``notes``. Returns ``(model, metadata)``; a checkpoint model is loaded from its file.
    """
    from workbench.checkpoints import load_checkpoint, save_checkpoint
    from workbench.errors import CheckpointError
    from workbench.study.grid import RunConfig
    from workbench.study.imports import model_factory

    model_cfg = config["model"]
    base = model_factory(model_cfg)  # a user's model is rebuilt on the architecture its function builds
    if model_cfg.get("checkpoint"):
        return load_checkpoint(model_cfg["checkpoint"], base=base)
    key = config.get("base") or RunConfig(config).hash  # a compression run names its base run
    path = Path(cache_dir) / f"{key}.pt"
    if path.is_file():
        try:
            model, meta = load_checkpoint(path, base=base)
            problem = _cache_problem(model, meta, key, config)
        except CheckpointError as exc:
            problem = f"cannot be used ({exc})"
        if problem is None:
            return model, meta
        if notes is not None:
            notes.append(f"the cached base model {path.name} {problem}: trained again")
    model, meta = _train(config)
    meta.update({"data": model_cfg["data"], "seed": config["seed"], "results_version": RESULTS_VERSION, "run": key})
    save_checkpoint(path, model, metadata=meta)
    return model, meta


def _train_run(config: dict[str, Any], cache_dir: str | Path, notes: list[str]) -> tuple[dict[str, Any], None]:
    from workbench.compression import measure

    model, meta = base_model(config, cache_dir, notes)
    test = load_data(config["model"], "test")
    example = example_input(model, config["model"])
    metrics = _metrics(measure(model, test, latency=config.get("latency", True), example_input=example))
    metrics.update(_val_scores(model, config))
    metrics.update(_class_scores(model, test))
    metrics.update({key: meta[key] for key in ("train_seconds", "epochs") if key in meta})
    return metrics, None


def _base_and_data(config: dict[str, Any], cache_dir: str | Path, notes: list[str]) -> tuple[Any, Any, Any]:
    """The run's base model (:func:`base_model`, which adds to ``notes``), its training split and the test split."""
    model, _ = base_model(config, cache_dir, notes)
    split = config["model"].get("training", {}).get("split", "train")
    return model, load_data(config["model"], split), load_data(config["model"], "test")


def _select_step(config: dict[str, Any], model: Any) -> dict[str, Any]:
    """A selector run's one pipeline step: select with the run's selector and budget, rebuild with its fusion mode
    (``"fold+data-free"``: the mode, then its repair)."""
    budget = {key: value for key, value in config["budget"].items() if key != "label"}
    fuse, _, repair = config["fuse"].partition("+")
    return {
        "do": "select",
        "method": config["selector"],
        "selector_params": config["selector_params"],
        "budget": budget,
        "fuse": fuse,
        "fuse_options": {"repair": repair} if repair else None,
        "source": config["source"],
        "sequential": config.get("sequential", False),
        "round_to": config.get("round_to"),
        "sensitivity": _sensitivity(model, config) if budget.get("scope") == "sensitivity" else None,
    }


def _compress_run(
    config: dict[str, Any], cache_dir: str | Path, notes: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A selector run (its steps: one ``select``) or a pipeline run (the named pipeline's steps), both compressed
    and retrained by :func:`workbench.compression.run_compression` under the run's one retraining configuration
    (``finetune``)."""
    from workbench.compression import SCORE_KEYS, Retraining, run_compression
    from workbench.metrics import storage_report
    from workbench.selection import json_safe

    model, train, test = _base_and_data(config, cache_dir, notes)
    pipeline = config["kind"] == "pipeline"
    steps = config["steps"] if pipeline else [_select_step(config, model)]
    result = run_compression(
        model,
        steps,
        train=train,
        test=test,
        retrain=Retraining(**config["finetune"]),
        own_schedule=config.get("schedule") == "own",
        latency=config.get("latency", True),
        base_latency=False,
        random_state=config["seed"],
        example_input=example_input(model, config["model"]),
    )
    before, after = storage_report(model), storage_report(result.model)
    metrics = _metrics(result.after)
    metrics.update(_val_scores(result.model, config))
    metrics.update(_class_scores(result.model, test))
    metrics.update({f"{key}_rebuilt": value for key, value in result.rebuilt.items() if key in SCORE_KEYS})
    metrics.update(
        {f"base_{key}": value for key, value in _metrics(result.before).items() if not key.startswith("latency")}
    )
    metrics.update(
        {
            "retrained": result.retrained,
            "retrain_samples": result.retrain_samples,
            "teacher": result.teacher,
            "notes": result.notes,
            "nonzero": after.nonzero,
            "stored_bytes": after.stored_bytes,
            "base_stored_bytes": before.stored_bytes,
            "compression_ratio": before.stored_bytes / max(after.stored_bytes, 1e-9),
            "schemes": sorted({layer.scheme for layer in after.layers}),
        }
    )
    if pipeline:
        metrics["schedule"] = "own" if config.get("schedule") == "own" else "study budget"
        return metrics, {"pipeline": config["pipeline"], "steps": json_safe(result.steps)}
    metrics.update(
        {
            "kept_fraction": result.plan.kept_fraction,
            "groups": len(result.plan),
            **({"budget_reached": result.budget["reached"]} if "reached" in result.budget else {}),
        }
    )
    return metrics, result.plan.to_dict()


def _control_run(
    config: dict[str, Any], cache_dir: str | Path, notes: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A scratch or random-width control (:func:`workbench.study.controls.run_control`); it needs no base model."""
    from workbench.study.controls import run_control

    return run_control(config, notes)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, WorkbenchError):
        return f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def execute(config: dict[str, Any], cache_dir: str | Path, threads: int = 1) -> dict[str, Any]:
    """Run one run's ``config`` and return its result (never raises for a failing run).

    Returns
    -------
    dict
        ``hash``, ``status`` (``"done"`` or ``"failed"``), ``started`` and ``finished`` (ISO 8601 UTC),
        ``seconds``, ``metrics`` (accuracy, params, MACs, bytes, latency...; stored bytes and compression
        ratio for pipelines), ``plan`` (JSON-safe: the Plan of a compression run, the steps of a pipeline
        run with their seconds), ``error`` (the message of a failed run), ``version`` (the results version
        of this workbench, :data:`~workbench.study.versions.RESULTS_VERSION`) and ``notes`` (why a cached
        base model was not used, if one was not).
    """
    import torch

    from workbench.study.grid import RunConfig

    run_hash = RunConfig(config).hash
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    started, clock = _now(), time.perf_counter()
    notes: list[str] = []
    result: dict[str, Any] = {
        "hash": run_hash,
        "started": started,
        "metrics": None,
        "plan": None,
        "error": None,
        "version": RESULTS_VERSION,
        "notes": notes,
    }
    try:
        run = {"train": _train_run, "compress": _compress_run, "pipeline": _compress_run, "control": _control_run}[
            config["kind"]
        ]
        metrics, plan = run(config, cache_dir, notes)
        result.update(status="done", metrics=metrics, plan=plan)
    except Exception as exc:  # noqa: BLE001 - a failing run is recorded and the study goes on
        result.update(status="failed", error=_error_text(exc))
    finally:
        torch.set_num_threads(previous_threads)
    result.update(finished=_now(), seconds=round(time.perf_counter() - clock, 4))
    return result


def execute_in_worker(config: dict[str, Any], cache_dir: str | Path) -> dict[str, Any]:
    """:func:`execute` in a worker process of a pool (joblib's processes, a Dask worker).

    Progress bars there share a thread lock instead of tqdm's default multiprocessing lock: the named
    semaphore of that lock outlives a worker the pool kills (an interrupted or killed study), and the
    resource tracker then warns of it when the study exits.
    """
    import threading

    from tqdm import tqdm

    if "_lock" not in vars(tqdm):  # once per process, before any bar made the multiprocessing lock
        tqdm.set_lock(threading.RLock())
    return execute(config, cache_dir)


def dask_setup(worker: Any) -> None:
    """Dask preload hook of the workers of a study's local cluster (``preload=["workbench.study.execute"]``):
    they ignore SIGINT, so that Ctrl-C in the terminal reaches the study process alone, which stops them in
    order instead of each worker printing the traceback of its interrupted run."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def quiet_worker() -> None:
    """Silence the Dask logs of this worker process below CRITICAL: run on a local cluster's workers when the
    study is interrupted, just before it closes them mid-run (each would log its cancelled run and its lost
    scheduler)."""
    import logging

    for name in ["distributed", *logging.Logger.manager.loggerDict]:
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.CRITICAL)
