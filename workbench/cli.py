"""The ``workbench`` command.

Sub-commands import what they need when they run, so ``workbench --help`` answers at once.
Model arguments are given as extra ``--name value`` options (``--width 0.5 --resolution 160``) and are
passed to :func:`workbench.zoo.create_model`; values are read as JSON where possible (numbers, lists,
``true``/``false``) and as strings otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, WorkbenchError
from workbench.numeric import INT64_MAX, MAX_WAIT_SECONDS, as_float, as_int
from workbench.utils import check_path, check_writable_target


class _Refused:
    """A flag value its converter refused; :func:`main` reports it as one ``error:`` line (exit status 2), as it
    reports every other bad input, instead of argparse's usage dump."""

    def __init__(self, message: str) -> None:
        self.message = message


def _number(kind: type, flag: str, **bounds: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` for a numeric ``flag``: the text as an ``int`` or ``float`` checked by
    :func:`workbench.numeric.as_int` / :func:`~workbench.numeric.as_float` with ``bounds`` (NaN, infinities,
    integers beyond 64 bits and values out of range refused), or a :class:`_Refused` naming the flag, the value
    and the range."""
    check = as_int if kind is int else as_float

    def convert(text: str) -> Any:
        try:
            value: Any = kind(text)
        except (ValueError, OverflowError):
            value = text  # not a number: refused below, shown as given
        try:
            return check(value, flag, **bounds)
        except ConfigError as exc:
            return _Refused(str(exc))

    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


def _share(flag: str) -> Callable[[str], Any]:
    """The ``type=`` of a flag that is a fraction or a share, in (0, 1]."""
    return _number(float, flag, low=0.0, high=1.0, low_open=True)


def _max_workers() -> int:
    """Most worker processes ``--jobs`` and ``--local-cluster`` accept: four per CPU core."""
    return 4 * (os.cpu_count() or 1)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


#: Names the commands pass themselves, which extra ``--name value`` options cannot set (they would collide).
_MODEL_OWN = ("name", "batch_size", "training", "input_shape", "num_classes", "random_state")
_SELECTOR_OWN = ("name", "preset", "budget", "random_state")


def parse_model_args(extra: Sequence[str], reserved: Sequence[str] = ()) -> dict[str, Any]:
    """Turn ``["--width", "0.5", "--depth=20"]`` into ``{"width": 0.5, "depth": 20}``; a name in ``reserved``
    (one the command sets itself) is a ConfigError."""
    kwargs: dict[str, Any] = {}
    items = list(extra)
    i = 0
    while i < len(items):
        token = items[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"unexpected argument {token!r}: model arguments are given as --name value.")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(items) and not items[i + 1].startswith("--"):
            value = items[i + 1]
            i += 2
        else:
            raise ConfigError(f"model argument {token} needs a value, e.g. {token} 0.5.")
        key = key.replace("-", "_")
        if key in reserved:
            raise ConfigError(
                f"--{key} is set by the command itself, not a model or selector argument; use the command's own "
                f"option (see --help) or leave it out."
            )
        kwargs[key] = _parse_value(value)
    return kwargs


def _check_out(
    path: str | os.PathLike, folder: bool = False, inputs: dict[str, str | os.PathLike | None] | None = None
) -> Path:
    """``path`` as a Path when a file (or with ``folder``, a folder) can be written there without replacing one of
    the command's ``inputs`` (:func:`workbench.utils.check_writable_target`); ConfigError naming the problem
    otherwise (checked before any work starts, so nothing is computed for an output that cannot be written)."""
    path = check_path(path, "--out")
    if path.is_dir() and not folder:
        raise ConfigError(f"--out {path} is a folder; give a file path, e.g. --out {path / 'model.pt'}.")
    if path.exists() and folder and not path.is_dir():
        raise ConfigError(f"--out {path} is a file; give a folder (it is created when missing).")
    for parent in path.parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise ConfigError(f"--out {path} lies under {parent}, which is a file, not a folder; give another path.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {path}: the folder {parent} cannot be written; give another path.")
        break
    return path if folder else check_writable_target(path, inputs)  # nor a device, a read-only file or an input


def _save(out: Path, model: Any, metadata: dict[str, Any], what: str) -> tuple[Path, str | None]:
    """Save a checkpoint at ``out``; when that fails, at a fallback path in the current folder (or the
    temporary folder), so that finished work is never lost. Returns the path written and a note saying
    why it is not ``out`` (None when it is)."""
    from workbench.checkpoints import save_checkpoint

    try:
        return save_checkpoint(out, model, metadata=metadata), None
    except OSError as exc:
        problem = f"{type(exc).__name__}: {exc.strerror or exc}"
    except ConfigError as exc:  # the path became a folder or a device while the model trained
        problem = str(exc)
    name = f"{out.stem or what}-{what}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.pt"
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            path = save_checkpoint(folder / name, model, metadata=metadata)
        except OSError:
            continue
        return path, f"could not write {out} ({problem}); the {what} model was saved to {path} instead."
    raise WorkbenchError(
        f"could not write {out} ({problem}), nor a fallback copy in {Path.cwd()} or {tempfile.gettempdir()}; "
        "free some space or fix the permissions and run again."
    )


def _emit(args: argparse.Namespace, payload: Any, table: str) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(table)


def _emit_listing(args: argparse.Namespace, items: dict[str, str]) -> int:
    width = max(map(len, items))
    _emit(args, items, "\n".join(f"{name:<{width}}  {text}" for name, text in items.items()))
    return 0


def _cmd_models(args: argparse.Namespace, extra: list[str]) -> int:
    from workbench.zoo import describe_models

    return _emit_listing(args, describe_models())


def _cmd_datasets(args: argparse.Namespace, extra: list[str]) -> int:
    from workbench.datasets import describe_datasets

    return _emit_listing(args, describe_datasets())


def _cmd_transforms(args: argparse.Namespace, extra: list[str]) -> int:
    from workbench.pipeline import describe_transforms

    return _emit_listing(args, describe_transforms())


def _cmd_profile(args: argparse.Namespace, extra: list[str]) -> int:
    from workbench.metrics import format_table, profile
    from workbench.zoo import create_model, example_input

    if args.checkpoint:
        from workbench.checkpoints import load_checkpoint

        if extra:
            raise ConfigError(
                "model arguments cannot be combined with --checkpoint: the checkpoint fixes the architecture."
            )
        model, _ = load_checkpoint(args.checkpoint)
        _check_batch_memory(model, args.batch_size)
        label = args.checkpoint
    elif args.model:
        from workbench.zoo.memory import check_memory

        kwargs = parse_model_args(extra, _MODEL_OWN)
        check_memory(args.model, args.batch_size, **kwargs)
        model = create_model(args.model, **kwargs)
        label = args.model
    else:
        raise ConfigError("name a model (--model mobilenet_v1 --width 0.5) or a checkpoint (--checkpoint PATH).")
    result = profile(model, example_input(model, args.batch_size), latency=not args.no_latency)
    row = {"model": label, **result.as_dict()}
    _emit(args, row, format_table([row]))
    return 0


def _cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from workbench.datasets import load_dataset
    from workbench.metrics import format_table, profile
    from workbench.train import evaluate, fit
    from workbench.zoo import create_model_for_data, example_input
    from workbench.zoo.memory import check_memory

    out = _check_out(args.out) if args.out else None
    train = load_dataset(args.data, root=args.root, split="train")
    val = load_dataset(args.data, root=args.root, split="val")
    test = load_dataset(args.data, root=args.root, split="test")
    kwargs = parse_model_args(extra, _MODEL_OWN)
    shape, classes = train.input_shape, train.num_classes
    check_memory(
        args.model, min(args.batch_size, len(train)), training=True, input_shape=shape, num_classes=classes, **kwargs
    )
    model = create_model_for_data(args.model, shape, classes, random_state=args.seed, **kwargs)  # seeded as a study's
    history = fit(
        model,
        train,
        val_data=val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        random_state=args.seed,
        quiet=args.quiet,
    )
    metrics = evaluate(model, test)
    prof = profile(model, example_input(model, 1))
    row = {
        "model": args.model,
        "data": args.data,
        "epochs": args.epochs,
        **{f"test_{k}": v for k, v in metrics.items() if k != "n"},
        **prof.as_dict(),
        "train_seconds": round(sum(history.seconds), 2),
    }
    note = None
    if out is not None:
        path, note = _save(out, model, {"data": args.data, "test": metrics, "seed": args.seed}, "trained")
        row["checkpoint"] = str(path)
    _emit(args, row, format_table([row]))
    if note:
        print(f"error: {note}", file=sys.stderr)
    return 1 if note else 0


def _check_batch_memory(model: Any, batch_size: int) -> None:
    """Refuse, with the memory it needs, a batch of a checkpoint's model that this machine cannot hold, as
    :func:`workbench.zoo.memory.check_memory` refuses one of a zoo model named on the command line (estimated on
    the architecture before its edits, which only make it smaller)."""
    from workbench.zoo.memory import check_memory

    spec = getattr(model, "workbench_spec", None) or {}
    if "name" in spec:
        check_memory(spec["name"], batch_size, **spec.get("kwargs", {}))


def _compress_budget(args: argparse.Namespace) -> dict[str, Any] | None:
    """The budget of ``workbench compress``: None for ``--keep``, else ``--macs``, ``--params`` or ``--latency`` with
    ``--scope``, ``--min-keep`` and ``--latency-batch`` (:func:`workbench.surgery.budgets.check_budget`)."""
    target = next((key for key in ("macs", "params", "latency") if getattr(args, key) is not None), None)
    options = {"scope": args.scope, "min_keep": args.min_keep, "batch": args.latency_batch}
    given = {key: value for key, value in options.items() if value is not None}
    if target is None:
        if given:
            names = {"scope": "--scope", "min_keep": "--min-keep", "batch": "--latency-batch"}
            flags = ", ".join(names[key] for key in given)
            verb = "goes" if len(given) == 1 else "go"
            raise ConfigError(f"{flags} {verb} with a budget by cost: add --macs, --params or --latency.")
        return None
    if "batch" in given and target != "latency":
        raise ConfigError("--latency-batch is the batch --latency is timed at; it does not go with --macs or --params.")
    return {target: getattr(args, target), **given}


def _cmd_compress(args: argparse.Namespace, extra: list[str]) -> int:
    from workbench.checkpoints import load_checkpoint
    from workbench.compression import SCORE_KEYS, Retraining, compress, sensitivity
    from workbench.datasets import load_dataset
    from workbench.metrics import format_table
    from workbench.select import SELECTORS

    SELECTORS.get(args.method)  # an unknown method is named before anything is built from its name
    budget = _compress_budget(args)
    keep = None if budget is not None else (0.5 if args.keep is None else args.keep)
    label = f"{keep:g}" if budget is None else "-".join(f"{k}{v:g}" if k != "scope" else v for k, v in budget.items())
    out = _check_out(
        args.out
        or Path(args.checkpoint).with_name(f"{Path(args.checkpoint).stem}-{args.method}-{label}-{args.fuse}.pt"),
        inputs={"the checkpoint": args.checkpoint},
    )
    model, meta = load_checkpoint(args.checkpoint)
    data = args.data or meta.get("data")
    if data is None:
        raise ConfigError(f"{args.checkpoint} does not record its data set; name it with --data.")
    train = load_dataset(data, root=args.root, split="train")
    test = load_dataset(data, root=args.root, split="test")
    measured = None
    if budget is not None and budget.get("scope") == "sensitivity":
        measured = sensitivity(model, load_dataset(data, root=args.root, split="val"), random_state=args.seed)
    result = compress(
        model,
        method=args.method,
        selector_params=parse_model_args(extra, _SELECTOR_OWN),
        keep=keep,
        budget=budget,
        fuse=args.fuse,
        source=args.source,
        train=train,
        test=test,
        retrain=Retraining(epochs=args.finetune),
        random_state=args.seed,
        quiet=args.quiet,
        round_to=args.round_to,
        fuse_options={"repair": args.repair, "merge_threshold": args.merge_threshold or 0.0},
        sensitivity=measured,
    )
    out, note = _save(
        out,
        result.model,
        {
            **meta,
            "data": data,
            "compressed": {
                "method": args.method,
                **({"keep": keep} if budget is None else {"budget": result.budget}),
                "fuse": args.fuse,
                "finetune": args.finetune,
                **({"round_to": args.round_to} if args.round_to else {}),
            },
            "test": {k: v for k, v in result.after.items() if k in SCORE_KEYS},
        },
        "compressed",
    )
    rows = [{"model": "before", **result.before}, {"model": "after", **result.after}]
    payload = {"checkpoint": str(out), "before": result.before, "after": result.after, "notes": result.notes}
    reached = []
    if budget is not None:
        payload["budget"] = result.budget
        target = next(iter(budget))
        reached = [f"{target}: target {budget[target]:g}, reached {result.budget['reached']:.3f}"]
    _emit(args, payload, "\n".join([format_table(rows), *reached, *result.notes, f"written: {out}"]))
    if note:
        print(f"error: {note}", file=sys.stderr)
    return 1 if note else 0


def _cmd_export(args: argparse.Namespace, extra: list[str]) -> int:
    from workbench.checkpoints import load_checkpoint
    from workbench.export import export_model
    from workbench.zoo import example_input

    suffix = {"pt2": ".pt2", "onnx": ".onnx", "module": "-module"}[args.format]
    source = Path(args.checkpoint)
    out = _check_out(
        args.out or source.with_name(f"{source.stem}{suffix}"),
        folder=args.format == "module",
        inputs={"the checkpoint": args.checkpoint},
    )
    model, _ = load_checkpoint(args.checkpoint)
    _check_batch_memory(model, args.batch_size)
    path = export_model(
        model, out, format=args.format, example_input=example_input(model, args.batch_size), opset=args.opset
    )
    payload = {"checkpoint": args.checkpoint, "format": args.format, "path": str(path), "verified": True}
    _emit(args, payload, f"written: {path} ({args.format}; loaded back and checked against the model)")
    return 0


def _cmd_demo(args: argparse.Namespace, extra: list[str]) -> int:
    from workbench.demo import run_demo
    from workbench.metrics import format_table
    from workbench.study.summary import display_rows, format_compare, table_note

    if args.out:
        _check_out(args.out, folder=True)
    result = run_demo(quick=args.quick, quiet=args.quiet, out=args.out)
    outcome = result.outcome
    payload = {
        "report": str(result.report),
        "store": str(outcome.store),
        "seconds": result.seconds,
        "summary": outcome.summary,
        "pipelines": outcome.pipelines,
        "trained": result.trained,
        "times": result.times,
        "comparison": result.comparison,
        "errors": outcome.errors,
    }
    text = [
        format_table(display_rows(result.trained)),
        "",
        format_compare(result.comparison),  # the summary's cells, one readable block per model and budget
        "",
        format_table(display_rows(outcome.pipelines)),
        table_note(outcome.pipelines) if outcome.pipelines else "",
        "",
        "where the time went (run seconds, summed over the runs of this store):",
        format_table(result.times),
        "",
        f"{outcome.total} runs ({outcome.skipped} already stored, {outcome.done} done, {outcome.failed} failed) "
        f"in {result.seconds:.1f} s",
        f"report: {result.report}",
    ]
    _emit(args, payload, "\n".join(text))
    return 1 if outcome.failed else 0


def _study_compare(args: argparse.Namespace, study: Any) -> int:
    """``study compare``: methods ranked per model and budget, with intervals and paired differences (store only)."""
    from workbench.study.summary import compare_table, format_compare, read_records

    reference = args.reference or study.study.reference
    table = compare_table(read_records(study, store=args.store), reference=reference)
    _emit(args, {"study": study.study.name, "comparison": table}, format_compare(table))
    return 0


def _cmd_study(args: argparse.Namespace, extra: list[str]) -> int:
    from workbench.study.grid import check_size
    from workbench.study.report import write_report
    from workbench.study.schema import load_study

    study = load_study(args.study)
    study.study.max_runs = max(study.study.max_runs, check_size(study, force=args.force))  # refused before work
    if args.action == "compare":
        return _study_compare(args, study)
    if args.action == "report":
        if args.out:
            _check_out(args.out)
        path = write_report(study, store=args.store, out=args.out, plotlyjs=args.plotlyjs)
        _emit(args, {"report": str(path)}, f"report: {path}")
        return 0
    from workbench.metrics import format_table
    from workbench.study.runner import run_study
    from workbench.study.summary import display_rows, table_note

    outcome = run_study(
        study,
        store=args.store,
        jobs=args.jobs or 1,
        scheduler=args.scheduler,
        local_cluster=args.local_cluster,
        timeout=args.timeout,
        worker_timeout=args.worker_timeout,
        quiet=args.quiet,
        wait=args.wait,
    )
    payload = {
        "study": outcome.study,
        "store": str(outcome.store),
        "total": outcome.total,
        "skipped": outcome.skipped,
        "done": outcome.done,
        "failed": outcome.failed,
        "seconds": outcome.seconds,
        "summary": outcome.summary,
        "pipelines": outcome.pipelines,
        "errors": outcome.errors,
        "claimed_elsewhere": outcome.claimed_elsewhere,
        "held": outcome.held,
        "finished_elsewhere": outcome.finished_elsewhere,
        "recomputed": outcome.recomputed,
        "notes": outcome.notes,
    }
    errors = [f"failed: {label}: {error}" for label, error in list(outcome.errors.items())[:10]]
    tables = [
        f"{format_table(display_rows(rows))}\n{table_note(rows)}"
        for rows in (outcome.summary, outcome.pipelines)
        if rows
    ]
    text = [
        "\n\n".join(tables),
        *errors,
        *(f"not reused: {note}" for note in outcome.notes),  # results of another results version, bad caches
        f"{outcome.total} runs ({outcome.skipped} already stored, {outcome.done} done"
        + (f" of which {outcome.recomputed} recomputed" if outcome.recomputed else "")
        + (f", {outcome.finished_elsewhere} done by another process" if outcome.finished_elsewhere else "")
        + f", {outcome.failed} failed"
        + (f", {outcome.claimed_elsewhere} held by another process" if outcome.claimed_elsewhere else "")
        + f") in {outcome.seconds:.1f} s; store: {outcome.store}",
        *outcome.held_lines(),
        f"report: workbench study report {args.study}" + (f" --store {args.store}" if args.store else ""),
    ]
    _emit(args, payload, "\n".join(text))
    return 0 if outcome.complete else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``workbench`` command."""
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Which neurons and filters of a network are redundant, and what merging or dropping them costs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str, handler: Any, model_args: bool = False) -> argparse.ArgumentParser:
        epilog = "Extra --name value options are passed to the model (e.g. --width 0.5)." if model_args else None
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=epilog)
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.set_defaults(handler=handler, model_args=model_args)
        return p

    add("models", "list the models of the zoo", _cmd_models)
    add("datasets", "list the data sets", _cmd_datasets)
    add("transforms", "list the compression transforms a pipeline step can name", _cmd_transforms)

    p = add("profile", "parameters, multiply-adds, storage and CPU latency of a model", _cmd_profile, True)
    p.add_argument("--model", help="zoo model name (see `workbench models`)")
    p.add_argument("--checkpoint", help="profile a saved checkpoint instead")
    p.add_argument("--batch-size", type=_number(int, "--batch-size", low=1), default=1)
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")

    p = add("train", "train a zoo model on a data set, evaluate it and save a checkpoint", _cmd_train, True)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="data set name (see `workbench datasets`)")
    p.add_argument("--root", help="folder of an on-disk data set (idx, cifar10)")
    p.add_argument("--epochs", type=_number(int, "--epochs", low=1), default=10)
    p.add_argument("--batch-size", type=_number(int, "--batch-size", low=1), default=64)
    p.add_argument("--lr", type=_number(float, "--lr", low=0.0, low_open=True), default=1e-3)
    p.add_argument("--optimizer", default="adam")
    p.add_argument(
        "--seed",
        type=_number(int, "--seed", low=0, high=INT64_MAX),
        default=0,
        help="seed of the initialization and the data order (same seed, same model)",
    )
    p.add_argument("--out", help="write the trained model to this checkpoint file")

    p = add(
        "compress",
        "select redundant units of a checkpoint, rebuild it smaller, compare before / after",
        _cmd_compress,
        True,
    )
    p.epilog = "Extra --name value options are passed to the selector (e.g. --mode map for dpp)."
    p.add_argument("checkpoint", help="a checkpoint written by `workbench train` or save_checkpoint")
    p.add_argument(
        "--method",
        default="magnitude",
        help="selector name (random, magnitude, activation, sbm, spectral, leiden, dpp, submodular)",
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "--keep", type=_share("--keep"), default=None, help="fraction of each group's units kept (default 0.5)"
    )
    target.add_argument(
        "--macs", type=_share("--macs"), metavar="SHARE", help="keep this share of the multiply-adds instead"
    )
    target.add_argument(
        "--params", type=_share("--params"), metavar="SHARE", help="keep this share of the parameters instead"
    )
    target.add_argument(
        "--latency",
        type=_share("--latency"),
        metavar="SHARE",
        help="this share of the CPU latency (timed rebuilds) instead",
    )
    p.add_argument(
        "--scope",
        choices=["uniform", "global", "sensitivity"],
        help="with --macs/--params/--latency: one fraction, one scale, or placed by per-layer sensitivity on val",
    )
    p.add_argument(
        "--min-keep", type=_share("--min-keep"), metavar="FRACTION", help="with --scope global: least kept per group"
    )
    p.add_argument(
        "--latency-batch",
        type=_number(int, "--latency-batch", low=1),
        metavar="N",
        help="with --latency: the batch timed (default 64)",
    )
    p.add_argument(
        "--round-to",
        type=_number(int, "--round-to", low=1, high=2**20),
        default=None,
        metavar="N",
        help="keep a multiple of N units per group (e.g. 8)",
    )
    p.add_argument(
        "--fuse",
        default="drop",
        choices=["drop", "merge", "neuron-merging", "lsq", "summarize", "summarize-medoid", "summarize-lsq", "fold"],
    )
    p.add_argument(
        "--repair",
        choices=["batches", "data-free"],
        help="after the fusion: batches (REPAIR, kept units rescaled to their statistics on the training data) or "
        "data-free (with --fuse fold: merged units' variances corrected from the weights alone)",
    )
    p.add_argument(
        "--merge-threshold",
        type=_number(float, "--merge-threshold", low=-1.0, high=1.0),
        default=None,
        help="with --fuse neuron-merging: least cosine similarity merged (default 0)",
    )
    p.add_argument(
        "--finetune",
        type=_number(int, "--finetune", low=0, what="a number of epochs (0 for none)"),
        default=0,
        metavar="EPOCHS",
        help="fine-tuning epochs after the rebuild",
    )
    p.add_argument(
        "--source", default="weights", choices=["weights", "activations", "pooled"], help="what the unit views read"
    )
    p.add_argument("--data", help="data set (default: the one recorded in the checkpoint)")
    p.add_argument("--root", help="folder of an on-disk data set")
    p.add_argument("--seed", type=_number(int, "--seed", low=0, high=INT64_MAX), default=0)
    p.add_argument("--out", help="output checkpoint (default: beside the input)")

    p = add(
        "export",
        "write a checkpoint's model as a .pt2 program, an ONNX file or a torch-only module + state_dict",
        _cmd_export,
    )
    p.add_argument("checkpoint", help="a checkpoint written by `workbench train`, `compress` or save_checkpoint")
    p.add_argument("--format", default="pt2", choices=["pt2", "onnx", "module"], help="what to write (default: pt2)")
    p.add_argument("--out", help="output file (pt2, onnx) or folder (module); default: beside the checkpoint")
    p.add_argument(
        "--batch-size",
        type=_number(int, "--batch-size", low=1),
        default=1,
        help="batch size of the example input (fixed in pt2 and onnx)",
    )
    p.add_argument("--opset", type=_number(int, "--opset", low=1), help="ONNX opset version (default: the exporter's)")

    p = add(
        "demo",
        "the main job: run the demo study (six selectors, three budgets, drop / lsq fusion on "
        "LeNet-300-100 / digits and an MLP / MNIST-1D, classic compression pipelines, baselines) and write "
        "its HTML report",
        _cmd_demo,
    )
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.add_argument("--out", default=None, help="folder for the demo's outputs (default: ./workbench-demo)")
    p = add(
        "study",
        "run a study file (a grid of models, selectors, budgets, fusion modes, seeds) or write its report",
        _cmd_study,
    )
    p.add_argument(
        "action",
        choices=["run", "report", "compare"],
        help="run: run what is not stored yet; report: write the HTML report; compare: rank the methods per "
        "model and budget with 95%% intervals and paired differences to a reference (reads the store only)",
    )
    p.add_argument("study", help="a TOML study file (e.g. workbench/studies/demo.toml)")
    p.add_argument("--store", help="the SQLite store (default: beside the study file)")
    p.add_argument(
        "--jobs",
        type=_number(int, "--jobs", low=1, high=_max_workers()),
        default=None,
        help="local worker processes (run; default 1)",
    )
    p.add_argument("--scheduler", help="run on the Dask scheduler at this address, e.g. tcp://host:8786 (run)")
    p.add_argument(
        "--local-cluster",
        type=_number(int, "--local-cluster", low=1, high=_max_workers()),
        metavar="N",
        help="start a local Dask cluster of N worker processes (run)",
    )
    p.add_argument(
        "--timeout",
        type=_number(float, "--timeout", low=0.0, high=MAX_WAIT_SECONDS, low_open=True),
        default=10.0,
        help="seconds to wait for the Dask scheduler (run)",
    )
    p.add_argument(
        "--worker-timeout",
        type=_number(float, "--worker-timeout", low=0.0, high=MAX_WAIT_SECONDS, low_open=True),
        metavar="SECONDS",
        help="stop when the Dask cluster has no worker for this long (default: the study's cluster.worker_timeout) (run)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait for the runs another `workbench study run` on the same store holds; compute those it leaves (run)",
    )
    p.add_argument("--out", help="the HTML file (report; default: beside the store)")
    p.add_argument(
        "--plotlyjs",
        choices=["inline", "file"],
        default="inline",
        help="inline: one self-contained page (default); file: write plotly.min.js once beside the report (report)",
    )
    p.add_argument("--force", action="store_true", help="run a grid larger than the study's max_runs")
    p.add_argument(
        "--reference",
        metavar="SELECTOR/FUSE",
        help="the method the others are compared with (compare; default: the study's reference, else magnitude/drop)",
    )
    return parser


def _given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the option ``dest`` was given (the options :func:`check_options` looks at default to None, or False
    for switches)."""
    value = getattr(args, dest, None)
    return value is not None and value is not False  # 0 given is given


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


#: Options of which at most one may be given, because they choose the same thing: command -> [(options, what they
#: choose)].
_ONE_OF: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "profile": [(("model", "checkpoint"), "the model profiled (a zoo model, or the one a checkpoint holds)")],
    "study": [
        (
            ("jobs", "scheduler", "local_cluster"),
            "where the runs execute (local processes, a Dask scheduler, or a local Dask cluster)",
        )
    ],
}

#: Options that act only with some values of another option and would be ignored with the others: command ->
#: [(option, the option it depends on, the values it acts with)].
_ONLY_WITH: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "compress": [("merge_threshold", "fuse", ("neuron-merging",))],
    "study": [
        *((dest, "action", ("run",)) for dest in ("jobs", "scheduler", "local_cluster", "worker_timeout", "wait")),
        ("out", "action", ("report",)),
        ("reference", "action", ("compare",)),
    ],
}


def check_options(args: argparse.Namespace) -> None:
    """Refuse, before any work starts, options given together that choose the same thing, and options the
    command would ignore with the other options given (:data:`_ONE_OF`, :data:`_ONLY_WITH`): a command never
    silently drops what it was asked.

    Raises
    ------
    ConfigError
        Naming the options, why they do not go together, and what to give instead.
    """
    for options, what in _ONE_OF.get(args.command, []):
        given = [_flag(dest) for dest in options if _given(args, dest)]
        if len(given) > 1:
            raise ConfigError(f"{' and '.join(given)} cannot go together: they choose {what}; give one of them.")
    for dest, other, values in _ONLY_WITH.get(args.command, []):
        if not _given(args, dest) or getattr(args, other) in values:
            continue

        def setting(value: str, other: str = other) -> str:
            return f"`{args.command} {value}`" if other == "action" else f"{_flag(other)} {value}"

        wanted = " or ".join(setting(value) for value in values)
        raise ConfigError(
            f"{_flag(dest)} goes with {wanted} only; with {setting(getattr(args, other))} it would be ignored: "
            f"leave it out, or use {wanted}."
        )


def _show_warning(message: Warning | str, category: type[Warning], *rest: Any, **kw: Any) -> None:
    """Print a warning as one ``warning: ...`` line (no source line: it is meant for the user)."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` command; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if extra and not args.model_args:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        refused = [value.message for value in vars(args).values() if isinstance(value, _Refused)]
        if refused:
            raise ConfigError(" ".join(refused))
        check_options(args)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.handler(args, extra) or 0)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
