"""A hostile user's probe of the workbench: bad inputs tried one by one, each classified by what happened.

Every case runs in this process under a time limit and a memory cap, with stdout and stderr captured,
and gets one of these outcomes:

- ``clean``: the workbench refused it with a :class:`~workbench.errors.WorkbenchError` (for the command
  line: a non-zero exit with a short message on stderr and no traceback), or handled it as documented
  (e.g. a warning and a NaN result, a damaged store row named and skipped);
- ``traceback``: any other exception escaped (or a traceback, or no usable message, was printed);
- ``accepted``: no error where one was expected; maybe a silent bug, read the detail;
- ``hang``: the case ran past its time limit (``--limit`` seconds);
- ``RAN CODE``: a crafted file ran code (its marker file exists); the worst outcome.

Categories: ``cli`` (``workbench.cli.main``), ``checkpoints`` (``load_checkpoint`` on damaged and crafted
files), ``api`` (selectors, k-DPP, surgery, compression transforms, training), ``data`` (data set names,
IDX and CIFAR-10 folders), ``study`` (study files and stores). Everything is written to a temporary
folder that is deleted at the end. The exit status is always 0: this is a probe, not a test.

Usage::

    python analyses/probe_inputs.py              # every case, a table per category and the non-clean cases
    python analyses/probe_inputs.py --quick      # the fast cases only
    python analyses/probe_inputs.py --only cli,study --json
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import os
import pickle
import shutil
import signal
import sqlite3
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

QUICK = {
    "cli": {
        "unknown command",
        "profile unknown model",
        "profile widths [1e9,10]",
        "profile batch-size 0",
        "train epochs 0",
        "train --out is a folder",
        "compress missing checkpoint",
        "compress keep 1.5",
        "compress bad fuse",
        "study jobs 0",
    },
    "checkpoints": {"a list", "version 99", "metadata null", "state_dict holding a string", "a pickled module"},
    "api": {
        "unknown selector",
        "budget 0",
        "budget 'x'",
        "features of strings",
        "k-DPP negative kernel",
        "k-DPP k > n",
        "plan keep 1.5",
        "prune rate 1.5",
        "share bits 0",
        "fixed_point bits 1",
        "fit lr -1",
        "fit mismatched targets",
        "evaluate on NaN outputs",
    },
    "data": {
        "unknown data set",
        "idx missing folder",
        "idx truncated images",
        "idx labels of 200",
        "cifar missing folder",
    },
    "study": {
        "missing file",
        "not TOML",
        "unknown selector",
        "duplicate model labels",
        "grid over the size limit",
        "store: random bytes",
        "store: foreign SQLite",
        "corrupt JSON metrics cell",
    },
}
STATUSES = ("clean", "traceback", "accepted", "hang", "RAN CODE")
CATEGORIES = ("cli", "checkpoints", "api", "data", "study")
MEMORY_HEADROOM = 4 * 2**30  # bytes of address space a case may add before allocations fail


# ---------------------------------------------------------------------------------------------- machinery


class CaseTimeout(BaseException):
    """Raised in a case that ran past its limit (a BaseException, so ``except Exception`` does not hide it)."""


@dataclass
class Handled:
    """Returned by a case whose input was handled as documented without an exception (a warning, a NaN)."""

    note: str


@dataclass
class Case:
    """One bad input: ``run(ctx)`` tries it. ``cli`` cases return an argv for ``workbench.cli.main``;
    ``marker`` cases carry a crafted file that would create ``ctx.marker`` if it ran code."""

    category: str
    name: str
    run: Callable[[Context], Any]
    cli: bool = False
    marker: bool = False

    @property
    def quick(self) -> bool:
        """In the ``--quick`` subset: every code-execution case and a few of each category."""
        return self.marker or self.name in QUICK.get(self.category, ())


@dataclass
class Result:
    category: str
    name: str
    status: str
    detail: str
    seconds: float
    warnings: list[str] = field(default_factory=list)


class Context:
    """What a case may use: its own folder, a marker path, and shared fixtures built once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shared = root / "shared"
        self.shared.mkdir(parents=True, exist_ok=True)
        self.tmp = root
        self._cache: dict[str, Any] = {}

    def enter(self, case: Case) -> None:
        self.tmp = self.root / case.category / case.name.replace("/", "_").replace(" ", "_")
        self.tmp.mkdir(parents=True, exist_ok=True)

    @property
    def marker(self) -> Path:
        return self.tmp / "RAN-CODE-MARKER"

    def once(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    # -- fixtures --------------------------------------------------------------------------------
    def model(self) -> torch.nn.Module:
        from workbench.zoo import create_model

        return create_model("mlp", widths=[64, 16, 10])

    def checkpoint(self) -> Path:
        """A valid checkpoint of an untrained digits MLP."""

        def build() -> Path:
            from workbench.checkpoints import save_checkpoint

            return save_checkpoint(self.shared / "mlp.pt", self.model(), metadata={"data": "digits"})

        return self.once("checkpoint", build)

    def payload(self) -> dict[str, Any]:
        return torch.load(self.checkpoint(), weights_only=True)

    def saved(self, payload: Any, name: str = "bad.pt") -> Path:
        path = self.tmp / name
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path.write_bytes(buffer.getvalue())
        return path

    def study_file(self, text: str, name: str = "study.toml") -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def study_store(self) -> tuple[Path, Path, str]:
        """A copy of a store holding one finished run of the tiny study: (study file, store, run hash)."""

        def build() -> tuple[Path, Path, str]:
            from workbench.study import Store, expand, load_study

            study = self.shared / "tiny.toml"
            study.write_text(TINY_STUDY)
            run = expand(load_study(study))[0]
            store = self.shared / "tiny.sqlite"
            with Store(store) as db:
                db.write(
                    {"hash": run.hash, "status": "done", "metrics": {"accuracy": 0.5}, "seconds": 1.0},
                    study="tiny",
                    kind=run.kind,
                    label=run.label,
                    config=run.config,
                )
            return study, store, run.hash

        study, store, run_hash = self.once("store", build)
        copy = self.tmp / "tiny.sqlite"
        shutil.copy(store, copy)
        target = self.tmp / "tiny.toml"
        shutil.copy(study, target)
        return target, copy, run_hash


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterable[None]:
    """Raise CaseTimeout in the main thread after ``seconds`` (no limit off the main thread or without SIGALRM)."""
    usable = hasattr(signal, "setitimer") and _main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _vm_size() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@contextlib.contextmanager
def _memory_cap(headroom: int) -> Iterable[None]:
    """Cap the address space at its current size plus ``headroom`` (Linux), so that an absurd allocation
    the workbench did not refuse fails in this process instead of exhausting the machine."""
    try:
        import resource
    except ImportError:
        yield
        return
    size = _vm_size()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if size is None or headroom <= 0:
        yield
        return
    cap = size + headroom if hard == resource.RLIM_INFINITY else min(hard, size + headroom)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _first_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = " ".join(lines[:2]) if lines and lines[0].endswith(":") else (lines[0] if lines else "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _where(exc: BaseException) -> str:
    """The innermost frame of ``exc``'s traceback, relative to the repository when inside it."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    path = Path(frame.filename)
    root = Path(__file__).resolve().parents[1]
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(root)
    return f" [at {path}:{frame.lineno}]"


def _is_clean_cli(code: int, err: str) -> tuple[bool, str]:
    if "Traceback" in err:
        return False, "printed a traceback: " + _first_line(err.split("Traceback", 1)[1].splitlines()[-1] or err)
    lines = [line for line in err.splitlines() if line.strip()]
    if not lines:
        return False, f"exit {code} without a message on stderr"
    if len(err) > 2000:
        return False, f"exit {code} with a {len(lines)}-line message: {_first_line(err)}"
    return True, f"exit {code}: {_first_line(lines[-1])}"


def run_case(case: Case, ctx: Context, limit: float = 30.0, headroom: int = MEMORY_HEADROOM) -> Result:
    """Try one case and classify what happened."""
    from workbench.errors import WorkbenchError

    ctx.enter(case)
    np.random.seed(0)  # libraries that draw from the global generators give the same outcome on every run
    torch.manual_seed(0)
    out, err = io.StringIO(), io.StringIO()
    status, detail = "accepted", ""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                with _time_limit(limit), _memory_cap(headroom):
                    value = case.run(ctx)
                    if case.cli:
                        from workbench.cli import main

                        try:
                            value = main([str(item) for item in value])
                        except SystemExit as exc:  # argparse
                            value = exc.code if isinstance(exc.code, int) else 2
        except CaseTimeout as exc:
            status, detail = "hang", str(exc)
        except WorkbenchError as exc:
            status, detail = "clean", f"{type(exc).__name__}: {_first_line(str(exc))}"
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - classifying is the point
            where = "" if isinstance(exc, StoredRawError) else _where(exc)
            status, detail = "traceback", f"{type(exc).__name__}: {_first_line(str(exc))}{where}"
        else:
            printed = err.getvalue()
            if case.cli:
                if value == 0:
                    said = _first_line(printed) or "no message on stderr"
                    status, detail = "accepted", f"exit 0 (no error): {said}"
                else:
                    ok, detail = _is_clean_cli(int(value), printed)
                    status = "clean" if ok else "traceback"
            elif "Traceback" in printed:
                status, detail = "traceback", "printed a traceback: " + _first_line(printed)
            elif isinstance(value, Handled):
                status, detail = "clean", value.note
            else:
                status, detail = "accepted", f"returned {_first_line(_short(value))}"
    seconds = time.perf_counter() - start
    if case.marker and ctx.marker.exists():
        status, detail = "RAN CODE", f"the crafted file created {ctx.marker.name}; {detail}"
    notes = [_first_line(f"{w.category.__name__}: {w.message}") for w in caught]
    return Result(case.category, case.name, status, detail, round(seconds, 3), notes)


def works(run: Callable[[Context], Any]) -> Callable[[Context], Any]:
    """A case whose input is valid, if odd: returning is the documented behaviour (clean), raising is not."""
    return lambda ctx: Handled(f"works: {_short(run(ctx))}")


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    if hasattr(type(value), "model_fields"):  # a validated pydantic object (a study file that loaded)
        return f"a valid {type(value).__name__}"
    if isinstance(value, torch.nn.Module):
        return f"a {type(value).__name__} model"
    text = repr(value)
    return text if len(text) < 150 else text[:147] + "..."


def run_cases(
    cases: Sequence[Case], limit: float = 30.0, headroom: int = MEMORY_HEADROOM, root: Path | None = None
) -> list[Result]:
    """Run ``cases`` in a temporary folder (deleted afterwards) and return their results in order."""
    torch_threads = torch.get_num_threads()
    folder = Path(tempfile.mkdtemp(prefix="workbench-probe-", dir=root))
    cwd = Path.cwd()
    try:
        os.chdir(folder)  # fallback copies and default outputs land in the temporary folder
        ctx = Context(folder)
        return [run_case(case, ctx, limit, headroom) for case in cases]
    finally:
        os.chdir(cwd)
        torch.set_num_threads(torch_threads)
        shutil.rmtree(folder, ignore_errors=True)


def summarize(results: Sequence[Result]) -> dict[str, dict[str, int]]:
    """Category -> counts of each outcome (and ``cases``), plus a ``total`` row."""
    table: dict[str, dict[str, int]] = {}
    for category in [*dict.fromkeys(r.category for r in results), "total"]:
        rows = [r for r in results if category in (r.category, "total")]
        counts = Counter(r.status for r in rows)
        table[category] = {"cases": len(rows), **{status: counts.get(status, 0) for status in STATUSES}}
    return table


def format_report(results: Sequence[Result]) -> str:
    table = summarize(results)
    header = f"{'category':<12}" + "".join(f"{name:>11}" for name in ("cases", *STATUSES))
    lines = [header, "-" * len(header)]
    for category, counts in table.items():
        lines.append(f"{category:<12}" + "".join(f"{counts[name]:>11}" for name in ("cases", *STATUSES)))
    ran = [r for r in results if r.status == "RAN CODE"]
    if ran:
        lines += ["", "!!! RAN CODE: a crafted file ran code in " + ", ".join(f"{r.category}/{r.name}" for r in ran)]
    bad = [r for r in results if r.status != "clean"]
    if bad:
        lines += ["", "not clean:"]
        width = max(len(f"{r.category}/{r.name}") for r in bad)
        for r in bad:
            lines.append(f"  {r.status:<9} {f'{r.category}/{r.name}':<{width}}  {r.detail}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- file makers


class _MakeDir:
    """A pickled object that, when unpickled, creates a folder (the marker): code from a data file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file holding ``array``."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(
    folder: Path,
    labels: np.ndarray | None = None,
    test_size: tuple[int, int] = (8, 8),
    skip: Sequence[str] = (),
    gz: bool = False,
) -> Path:
    """A small MNIST-style IDX folder (100 training, 20 test images of 8 x 8)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (100, 8, 8)),
        "train-labels-idx1-ubyte": np.arange(100) % 10 if labels is None else labels,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, *test_size)),
        "t10k-labels-idx1-ubyte": np.arange(20) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if name in skip:
            continue
        data = idx_bytes(np.asarray(array))
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return folder


def write_cifar(folder: Path, batch: Any = None, n: int = 20, binary: bool = False, label: int | None = None) -> Path:
    """A tiny CIFAR-10 folder (python layout, or binary with ``binary``); ``batch`` replaces every python
    batch, ``label`` (0..255) every label (default: labels 0..9 in turn)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = list(np.arange(n) % 10) if label is None else [label] * n
        if binary:
            records = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], data], axis=1)
            (folder / f"{name}.bin").write_bytes(records.tobytes())
        else:
            content = {b"data": data, b"labels": labels} if batch is None else batch
            (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    return folder


def tensors(inputs: Any, targets: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """An (inputs, targets) pair as ``fit`` and ``evaluate`` take it."""
    return torch.as_tensor(inputs, dtype=torch.float32), torch.as_tensor(targets)


# ------------------------------------------------------------------------------------------------- cases

TINY_STUDY = """
[study]
name = "tiny"
seeds = [0]
latency = false

[[models]]
label = "tiny MLP"
name = "mlp"
args = { widths = [64, 8, 10] }
data = "digits"
training = { epochs = 1, max_batches = 2 }

[selectors]
magnitude = {}

[compression]
budgets = [0.5]

[finetune]
epochs = 0
"""

PROFILE = ["profile", "--no-latency", "--quiet"]
TRAIN = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--quiet"]


def cli_cases() -> list[Case]:
    """Bad command lines."""

    def case(name: str, argv: Callable[[Context], list[Any]] | list[Any]) -> Case:
        run = argv if callable(argv) else (lambda ctx, argv=argv: argv)
        return Case("cli", name, run, cli=True)

    def ckpt(*rest: Any) -> Callable[[Context], list[Any]]:
        return lambda ctx: ["compress", ctx.checkpoint(), "--quiet", "--out", ctx.tmp / "out.pt", *rest]

    def folder(ctx: Context) -> Path:
        (ctx.tmp / "folder").mkdir(exist_ok=True)
        return ctx.tmp / "folder"

    def under_file(ctx: Context) -> Path:
        (ctx.tmp / "a-file").write_text("x")
        return ctx.tmp / "a-file" / "model.pt"

    def garbage(ctx: Context) -> Path:
        (ctx.tmp / "garbage.pt").write_bytes(os.urandom(4096))
        return ctx.tmp / "garbage.pt"

    def empty(ctx: Context) -> Path:
        (ctx.tmp / "empty.pt").write_bytes(b"")
        return ctx.tmp / "empty.pt"

    def no_data(ctx: Context) -> list[Any]:
        from workbench.checkpoints import save_checkpoint

        path = save_checkpoint(ctx.tmp / "nodata.pt", ctx.model())
        return ["compress", path, "--quiet", "--out", ctx.tmp / "out.pt"]

    return [
        case("unknown command", ["frobnicate"]),
        case("models with extra arguments", ["models", "--width", "3"]),
        case("profile unknown model", [*PROFILE, "--model", "lenet6"]),
        case("profile neither model nor checkpoint", PROFILE),
        case("profile unknown model argument", [*PROFILE, "--model", "mlp", "--depth", "3"]),
        case("profile model argument without value", [*PROFILE, "--model", "mlp", "--widths"]),
        case("profile stray positional", [*PROFILE, "--model", "mlp", "stray"]),
        case("profile widths [1e9,10]", [*PROFILE, "--model", "mlp", "--widths", "[1e9,10]"]),
        case("profile widths [1000000000,10]", [*PROFILE, "--model", "mlp", "--widths", "[1000000000,10]"]),
        case("profile widths abc", [*PROFILE, "--model", "mlp", "--widths", "abc"]),
        case("profile widths []", [*PROFILE, "--model", "mlp", "--widths", "[]"]),
        case("profile widths negative", [*PROFILE, "--model", "mlp", "--widths", "[64,-3,10]"]),
        case("profile widths zero", [*PROFILE, "--model", "mlp", "--widths", "[64,0,10]"]),
        case("profile widths fractional", [*PROFILE, "--model", "mlp", "--widths", "[64,2.5,10]"]),
        case("profile resolution 50000", [*PROFILE, "--model", "mobilenet_v1", "--resolution", "50000"]),
        case("profile resolution 0", [*PROFILE, "--model", "mobilenet_v1", "--resolution", "0"]),
        case("profile resolution -32", [*PROFILE, "--model", "mobilenet_v1", "--resolution", "-32"]),
        case("profile width -1", [*PROFILE, "--model", "mobilenet_v1", "--width", "-1"]),
        case("profile width 1e6", [*PROFILE, "--model", "mobilenet_v1", "--width", "1e6"]),
        case("profile resnet depth 7", [*PROFILE, "--model", "resnet", "--depth", "7"]),
        case("profile batch-size 100000", [*PROFILE, "--model", "mobilenet_v1", "--batch-size", "100000"]),
        case("profile batch-size 0", [*PROFILE, "--model", "mlp", "--batch-size", "0"]),
        case("profile batch-size -5", [*PROFILE, "--model", "mlp", "--batch-size", "-5"]),
        case("profile batch-size abc", [*PROFILE, "--model", "mlp", "--batch-size", "abc"]),
        case("profile missing checkpoint", lambda ctx: [*PROFILE, "--checkpoint", ctx.tmp / "missing.pt"]),
        case(
            "profile checkpoint with model args",
            lambda ctx: [*PROFILE, "--checkpoint", ctx.checkpoint(), "--width", "2"],
        ),
        case("train unknown data set", ["train", "--model", "mlp", "--data", "mnist", "--quiet"]),
        case("train unknown model", ["train", "--model", "lenet6", "--data", "digits", "--quiet"]),
        case("train without --data", ["train", "--model", "mlp"]),
        case("train epochs 0", ["train", "--model", "mlp", "--data", "digits", "--epochs", "0", "--quiet"]),
        case("train epochs -1", ["train", "--model", "mlp", "--data", "digits", "--epochs", "-1", "--quiet"]),
        case("train epochs 1.5", ["train", "--model", "mlp", "--data", "digits", "--epochs", "1.5", "--quiet"]),
        case("train lr -1", [*TRAIN, "--lr", "-1"]),
        case("train lr nan", [*TRAIN, "--lr", "nan"]),
        case("train unknown optimizer", [*TRAIN, "--optimizer", "adamw2"]),
        case("train batch-size 0", [*TRAIN, "--batch-size", "0"]),
        case("train widths [1e9,10]", [*TRAIN, "--widths", "[64,1000000000,10]"]),
        case("train widths ending wrong", [*TRAIN, "--widths", "[64,16,3]"]),
        case(
            "train conv net on 1-D data",
            ["train", "--model", "lenet5", "--data", "mnist1d", "--epochs", "1", "--quiet"],
        ),
        case("train --out is a folder", lambda ctx: [*TRAIN, "--out", folder(ctx)]),
        case("train --out under a file", lambda ctx: [*TRAIN, "--out", under_file(ctx)]),
        case("train idx without --root", ["train", "--model", "mlp", "--data", "idx", "--quiet"]),
        case(
            "train idx missing root",
            lambda ctx: ["train", "--model", "mlp", "--data", "idx", "--root", ctx.tmp / "nope"],
        ),
        case(
            "train cifar10 missing root",
            lambda ctx: ["train", "--model", "mlp", "--data", "cifar10", "--root", ctx.tmp / "nope"],
        ),
        case("compress missing checkpoint", lambda ctx: ["compress", ctx.tmp / "missing.pt", "--quiet"]),
        case("compress garbage checkpoint", lambda ctx: ["compress", garbage(ctx), "--quiet"]),
        case("compress empty checkpoint", lambda ctx: ["compress", empty(ctx), "--quiet"]),
        case(
            "compress directory checkpoint", lambda ctx: ["compress", folder(ctx), "--quiet", "--out", ctx.tmp / "o.pt"]
        ),
        case("compress keep 0", ckpt("--keep", "0")),
        case("compress keep 1.5", ckpt("--keep", "1.5")),
        case("compress keep -0.5", ckpt("--keep", "-0.5")),
        case("compress keep abc", ckpt("--keep", "abc")),
        case("compress keep nan", ckpt("--keep", "nan")),
        case("compress bad fuse", ckpt("--fuse", "melt")),
        case("compress bad source", ckpt("--source", "gradients")),
        case("compress unknown method", ckpt("--method", "sbn")),
        case("compress unknown selector option", ckpt("--method", "dpp", "--frobnicate", "3")),
        case("compress bad selector option value", ckpt("--method", "dpp", "--mode", "maximal")),
        case("compress unknown data set", ckpt("--data", "mnist")),
        case("compress data of another shape", ckpt("--data", "mnist1d")),
        case("compress finetune -1", ckpt("--finetune", "-1")),
        case("compress without recorded data", no_data),
        case("compress --out is a folder", lambda ctx: ["compress", ctx.checkpoint(), "--out", folder(ctx)]),
        case("compress --out under a file", lambda ctx: ["compress", ctx.checkpoint(), "--out", under_file(ctx)]),
        case("study missing file", lambda ctx: ["study", "run", ctx.tmp / "missing.toml", "--quiet"]),
        case("study unknown action", lambda ctx: ["study", "walk", ctx.tmp / "missing.toml"]),
        case("study jobs 0", lambda ctx: ["study", "run", ctx.study_file(TINY_STUDY), "--jobs", "0", "--quiet"]),
        case("study jobs -2", lambda ctx: ["study", "run", ctx.study_file(TINY_STUDY), "--jobs", "-2", "--quiet"]),
        case(
            "study jobs with a scheduler",
            lambda ctx: [
                "study",
                "run",
                ctx.study_file(TINY_STUDY),
                "--jobs",
                "2",
                "--scheduler",
                "tcp://127.0.0.1:1",
                "--timeout",
                "2",
            ],
        ),
        case("study local cluster 0", lambda ctx: ["study", "run", ctx.study_file(TINY_STUDY), "--local-cluster", "0"]),
        case(
            "study worker timeout -1",
            lambda ctx: ["study", "run", ctx.study_file(TINY_STUDY), "--local-cluster", "1", "--worker-timeout", "-1"],
        ),
        case(
            "study store is a folder",
            lambda ctx: ["study", "run", ctx.study_file(TINY_STUDY), "--store", folder(ctx), "--quiet"],
        ),
        case(
            "study report --out is a folder",
            lambda ctx: [
                "study",
                "report",
                ctx.study_store()[0],
                "--store",
                ctx.study_store()[1],
                "--out",
                folder(ctx),
            ],
        ),
        case("study report without a store", lambda ctx: ["study", "report", ctx.study_file(TINY_STUDY)]),
        case("demo --out under a file", lambda ctx: ["demo", "--quick", "--quiet", "--out", under_file(ctx)]),
    ]


def checkpoint_cases() -> list[Case]:
    """Damaged and crafted checkpoint files given to ``load_checkpoint``."""
    from workbench.checkpoints import load_checkpoint

    def case(name: str, make: Callable[[Context], Path], marker: bool = False) -> Case:
        return Case("checkpoints", name, lambda ctx: load_checkpoint(make(ctx)), marker=marker)

    def changed(**changes: Any) -> Callable[[Context], Path]:
        def make(ctx: Context) -> Path:
            payload = ctx.payload()
            for key, value in changes.items():
                if value is _DROP:
                    payload.pop(key)
                else:
                    payload[key] = value(payload) if callable(value) else value
            return ctx.saved(payload)

        return make

    def spec(**changes: Any) -> Callable[[Context], Path]:
        def edit(payload: dict[str, Any]) -> str:
            data = json.loads(payload["spec"])
            data.update(changes)
            return json.dumps(data)

        return changed(spec=edit)

    def state(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Context], Path]:
        return changed(state_dict=lambda payload: edit(dict(payload["state_dict"])))

    def write(data: bytes, name: str = "file.pt") -> Callable[[Context], Path]:
        def make(ctx: Context) -> Path:
            (ctx.tmp / name).write_bytes(data)
            return ctx.tmp / name

        return make

    def truncated(ctx: Context) -> Path:
        data = ctx.checkpoint().read_bytes()
        return write(data[: len(data) // 2])(ctx)

    def crafted_torch(ctx: Context) -> Path:
        return ctx.saved({"format": "workbench-checkpoint", "version": 2, "spec": _MakeDir(ctx.marker)})

    def crafted_pickle(ctx: Context) -> Path:
        return write(pickle.dumps({"state_dict": _MakeDir(ctx.marker)}, protocol=2), "legacy.pt")(ctx)

    def crafted_in_metadata(ctx: Context) -> Path:
        payload = ctx.payload()
        payload["metadata"] = _MakeDir(ctx.marker)
        return ctx.saved(payload)

    def folder(ctx: Context) -> Path:
        (ctx.tmp / "dir.pt").mkdir(exist_ok=True)
        return ctx.tmp / "dir.pt"

    def first_key(sd: dict[str, Any]) -> str:
        return next(iter(sd))

    def reshape_first(sd: dict[str, Any]) -> dict[str, Any]:
        sd[first_key(sd)] = torch.zeros(3, 3)
        return sd

    return [
        case("missing file", lambda ctx: ctx.tmp / "missing.pt"),
        case("a folder", folder),
        case("empty file", write(b"")),
        case("random bytes", write(os.urandom(2048))),
        case("a text file", write(b"this is not a checkpoint\n" * 20)),
        case("truncated checkpoint", truncated),
        case("a list", lambda ctx: ctx.saved([1, 2, 3])),
        case("a tensor", lambda ctx: ctx.saved(torch.zeros(3))),
        case("a dict without the format marker", lambda ctx: ctx.saved({"spec": "{}", "weights": [1]})),
        case("a bare state_dict", lambda ctx: ctx.saved(ctx.model().state_dict())),
        case("version 99", changed(version=99)),
        case("version as a string", changed(version="2")),
        case("no state_dict", changed(state_dict=_DROP)),
        case("no spec", changed(spec=_DROP)),
        case("metadata a list", changed(metadata="[1, 2]")),
        case("metadata null", changed(metadata="null")),
        case("metadata not JSON", changed(metadata="{oops")),
        case("metadata a dict, not JSON text", changed(metadata={"data": "digits"})),
        case("spec not JSON", changed(spec="{'name': 'mlp'")),
        case("spec a list", changed(spec="[1, 2]")),
        case("spec null", changed(spec="null")),
        case("spec of an unknown model", spec(name="lenet6")),
        case("spec with unknown arguments", spec(kwargs={"depth": 3})),
        case("spec with widths abc", spec(kwargs={"widths": "abc"})),
        case("spec with absurd widths", spec(kwargs={"widths": [64, 1000000000, 10]})),
        case("spec edits not a list", spec(edits={"op": "plan"})),
        case("spec edits of strings", spec(edits=["x"])),
        case("spec edit with a garbage plan", spec(edits=[{"op": "plan", "plan": "garbage"}])),
        case(
            "spec parametrization unknown",
            spec(
                parametrizations=[
                    {
                        "layer": "layers.0",
                        "tensor": "weight",
                        "shape": [16, 64],
                        "chain": [{"type": "nosuch", "config": {}}],
                    }
                ]
            ),
        ),
        case("state_dict holding a string", state(lambda sd: {**sd, first_key(sd): "a string"})),
        case("state_dict a list", changed(state_dict=[1, 2])),
        case("state_dict missing a key", state(lambda sd: {k: v for k, v in list(sd.items())[1:]})),
        case("state_dict with an extra key", state(lambda sd: {**sd, "extra.weight": torch.zeros(2)})),
        case("state_dict wrong shape", state(reshape_first)),
        case("a pickled module", lambda ctx: ctx.saved(torch.nn.Linear(3, 2))),
        case("crafted torch pickle runs code", crafted_torch, marker=True),
        case("crafted legacy pickle runs code", crafted_pickle, marker=True),
        case("crafted object in metadata", crafted_in_metadata, marker=True),
    ]


_DROP = object()


def api_cases() -> list[Case]:
    """Bad arguments to the library's functions."""
    from workbench.select import get_selector, sample_k_dpp

    rng = np.random.default_rng(0)
    features = rng.standard_normal((8, 4))

    def case(name: str, run: Callable[[Context], Any]) -> Case:
        return Case("api", name, run)

    def select(name: str, x: Any = features, **params: Any) -> Callable[[Context], Any]:
        return lambda ctx: get_selector(name, **{"budget": 0.5, "random_state": 0, **params}).fit(x).keep_

    def graph_of(model: torch.nn.Module) -> Any:
        from workbench.graph import from_model

        return from_model(model)

    def plan_for_another(ctx: Context) -> Any:
        from workbench.surgery import apply, plan_from
        from workbench.zoo import create_model

        plan = plan_from(graph_of(create_model("lenet300")), get_selector("magnitude"), keep=0.5)
        return apply(create_model("mlp", widths=[784, 50, 10]), plan)

    def conv_plan(selector: Any, samples: int = 0) -> Any:
        from workbench.surgery import plan_from
        from workbench.zoo import create_model, example_input

        model = create_model("lenet5")
        data = example_input(model, samples) if samples else None
        source = "activations" if samples else "weights"
        return plan_from(graph_of(model), selector, keep=0.25, source=source, data=data)

    def plan_groups(ctx: Context, **kwargs: Any) -> Any:
        from workbench.surgery import plan_from

        return plan_from(graph_of(ctx.model()), get_selector("magnitude"), **kwargs)

    def apply_with(fuse: str) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            from workbench.surgery import apply

            model = ctx.model()
            return apply(model, plan_groups(ctx, keep=0.5), fuse=fuse)

        return run

    def transform(call: Callable[[torch.nn.Module], Any]) -> Callable[[Context], Any]:
        return lambda ctx: call(ctx.model())

    def fit_with(data: Any = None, **kwargs: Any) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            from workbench.train import fit

            given = data if data is not None else tensors(rng.standard_normal((32, 64)), np.arange(32) % 10)
            return fit(ctx.model(), given, **{"epochs": 1, "quiet": True, **kwargs})

        return run

    def evaluate_nan(ctx: Context) -> Any:
        from workbench.errors import NumericsWarning
        from workbench.train import evaluate

        class NaNModel(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.full((x.shape[0], 10), float("nan"))

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate(NaNModel(), tensors(np.zeros((16, 64)), np.arange(16) % 10))
        warned = [w for w in caught if issubclass(w.category, NumericsWarning)]
        if warned and math.isnan(result["accuracy"]):
            return Handled(f"warned and reported NaN: {_first_line(str(warned[0].message))}")
        return result

    def evaluate_with(data: Any) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            from workbench.train import evaluate

            return evaluate(ctx.model(), data)

        return run

    def compress_with(**kwargs: Any) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            from workbench.compression import compress

            return compress(ctx.model(), latency=False, **kwargs)

        return run

    def factorize_with(**kwargs: Any) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            from workbench.surgery import factorize

            return factorize(ctx.model(), **kwargs)

        return run

    def plan_json(text: str) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            from workbench.surgery import Plan

            return Plan.from_json(text)

        return run

    def unit_view(**kwargs: Any) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            graph = graph_of(ctx.model())
            return graph.unit_view(next(iter(graph.groups)), **kwargs)

        return run

    def dpp(kernel: np.ndarray, k: int) -> Callable[[Context], Any]:
        return lambda ctx: sample_k_dpp(kernel, k, random_state=0)

    psd = features @ features.T
    nan_features = features.copy()
    nan_features[2, 1] = np.nan
    inf_features = features.copy()
    inf_features[5, 0] = -np.inf
    from workbench.quantize import fixed_point, share_weights
    from workbench.sparse import prune

    empty = (torch.zeros(0, 64), torch.zeros(0, dtype=torch.long))
    return [
        case("unknown selector", select("sbn")),
        case("unknown selector parameter", select("dpp", alpha=2)),
        case("bad selector mode", select("dpp", mode="maximal")),
        case("budget 0", select("magnitude", budget=0)),
        case("budget 2 (int k, must work)", works(select("random", budget=2))),
        case("budget 20 of 8 units", select("magnitude", budget=20)),
        case("budget 2.0 (fraction above 1)", select("magnitude", budget=2.0)),
        case("budget -1", select("magnitude", budget=-1)),
        case("budget 'x'", select("magnitude", budget="x")),
        case("budget None", select("magnitude", budget=None)),
        case("budget nan", select("magnitude", budget=float("nan"))),
        case("budget True", select("magnitude", budget=True)),
        case("features with NaN", select("spectral", nan_features)),
        case("features with inf", select("dpp", inf_features)),
        case("features of strings", select("dpp", np.array([["a", "b"]] * 8))),
        case("features one unit (must work)", works(select("dpp", features[:1], budget=1))),
        case("features no units", select("dpp", features[:0])),
        case("features 1-D", select("dpp", features[:, 0])),
        case("features 3-D", select("dpp", features.reshape(8, 2, 2))),
        case("features constant", select("spectral", np.ones((8, 4)))),
        case("features a ragged list", select("dpp", [[1.0, 2.0], [3.0]])),
        case("sbm on two units (must work)", works(select("sbm", features[:2], budget=1))),
        case("sbm on nine units (must work)", works(select("sbm", rng.standard_normal((9, 3)), budget=3))),
        case("k-DPP negative kernel", dpp(-psd, 2)),
        case("k-DPP indefinite kernel", dpp(psd - 3 * np.eye(8) * psd.diagonal().mean(), 2)),
        case("k-DPP k > n", dpp(psd, 9)),
        case("k-DPP k = 0", dpp(psd, 0)),
        case("k-DPP k = -1", dpp(psd, -1)),
        case("k-DPP non-square kernel", dpp(features, 2)),
        case("k-DPP asymmetric kernel", dpp(psd + np.triu(np.ones((8, 8))), 2)),
        case("k-DPP NaN kernel", dpp(np.where(psd > 0, np.nan, psd), 2)),
        case("plan for another model", plan_for_another),
        case("sbm plan on LeNet-5 (must work)", works(lambda ctx: conv_plan(get_selector("sbm")))),
        case(
            "input-change plan on LeNet-5, 400 samples (must fit)",
            works(lambda ctx: conv_plan(get_selector("submodular", objective="input_change"), 400)),
        ),
        case("plan keep 0", lambda ctx: plan_groups(ctx, keep=0)),
        case("plan keep 1.5", lambda ctx: plan_groups(ctx, keep=1.5)),
        case("plan unknown group", lambda ctx: plan_groups(ctx, groups=["nosuch"])),
        case("plan per_layer of an unknown group", lambda ctx: plan_groups(ctx, per_layer={"nosuch": 0.5})),
        case("plan activations without data", lambda ctx: plan_groups(ctx, source="activations")),
        case("plan unknown source", lambda ctx: plan_groups(ctx, source="gradients")),
        case("apply unknown fuse", apply_with("melt")),
        case("plan JSON garbage", plan_json("{not json")),
        case("plan JSON of a list", plan_json("[1, 2]")),
        case("unit view of an unknown group", lambda ctx: graph_of(ctx.model()).unit_view("nosuch")),
        case("unit view unknown metric", unit_view(metric="manhattan")),
        case(
            "unit view max_samples 0",
            unit_view(source="activations", data=tensors(np.zeros((8, 64)), np.zeros(8)), max_samples=0),
        ),
        case("graph of a non-module", lambda ctx: graph_of("mlp")),
        case("prune rate 1.5", transform(lambda m: prune(m, rate=1.5))),
        case("prune rate -0.1", transform(lambda m: prune(m, rate=-0.1))),
        case("prune unknown scope", transform(lambda m: prune(m, rate=0.5, scope="planet"))),
        case("prune unknown layer", transform(lambda m: prune(m, rate=0.5, layers=["nosuch"]))),
        case("prune neither rate nor quality", transform(lambda m: prune(m))),
        case("share bits 0", transform(lambda m: share_weights(m, bits=0))),
        case("share bits 40", transform(lambda m: share_weights(m, bits=40))),
        case("share unknown init", transform(lambda m: share_weights(m, init="psychic"))),
        case("fixed_point bits 1", transform(lambda m: fixed_point(m, weight_bits=1))),
        case("fixed_point bits 0", transform(lambda m: fixed_point(m, weight_bits=0))),
        case("fixed_point act_bits -8", transform(lambda m: fixed_point(m, act_bits=-8))),
        case("fixed_point unknown rounding", transform(lambda m: fixed_point(m, rounding="sideways"))),
        case("factorize unknown method", factorize_with(method="qr")),
        case("factorize budget 0", factorize_with(budget=0.0)),
        case("compress unknown method", compress_with(method="sbn")),
        case("compress keep 0", compress_with(keep=0.0)),
        case("compress without data for activations", compress_with(source="activations")),
        case("fit lr -1", fit_with(lr=-1.0)),
        case("fit lr nan", fit_with(lr=float("nan"))),
        case("fit epochs 0", fit_with(epochs=0)),
        case("fit epochs -1", fit_with(epochs=-1)),
        case("fit batch_size 0", fit_with(batch_size=0)),
        case("fit unknown optimizer", fit_with(optimizer="adamw2")),
        case("fit unknown schedule", fit_with(schedule="zigzag")),
        case("fit empty data", fit_with(empty)),
        case("fit mismatched targets", fit_with(tensors(np.zeros((32, 64)), np.arange(20) % 10))),
        case("fit targets out of range", fit_with(tensors(np.zeros((32, 64)), np.full(32, 50)))),
        case("fit inputs of the wrong width", fit_with(tensors(np.zeros((32, 63)), np.arange(32) % 10))),
        case("fit data a string", fit_with("digits")),
        case("evaluate on NaN outputs", evaluate_nan),
        case("evaluate empty data", evaluate_with(empty)),
        case("evaluate mismatched targets", evaluate_with(tensors(np.zeros((32, 64)), np.arange(20) % 10))),
        case("create unknown model", lambda ctx: __import__("workbench.zoo").zoo.create_model("lenet6")),
        case(
            "create model with a bad argument", lambda ctx: __import__("workbench.zoo").zoo.create_model("mlp", depth=3)
        ),
        case("save_checkpoint of a foreign module", lambda ctx: _save_foreign(ctx)),
        case("save_checkpoint with unserializable metadata", lambda ctx: _save_meta(ctx)),
        case(
            "unknown pipeline transform",
            lambda ctx: __import__("workbench.pipeline").pipeline.transforms().get("prnue"),
        ),
    ]


def _save_foreign(ctx: Context) -> Any:
    from workbench.checkpoints import save_checkpoint

    return save_checkpoint(ctx.tmp / "x.pt", torch.nn.Linear(2, 2))


def _save_meta(ctx: Context) -> Any:
    from workbench.checkpoints import save_checkpoint

    return save_checkpoint(ctx.tmp / "x.pt", ctx.model(), metadata={"when": object()})


def data_cases() -> list[Case]:
    """Data set names and on-disk folders."""
    from workbench.datasets import load_dataset

    def case(name: str, run: Callable[[Context], Any], marker: bool = False) -> Case:
        return Case("data", name, run, marker=marker)

    def idx(make: Callable[[Path], Any], **options: Any) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            folder = ctx.tmp / "mnist"
            make(folder)
            return load_dataset("idx", root=folder, split=options.pop("split", "train"), **options).inputs.shape

        return run

    def truncate(name: str, keep: int) -> Callable[[Path], Any]:
        def make(folder: Path) -> None:
            write_idx(folder)
            path = folder / name
            path.write_bytes(path.read_bytes()[:keep])

        return make

    def bad_magic(folder: Path) -> None:
        write_idx(folder)
        path = folder / "train-images-idx3-ubyte"
        path.write_bytes(b"\x12\x34" + path.read_bytes()[2:])

    def huge_header(folder: Path) -> None:
        write_idx(folder)
        header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 4_000_000_000, 8, 8)
        (folder / "train-images-idx3-ubyte").write_bytes(header + b"\0" * 64)

    def labels(values: np.ndarray) -> Callable[[Path], Any]:
        return lambda folder: write_idx(folder, labels=values)

    def cifar(make: Callable[[Context, Path], Any], split: str = "train") -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            folder = ctx.tmp / "cifar-10-batches-py"
            make(ctx, folder)
            return load_dataset("cifar10", root=ctx.tmp, split=split).inputs.shape

        return run

    def crafted(ctx: Context, folder: Path) -> None:
        write_cifar(folder, batch={b"data": _MakeDir(ctx.marker), b"labels": [0]})

    def crafted_test_only(ctx: Context, folder: Path) -> None:
        write_cifar(folder)
        (folder / "test_batch").write_bytes(pickle.dumps({b"data": _MakeDir(ctx.marker), b"labels": [0]}))

    def crafted_meta(ctx: Context, folder: Path) -> None:
        write_cifar(folder)
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": _MakeDir(ctx.marker)}))

    def missing_batch(ctx: Context, folder: Path) -> None:
        write_cifar(folder)
        (folder / "data_batch_3").unlink()

    def truncated_bin(ctx: Context, folder: Path) -> None:
        folder = folder.with_name("cifar-10-batches-bin")
        write_cifar(folder, binary=True)
        path = folder / "data_batch_1.bin"
        path.write_bytes(path.read_bytes()[:5000])

    def bin_root(ctx: Context) -> Any:
        folder = ctx.tmp / "cifar-10-batches-bin"
        write_cifar(folder, binary=True, label=57)
        return load_dataset("cifar10", root=folder, split="train").inputs.shape

    def gz_idx_garbage(folder: Path) -> None:
        write_idx(folder, gz=True)
        (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + os.urandom(100))

    def a_file(ctx: Context) -> Any:
        (ctx.tmp / "file").write_text("x")
        return load_dataset("idx", root=ctx.tmp / "file")

    stray = np.arange(100) % 10
    stray[17] = 200
    return [
        case("unknown data set", lambda ctx: load_dataset("mnist")),
        case("unknown split", lambda ctx: load_dataset("digits", split="validation")),
        case("unknown option", lambda ctx: load_dataset("digits", size=9)),
        case("mnist1d bad option", lambda ctx: load_dataset("mnist1d", num_samples=-5)),
        case("idx without a root", lambda ctx: load_dataset("idx")),
        case("idx missing folder", lambda ctx: load_dataset("idx", root=ctx.tmp / "nope")),
        case("idx root is a file", a_file),
        case("idx empty folder", idx(lambda folder: folder.mkdir())),
        case("idx missing labels", idx(lambda folder: write_idx(folder, skip=["train-labels-idx1-ubyte"]))),
        case(
            "idx missing test images",
            idx(lambda folder: write_idx(folder, skip=["t10k-images-idx3-ubyte"]), split="test"),
        ),
        case("idx truncated images", idx(truncate("train-images-idx3-ubyte", 500))),
        case("idx truncated header", idx(truncate("train-labels-idx1-ubyte", 5))),
        case("idx bad magic", idx(bad_magic)),
        case("idx header promising 14 TB", idx(huge_header)),
        case("idx garbage gzip", idx(gz_idx_garbage)),
        case("idx labels of 200", idx(labels(stray))),
        case("idx labels of 200, num_classes=10", idx(labels(stray), num_classes=10)),
        case("idx labels and images differ in count", idx(labels(np.arange(90) % 10))),
        case("idx test images of another size", idx(lambda folder: write_idx(folder, test_size=(9, 8)))),
        case("idx val_fraction 1.5", idx(write_idx, val_fraction=1.5)),
        case("cifar missing folder", lambda ctx: load_dataset("cifar10", root=ctx.tmp / "nope")),
        case("cifar empty folder", cifar(lambda ctx, folder: folder.mkdir())),
        case("cifar missing batch", cifar(missing_batch)),
        case("cifar crafted batch runs code", cifar(crafted), marker=True),
        case("cifar crafted test batch runs code", cifar(crafted_test_only, split="test"), marker=True),
        case("cifar crafted meta runs code", cifar(crafted_meta), marker=True),
        case("cifar batch is a list", cifar(lambda ctx, folder: write_cifar(folder, batch=[1, 2, 3]))),
        case(
            "cifar batch without labels",
            cifar(lambda ctx, folder: write_cifar(folder, batch={b"data": np.zeros((2, 3072), np.uint8)})),
        ),
        case(
            "cifar data of the wrong width",
            cifar(
                lambda ctx, folder: write_cifar(
                    folder, batch={b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
                )
            ),
        ),
        case(
            "cifar label 12",
            cifar(
                lambda ctx, folder: write_cifar(
                    folder, batch={b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}
                )
            ),
        ),
        case(
            "cifar batch of random bytes",
            cifar(lambda ctx, folder: [write_cifar(folder), (folder / "data_batch_1").write_bytes(os.urandom(3000))]),
        ),
        case("cifar truncated binary batch", cifar(truncated_bin)),
        case("cifar binary label 57", bin_root),
    ]


def study_cases() -> list[Case]:
    """Study files and stores."""
    from workbench.study import Store, load_study, run_study

    def case(name: str, run: Callable[[Context], Any]) -> Case:
        return Case("study", name, run)

    def text(body: str) -> Callable[[Context], Any]:
        return lambda ctx: load_study(ctx.study_file(body))

    def edited(old: str, new: str) -> Callable[[Context], Any]:
        assert old in TINY_STUDY, old
        return text(TINY_STUDY.replace(old, new))

    def added(extra: str) -> Callable[[Context], Any]:
        return text(TINY_STUDY + extra)

    def grid(ctx: Context) -> Any:
        from workbench.study import expand

        body = TINY_STUDY.replace("seeds = [0]", f"seeds = {list(range(60))}").replace(
            "budgets = [0.5]", f"budgets = {[round(0.01 * k, 2) for k in range(1, 100)]}"
        )
        return len(expand(load_study(ctx.study_file(body))))

    def store_bytes(data: bytes) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            (ctx.tmp / "store.sqlite").write_bytes(data)
            return Store(ctx.tmp / "store.sqlite").status()

        return run

    def foreign(ctx: Context) -> Any:
        path = ctx.tmp / "app.sqlite"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE users (id INTEGER, name TEXT)")
        db.commit()
        db.close()
        before = path.read_bytes()
        try:
            return Store(path).status()
        finally:
            if path.read_bytes() != before or len(list(ctx.tmp.iterdir())) != 1:
                print("Traceback: the foreign database was modified", file=sys.stderr)

    def wrong_columns(ctx: Context) -> Any:
        path = ctx.tmp / "runs.sqlite"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE runs (id INTEGER)")
        db.commit()
        db.close()
        return Store(path).status()

    def corrupt_cell(column: str) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            from workbench.cli import main

            study, store, run_hash = ctx.study_store()
            db = sqlite3.connect(store)
            db.execute(f"UPDATE runs SET {column} = ? WHERE hash = ?", ('{"accuracy": 0.9', run_hash))
            db.commit()
            db.close()
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(["study", "report", str(study), "--store", str(store), "--out", str(ctx.tmp / "r.html")])
            message = err.getvalue()
            if code == 0 and run_hash in message and "Traceback" not in message:
                return Handled(f"report named the damaged row: {_first_line(message)}")
            print(message, file=sys.stderr)
            return f"exit {code}: {_first_line(message)}"

        return run

    def rerun_corrupt(ctx: Context) -> Any:
        from workbench.cli import main

        study, store, run_hash = ctx.study_store()
        db = sqlite3.connect(store)
        db.execute("UPDATE runs SET metrics_json = ? WHERE hash = ?", ('{"accuracy": 0.9', run_hash))
        db.commit()
        db.close()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["study", "run", str(study), "--store", str(store), "--quiet"])
        message = err.getvalue()
        with Store(store, readonly=True) as db:
            fixed = any(row["hash"] == run_hash and row["status"] == "done" for row in db.rows()) and not db.damaged
        if code == 0 and fixed and run_hash in message and "Traceback" not in message:
            return Handled(f"named the damaged row and computed it again: {_first_line(message)}")
        print(message, file=sys.stderr)
        return f"exit {code}, row recomputed: {fixed}: {_first_line(message)}"

    def unlabelled(ctx: Context) -> Any:
        body = TINY_STUDY.replace('label = "tiny MLP"\n', "")
        body += (
            '\n[[models]]\nname = "mlp"\nargs = { widths = [64, 8, 10] }\ndata = "digits"\ntraining = { epochs = 2 }\n'
        )
        labels = [entry.display for entry in load_study(ctx.study_file(body)).models]
        if len(set(labels)) == len(labels):
            return Handled(f"distinct automatic labels: {labels}")
        return labels

    def truncated_store(ctx: Context) -> Any:
        _, store, _ = ctx.study_store()
        data = store.read_bytes()
        store.write_bytes(data[: len(data) // 3])
        with Store(store, readonly=True) as db:
            return db.rows()

    def run_in(ctx: Context, body: str) -> Any:
        """Run a study whose runs fail: failures stored with a WorkbenchError's message are handled; a raw
        exception's message is reported as one (the study file should have been refused, or the run checked)."""
        outcome = run_study(ctx.study_file(body), quiet=True)
        errors = list(outcome.errors.values())
        # a clean message names a workbench error, first or after its context ("its base model failed to train: ...")
        raw = [error for error in errors if not any(f"{name}: " in error for name in _workbench_errors())]
        if raw:
            raise StoredRawError(f"study run stored a raw error for {len(raw)} of {outcome.total} runs: {raw[0]}")
        if errors:
            return Handled(f"{outcome.failed} runs stored as failed with a clear message: {errors[0]}")
        return {"done": outcome.done, "failed": outcome.failed}

    return [
        case("missing file", lambda ctx: load_study(ctx.tmp / "missing.toml")),
        case("a folder", lambda ctx: load_study(ctx.tmp)),
        case("empty file", text("")),
        case("not TOML", text("this is [not toml\n= 3")),
        case("binary garbage", lambda ctx: load_study(_bytes_file(ctx.tmp / "g.toml"))),
        case("a JSON file", text('{"study": {"name": "x"}}')),
        case("unknown top-level key", added("\n[extras]\nx = 1\n")),
        case("unknown key in a model", edited('name = "mlp"', 'name = "mlp"\ncolour = "red"')),
        case("unknown key in [study]", edited('name = "tiny"', 'name = "tiny"\nparallel = true')),
        case("no models", text(TINY_STUDY.split("[[models]]")[0])),
        case("unknown selector", edited("magnitude = {}", "magnitud = {}")),
        case("unknown selector parameter", edited("magnitude = {}", 'magnitude = { criterion = "l7" }')),
        case("unknown model name", edited('name = "mlp"', 'name = "lenet6"')),
        case("unknown data set", edited('data = "digits"', 'data = "mnist"')),
        case("bad model arguments", edited("widths = [64, 8, 10]", 'widths = "wide"')),
        case("duplicate model labels", added('\n[[models]]\nlabel = "tiny MLP"\nname = "mlp"\ndata = "digits"\n')),
        case("budget 0", edited("budgets = [0.5]", "budgets = [0]")),
        case("budget 1.5", edited("budgets = [0.5]", "budgets = [1.5]")),
        case("budget 'x'", edited("budgets = [0.5]", 'budgets = ["x"]')),
        case("no budgets", edited("budgets = [0.5]", "budgets = []")),
        case("unknown fuse", edited("budgets = [0.5]", 'budgets = [0.5]\nfuse = ["melt"]')),
        case("unknown source", edited("budgets = [0.5]", 'budgets = [0.5]\nsource = "gradients"')),
        case("negative seed", edited("seeds = [0]", "seeds = [-1]")),
        case("duplicate seeds", edited("seeds = [0]", "seeds = [1, 1]")),
        case("seeds of strings", edited("seeds = [0]", 'seeds = ["a"]')),
        case("training epochs -1", edited("epochs = 1, max_batches = 2", "epochs = -1")),
        case("training lr 'fast'", edited("epochs = 1, max_batches = 2", 'epochs = 1, lr = "fast"')),
        case("unknown training key", edited("epochs = 1, max_batches = 2", "epochs = 1, speed = 3")),
        case("finetune method unknown", edited("[finetune]\nepochs = 0", '[finetune]\nmethod = "polish"')),
        case("unknown pipeline step", added('\n[pipelines]\nbad = [{ do = "prnue", rate = 0.5 }]\n')),
        case("pipeline step without do", added("\n[pipelines]\nbad = [{ rate = 0.5 }]\n")),
        case("pipeline step bad parameter", added('\n[pipelines]\nbad = [{ do = "prune", rate = 1.5 }]\n')),
        case("max_runs 0", edited('name = "tiny"', 'name = "tiny"\nmax_runs = 0')),
        case("grid over the size limit", grid),
        case("store: random bytes", store_bytes(os.urandom(4096))),
        case("store: a text file", store_bytes(b"hello\n" * 100)),
        case("store: SQLite header then garbage", store_bytes(b"SQLite format 3\x00" + os.urandom(4000))),
        case("store: a folder", lambda ctx: Store(ctx.tmp).status()),
        case("store: under a file", lambda ctx: Store(_bytes_file(ctx.tmp / "f") / "s.sqlite").status()),
        case("store: foreign SQLite", foreign),
        case("store: runs table of other columns", wrong_columns),
        case("store: truncated", truncated_store),
        case("store: missing, read-only", lambda ctx: Store(ctx.tmp / "none.sqlite", readonly=True).rows()),
        case("corrupt JSON metrics cell", corrupt_cell("metrics_json")),
        case("corrupt JSON config cell", corrupt_cell("config_json")),
        case("study run over a corrupt JSON cell", rerun_corrupt),
        case("unlabelled models differing in training", unlabelled),
        case(
            "run: model too wide for memory",
            lambda ctx: run_in(ctx, TINY_STUDY.replace("[64, 8, 10]", "[64, 1000000000, 10]")),
        ),
        case(
            "run: selector failing at fit",
            lambda ctx: run_in(ctx, TINY_STUDY.replace("magnitude = {}", 'dpp = { mode = "maximal" }')),
        ),
    ]


class StoredRawError(Exception):
    """A study run failed with an exception that is not a WorkbenchError (its message is what the store holds)."""


def _workbench_errors() -> set[str]:
    from workbench.errors import WorkbenchError

    names, todo = set(), [WorkbenchError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _bytes_file(path: Path) -> Path:
    path.write_bytes(b"\x00\xff\xfe" + os.urandom(200))
    return path


def all_cases() -> list[Case]:
    """Every case, in category order."""
    return [*cli_cases(), *checkpoint_cases(), *api_cases(), *data_cases(), *study_cases()]


# -------------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the fast cases")
    parser.add_argument("--only", help=f"comma-separated categories ({', '.join(CATEGORIES)})")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds before a case counts as a hang")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cases = all_cases()
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        cases = [case for case in cases if case.category in wanted]
    if args.quick:
        cases = [case for case in cases if case.quick]
    start = time.perf_counter()
    results = run_cases(cases, limit=args.limit)
    if args.json:
        payload = {
            "summary": summarize(results),
            "ran_code": [f"{r.category}/{r.name}" for r in results if r.status == "RAN CODE"],
            "seconds": round(time.perf_counter() - start, 1),
            "cases": [r.__dict__ for r in results],
        }
        print(json.dumps(payload, indent=2))
    else:
        print(format_report(results))
        print(f"\n{len(results)} cases in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
