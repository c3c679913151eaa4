"""A fresh hostile probe of the workbench: ~290 bad or unusual inputs a hostile new user would try, each classified.

Six categories: ``cli`` (flags and paths of ``workbench.cli.main``), ``checkpoints`` (damaged, crafted and odd
checkpoint files, saving odd models), ``data`` (IDX, CIFAR-10 and image-folder data sets), ``study-files``
(study TOML files given to ``load_study``), ``study-runs`` (study runs, stores, Dask, reports) and ``api``
(the Python API with models and data of a user's own). Every case runs in this process under a time limit and
a memory cap (the harness of ``analyses/probe_inputs.py``), with stdout and stderr captured, in its own folder
under a temporary folder deleted at the end, and gets one outcome:

- ``clean``: refused with a :class:`~workbench.errors.WorkbenchError` (the command line: an exit status other
  than 0 and a message of one paragraph, no Python traceback);
- ``correct``: accepted, and the result was checked to be right (a rebuilt model has the stated sizes, a
  stored row is what was asked, the input is left as it was);
- ``traceback``: a raw Python exception (or a printed traceback) reached the user, or the case hung;
- ``silent``: accepted although it should have been refused, or a warning-worthy input got no word;
- ``wrong``: a wrong result or number (a valid input refused counts here too);
- ``replaced``: something outside the output was modified or replaced (a device node, a file beside the
  output, a symlink's target, the input model's weights or mode).

Each case states what a good outcome is (``expect``: ``clean``, ``correct`` or ``any`` of the two); the cases that
failed when the probe was written are listed in :data:`KNOWN` with the outcome then and why, so that a fix shows
as a flip ("known failures that now pass") and a new failure is marked ``[NEW]``. The exit status is always 0: this
is a probe, not a test (``tests/test_probe_hostile.py`` runs a few of its cases).

Usage::

    python analyses/probe_hostile.py                      # every case: a table per category, then the failures
    python analyses/probe_hostile.py --category cli,data  # some categories
    python analyses/probe_hostile.py --list               # the cases, with what is expected of each
    python analyses/probe_hostile.py --json out.json      # the results as JSON too
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import importlib.util
import io
import json
import os
import pickle
import shutil
import sqlite3
import stat
import struct
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def _harness() -> Any:
    """The machinery of ``analyses/probe_inputs.py`` (time limit, memory cap, message helpers, file makers)."""
    name = "probe_inputs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("probe_inputs.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses resolve their annotations through sys.modules
        spec.loader.exec_module(module)
    return sys.modules[name]


H = _harness()
CaseTimeout = H.CaseTimeout
STATUSES = ("clean", "correct", "traceback", "silent", "wrong", "replaced")
GOOD = ("clean", "correct")
CATEGORIES = ("cli", "checkpoints", "data", "study-files", "study-runs", "api")
MEMORY_HEADROOM = 3 * 2**30  # bytes of address space a case may add before allocations fail
LONGEST_MESSAGE = 2000  # characters of a message that still reads as one paragraph


# ---------------------------------------------------------------------------------------------- machinery


@dataclass
class Verdict:
    """What a check concluded about an accepted input: one of :data:`STATUSES` and why."""

    status: str
    note: str


def ok(note: str) -> Verdict:
    return Verdict("correct", note)


def verdict(good: bool, good_note: str, bad_status: str, bad_note: str) -> Verdict:
    """``correct`` with ``good_note`` when ``good``, else ``bad_status`` with ``bad_note``."""
    return Verdict("correct", good_note) if good else Verdict(bad_status, bad_note)


@dataclass
class CliRun:
    """What ``workbench.cli.main`` did: its exit status and what it printed."""

    code: int
    out: str
    err: str


@dataclass
class Case:
    """One input: ``run(ctx)`` tries it (for ``cli`` cases it returns the argv of ``workbench.cli.main``);
    ``check(ctx, value)`` judges an accepted one (the value returned, or the :class:`CliRun`) and returns a
    :class:`Verdict`. ``expect`` is the good outcome; ``known`` the outcome at the time of writing and why, for
    a case that failed then (filled from :data:`KNOWN`)."""

    category: str
    name: str
    run: Callable[[Context], Any]
    expect: str = "clean"
    check: Callable[[Context, Any], Verdict] | None = None
    cli: bool = False
    known: str = ""
    limit: float = 60.0

    @property
    def key(self) -> str:
        return f"{self.category}/{self.name}"


@dataclass
class Result:
    category: str
    name: str
    status: str
    detail: str
    seconds: float
    expect: str
    known: str
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status not in GOOD


def _snapshot(path: Path) -> tuple[Any, ...]:
    """What ``path`` is now: missing, a link and its target text, a file's mode and digest, a folder's names, a
    device's number."""
    if not os.path.lexists(path):
        return ("missing",)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISREG(info.st_mode):
        return ("file", info.st_mode & 0o7777, hashlib.sha256(Path(path).read_bytes()).hexdigest())
    if stat.S_ISDIR(info.st_mode):
        return ("folder", tuple(sorted(os.listdir(path))))
    if stat.S_ISCHR(info.st_mode):
        return ("character device", info.st_rdev)
    return ("other", stat.S_IFMT(info.st_mode))


def _model_state(model: nn.Module) -> tuple[Any, ...]:
    """A model's modes and the bytes of its state (parameters and buffers), to see whether a call changed them."""
    modes = tuple(module.training for module in model.modules())
    tensors = tuple(
        (key, value.dtype, tuple(value.shape), None if value.is_meta else _raw_bytes(value))
        for key, value in model.state_dict().items()
    )
    return modes, tensors


def _raw_bytes(tensor: torch.Tensor) -> bytes:
    """The bytes of ``tensor``'s values, whatever its dtype (bfloat16 has no numpy twin)."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


class Context:
    """What a case may use: its own folder, watched paths and models, and fixtures built once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.shared = root / "shared"
        self.shared.mkdir(parents=True, exist_ok=True)
        self.tmp = root
        self.caught: list[warnings.WarningMessage] = []
        self._watched: list[tuple[Path, tuple[Any, ...]]] = []
        self._models: list[tuple[str, nn.Module, tuple[Any, ...]]] = []
        self._cleanups: list[Callable[[], None]] = []
        self._cache: dict[str, Any] = {}

    def enter(self, case: Case) -> None:
        slug = "".join(c if c.isalnum() else "_" for c in case.name)[:80]
        self.tmp = self.root / case.category / slug
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._watched, self._models, self._cleanups = [], [], []
        self.watch(Path(os.devnull))

    # -- what must not change ----------------------------------------------------------------------
    def watch(self, path: str | os.PathLike) -> Path:
        """``path``, remembered as it is now: a case that changes it is ``replaced``."""
        path = Path(path)
        self._watched.append((path, _snapshot(path)))
        return path

    def watch_model(self, model: nn.Module, what: str = "the input model") -> nn.Module:
        """``model``, remembered as it is now (modes and state): a case that changes it is ``replaced``."""
        self._models.append((what, model, _model_state(model)))
        return model

    def on_exit(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` after the case (undo a registration, stop a server)."""
        self._cleanups.append(cleanup)

    def changed(self) -> list[str]:
        found = []
        for path, before in self._watched:
            after = _snapshot(path)
            if after != before:
                found.append(
                    f"{path} was {before[0]}, now {after[0]}" + (" (changed)" if after[0] == before[0] else "")
                )
        for what, model, before in self._models:
            after = _model_state(model)
            if after[0] != before[0]:
                found.append(f"{what}'s train/eval mode changed")
            elif after[1] != before[1]:
                keys = [a[0] for a, b in zip(after[1], before[1]) if a != b] or ["its keys"]
                found.append(f"{what}'s state changed ({', '.join(keys[:3])})")
        return found

    def cleanup(self) -> None:
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        self._cleanups = []

    # -- helpers -----------------------------------------------------------------------------------
    def once(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        return path

    def folder(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def warned(self, *words: str) -> list[str]:
        """Messages of the warnings caught so far that contain every one of ``words`` (case-insensitive)."""
        texts = [str(w.message).replace(str(self.root), "") for w in self.caught]  # not the words of a path
        return [t for t in texts if all(word.lower() in t.lower() for word in words)]

    # -- fixtures ------------------------------------------------------------------------------------
    def mlp(self, widths: Sequence[int] = (64, 8, 10), seed: int = 0) -> nn.Module:
        from workbench.zoo import create_model

        return create_model("mlp", random_state=seed, widths=list(widths))

    def digits(self, split: str = "train") -> Any:
        from workbench.datasets import load_dataset

        return self.once(f"digits-{split}", lambda: load_dataset("digits", split=split))

    def ckpt(self, name: str = "m.pt") -> Path:
        """A copy, in the case's folder, of a checkpoint of the digits MLP 64-8-10 (metadata data = digits)."""

        def build() -> Path:
            from workbench.checkpoints import save_checkpoint

            return save_checkpoint(self.shared / "m.pt", self.mlp(), metadata={"data": "digits", "seed": 0})

        target = self.tmp / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.once("ckpt", build), target)
        return target

    def payload(self) -> dict[str, Any]:
        self.ckpt("payload-source.pt")
        return torch.load(self.shared / "m.pt", weights_only=True)

    def saved(self, payload: Any, name: str = "crafted.pt") -> Path:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return self.file(name, buffer.getvalue())

    def study(self, text: str | None = None, name: str = "study.toml") -> Path:
        return self.file(name, TINY if text is None else text)

    def stored(self) -> tuple[Path, Path]:
        """Copies, in the case's folder, of the tiny study and a store where all its runs are done."""

        def build() -> tuple[Path, Path]:
            from workbench.study import run_study

            study = self.shared / "tiny.toml"
            study.write_text(TINY)
            outcome = run_study(study, quiet=True)
            assert outcome.failed == 0, outcome.errors
            return study, outcome.store

        study, store = self.once("stored", build)
        shutil.copy(study, self.tmp / "tiny.toml")
        shutil.copy(store, self.tmp / "tiny.sqlite")
        return self.tmp / "tiny.toml", self.tmp / "tiny.sqlite"


def _message_problem(text: str) -> str | None:
    """Why a refusal's message is not one readable paragraph (None when it is)."""
    if "Traceback (most recent call last)" in text:
        return "the message holds a traceback"
    if not text.strip():
        return "no message"
    if len(text) > LONGEST_MESSAGE:
        return f"a message of {len(text)} characters"
    return None


def _first(text: str) -> str:
    return H._first_line(text)


def _cli(argv: Sequence[Any]) -> int:
    from workbench.cli import main

    try:
        return int(main([str(item) for item in argv]))
    except SystemExit as exc:  # argparse
        return exc.code if isinstance(exc.code, int) else 2


def run_case(case: Case, ctx: Context, limit: float | None = None, headroom: int = MEMORY_HEADROOM) -> Result:
    """Try one case and classify what happened."""
    from workbench.errors import WorkbenchError

    ctx.enter(case)
    np.random.seed(0)  # libraries that draw from the global generators give the same outcome on every run
    torch.manual_seed(0)
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    status, detail = "correct", ""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctx.caught = caught
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                with H._time_limit(min(limit or case.limit, case.limit)), H._memory_cap(headroom):
                    value = case.run(ctx)
                    if case.cli:
                        code = _cli(value)
                        value = CliRun(code, out.getvalue(), err.getvalue())
                    judged = None
                    if isinstance(value, Verdict):
                        judged = value
                    elif case.cli and value.code != 0:
                        judged = None
                    elif case.check is not None:
                        judged = case.check(ctx, value)
        except CaseTimeout as exc:
            status, detail = "traceback", f"hung: {exc}"
        except WorkbenchError as exc:
            problem = _message_problem(str(exc))
            if problem:
                status, detail = "traceback", f"{type(exc).__name__} with {problem}: {_first(str(exc))}"
            elif case.expect == "correct":
                status, detail = "wrong", f"refused a valid input: {type(exc).__name__}: {_first(str(exc))}"
            else:
                status, detail = "clean", f"{type(exc).__name__}: {_first(str(exc))}"
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - classifying is the point
            status, detail = "traceback", f"{type(exc).__name__}: {_first(str(exc))}{H._where(exc)}"
        else:
            if case.cli and value.code != 0:
                problem = _message_problem(value.err)
                said = _first(value.err.strip().splitlines()[-1]) if value.err.strip() else ""
                if problem:
                    status, detail = "traceback", f"exit {value.code} with {problem}: {said}"
                elif case.expect == "correct":
                    status, detail = "wrong", f"refused a valid command: exit {value.code}: {said}"
                else:
                    status, detail = "clean", f"exit {value.code}: {said}"
            elif judged is not None:
                status, detail = judged.status, judged.note
            elif case.expect == "clean":
                shown = (
                    f"exit 0: {_first(value.err) or _first(value.out)}"
                    if case.cli
                    else f"returned {_first(H._short(value))}"
                )
                status, detail = "silent", f"accepted: {shown}"
            else:
                status, detail = "correct", ("exit 0" if case.cli else f"returned {_first(H._short(value))}")
            printed = err.getvalue()
            if "Traceback (most recent call last)" in printed and status != "traceback":
                status, detail = "traceback", "printed a traceback: " + _first(printed.split("Traceback", 1)[1])
    try:
        changed = ctx.changed()
    finally:
        ctx.cleanup()
    if changed:
        status, detail = "replaced", "; ".join(changed) + (f" [{status}: {detail}]" if detail else "")
    detail = detail.replace(str(ctx.root), "<tmp>")
    seconds = time.perf_counter() - start
    notes = [_first(f"{w.category.__name__}: {w.message}") for w in caught]
    return Result(case.category, case.name, status, detail, round(seconds, 2), case.expect, case.known, notes)


def run_cases(
    cases: Sequence[Case], limit: float | None = None, headroom: int = MEMORY_HEADROOM, root: Path | None = None
) -> list[Result]:
    """Run ``cases`` in a temporary folder (deleted afterwards) and return their results in order."""
    import logging

    threads = torch.get_num_threads()
    folder = Path(tempfile.mkdtemp(prefix="workbench-hostile-", dir=root))
    cwd, environ = Path.cwd(), dict(os.environ)
    loggers = [logging.getLogger(name) for name in ("torch", "distributed")]
    levels = [log.level for log in loggers]
    for log in loggers:  # torch.export and Dask log to the terminal's stream, past the captured stderr
        log.setLevel(logging.CRITICAL)
    try:
        os.chdir(folder)  # default outputs and fallback copies land in the temporary folder
        os.environ["HOME"] = str(folder / "home")  # so does anything written under ~
        ctx = Context(folder)
        return [run_case(case, ctx, limit, headroom) for case in cases]
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
        shutil.rmtree(folder, ignore_errors=True)


def summarize(results: Sequence[Result]) -> dict[str, dict[str, int]]:
    """Category -> counts of each outcome (and ``cases``), plus a ``total`` row."""
    table: dict[str, dict[str, int]] = {}
    for category in [*dict.fromkeys(r.category for r in results), "total"]:
        rows = [r for r in results if category in (r.category, "total")]
        counts = Counter(r.status for r in rows)
        table[category] = {"cases": len(rows), **{status: counts.get(status, 0) for status in STATUSES}}
    return table


HEADINGS = {
    "cases": "cases",
    "clean": "clean error",
    "correct": "correct",
    "traceback": "raw traceback",
    "silent": "accepted silently",
    "wrong": "wrong result",
    "replaced": "replaced",
}


def format_report(results: Sequence[Result]) -> str:
    table = summarize(results)
    widths = {key: max(len(text), 5) + 2 for key, text in HEADINGS.items()}
    header = f"{'category':<13}" + "".join(f"{HEADINGS[key]:>{widths[key]}}" for key in HEADINGS)
    lines = [header, "-" * len(header)]
    for category, counts in table.items():
        lines.append(f"{category:<13}" + "".join(f"{counts[key]:>{widths[key]}}" for key in HEADINGS))
    bad = [r for r in results if r.failed]
    if bad:
        lines += ["", f"failing cases ({len(bad)}):"]
        for r in bad:
            flag = "" if r.known.split(":")[0].strip() == r.status else "  [NEW]" if not r.known else "  [changed]"
            lines.append(f"  {r.category:<11} {r.status:<9} {r.name}: {r.detail}{flag}")
    flipped = [r for r in results if r.known and not r.failed]
    if flipped:
        lines += ["", "known failures that now pass:"]
        lines += [f"  {r.category:<11} {r.status:<9} {r.name} (was {r.known})" for r in flipped]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ fixtures

TINY = """
[study]
name = "hostile"
seeds = [0]
latency = false

[[models]]
label = "mlp 64-8-10"
name = "mlp"
args = { widths = [64, 8, 10] }
data = "digits"
training = { epochs = 1, max_batches = 3 }

[selectors]
magnitude = {}

[compression]
budgets = [0.5]

[finetune]
epochs = 0
"""

MLP = ["--model", "mlp", "--widths", "[64,8,10]"]
PROFILE = ["profile", *MLP, "--no-latency", "--quiet"]
TRAIN = ["train", *MLP, "--data", "digits", "--epochs", "1", "--quiet"]
MLP_PARAMS = 64 * 8 + 8 + 8 * 10 + 10  # 610
MLP_MACS = 64 * 8 + 8 * 10  # 592


def edited(old: str, new: str, text: str = TINY) -> str:
    """``text`` with ``old`` (which must occur) replaced by ``new``."""
    assert old in text, old
    return text.replace(old, new)


def _json_out(run: CliRun) -> Any:
    return json.loads(run.out)


def _widths(model: nn.Module) -> list[int]:
    """In and out sizes of a model's Linear layers: ``[64, 8, 10]`` for the MLP 64-8-10."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [linears[0].in_features, *(m.out_features for m in linears)] if linears else []


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _loaded(path: Path) -> nn.Module:
    from workbench.checkpoints import load_checkpoint

    return load_checkpoint(path)[0]


def _home(name: str) -> Path:
    """``name`` in the home folder (the probe points HOME into its temporary folder)."""
    home = Path.home()
    home.mkdir(parents=True, exist_ok=True)
    return home / name


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _symlink(link: Path, target: Path | str) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return link


# ---------------------------------------------------------------------------------------------- cli cases


def cli_cases() -> list[Case]:
    """Flags and paths of the ``workbench`` command, run in this process through ``workbench.cli.main``."""

    def case(name: str, argv: Callable[[Context], list[Any]] | list[Any], **kw: Any) -> Case:
        run = argv if callable(argv) else (lambda ctx, argv=argv: argv)
        return Case("cli", name, run, cli=True, **kw)

    def sizes(params: int = MLP_PARAMS, macs: int = MLP_MACS) -> Callable[[Context, CliRun], Verdict]:
        def check(ctx: Context, run: CliRun) -> Verdict:
            row = _json_out(run)
            got = (row.get("params"), row.get("macs"))
            return verdict(
                got == (params, macs), f"params {got[0]}, MACs {got[1]}", "wrong", f"{got}, expected {(params, macs)}"
            )

        return check

    def compress(*rest: Any) -> Callable[[Context], list[Any]]:
        return lambda ctx: ["compress", ctx.ckpt(), "--quiet", "--out", ctx.tmp / "small.pt", *rest]

    def compressed(expect_widths: list[int]) -> Callable[[Context, CliRun], Verdict]:
        def check(ctx: Context, run: CliRun) -> Verdict:
            got = _widths(_loaded(ctx.tmp / "small.pt"))
            return verdict(got == expect_widths, f"widths {got}", "wrong", f"widths {got}, expected {expect_widths}")

        return check

    def trained_at(path: Callable[[Context], Path]) -> Callable[[Context, CliRun], Verdict]:
        def check(ctx: Context, run: CliRun) -> Verdict:
            got = _widths(_loaded(path(ctx)))
            return verdict(got == [64, 8, 10], f"saved the 64-8-10 model at {path(ctx).name}", "wrong", f"{got}")

        return check

    def dev_null_link(ctx: Context) -> Path:
        return _symlink(ctx.tmp / "null.pt", os.devnull)

    def outside_link(ctx: Context) -> Path:
        target = ctx.watch(ctx.file("elsewhere/precious.pt", b"the user's own file\n"))
        return _symlink(ctx.tmp / "out.pt", target)

    def read_only(ctx: Context) -> Path:
        path = ctx.file("protected.pt", b"a file the user made read-only\n")
        path.chmod(0o444)
        return ctx.watch(path)

    def diverging(ctx: Context, run: CliRun) -> Verdict:
        model = _loaded(ctx.tmp / "lr.pt")
        finite = all(torch.isfinite(p).all() for p in model.parameters())
        said = [line for line in run.err.splitlines() if "warning" in line.lower() or "nan" in line.lower()]
        if said:
            return ok(f"warned: {_first(said[0])}")
        return Verdict(
            "silent", f"trained at lr 1e30 (weights {'finite' if finite else 'not finite'}), exit 0, no word"
        )

    def module_folder(ctx: Context) -> Path:
        folder = ctx.folder("exported")
        ctx.watch(ctx.file("exported/notes.txt", "my notes\n"))
        return folder

    def pt2_matches(ctx: Context, run: CliRun) -> Verdict:
        program = torch.export.load(str(ctx.tmp / "m.pt2")).module()
        model = _loaded(ctx.tmp / "m.pt")
        x = torch.randn(1, 64)
        same = torch.allclose(program(x), model(x), atol=1e-5)
        return verdict(same, "the .pt2 program computes what the checkpoint does", "wrong", "outputs differ")

    def twice_module(ctx: Context) -> list[Any]:
        path = ctx.ckpt()
        assert _cli(["export", path, "--format", "module", "--out", ctx.tmp / "mod", "--quiet"]) == 0
        return ["export", path, "--format", "module", "--out", ctx.tmp / "mod", "--quiet"]

    def module_loads(ctx: Context, run: CliRun) -> Verdict:
        names = sorted(p.name for p in (ctx.tmp / "mod").iterdir() if p.name != "__pycache__")
        return verdict(names == ["module.py", "state_dict.pt"], f"folder holds {names}", "wrong", f"{names}")

    def onnx_opset(ctx: Context, run: CliRun) -> Verdict:
        import onnx

        found = [entry.version for entry in onnx.load(str(ctx.tmp / "m.onnx")).opset_import if entry.domain == ""]
        return verdict(found == [1], "opset 1", "wrong", f"asked for opset 1, the file written has opset {found}")

    def jobs_and_cluster(ctx: Context) -> Verdict:
        # the store is a folder, so the run stops before any cluster starts: which problem is named first tells
        # whether the two back-ends asked for at once were refused
        argv = ["study", "run", ctx.study(), "--jobs", "2", "--local-cluster", "1", "--store", ctx.folder("store")]
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = _cli(argv)
        said = _first(err.getvalue().replace(str(ctx.tmp), "<here>"))
        if code != 0 and "store" not in said:
            return Verdict("clean", f"exit {code}: {said}")
        return Verdict("silent", f"--jobs 2 and --local-cluster 1 not refused; the run went on to: {said}")

    def both_sources(ctx: Context) -> list[Any]:
        return ["profile", "--checkpoint", ctx.ckpt(), "--model", "lenet300", "--no-latency", "--quiet"]

    return [
        case("profile --json gives the sizes asked", [*PROFILE, "--json"], expect="correct", check=sizes()),
        case(
            "profile --widths=[...] form and --batch-size 3",
            ["profile", "--model", "mlp", "--widths=[64,8,10]", "--batch-size", "3", "--no-latency", "--json"],
            expect="correct",
            check=sizes(macs=3 * MLP_MACS),  # documented: the multiply-adds of the whole batch
        ),
        case(
            "profile widths holding a bool", ["profile", "--model", "mlp", "--widths", "[64,true,10]", "--no-latency"]
        ),
        case("profile --checkpoint and --model together", both_sources),
        case("profile --model '' (empty)", ["profile", "--model", "", "--no-latency"]),
        case("profile --widths= (empty value)", ["profile", "--model", "mlp", "--widths=", "--no-latency"]),
        case("profile --random-state 3 (set by the command)", [*PROFILE, "--random-state", "3"]),
        case(
            "profile a checkpoint through a symlink",
            lambda ctx: [
                "profile",
                "--checkpoint",
                _symlink(ctx.tmp / "link.pt", ctx.ckpt()),
                "--no-latency",
                "--json",
            ],
            expect="correct",
            check=sizes(),
        ),
        case(
            "profile a checkpoint named with spaces and unicode",
            lambda ctx: ["profile", "--checkpoint", ctx.ckpt("my models/résumé 🙂 v1.pt"), "--no-latency", "--json"],
            expect="correct",
            check=sizes(),
        ),
        case("profile --checkpoint /dev/null", ["profile", "--checkpoint", os.devnull, "--no-latency"]),
        case(
            "profile --checkpoint a named pipe",
            lambda ctx: ["profile", "--checkpoint", _fifo(ctx.tmp / "pipe.pt"), "--no-latency"],
            limit=15,
        ),
        case("train --out /dev/null", [*TRAIN, "--out", os.devnull]),
        case("train --out a symlink to /dev/null", lambda ctx: [*TRAIN, "--out", dev_null_link(ctx)]),
        case(
            "train --out a symlink to a file elsewhere",
            lambda ctx: [*TRAIN, "--out", outside_link(ctx)],
            expect="correct",
            check=trained_at(lambda ctx: ctx.tmp / "out.pt"),
        ),
        case("train --out a write-protected file", lambda ctx: [*TRAIN, "--out", read_only(ctx)]),
        case("train --out a 300-character file name", lambda ctx: [*TRAIN, "--out", ctx.tmp / ("m" * 300 + ".pt")]),
        case(
            "train --out in folders that do not exist yet",
            lambda ctx: [*TRAIN, "--out", ctx.tmp / "new" / "deeper" / "m.pt"],
            expect="correct",
            check=trained_at(lambda ctx: ctx.tmp / "new" / "deeper" / "m.pt"),
        ),
        case("train --seed -1", [*TRAIN, "--seed", "-1"]),
        case(
            "train --lr 1e30 (training diverges)",
            lambda ctx: [*TRAIN, "--lr", "1e30", "--out", ctx.tmp / "lr.pt"],
            expect="any",
            check=diverging,
        ),
        case("train --dropout 1.5", [*TRAIN, "--dropout", "1.5"]),
        case("compress --keep and --macs together", compress("--keep", "0.5", "--macs", "0.5")),
        case("compress --round-to 0", compress("--round-to", "0")),
        case(
            "compress --merge-threshold 2 with neuron-merging",
            compress("--fuse", "neuron-merging", "--merge-threshold", "2"),
        ),
        case("compress --merge-threshold 0.5 with --fuse drop", compress("--merge-threshold", "0.5")),
        case(
            "compress --repair batches with --fuse lsq",
            compress("--repair", "batches", "--fuse", "lsq"),
            expect="correct",
            check=compressed([64, 4, 10]),
        ),
        case(
            "compress --keep 1 keeps every unit",
            compress("--keep", "1"),
            expect="correct",
            check=compressed([64, 8, 10]),
        ),
        case(
            "compress --keep 1e-9 keeps one unit",
            compress("--keep", "1e-9"),
            expect="correct",
            check=compressed([64, 1, 10]),
        ),
        case("compress --macs -0.5", compress("--macs", "-0.5")),
        case("compress --latency 0.5 --latency-batch 0", compress("--latency", "0.5", "--latency-batch", "0")),
        case("compress --seed -3", compress("--seed", "-3")),
        case("compress --budget 3 (set by the command)", compress("--budget", "3")),
        case("compress --finetune 1 on a checkpoint recording data 'digits '", lambda ctx: _odd_data(ctx, "digits ")),
        case("export --out /dev/null", lambda ctx: ["export", ctx.ckpt(), "--out", os.devnull, "--quiet"]),
        case(
            "export --format module --out an existing file",
            lambda ctx: [
                "export",
                ctx.ckpt(),
                "--format",
                "module",
                "--out",
                ctx.watch(ctx.file("f.txt", "x")),
                "--quiet",
            ],
        ),
        case(
            "export --format module --out a folder with the user's files",
            lambda ctx: ["export", ctx.ckpt(), "--format", "module", "--out", module_folder(ctx), "--quiet"],
        ),
        case(
            "export --opset 1 --format onnx",
            lambda ctx: [
                "export",
                ctx.ckpt(),
                "--format",
                "onnx",
                "--opset",
                "1",
                "--out",
                ctx.tmp / "m.onnx",
                "--quiet",
            ],
            check=onnx_opset,
        ),
        case(
            "export pt2 beside the checkpoint computes the same",
            lambda ctx: ["export", ctx.ckpt(), "--quiet"],
            expect="correct",
            check=pt2_matches,
        ),
        case("export --format module twice into one folder", twice_module, expect="correct", check=module_loads),
        case("demo --out /dev/null", ["demo", "--quick", "--quiet", "--out", os.devnull]),
        case(
            "study run --timeout -1 with a scheduler",
            lambda ctx: ["study", "run", ctx.study(), "--scheduler", "tcp://127.0.0.1:1", "--timeout", "-1", "--quiet"],
        ),
        case(
            "study run --timeout nan with a scheduler",
            lambda ctx: [
                "study",
                "run",
                ctx.study(),
                "--scheduler",
                "tcp://127.0.0.1:1",
                "--timeout",
                "nan",
                "--quiet",
            ],
        ),
        Case("cli", "study run --jobs 2 with --local-cluster 1", jobs_and_cluster),
        case(
            "study compare --reference nosuch/drop",
            lambda ctx: ["study", "compare", ctx.stored()[0], "--store", ctx.stored()[1], "--reference", "nosuch/drop"],
        ),
    ]


def _odd_data(ctx: Context, data: Any) -> list[Any]:
    """``compress`` of a checkpoint whose metadata records ``data`` as its data set."""
    from workbench.checkpoints import save_checkpoint

    path = save_checkpoint(ctx.tmp / "odd.pt", ctx.mlp(), metadata={"data": data})
    return ["compress", path, "--quiet", "--finetune", "1", "--out", ctx.tmp / "small.pt"]


# -------------------------------------------------------------------------------------- checkpoint cases


class TiedNet(nn.Module):
    """A user's network whose last layer shares its weight with a layer of the same shape (tied layers)."""

    input_shape = (16,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)
        self.b.weight = self.a.weight
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.b(torch.relu(self.a(x)))))


class KeywordNet(nn.Module):
    """A user's network whose forward takes keyword arguments with defaults."""

    input_shape = (16,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 12)
        self.head = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor, *, scale: float = 1.0, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.a(x)) * scale
        if mask is not None:
            h = h * mask
        return self.head(h)


class PlainNet(nn.Module):
    """A user's plain network (no input_shape attribute)."""

    def __init__(self, hidden: int = 12) -> None:
        super().__init__()
        self.a = nn.Linear(16, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(hidden, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.relu(self.bn(self.a(x)))))


def _same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    a.eval(), b.eval()
    with torch.no_grad():
        return torch.allclose(a(x).float(), b(x).float(), atol=1e-5, equal_nan=True)


def checkpoint_cases() -> list[Case]:
    """Damaged, crafted and odd checkpoint files (``load_checkpoint``), and odd models saved (``save_checkpoint``)."""
    from workbench.checkpoints import load_checkpoint, save_checkpoint

    def case(name: str, run: Callable[[Context], Any], **kw: Any) -> Case:
        return Case("checkpoints", name, run, **kw)

    def load(make: Callable[[Context], Path], **kwargs: Any) -> Callable[[Context], Any]:
        return lambda ctx: load_checkpoint(make(ctx), **kwargs)

    def changed(**changes: Any) -> Callable[[Context], Path]:
        def make(ctx: Context) -> Path:
            payload = ctx.payload()
            for key, value in changes.items():
                payload[key] = value(payload) if callable(value) else value
            return ctx.saved(payload)

        return make

    def spec_edits(*edits: dict[str, Any]) -> Callable[[Context], Path]:
        """The checkpoint with ``edits`` as its edit history (its weights those of the unedited MLP)."""

        def edit(payload: dict[str, Any]) -> str:
            spec = json.loads(payload["spec"])
            spec["edits"] = list(edits)
            return json.dumps(spec)

        return changed(spec=edit)

    def spec_with(**extra: Any) -> Callable[[Context], Path]:
        def edit(payload: dict[str, Any]) -> str:
            return json.dumps({**json.loads(payload["spec"]), **extra})

        return changed(spec=edit)

    def weights(edit: Callable[[torch.Tensor], Any], key: str = "layers.1.weight") -> Callable[[Context], Path]:
        def make(payload: dict[str, Any]) -> dict[str, Any]:
            state = dict(payload["state_dict"])
            state[key] = edit(state[key])
            return state

        return changed(state_dict=make)

    def plan_edit(selection: dict[str, Any] | None = None, group: str = "layers.1", **fields: Any) -> dict[str, Any]:
        chosen = {
            "group": group,
            "n_units": 8,
            "keep": [0, 1, 2, 3, 4, 5, 6, 7],
            "assign": list(range(8)),
            "scores": [1.0] * 8,
            "method": "magnitude",
            "params": {},
            "info": {},
            **(selection or {}),
        }
        plan = {"format": "workbench-plan", "meta": {}, "selections": {group: chosen}}
        return {"op": "plan", "fuse": "drop", "input": {"dtype": "float32", "shape": [64]}, "plan": plan, **fields}

    def nested(depth: int) -> str:
        return '{"a": ' * depth + "1" + "}" * depth

    def equal_weights(ctx: Context, loaded: tuple[nn.Module, dict[str, Any]]) -> Verdict:
        original = ctx.mlp().state_dict()
        got = loaded[0].state_dict()
        same = all(torch.equal(got[k].float(), original[k].float()) for k in original)
        dtypes = sorted({str(v.dtype) for v in got.values()})
        return verdict(
            same, f"weights equal, as {dtypes}", "wrong", f"loaded weights differ from those saved ({dtypes})"
        )

    def nan_warned(ctx: Context, loaded: Any) -> Verdict:
        said = ctx.warned("nan") or ctx.warned("finite")
        if said:
            return ok(f"warned: {_first(said[0])}")
        return Verdict("silent", "a checkpoint whose weights hold NaN loaded without a word")

    def garbage_weights(ctx: Context, loaded: tuple[nn.Module, dict[str, Any]]) -> Verdict:
        original = ctx.mlp().state_dict()
        same = all(torch.equal(value, original[key]) for key, value in loaded[0].state_dict().items())
        if same:
            return Verdict("silent", "a damaged archive loaded (its weights happen to be intact), no word")
        return Verdict(
            "wrong", "a storage record cut short loaded without a word, its weights read past the record (garbage)"
        )

    def legacy(ctx: Context) -> Path:
        path = ctx.tmp / "legacy.pt"
        torch.save(ctx.payload(), path, _use_new_zipfile_serialization=False)
        return path

    def gzipped(ctx: Context) -> Path:
        return ctx.file("m.pt.gz", gzip.compress(ctx.ckpt().read_bytes()))

    def plain_zip(ctx: Context) -> Path:
        import zipfile

        path = ctx.tmp / "notes.pt"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes/readme.txt", "not a torch file")
        return path

    def sparse_file(size: int) -> Callable[[Context], Path]:
        def make(ctx: Context) -> Path:
            path = ctx.tmp / "huge.pt"
            with open(path, "wb") as handle:
                handle.truncate(size)
            return path

        return make

    def torn_storage(ctx: Context) -> Path:
        import zipfile

        source = ctx.ckpt()
        path = ctx.tmp / "torn.pt"
        with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w") as new:
            for item in old.infolist():
                data = old.read(item.filename)
                if "/data/" in item.filename and len(data) > 64:
                    data = data[: len(data) // 2]  # a storage record cut short
                new.writestr(item, data)
        return path

    def user_roundtrip(make: Callable[[], nn.Module], check_tie: bool = False) -> Callable[[Context], Verdict]:
        def run(ctx: Context) -> Verdict:
            model = make()
            path = save_checkpoint(ctx.tmp / "user.pt", model)
            loaded, _ = load_checkpoint(path, base=make)
            x = torch.randn(4, 16)
            if not _same_outputs(model, loaded, x):
                return Verdict("wrong", "the loaded model computes something else")
            if check_tie and loaded.b.weight is not loaded.a.weight:
                return Verdict("wrong", "the tied layers are no longer tied after loading")
            return ok("loaded on base=, same outputs" + (", ties kept" if check_tie else ""))

        return run

    def saved_then_loaded(model: Callable[[Context], nn.Module], what: str) -> Callable[[Context], Verdict]:
        def run(ctx: Context) -> Verdict:
            original = model(ctx)
            path = save_checkpoint(ctx.tmp / "saved.pt", original)
            loaded, _ = load_checkpoint(path)
            x = torch.randn(3, 64, dtype=next(original.parameters()).dtype)
            return verdict(
                _same_outputs(original, loaded, x),
                f"{what}: loaded back with the same outputs",
                "wrong",
                f"{what}: outputs differ",
            )

        return run

    def half(ctx: Context) -> Verdict:
        model = ctx.mlp().half()
        loaded, _ = load_checkpoint(save_checkpoint(ctx.tmp / "half.pt", model))
        dtype = next(loaded.parameters()).dtype
        if dtype == torch.float16:
            return ok("a float16 model comes back in float16")
        said = ctx.warned("float16") or ctx.warned("dtype")
        if said:
            return ok(f"comes back as {dtype}, and said so: {_first(said[0])}")
        return Verdict("silent", f"a float16 model saved comes back as {dtype}, without a word")

    def train_mode(ctx: Context) -> Verdict:
        model = ctx.mlp().train()
        loaded, _ = load_checkpoint(save_checkpoint(ctx.tmp / "t.pt", model))
        return verdict(not loaded.training, "loaded in eval mode, as documented", "wrong", "loaded in train mode")

    def meta_model(ctx: Context) -> Any:
        with torch.device("meta"):
            model = ctx.mlp()
        return save_checkpoint(ctx.tmp / "meta.pt", model)

    def swapped_layer(ctx: Context) -> Verdict:
        model = ctx.mlp()
        model.layers[1] = nn.Linear(64, 4)  # the user edits the zoo model by hand
        model.layers[3] = nn.Linear(4, 10)
        path = save_checkpoint(ctx.tmp / "hand.pt", model)
        try:
            loaded, _ = load_checkpoint(path)
        except Exception as exc:  # noqa: BLE001
            return Verdict(
                "silent", f"saved a checkpoint that cannot be loaded back: {type(exc).__name__}: {_first(str(exc))}"
            )
        return verdict(_widths(loaded) == [64, 4, 10], "loaded back as edited", "wrong", f"loaded as {_widths(loaded)}")

    def compressed_twice(ctx: Context) -> Verdict:
        from workbench.compression import compress

        once = compress(ctx.mlp((64, 16, 10)), keep=0.5, latency=False).model
        twice = compress(once, keep=0.5, latency=False).model
        loaded = _loaded(save_checkpoint(ctx.tmp / "twice.pt", twice))
        x = torch.randn(2, 64)
        good = _widths(loaded) == [64, 4, 10] and _same_outputs(twice, loaded, x)
        return verdict(good, "two plan edits replayed: 64-4-10, same outputs", "wrong", f"loaded {_widths(loaded)}")

    def pruned_shared(ctx: Context) -> nn.Module:
        from workbench.quantize import share_weights
        from workbench.sparse import prune

        return share_weights(prune(ctx.mlp(), rate=0.5), bits=3)

    def weight_norm(ctx: Context) -> Any:
        model = ctx.mlp()
        torch.nn.utils.parametrizations.weight_norm(model.layers[1])
        return save_checkpoint(ctx.tmp / "wn.pt", model)

    def os_system_spec(ctx: Context) -> Any:
        marker = ctx.tmp / "ran"
        path = changed(spec=json.dumps({"user": "os:system", "kwargs": {"command": f"touch {marker}"}}))(ctx)
        try:
            return load_checkpoint(path)
        finally:
            if marker.exists():
                raise AssertionError("loading the checkpoint ran a shell command")  # noqa: B012

    def base(value: Any) -> Callable[[Context], Any]:
        return lambda ctx: load_checkpoint(save_checkpoint(ctx.tmp / "user.pt", TiedNet()), base=value)

    return [
        case("version 0", load(changed(version=0))),
        case(
            "weights holding NaN",
            load(weights(lambda w: torch.full_like(w, float("nan")))),
            expect="correct",
            check=nan_warned,
        ),
        case("weights in float64", load(weights(lambda w: w.double())), expect="correct", check=equal_weights),
        case(
            "weights stored transposed (non-contiguous)",
            load(weights(lambda w: w.t().contiguous().t())),
            expect="correct",
            check=equal_weights,
        ),
        case("weights as int64 tensors", load(weights(lambda w: (w * 100).long()))),
        case("weights complex64", load(weights(lambda w: w.to(torch.complex64)))),
        case("a weight on the meta device", load(weights(lambda w: torch.empty_like(w, device="meta")))),
        case("a weight as a sparse tensor", load(weights(lambda w: w.to_sparse())), expect="any", check=equal_weights),
        case("metadata nested 10000 deep", load(changed(metadata=nested(10000)))),
        case("spec naming os:system as the user's class", os_system_spec),
        case("load with base= a model of another class", base(PlainNet())),
        case("load with base= a function that raises", base(lambda: 1 / 0)),
        case("load_checkpoint(None)", lambda ctx: load_checkpoint(None)),
        case("a checkpoint in the legacy (non-zip) torch format", load(legacy), expect="correct", check=equal_weights),
        case("a gzipped checkpoint", load(gzipped)),
        case("a zip archive that is not a torch file", load(plain_zip)),
        case("a sparse 32 GiB file", load(sparse_file(32 * 2**30))),
        case("a torch archive with a storage record cut short", load(torn_storage), check=garbage_weights),
        case("plan edit keeping unit 99 of 8", load(spec_edits(plan_edit({"keep": [0, 99]})))),
        case(
            "plan edit whose group has 16 units, not 8",
            load(spec_edits(plan_edit({"n_units": 16, "assign": list(range(8)) + [0] * 8, "scores": [1.0] * 16}))),
        ),
        case("plan edit naming a group the model lacks", load(spec_edits(plan_edit(group="layers.7")))),
        case(
            "plan edit with an input of 10**9 values",
            load(spec_edits(plan_edit(input={"dtype": "float32", "shape": [10**9]}))),
        ),
        case(
            "plan edit with an input of dtype 'nosuch'",
            load(spec_edits(plan_edit(input={"dtype": "nosuch", "shape": [64]}))),
        ),
        case("plan edit with fuse 'melt'", load(spec_edits(plan_edit(fuse="melt")))),
        case(
            "factorize edit with rank 0",
            load(spec_edits({"op": "factorize", "method": "svd", "ranks": {"layers.1": 0}})),
        ),
        case(
            "factorize edit with rank 10**9",
            load(spec_edits({"op": "factorize", "method": "svd", "ranks": {"layers.1": 10**9}})),
        ),
        case("an edit of an unknown op", load(spec_edits({"op": "frobnicate", "layers": ["layers.1"]}))),
        case(
            "a mask parametrization of the wrong shape",
            load(
                spec_with(
                    parametrizations=[
                        {
                            "layer": "layers.1",
                            "tensor": "weight",
                            "shape": [3, 3],
                            "chain": [{"type": "mask", "config": {}}],
                        }
                    ]
                )
            ),
        ),
        case(
            "a parametrization of a tensor the layer lacks",
            load(
                spec_with(
                    parametrizations=[
                        {
                            "layer": "layers.1",
                            "tensor": "gamma",
                            "shape": [8, 64],
                            "chain": [{"type": "mask", "config": {}}],
                        }
                    ]
                )
            ),
        ),
        case("save to /dev/null", lambda ctx: save_checkpoint(os.devnull, ctx.mlp())),
        case(
            "save to a symlink to a file elsewhere",
            lambda ctx: save_checkpoint(
                _symlink(ctx.tmp / "link.pt", ctx.watch(ctx.file("elsewhere/precious.pt", b"mine"))), ctx.mlp()
            ),
            expect="correct",
            check=lambda ctx, path: verdict(
                _widths(_loaded(path)) == [64, 8, 10],
                "written at the link's path, its target intact",
                "wrong",
                "not loadable",
            ),
        ),
        case("save a model on the meta device", meta_model),
        case("save a float16 model", half, expect="correct"),
        case(
            "save with a 300-character file name", lambda ctx: save_checkpoint(ctx.tmp / ("m" * 300 + ".pt"), ctx.mlp())
        ),
        case("save a model with weight_norm", weight_norm, expect="any"),
        case(  # refused at save time, naming the user-spec route, or saved so that it loads back as edited
            "save a zoo model whose layers the user replaced", swapped_layer, expect="any"
        ),
        case("save a model compressed twice", compressed_twice, expect="correct"),
        case(
            "save a pruned, weight-shared model", saved_then_loaded(pruned_shared, "pruned + shared"), expect="correct"
        ),
        case("save a user model, load with base=", user_roundtrip(KeywordNet), expect="correct"),
        case(
            "save a user model with tied layers, load with base=",
            user_roundtrip(TiedNet, check_tie=True),
            expect="correct",
        ),
        Case("checkpoints", "compress a checkpoint recording data 42", lambda ctx: _odd_data(ctx, 42), cli=True),
        Case(
            "checkpoints",
            "compress a checkpoint recording data ['digits']",
            lambda ctx: _odd_data(ctx, ["digits"]),
            cli=True,
        ),
    ]


# -------------------------------------------------------------------------------------------- data cases


def _png(path: Path, array: np.ndarray | None = None, mode: str | None = None, **save: Any) -> Path:
    """An image file of ``array`` (default a seeded 8 x 8 RGB image) written with Pillow."""
    from PIL import Image

    if array is None:
        array = np.random.default_rng(len(str(path))).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save)
    return path


def _image_folder(root: Path, counts: dict[str, int], size: int = 8) -> Path:
    """``root/<class>/<k>.png`` with ``counts[class]`` images of ``size`` x ``size`` pixels each."""
    for name, count in counts.items():
        for k in range(count):
            rng = np.random.default_rng(hash((name, k)) % 2**32)
            _png(root / name / f"{k}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return root


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels, followed by a tiny (short) image stream."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


class Splits(dict):
    """The splits of one image folder, loaded: split name -> data set."""

    @property
    def total(self) -> int:
        return sum(len(data) for data in self.values())

    @property
    def class_names(self) -> list[str]:
        return next(iter(self.values())).class_names

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(next(iter(self.values())).input_shape)

    def within(self, low: float, high: float) -> bool:
        return all(
            len(d) == 0 or (low <= float(d.inputs.min()) and float(d.inputs.max()) <= high) for d in self.values()
        )

    def __repr__(self) -> str:
        return "splits " + ", ".join(f"{name}: {len(data)} images" for name, data in self.items())


def data_cases() -> list[Case]:
    """IDX, CIFAR-10 and image-folder data sets on disk (``load_dataset``)."""
    from workbench.datasets import load_dataset

    def case(name: str, run: Callable[[Context], Any], **kw: Any) -> Case:
        return Case("data", name, run, **kw)

    # -- IDX ------------------------------------------------------------------------------------
    def idx(make: Callable[[Context, Path], Any], split: str = "train", **options: Any) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            folder = ctx.tmp / "mnist"
            make(ctx, folder)
            return load_dataset("idx", root=folder, split=split, **options)

        return run

    def idx_arrays(images: np.ndarray, labels: np.ndarray) -> Callable[[Context, Path], Any]:
        """An IDX folder whose train and t10k files both hold ``images`` and ``labels``."""

        def make(ctx: Context, folder: Path) -> None:
            folder.mkdir(parents=True, exist_ok=True)
            for prefix in ("train", "t10k"):
                (folder / f"{prefix}-images-idx3-ubyte").write_bytes(H.idx_bytes(images))
                (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(H.idx_bytes(labels))

        return make

    def replaced_file(name: str, make: Callable[[Path], Any]) -> Callable[[Context, Path], Any]:
        def run(ctx: Context, folder: Path) -> None:
            H.write_idx(folder)
            (folder / name).unlink()
            make(folder / name)

        return run

    def gz_trailing(ctx: Context, folder: Path) -> None:
        H.write_idx(folder, gz=True)
        path = folder / "train-labels-idx1-ubyte.gz"
        path.write_bytes(path.read_bytes() + b"trailing garbage after the gzip stream")

    def int32_labels(ctx: Context, folder: Path) -> None:
        H.write_idx(folder)
        labels = (np.arange(100) % 10).astype(">i4")
        header = struct.pack(">BBBB", 0, 0, 0x0C, 1) + struct.pack(">I", 100)
        (folder / "train-labels-idx1-ubyte").write_bytes(header + labels.tobytes())

    def unicode_link(ctx: Context) -> Any:
        real = H.write_idx(ctx.tmp / "données MNIST 🙂")
        link = _symlink(ctx.tmp / "link to mnist", real)
        return load_dataset("idx", root=link, split="train")

    def trainval(ctx: Context) -> Verdict:
        folder = H.write_idx(ctx.tmp / "mnist")
        parts = {split: load_dataset("idx", root=folder, split=split) for split in ("train", "val", "trainval")}
        train, val, both = (set(parts[s].indices.tolist()) for s in ("train", "val", "trainval"))
        good = not train & val and train | val == both and len(both) == 100
        return verdict(
            good,
            f"train {len(train)} + val {len(val)} = trainval {len(both)}, disjoint",
            "wrong",
            "splits overlap or miss samples",
        )

    # -- CIFAR-10 ---------------------------------------------------------------------------------
    def cifar(batch: Any = None, split: str = "train", **options: Any) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            folder = H.write_cifar(ctx.tmp / "cifar-10-batches-py", n=20)
            if batch is not None:  # every batch replaced (protocol 4: no Python 2 compatibility globals)
                for path in folder.iterdir():
                    if path.name.startswith(("data_batch", "test_batch")):
                        path.write_bytes(pickle.dumps(batch, protocol=4))
            return load_dataset("cifar10", root=folder, split=split, **options)

        return run

    def batch(n: int = 20, **fields: Any) -> dict[bytes, Any]:
        rng = np.random.default_rng(0)
        content = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(np.arange(n) % 10)}
        return {**content, **{key.encode(): value for key, value in fields.items()}}

    def protocol5(ctx: Context) -> Verdict:
        folder = ctx.tmp / "cifar-10-batches-py"
        H.write_cifar(folder, n=20)
        content = batch()
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (folder / name).write_bytes(pickle.dumps(content, protocol=5))
        data = load_dataset("cifar10", root=folder, split="test")
        expected = torch.from_numpy(content[b"data"].reshape(20, 3, 32, 32).astype(np.float32) / 255)
        return verdict(
            torch.allclose(data.inputs, expected), "protocol-5 batch read, pixels equal", "wrong", "pixels differ"
        )

    def str_keys(ctx: Context) -> Verdict:
        folder = ctx.tmp / "cifar-10-batches-py"
        content = batch()
        H.write_cifar(folder, batch={"data": content[b"data"], "labels": content[b"labels"]})
        data = load_dataset("cifar10", root=folder, split="test")
        return verdict(
            data.targets.tolist() == list(range(10)) * 2, "str keys read", "wrong", f"labels {data.targets.tolist()}"
        )

    def meta(name: str, data: bytes, binary: bool = False) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            folder = H.write_cifar(
                ctx.tmp / ("cifar-10-batches-bin" if binary else "cifar-10-batches-py"), binary=binary
            )
            (folder / name).write_bytes(data)
            return load_dataset("cifar10", root=folder, split="test")

        return run

    def sparse_bin(ctx: Context) -> Any:
        folder = H.write_cifar(ctx.tmp / "cifar-10-batches-bin", binary=True)
        with open(folder / "test_batch.bin", "wb") as handle:
            handle.truncate(3073 * 350_000)  # a 1 GiB "test batch" of zeros; the real one has 10,000 records
        return load_dataset("cifar10", root=folder, split="test")

    def normalized(ctx: Context) -> Verdict:
        folder = H.write_cifar(ctx.tmp / "cifar-10-batches-py", n=40)
        data = load_dataset("cifar10", root=folder, split="trainval", normalize=True)
        mean = data.inputs.mean(dim=(0, 2, 3))
        std = data.inputs.std(dim=(0, 2, 3))
        good = bool(mean.abs().max() < 1e-3 and (std - 1).abs().max() < 1e-2)
        return verdict(
            good, "training images standardized per channel", "wrong", f"means {mean.tolist()}, stds {std.tolist()}"
        )

    # -- image folders ----------------------------------------------------------------------------
    def folder(make: Callable[[Path], Any], split: str | None = None, **options: Any) -> Callable[[Context], Any]:
        """Load the image folder ``make`` writes: split ``split``, or (None) train, val and test in turn, as a
        training run would (only the split asked for is decoded)."""

        def run(ctx: Context) -> Any:
            root = ctx.tmp / "pets"
            make(root)
            splits = [split] if split else ["train", "val", "test"]
            return Splits({s: load_dataset("folder", root=root, split=s, **{"size": 8, **options}) for s in splits})

        return run

    def with_files(counts: dict[str, int], extra: dict[str, bytes]) -> Callable[[Path], Any]:
        def make(root: Path) -> None:
            _image_folder(root, counts)
            for name, data in extra.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(data)

        return make

    def mixed_sizes(root: Path) -> None:
        _image_folder(root, {"cat": 10, "dog": 10})
        _png(root / "dog" / "tiny.png", np.zeros((1, 1, 3), np.uint8))

    def loop(root: Path) -> None:
        _image_folder(root, {"cat": 10, "dog": 10})
        _symlink(root / "cat" / "again", root / "cat")

    def counted(n: int, names: list[str] | None = None) -> Callable[[Context, Any], Verdict]:
        def check(ctx: Context, data: Splits) -> Verdict:
            got = (data.total, data.class_names)
            good = got[0] == n and (names is None or got[1] == names)
            return verdict(good, f"{got[0]} images, classes {got[1]}", "wrong", f"{got}, expected {n} images, {names}")

        return check

    def modes(root: Path) -> None:
        _image_folder(root, {"a": 10, "b": 10})
        _png(root / "a" / "rgba.png", np.full((8, 8, 4), 200, np.uint8))
        _png(root / "a" / "grey.png", np.full((8, 8), 100, np.uint8))
        _png(root / "b" / "palette.png", np.full((8, 8, 3), 50, np.uint8), mode="P")

    def sixteen_bit(ctx: Context) -> Verdict:
        root = ctx.tmp / "scans"
        for name, value in (("dark", 4096), ("mid", 32768)):
            for k in range(10):
                _png(root / name / f"{k}.png", np.full((8, 8), value, np.uint16))
        data = load_dataset("folder", root=root, split="trainval", size=8, mode="L")
        found = {name: float(data.inputs[data.targets == label].mean()) for label, name in enumerate(data.class_names)}
        good = abs(found["dark"] - 4096 / 65535) < 0.02 and abs(found["mid"] - 0.5) < 0.02
        shown = ", ".join(f"{k} {v:.3f}" for k, v in found.items())
        return verdict(
            good, f"16-bit grey read: {shown}", "wrong", f"16-bit grey 4096/65535 and 32768/65535 read as {shown}"
        )

    def capital_splits(ctx: Context) -> Verdict:
        root = ctx.tmp / "pets"
        _image_folder(root / "Train", {"cat": 5, "dog": 5})
        _image_folder(root / "Test", {"cat": 2, "dog": 2})
        data = load_dataset("folder", root=root, split="train", size=8)
        if data.class_names == ["cat", "dog"]:
            return ok("Train/Test read as the splits")
        return Verdict(
            "wrong", f"split folders Train/ and Test/ taken for the classes {data.class_names}, without a word"
        )

    def gif(root: Path) -> None:
        from PIL import Image

        _image_folder(root, {"a": 10, "b": 10})
        frames = [Image.new("RGB", (8, 8), (i * 60, 0, 0)) for i in range(3)]
        frames[0].save(root / "a" / "anim.gif", save_all=True, append_images=frames[1:])

    def pipe_image(root: Path) -> None:
        _image_folder(root, {"a": 10, "b": 10})
        _fifo(root / "a" / "pipe.png")

    def truncated_png(root: Path) -> None:
        _image_folder(root, {"a": 10, "b": 10})
        path = root / "a" / "0.png"
        path.write_bytes(path.read_bytes()[:60])

    return [
        case("idx images of 0 x 0 pixels", idx(idx_arrays(np.zeros((100, 0, 0), np.uint8), np.arange(100) % 10))),
        case("idx labels all of one class", idx(idx_arrays(np.zeros((100, 8, 8), np.uint8), np.zeros(100, np.uint8)))),
        case("idx val_fraction 0.999 leaves train empty", idx(lambda ctx, f: H.write_idx(f), val_fraction=0.999)),
        case("idx num_classes=True", idx(lambda ctx, f: H.write_idx(f), num_classes=True)),
        case("idx gzip with trailing garbage", idx(gz_trailing)),
        case("idx images a named pipe", idx(replaced_file("train-images-idx3-ubyte", _fifo)), limit=15),
        case(
            "idx folder with unicode name, through a symlink",
            unicode_link,
            expect="correct",
            check=lambda ctx, d: verdict(
                d.inputs.shape == (90, 1, 8, 8), f"{tuple(d.inputs.shape)}", "wrong", f"{tuple(d.inputs.shape)}"
            ),
        ),
        case("idx train + val = trainval, disjoint", trainval, expect="correct"),
        case("cifar binary test batch of 1 GiB (sparse)", sparse_bin, limit=60),
        case("cifar batch of float labels", cifar(batch(labels=np.linspace(0, 9, 20)))),
        case("cifar batches of 0 images", cifar(batch(0), split="test")),
        case("cifar batch data as an object array", cifar(batch(data=np.zeros((20, 3072), dtype=object)))),
        case(
            "cifar batches.meta.txt in latin-1",
            meta("batches.meta.txt", "\n".join(["caf\xe9"] * 10).encode("latin-1"), binary=True),
        ),
        case("cifar batch pickled with protocol 5", protocol5, expect="correct"),
        case("cifar batch with str keys", str_keys, expect="correct"),
        case("cifar normalize=True standardizes", normalized, expect="correct"),
        case(
            "folder with one image per class (val empty)",
            folder(lambda r: _image_folder(r, {"a": 1, "b": 1, "c": 1}), split="val"),
        ),
        case("folder mixing 1x1 and 8x8 images, size=None", folder(mixed_sizes, size=None)),
        case(
            "folder with a text file named x.png", folder(with_files({"a": 10, "b": 10}, {"a/x.png": b"not an image"}))
        ),
        case(
            "folder with a PNG declaring 10^10 pixels",
            folder(with_files({"a": 10, "b": 10}, {"a/bomb.png": _bomb_png(100_000, 100_000)})),
        ),
        case("folder with a truncated PNG", folder(truncated_png)),
        case("folder with a named pipe called x.png", folder(pipe_image), limit=10),
        case(
            "folder with a symlink loop in a class folder",
            folder(loop),
            expect="correct",
            check=counted(20, ["cat", "dog"]),
        ),
        case(
            "folder with class names in unicode and spaces",
            folder(lambda r: _image_folder(r, {"chat noir 🐈": 10, "Hund": 10, "ñandú": 10})),
            expect="correct",
            check=counted(30, ["Hund", "chat noir 🐈", "ñandú"]),
        ),
        case(
            "folder mixing RGBA, grey and palette images",
            folder(modes),
            expect="correct",
            check=lambda ctx, d: verdict(
                d.shape == (3, 8, 8) and d.within(0, 1),
                f"{d.total} images of {d.shape} in [0, 1]",
                "wrong",
                f"{d.shape}",
            ),
        ),
        case("folder of 16-bit grey PNGs", sixteen_bit, expect="correct"),
        case("folder with an animated GIF", folder(gif), expect="correct", check=counted(21)),
        case("folder with split folders Train/ and Test/ (capitals)", capital_splits, expect="any"),
        case("folder size=0", folder(lambda r: _image_folder(r, {"a": 10, "b": 10}), size=0)),
        case(
            "folder val 0.5 + test 0.5",
            folder(lambda r: _image_folder(r, {"a": 10, "b": 10}), val_fraction=0.5, test_fraction=0.5),
        ),
        case(
            "folder with train/ and val/ but no test/",
            folder(
                lambda r: [_image_folder(r / "train", {"a": 10, "b": 10}), _image_folder(r / "val", {"a": 1, "b": 1})]
            ),
        ),
        case(
            "folder whose test/ holds a class train/ lacks",
            folder(
                lambda r: [_image_folder(r / "train", {"a": 10, "b": 10}), _image_folder(r / "test", {"a": 1, "c": 1})],
                split="test",
            ),
        ),
    ]


# ------------------------------------------------------------------------------------------ study-file cases


def study_file_cases() -> list[Case]:
    """Study files given to ``load_study``: numbers at and past their bounds, wrong types, odd files and names."""
    from workbench.study import expand, load_study
    from workbench.utils import seed_from

    def case(name: str, run: Callable[[Context], Any], **kw: Any) -> Case:
        return Case("study-files", name, run, **kw)

    def text(body: str, name: str = "study.toml") -> Callable[[Context], Any]:
        return lambda ctx: load_study(ctx.study(body, name))

    def swap(old: str, new: str) -> Callable[[Context], Any]:
        return text(edited(old, new))

    def training(value: str) -> Callable[[Context], Any]:
        return swap("training = { epochs = 1, max_batches = 3 }", f"training = {{ {value} }}")

    def finetune(value: str) -> Callable[[Context], Any]:
        return swap("[finetune]\nepochs = 0", f"[finetune]\n{value}")

    def budgets(value: str) -> Callable[[Context], Any]:
        return swap("budgets = [0.5]", f"budgets = {value}")

    def selectors(value: str) -> Callable[[Context], Any]:
        return swap("magnitude = {}", value)

    def added(extra: str) -> Callable[[Context], Any]:
        return text(TINY + extra)

    def model_line(old: str, new: str) -> Callable[[Context], Any]:
        return swap(old, new)

    def nested(depth: int, open_: str, close: str) -> str:
        return edited("seeds = [0]", 'seeds = [0]\ndescription = "x"\nextra = ' + open_ * depth + "1" + close * depth)

    def distinct_streams(ctx: Context, study: Any) -> Verdict:
        streams = {seed: seed_from(seed) for seed in study.study.seeds}
        return verdict(
            len(set(streams.values())) == len(streams),
            f"accepted: the seeds give distinct random streams {streams}",
            "wrong",
            f"accepted, but the seeds share a random stream: {streams}",
        )

    def runs_of(ctx: Context, study: Any) -> Verdict:
        runs = expand(study)
        hashes = [run.hash for run in runs]
        return verdict(
            len(set(hashes)) == len(hashes),
            f"{len(runs)} runs, all distinct",
            "wrong",
            f"{len(runs)} runs, {len(set(hashes))} distinct",
        )

    def bom(encoding: str, prefix: bytes = b"") -> Callable[[Context], Any]:
        return lambda ctx: load_study(ctx.file("study.toml", prefix + TINY.encode(encoding)))

    def valid(ctx: Context, study: Any) -> Verdict:
        return ok(f"read: {study.study.name!r}, {len(expand(study))} runs")

    def checkpoint_entry(path: Callable[[Context], str]) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            body = edited('name = "mlp"\nargs = { widths = [64, 8, 10] }', f"checkpoint = {json.dumps(path(ctx))}")
            return load_study(ctx.study(body))

        return run

    return [
        case("training lr = inf", training("epochs = 1, lr = inf")),
        case("training weight_decay = inf", training("epochs = 1, weight_decay = inf")),
        case("training epochs = true", training("epochs = true")),
        case("training epochs = 1.5", training("epochs = 1.5")),
        case("training max_batches = -1", training("epochs = 1, max_batches = -1")),
        case("training init = 'he'", training('epochs = 1, init = "he"')),
        case("training split = 'test'", training('epochs = 1, split = "test"')),
        case("finetune temperature = inf", finetune('epochs = 1\nmethod = "distill"\ntemperature = inf')),
        case("finetune alpha = nan", finetune('epochs = 1\nmethod = "distill"\nalpha = nan')),
        case("finetune lr = -0.0", finetune("epochs = 1\nlr = -0.0")),
        case("finetune loss = 'kl'", finetune('epochs = 1\nmethod = "distill"\nloss = "kl"')),
        case("finetune distill with class_weights", finetune('epochs = 1\nmethod = "distill"\nclass_weights = "enet"')),
        case("finetune own_schedule naming no pipeline", finetune('epochs = 1\nown_schedule = ["dc"]')),
        case("seeds = [true]", swap("seeds = [0]", "seeds = [true]")),
        case(
            "seeds = [0, 4294967296] (the same seed mod 2**32)",
            swap("seeds = [0]", "seeds = [0, 4294967296]"),
            expect="correct",
            check=distinct_streams,
        ),
        case("seeds that give one random stream", swap("seeds = [0]", f"seeds = [{seed_from(2**32)}, {2**32}]")),
        case("seeds = [] (empty)", swap("seeds = [0]", "seeds = []")),
        case("study name = 5", swap('name = "hostile"', "name = 5")),
        case("study name = '' (empty)", swap('name = "hostile"', 'name = ""')),
        case(
            "study reference naming a selector the study lacks",
            swap('name = "hostile"', 'name = "hostile"\nreference = "dpp/drop"'),
        ),
        case(
            "study reference naming a fuse the study lacks",
            swap('name = "hostile"', 'name = "hostile"\nreference = "magnitude/lsq"'),
        ),
        case("study reference without a slash", swap('name = "hostile"', 'name = "hostile"\nreference = "magnitude"')),
        case("budgets = [nan]", budgets("[nan]")),
        case("budgets = 0.5 (not a list)", budgets("0.5")),
        case("budgets = [{ keep = 0.5, macs = 0.5 }]", budgets("[{ keep = 0.5, macs = 0.5 }]")),
        case(
            "budgets = [{ macs = 0.5, per_layer = {...} }]",
            budgets('[{ macs = 0.5, per_layer = { "layers.1" = 0.5 } }]'),
        ),
        case("budgets = [{ latency = 0.5, batch = 0 }]", budgets("[{ latency = 0.5, batch = 0 }]")),
        case("budgets = [{ macs = 0.5, min_keep = 2 }]", budgets("[{ macs = 0.5, min_keep = 2 }]")),
        case("budgets = [{ keep = true }]", budgets("[{ keep = true }]")),
        case("budgets = [0.5, 0.5] (twice)", budgets("[0.5, 0.5]"), expect="any", check=runs_of),
        case("fuse = ['drop', 'drop'] (twice)", budgets('[0.5]\nfuse = ["drop", "drop"]'), expect="any", check=runs_of),
        case("round_to = 2**20 + 1", budgets(f"[0.5]\nround_to = {2**20 + 1}")),
        case("selector dpp with budget = 0.3 inside", selectors("dpp = { budget = 0.3 }")),
        case("selector sbm n_blocks = 0", selectors("sbm = { n_blocks = 0 }")),
        case("selector spectral n_components = -1", selectors("spectral = { n_components = -1 }")),
        case("selector leiden resolution = -1", selectors("leiden = { resolution = -1.0 }")),
        case("selector leiden resolution = nan", selectors("leiden = { resolution = nan }")),
        case("selector submodular reg = -1", selectors("submodular = { reg = -1.0 }")),
        case("selector dpp ridge = inf", selectors("dpp = { ridge = inf }")),
        case("selector magnitude = 1 (not a table)", selectors("magnitude = 1")),
        case("selector name with a space", selectors('"magnitude " = {}')),
        case(
            "[models] as a table, not an array",
            lambda ctx: load_study(ctx.study(TINY.replace("[[models]]", "[models]"))),
        ),
        case("model with name and checkpoint", model_line('name = "mlp"', 'name = "mlp"\ncheckpoint = "m.pt"')),
        case(
            "model args random_state = 3",
            model_line("args = { widths = [64, 8, 10] }", "args = { widths = [64, 8, 10], random_state = 3 }"),
        ),
        case(
            "model input_shape = [] for a user model",
            model_line(
                'name = "mlp"\nargs = { widths = [64, 8, 10] }', 'model = "probe_hostile:PlainNet"\ninput_shape = []'
            ),
        ),
        case("model = 'os:system'", model_line('name = "mlp"\nargs = { widths = [64, 8, 10] }', 'model = "os:system"')),
        case("data = 'digits:' (half an import path)", model_line('data = "digits"', 'data = "digits:"')),
        case("data = 'DIGITS'", model_line('data = "digits"', 'data = "DIGITS"')),
        case("checkpoint = '' (empty)", checkpoint_entry(lambda ctx: "")),
        case("checkpoint = /dev/null", checkpoint_entry(lambda ctx: os.devnull)),
        case("checkpoint = a named pipe", checkpoint_entry(lambda ctx: str(_fifo(ctx.tmp / "pipe.pt"))), limit=15),
        case(
            "checkpoint = '~/m.pt' (home folder)",
            checkpoint_entry(lambda ctx: (shutil.copy(ctx.ckpt(), _home("m.pt")), "~/m.pt")[1]),
            expect="correct",
            check=valid,
        ),
        case(
            "label with HTML and newlines",
            model_line('label = "mlp 64-8-10"', 'label = "<b>mlp</b>\\n<script>x</script>"'),
            expect="correct",
            check=valid,
        ),
        case(
            "baselines.models with budgets",
            added('\n[[baselines.models]]\nname = "lenet300"\ndata = "digits"\nbudgets = [0.5]\n'),
        ),
        case(
            "models[0].selectors naming a selector the study lacks",
            model_line('data = "digits"', 'data = "digits"\nselectors = ["dpp"]'),
        ),
        case("controls tolerance = 1", added("\n[controls]\nrandom_widths = true\ntolerance = 1\n")),
        case(
            "controls widths_from of another selector",
            added('\n[controls]\nscratch = true\nwidths_from = "dpp/drop"\n'),
        ),
        case("cluster worker_timeout = nan", added("\n[cluster]\nworker_timeout = nan\n")),
        case("cluster worker_timeout = -1", added("\n[cluster]\nworker_timeout = -1\n")),
        case("pipeline of no steps", added("\n[pipelines]\nempty = []\n")),
        case(
            "pipeline step retrain with loss_fn = 'mse'",
            added('\n[pipelines]\np = [{ do = "retrain", epochs = 1, loss_fn = "mse" }]\n'),
        ),
        case(
            "pipeline step retrain with device = 'cuda:7'",
            added('\n[pipelines]\np = [{ do = "retrain", epochs = 1, device = "cuda:7" }]\n'),
        ),
        case("pipeline step share with bits = 5.5", added('\n[pipelines]\np = [{ do = "share", bits = 5.5 }]\n')),
        case("pipeline step prune with rate = nan", added('\n[pipelines]\np = [{ do = "prune", rate = nan }]\n')),
        case("arrays nested 10000 deep", lambda ctx: load_study(ctx.study(nested(10000, "[", "]")))),
        case("inline tables nested 10000 deep", lambda ctx: load_study(ctx.study(nested(10000, "{ a = ", " }")))),
        case("a study file in UTF-16", bom("utf-16")),
        case("a study file with a UTF-8 byte-order mark", bom("utf-8", b"\xef\xbb\xbf"), expect="any", check=valid),
        case(
            "a study file with CRLF line ends",
            lambda ctx: load_study(ctx.file("study.toml", TINY.replace("\n", "\r\n").encode())),
            expect="correct",
            check=valid,
        ),
        case("a study file that is a named pipe", lambda ctx: load_study(_fifo(ctx.tmp / "study.toml")), limit=15),
        case(
            "a study file that is a symlink to /dev/zero",
            lambda ctx: load_study(_symlink(ctx.tmp / "study.toml", "/dev/zero")),
            limit=15,
        ),
        case(
            "a study file named with spaces and unicode",
            text(TINY, name="my études 🙂 v2.toml"),
            expect="correct",
            check=valid,
        ),
        case("a key given twice", swap("latency = false", "latency = false\nlatency = true")),
        case("load_study(None)", lambda ctx: load_study(None)),
    ]


# ------------------------------------------------------------------------------------------- study-run cases

USER_MODULE = '''
import os
import time

from torch import nn


def net(hidden=8):
    """A user's MLP for digits; HOSTILE_INTERRUPT makes building it a Ctrl-C, HOSTILE_SLEEP a long wait."""
    if os.environ.get("HOSTILE_INTERRUPT"):
        raise KeyboardInterrupt
    if os.environ.get("HOSTILE_SLEEP"):
        time.sleep(float(os.environ["HOSTILE_SLEEP"]))
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def as_dict(hidden=8):
    return {"net": net(hidden)}


class DictOut(nn.Module):
    """A network whose forward returns a dict."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))

    def forward(self, x):
        return {"logits": self.body(x)}
'''


def _user_module(ctx: Context, name: str = "hostile_user_mod") -> str:
    """Write :data:`USER_MODULE` as ``name`` in the case's folder, importable until the case ends."""
    ctx.file(f"{name}.py", USER_MODULE)
    sys.path.insert(0, str(ctx.tmp))
    sys.modules.pop(name, None)

    def forget() -> None:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(ctx.tmp))
        sys.modules.pop(name, None)

    ctx.on_exit(forget)
    return name


def _user_study(module: str, function: str = "net") -> str:
    return edited('name = "mlp"\nargs = { widths = [64, 8, 10] }', f'model = "{module}:{function}"')


def _rows(store: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(store)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute("SELECT * FROM runs ORDER BY kind DESC, hash")]
    finally:
        db.close()


def _claims(store: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(store)
    try:
        return list(db.execute("SELECT * FROM claims"))
    except sqlite3.OperationalError:  # the store is being created
        return []
    finally:
        db.close()


def _set_cell(store: Path, column: str, value: Any, kind: str = "compress") -> str:
    """Set ``column`` of the store's first ``kind`` row to ``value``; its hash."""
    db = sqlite3.connect(store)
    try:
        run_hash = db.execute("SELECT hash FROM runs WHERE kind = ?", (kind,)).fetchone()[0]
        db.execute(f"UPDATE runs SET {column} = ? WHERE hash = ?", (value, run_hash))
        db.commit()
    finally:
        db.close()
    return run_hash


def _workbench_error_names() -> set[str]:
    return H._workbench_errors()


def _failed_cleanly(outcome: Any) -> Verdict:
    """A study outcome whose runs were meant to fail: each with a WorkbenchError's message (clean), or not."""
    errors = list(outcome.errors.values())
    if not errors:
        return Verdict("silent", f"no run failed: {outcome.done} done")
    raw = [e for e in errors if not any(f"{name}: " in e for name in _workbench_error_names())]
    if raw:
        return Verdict("traceback", f"a run stored a raw error: {_first(raw[0])}")
    return Verdict("clean", f"{outcome.failed} runs failed with a clear message: {_first(errors[0])}")


def study_run_cases() -> list[Case]:
    """Study runs, stores, Dask back-ends, reports and comparisons."""
    from workbench.study import Store, run_study, write_report

    def case(name: str, run: Callable[[Context], Any], **kw: Any) -> Case:
        return Case("study-runs", name, run, **kw)

    def cli(name: str, argv: Callable[[Context], list[Any]], **kw: Any) -> Case:
        return Case("study-runs", name, argv, cli=True, **kw)

    def ran(body: str) -> Callable[[Context], Any]:
        return lambda ctx: run_study(ctx.study(body), quiet=True)

    def failing(body: str, module: bool = False) -> Callable[[Context], Verdict]:
        def run(ctx: Context) -> Verdict:
            if module:
                _user_module(ctx)
            return _failed_cleanly(run_study(ctx.study(body), quiet=True))

        return run

    def stored_as_asked(ctx: Context) -> Verdict:
        outcome = run_study(ctx.study(), quiet=True)
        rows = {row["kind"]: row for row in _rows(outcome.store)}
        base, small = (json.loads(rows[k]["metrics_json"]) for k in ("train", "compress"))
        config = json.loads(rows["compress"]["config_json"])
        facts = {
            "done": [row["status"] for row in rows.values()] == ["done", "done"],
            "base 610 params": base.get("params") == MLP_PARAMS,
            "kept half: 310 params": small.get("params") == 64 * 4 + 4 + 4 * 10 + 10,
            "config keep 0.5": config.get("budget", {}).get("keep") == 0.5 and config.get("selector") == "magnitude",
        }
        bad = [fact for fact, holds in facts.items() if not holds]
        return verdict(not bad, "rows hold what was asked: " + ", ".join(facts), "wrong", f"not so: {', '.join(bad)}")

    def rerun_skips(ctx: Context) -> Verdict:
        study, store = ctx.stored()
        before = _rows(store)
        outcome = run_study(study, quiet=True)
        good = outcome.skipped == outcome.total and outcome.done == 0 and _rows(store) == before
        return verdict(good, f"{outcome.skipped} of {outcome.total} skipped, rows unchanged", "wrong", f"{outcome}")

    def same_seed_mod_2_32(ctx: Context) -> Verdict:
        from workbench.study.runner import cache_dir_for

        outcome = run_study(ctx.study(edited("seeds = [0]", "seeds = [0, 1, 4294967296]")), quiet=True)
        bases = {json.loads(r["config_json"])["seed"]: r["hash"] for r in _rows(outcome.store) if r["kind"] == "train"}
        cache = cache_dir_for(outcome.store)
        weights = {seed: torch.load(cache / f"{h}.pt", weights_only=True)["state_dict"] for seed, h in bases.items()}

        def same(a: int, b: int) -> bool:
            return all(torch.equal(weights[a][k], weights[b][k]) for k in weights[a])

        if same(0, 4294967296) and not same(0, 1):
            return Verdict("wrong", "seeds 0 and 2**32 train bit-identical base models, counted as two seeds (n = 2)")
        return ok("seeds 0, 1 and 2**32 train three different base models")

    def locked(ctx: Context) -> Any:
        study, store = ctx.stored()
        holder = sqlite3.connect(store, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        ctx.on_exit(holder.close)
        body = edited("budgets = [0.5]", "budgets = [0.5, 0.25]")
        return run_study(ctx.study(body, "tiny.toml"), store=store, quiet=True)

    def report_of(change: Callable[[Path], Any]) -> Callable[[Context], Verdict]:
        """A report of the stored tiny study after ``change(store)``: it names the damaged row (correct), says
        nothing (silent), or fails."""

        def run(ctx: Context) -> Verdict:
            study, store = ctx.stored()
            run_hash = change(store)
            page = write_report(study, store=store, out=ctx.tmp / "r.html")
            said = [str(w.message) for w in ctx.caught if run_hash and run_hash[:12] in str(w.message)]
            if said:
                return ok(f"report written, the row named: {_first(said[0])}")
            return Verdict("silent", f"report written ({page.name}) without a word about the damaged row")

        return run

    def unknown_status(ctx: Context) -> Verdict:
        study, store = ctx.stored()
        run_hash = _set_cell(store, "status", "running")
        outcome = run_study(study, quiet=True)
        status = {row["hash"]: row["status"] for row in _rows(store)}[run_hash]
        return verdict(
            status == "done" and outcome.failed == 0,
            f"the 'running' row was run again: {status}",
            "wrong",
            f"row {status}, {outcome}",
        )

    def empty_store(ctx: Context) -> Verdict:
        store = ctx.file("empty.sqlite", b"")
        outcome = run_study(ctx.study(), store=store, quiet=True)
        return verdict(outcome.done == 2, "an empty file became the store", "wrong", f"{outcome}")

    def sparse_store(ctx: Context) -> Any:
        path = ctx.tmp / "sparse.sqlite"
        with open(path, "wb") as handle:
            handle.write(b"SQLite format 3\x00")
            handle.truncate(2 * 2**30)
        return run_study(ctx.study(), store=path, quiet=True)

    def deep_out(ctx: Context) -> Verdict:
        study, store = ctx.stored()
        page = write_report(study, store=store, out=ctx.tmp / "a" / "b" / "c" / "r.html")
        names = sorted(p.name for p in page.parent.iterdir())
        return verdict(page.is_file() and "r-runs.csv" in names, f"written: {names}", "wrong", f"{names}")

    def escaped(ctx: Context) -> Verdict:
        label = "<script>alert(1)</script>"
        outcome = run_study(ctx.study(edited('label = "mlp 64-8-10"', f'label = "{label}"')), quiet=True)
        page = write_report(ctx.tmp / "study.toml", store=outcome.store, out=ctx.tmp / "r.html").read_text()
        raw = page.count(label)
        return verdict(
            raw == 0,
            "the label's HTML is escaped everywhere",
            "wrong",
            f"the report holds the label's <script> tag unescaped {raw} times",
        )

    def own_plotly(ctx: Context) -> Verdict:
        study, store = ctx.stored()
        mine = ctx.file("plotly.min.js", "/* the plotly build my other pages use */\n")
        before = _snapshot(mine)
        write_report(study, store=store, out=ctx.tmp / "r.html", plotlyjs="file")
        if _snapshot(mine) == before:
            return ok("the user's plotly.min.js was left as it was")
        said = ctx.warned("plotly")
        if said:
            return ok(f"replaced the user's plotly.min.js and said so: {_first(said[0])}")
        return Verdict("replaced", "the user's own plotly.min.js beside the report was replaced without a word")

    def csv_link(ctx: Context) -> Verdict:
        study, store = ctx.stored()
        target = ctx.watch(ctx.file("elsewhere/notes.csv", "a,b\n1,2\n"))
        _symlink(ctx.tmp / "r-runs.csv", target)
        write_report(study, store=store, out=ctx.tmp / "r.html")
        return ok("the link beside the report was replaced by the runs file; its target is intact")

    def compare_json(ctx: Context, run: CliRun) -> Verdict:
        table = _json_out(run)["comparison"]
        text = json.dumps(table)
        return verdict("magnitude" in text, "the comparison names magnitude/drop", "wrong", f"{text[:200]}")

    def empty_report(ctx: Context) -> Verdict:
        Store(ctx.tmp / "empty.sqlite").close()
        page = write_report(ctx.study(), store=ctx.tmp / "empty.sqlite", out=ctx.tmp / "r.html")
        return ok(f"a report of no runs: {page.stat().st_size} bytes")

    def interrupted(ctx: Context) -> Verdict:
        module = _user_module(ctx)
        study = ctx.study(_user_study(module))
        os.environ["HOSTILE_INTERRUPT"] = "1"
        try:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = _cli(["study", "run", study, "--quiet"])
        finally:
            os.environ.pop("HOSTILE_INTERRUPT", None)
        if code != 130 or "Traceback" in err.getvalue():
            return Verdict("traceback", f"Ctrl-C gave exit {code}: {_first(err.getvalue())}")
        store = ctx.tmp / "study.sqlite"
        claims = _claims(store)
        outcome = run_study(study, quiet=True)
        good = not claims and outcome.done == outcome.total - outcome.skipped and outcome.failed == 0
        return verdict(
            good,
            f"Ctrl-C: exit 130, no claim left; the rerun did {outcome.done} runs",
            "wrong",
            f"claims left {claims}, rerun {outcome}",
        )

    def killed(ctx: Context) -> Verdict:
        import signal
        import subprocess

        module = _user_module(ctx)
        study = ctx.study(_user_study(module))
        env = {**os.environ, "HOSTILE_SLEEP": "120", "PYTHONPATH": os.pathsep.join([str(ctx.tmp), str(ROOT)])}
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "study", "run", str(study), "--quiet"],
            cwd=ctx.tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        store = ctx.tmp / "study.sqlite"
        try:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                if store.is_file() and _claims(store):
                    break
                time.sleep(0.2)
            else:
                return Verdict("wrong", "the study run claimed nothing within 40 s")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        outcome = run_study(study, quiet=True)
        good = outcome.failed == 0 and outcome.claimed_elsewhere == 0 and outcome.done == outcome.total
        return verdict(
            good,
            f"killed mid-run; the rerun took over its claims and did {outcome.done} runs",
            "wrong",
            f"rerun: {outcome}",
        )

    def scheduler(workers: int) -> Callable[[Context], Any]:
        """The address of a Dask scheduler in this process with ``workers`` thread workers (stopped afterwards)."""

        def start(ctx: Context) -> str:
            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None)
            ctx.on_exit(cluster.close)
            return cluster.scheduler_address

        return start

    def dask_run(ctx: Context) -> Verdict:
        address = scheduler(1)(ctx)
        outcome = run_study(ctx.study(), scheduler=address, quiet=True)
        rows = _rows(outcome.store)
        good = outcome.done == 2 and all(row["status"] == "done" for row in rows)
        return verdict(good, f"{outcome.done} runs done on the Dask worker", "wrong", f"{outcome}")

    def two_labels(ctx: Context) -> Verdict:
        body = TINY + edited(
            'label = "mlp 64-8-10"',
            'label = "the same mlp again"',
            TINY[TINY.index("[[models]]") : TINY.index("[selectors]")],
        )
        outcome = run_study(ctx.study(body), quiet=True)
        shown = sorted({row.get("model") for row in outcome.summary})
        said = ctx.warned("label")
        if len(shown) == 2 or said:
            return ok(f"{outcome.total} runs; summary shows {shown}" + (f"; said: {_first(said[0])}" if said else ""))
        return Verdict(
            "silent", f"two labelled entries of one model ran as one; the summary shows only {shown}, no word"
        )

    def cache_garbage(ctx: Context) -> Verdict:
        study, store = ctx.stored()
        cache = ctx.tmp / "tiny-cache"
        shutil.copytree(ctx.shared / "tiny-cache", cache)
        for path in cache.iterdir():
            path.write_bytes(os.urandom(512))
        db = sqlite3.connect(store)
        db.execute("DELETE FROM runs WHERE kind = 'compress'")
        db.commit()
        db.close()
        outcome = run_study(study, quiet=True)
        return verdict(
            outcome.done == 1 and outcome.failed == 0,
            f"garbage cache retrained: {outcome.notes[:1]}",
            "wrong",
            f"{outcome.errors}",
        )

    def cache_is_file(ctx: Context) -> Verdict:
        ctx.watch(ctx.file("study-cache", "a file where the cache folder goes"))
        return _failed_cleanly(run_study(ctx.study(), quiet=True))

    def wal_garbage(ctx: Context) -> Verdict:
        study, store = ctx.stored()
        before = _rows(store)
        store.with_name(store.name + "-wal").write_bytes(os.urandom(4096))
        write_report(study, store=store, out=ctx.tmp / "r.html")
        return verdict(_rows(store) == before, "report written, rows intact", "wrong", "the rows changed")

    return [
        case("a tiny study stores what was asked", stored_as_asked, expect="correct"),
        case("a second run skips every stored run", rerun_skips, expect="correct"),
        case("seeds 0 and 2**32 (equal mod 2**32)", same_seed_mod_2_32, expect="correct"),
        # one computation under two labels is refused at load (naming both): its runs would be one, shown once
        case("the same model under two labels", two_labels),
        case(
            "store = /dev/null in the study file",
            ran(edited("latency = false", 'latency = false\nstore = "/dev/null"')),
        ),
        case("a store locked by another connection", locked, limit=30),
        case("a row with an unknown status 'running'", unknown_status, expect="correct"),
        case("a store that is an empty file", empty_store, expect="correct"),
        case("a sparse 2 GiB store after the SQLite header", sparse_store),
        case("a garbage cache of base models", cache_garbage, expect="correct"),
        case("the cache folder is a file", cache_is_file),
        case(
            "report of a row whose accuracy is a string",
            report_of(lambda s: _set_cell(s, "metrics_json", '{"accuracy": "high", "params": 1}')),
            expect="correct",
        ),
        case(
            "report of a row whose config is {}",
            report_of(lambda s: _set_cell(s, "config_json", "{}")),
            expect="correct",
        ),
        case(
            "report of a row whose seconds are text",
            report_of(lambda s: _set_cell(s, "seconds", "a while")),
            expect="correct",
        ),
        case(
            "report of a row whose plan is a number",
            report_of(lambda s: _set_cell(s, "plan_json", "42")),
            expect="correct",
        ),
        case("report with a garbage -wal file beside the store", wal_garbage, expect="any"),
        case("report --out in folders that do not exist yet", deep_out, expect="correct"),
        case("report escapes HTML in a label", escaped, expect="correct"),
        case("report --plotlyjs file beside the user's own plotly.min.js", own_plotly, expect="correct"),
        case("report through a symlinked -runs.csv", csv_link, expect="correct"),
        case("report of a store with no runs", empty_report, expect="any"),
        cli(
            "report --out the store itself",
            lambda ctx: [
                "study",
                "report",
                ctx.stored()[0],
                "--store",
                ctx.watch(ctx.stored()[1]),
                "--out",
                ctx.tmp / "tiny.sqlite",
            ],
        ),
        cli(
            "report --out the study file",
            lambda ctx: [
                "study",
                "report",
                ctx.watch(ctx.stored()[0]),
                "--store",
                ctx.tmp / "tiny.sqlite",
                "--out",
                ctx.tmp / "tiny.toml",
            ],
        ),
        cli(
            "compare --json",
            lambda ctx: ["study", "compare", ctx.stored()[0], "--store", ctx.stored()[1], "--json"],
            expect="correct",
            check=compare_json,
        ),
        case("Ctrl-C in a user model, then resumed", interrupted, expect="correct"),
        case("killed (SIGKILL) mid-run, then resumed", killed, expect="correct", limit=90),
        cli(
            "Dask scheduler without workers",
            lambda ctx: ["study", "run", ctx.study(), "--scheduler", scheduler(0)(ctx), "--timeout", "1", "--quiet"],
        ),
        case("Dask runs the tiny study on an in-process worker", dask_run, expect="correct"),
        cli(
            "Dask scheduler tcp://256.1.1.1:8786",
            lambda ctx: [
                "study",
                "run",
                ctx.study(),
                "--scheduler",
                "tcp://256.1.1.1:8786",
                "--timeout",
                "1",
                "--quiet",
            ],
            limit=30,
        ),
        case("run_study(jobs=True)", lambda ctx: run_study(ctx.study(), jobs=True, quiet=True)),
        case(
            "run: budget per_layer naming an unknown group",
            failing(edited("budgets = [0.5]", 'budgets = [{ keep = 0.5, per_layer = { "nosuch" = 0.25 } }]')),
        ),
        case(
            "run: data_options with an unknown option",
            failing(edited('data = "digits"', 'data = "digits"\ndata_options = { frobnicate = 1 }')),
        ),
        case(
            "run: pipeline of one retrain step, [finetune] epochs = 0",
            failing(
                edited(
                    "[selectors]\nmagnitude = {}\n\n[compression]\nbudgets = [0.5]\n",
                    '[pipelines]\np = [{ do = "retrain", epochs = 1 }]\n',
                )
            ),
        ),
        case(
            "run: pipeline retrain with loss_fn = 'mse'",
            failing(
                edited(
                    "[finetune]\nepochs = 0",
                    "[finetune]\nepochs = 1",
                    edited(
                        "[selectors]\nmagnitude = {}\n\n[compression]\nbudgets = [0.5]\n",
                        '[pipelines]\np = [{ do = "retrain", epochs = 1, loss_fn = "mse" }]\n',
                    ),
                )
            ),
        ),
        case("run: a user model returning a dict", failing(_user_study("hostile_user_mod", "as_dict"), module=True)),
        case(
            "run: a user model whose forward returns a dict",
            failing(_user_study("hostile_user_mod", "DictOut"), module=True),
        ),
        case("run: selector sbm with n_blocks = 0", failing(edited("magnitude = {}", "sbm = { n_blocks = 0 }"))),
    ]


# ---------------------------------------------------------------------------------------------- api cases


class TwoInputs(nn.Module):
    """A user's network whose forward needs two tensors."""

    input_shape = (16,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.a(x + y)))


class DictNet(nn.Module):
    """A user's network whose forward returns a dict."""

    input_shape = (16,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.head(torch.relu(self.a(x)))}


class RecurrentNet(nn.Module):
    """A user's network with an LSTM between two Linear layers (a layer the graph has no adapter for)."""

    input_shape = (5, 16)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 12)
        self.rnn = nn.LSTM(12, 12, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(torch.relu(self.a(x)))
        return self.head(out[:, -1])


class TokenNet(nn.Module):
    """A user's network reading token ids through an Embedding."""

    input_shape = (6,)

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.a = nn.Linear(16, 12)
        self.head = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.a(self.embed(x).mean(1))))


class BranchNet(nn.Module):
    """A user's network with data-dependent control flow."""

    input_shape = (16,)

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        if float(h.sum()) > 0:
            h = h * 2
        return self.head(h)


def api_cases() -> list[Case]:
    """The Python API with a user's own models and data: odd models, odd data, selectors, surgery, transforms."""
    from workbench.compression import Retraining, compress, sensitivity
    from workbench.datasets import ArrayDataset, load_dataset
    from workbench.graph import from_model
    from workbench.metrics import count_params, profile
    from workbench.select import get_selector, greedy_map_dpp, sample_k_dpp
    from workbench.surgery import Plan, apply, factorize, plan_from, sparse_decompose, svd_linear
    from workbench.train import distill, evaluate, fit
    from workbench.zoo import create_model, create_model_for_data

    def case(name: str, run: Callable[[Context], Any], **kw: Any) -> Case:
        return Case("api", name, run, **kw)

    rng = np.random.default_rng(0)
    features = rng.standard_normal((8, 4))

    def select(name: str, x: Any = features, **params: Any) -> Callable[[Context], Any]:
        return lambda ctx: get_selector(name, **{"budget": 0.5, "random_state": 0, **params}).fit(x).keep_

    def kept(n: int) -> Callable[[Context, Any], Verdict]:
        return lambda ctx, keep: verdict(
            len(keep) == n, f"kept {list(keep)}", "wrong", f"kept {list(keep)}, expected {n} units"
        )

    def pairs(
        n: int = 64, width: int = 16, classes: int = 4, dtype: Any = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return torch.randn(n, width, generator=g).to(dtype), torch.randint(0, classes, (n,), generator=g)

    def fit_on(
        data: Callable[[], Any], model: Callable[[], nn.Module] = lambda: PlainNet(), **kwargs: Any
    ) -> Callable[[Context], Any]:
        return lambda ctx: fit(model(), data(), **{"epochs": 1, "quiet": True, **kwargs})

    def trained(ctx: Context, history: Any) -> Verdict:
        return ok(f"trained on {getattr(history, 'total_samples', '?')} samples")

    def compressed(
        make: Callable[[], nn.Module], x: Callable[[], torch.Tensor], **kwargs: Any
    ) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            model = ctx.watch_model(make())
            return compress(model, **{"keep": 0.5, "latency": False, "example_input": x(), **kwargs})

        return run

    def rebuilt(ctx: Context, result: Any) -> Verdict:
        got = {name: m.out_features for name, m in result.model.named_modules() if isinstance(m, nn.Linear)}
        return ok(f"rebuilt: {got}")

    def tied(ctx: Context, result: Any) -> Verdict:
        model = result.model
        if model.b.weight is model.a.weight:
            return ok(f"still tied: a {tuple(model.a.weight.shape)}")
        same = model.a.weight.shape == model.b.weight.shape and torch.equal(model.a.weight, model.b.weight)
        said = (
            ctx.warned("tied")
            or ctx.warned("shared weight")
            or [n for n in result.notes if "tied" in n or "shared" in n]
        )
        if said:
            return ok(f"untied, and said so: {_first(str(said[0]))}")
        return Verdict(
            "silent",
            f"the tied layers were rebuilt as two separate weights ({'equal' if same else 'different'}), no word",
        )

    def keeps_dtype(dtype: torch.dtype) -> Callable[[Context, Any], Verdict]:
        def check(ctx: Context, result: Any) -> Verdict:
            got = {p.dtype for p in result.model.parameters()}
            return verdict(
                got == {dtype}, f"rebuilt in {dtype}", "wrong", f"a {dtype} model rebuilt as {sorted(map(str, got))}"
            )

        return check

    def weight_norm_identity(ctx: Context) -> Verdict:
        model = ctx.mlp()
        torch.nn.utils.parametrizations.weight_norm(model.layers[1])
        ctx.watch_model(model)
        result = compress(model, keep=1.0, latency=False)
        x = torch.randn(4, 64)
        return verdict(
            _same_outputs(model, result.model, x),
            "keep=1: same outputs",
            "wrong",
            "keep=1 changed the outputs of a weight_norm model",
        )

    def watched(
        call: Callable[[nn.Module], Any], make: Callable[[], nn.Module] = lambda: PlainNet().train()
    ) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            model = ctx.watch_model(make(), "the input model")
            call(model)
            return ok("the input model's mode and state are as they were")

        return run

    def bn_data() -> Any:
        x, y = pairs(64)
        return ArrayDataset(x, y, name="mine", split="train", num_classes=4)

    def one_class(ctx: Context) -> Verdict:
        x, _ = pairs(64)
        data = ArrayDataset(x, torch.zeros(64, dtype=torch.long), name="mine", split="train", num_classes=1)
        model = create_model_for_data("mlp", (16,), 1, random_state=0)
        fit(model, data, epochs=1, quiet=True)
        said = ctx.warned("one class") or ctx.warned("1 class") or ctx.warned("single class")
        if said:
            return ok(f"warned: {_first(said[0])}")
        return Verdict("silent", "trained a 1-class classifier (its loss is 0 whatever the weights), no word")

    def nan_inputs(ctx: Context) -> Any:
        x, y = pairs(64)
        x[5, 3] = float("nan")
        return fit(PlainNet(), (x, y), epochs=1, quiet=True)

    def nan_eval(ctx: Context) -> Verdict:
        x, y = pairs(32)
        x[0, 0] = float("nan")
        result = evaluate(PlainNet().eval(), (x, y))
        said = ctx.warned("nan") or ctx.warned("finite")
        if said:
            return ok(f"warned: {_first(said[0])}")
        return Verdict("silent", f"evaluated inputs holding NaN without a word: accuracy {result.get('accuracy')}")

    def generator(ctx: Context) -> Any:
        x, y = pairs(64)
        return fit(PlainNet(), ((x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8)), epochs=1, quiet=True)

    def legacy_plan(ctx: Context) -> Any:
        graph = from_model(ctx.mlp())
        plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
        smaller = apply(ctx.mlp(), plan)
        return apply(smaller, plan)

    def same_weights(ctx: Context) -> Verdict:
        a = create_model("mlp", random_state=np.int64(3), widths=[64, 8, 10])
        b = create_model("mlp", random_state=3, widths=[64, 8, 10])
        same = all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        return verdict(same, "np.int64(3) seeds as 3", "wrong", "np.int64(3) and 3 give different weights")

    def register_twice(ctx: Context) -> Any:
        from workbench.zoo import MODELS, register_model

        before = MODELS.get("mlp")
        ctx.on_exit(lambda: MODELS._factories.__setitem__("mlp", before))
        register_model("mlp")(lambda **kw: nn.Linear(1, 1))
        if MODELS.get("mlp") is not before:
            return Verdict("replaced", "register_model('mlp') replaced the zoo's mlp without a word")
        return Verdict("silent", "register_model('mlp') returned as if it had registered")

    def register_dataset_twice(ctx: Context) -> Any:
        from workbench.datasets import DATASETS, register_dataset

        before = DATASETS.get("digits")
        ctx.on_exit(lambda: DATASETS._factories.__setitem__("digits", before))
        register_dataset("digits")(lambda root, split: None)
        return Verdict("replaced" if DATASETS.get("digits") is not before else "silent", "registered 'digits' again")

    def adapter_twice(ctx: Context) -> Any:
        from workbench.adapters import adapter_for, register_adapter

        return register_adapter(nn.Linear, adapter_for(nn.Linear(1, 1)))

    def tied_count(ctx: Context) -> Verdict:
        model = TiedNet()
        unique = 16 * 16 + 16 + 16 + 16 * 4 + 4  # one shared 16x16 weight, two biases, the head
        got = count_params(model)
        return verdict(
            got == unique, f"{got} parameters: the shared weight counted once", "wrong", f"{got}, expected {unique}"
        )

    def no_params(ctx: Context) -> Verdict:
        found = profile(nn.Flatten(), torch.randn(1, 4, 4), latency=False)
        return verdict(found.params == 0, f"params {found.params}, MACs {found.macs}", "wrong", f"{found}")

    def export(
        model: Callable[[], nn.Module], x: Callable[[], torch.Tensor], name: str = "m.pt2", **kwargs: Any
    ) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Any:
            from workbench.export import export_model

            return export_model(model(), ctx.tmp / name, example_input=x(), **kwargs)

        return run

    def onnx_named(ctx: Context, path: Path) -> Verdict:
        return (
            Verdict("silent", f"wrote a pt2 program into {path.name} without a word")
            if path.suffix == ".onnx"
            else ok(f"{path.name}")
        )

    def one_unit_groups(ctx: Context) -> Verdict:
        model = ctx.mlp((64, 1, 10))
        result = compress(model, keep=0.5, latency=False)
        return verdict(
            _widths(result.model) == [64, 1, 10], "nothing to remove: 64-1-10 kept", "wrong", f"{_widths(result.model)}"
        )

    def leaves_input(fuse: str) -> Callable[[Context], Any]:
        def run(ctx: Context) -> Verdict:
            model = ctx.watch_model(ctx.mlp((64, 16, 10)))
            compress(model, keep=0.5, fuse=fuse, train=ctx.digits(), latency=False)
            return ok(f"fuse={fuse}: the input model is as it was")

        return run

    def pruned_input(ctx: Context) -> Verdict:
        from workbench.sparse import prune

        model = ctx.watch_model(ctx.mlp())
        smaller = prune(model, rate=0.5)
        zeros = float((smaller.layers[1].weight == 0).float().mean())
        return verdict(
            abs(zeros - 0.5) < 0.05,
            f"{zeros:.2f} of the weights zeroed, the input as it was",
            "wrong",
            f"{zeros:.2f} zeroed",
        )

    def pipeline_prune(ctx: Context) -> Verdict:
        from workbench.pipeline import run_pipeline

        model = run_pipeline(ctx.mlp(), [{"do": "prune", "rate": 0.5}])
        zeros = float((model.layers[1].weight == 0).float().mean())
        return verdict(abs(zeros - 0.5) < 0.05, f"{zeros:.2f} zeroed", "wrong", f"{zeros:.2f} zeroed")

    def meta_model(ctx: Context) -> Any:
        with torch.device("meta"):
            model = PlainNet()
        return compress(model, keep=0.5, latency=False, example_input=torch.randn(4, 16, device="meta"))

    def layers_empty(ctx: Context) -> Verdict:
        model = ctx.mlp()
        result = factorize(model, layers=[])
        same = _same_outputs(model, result, torch.randn(3, 64))
        return verdict(same, "factorize(layers=[]) leaves the model as it was", "wrong", "outputs changed")

    return [
        case(
            "compress a model whose forward takes keyword arguments",
            compressed(KeywordNet, lambda: torch.randn(4, 16)),
            expect="correct",
            check=rebuilt,
        ),
        case("compress a model whose forward needs two tensors", compressed(TwoInputs, lambda: torch.randn(4, 16))),
        case(
            "compress a model whose forward returns a dict",
            compressed(DictNet, lambda: torch.randn(4, 16)),
            expect="any",
            check=rebuilt,
        ),
        case(
            "compress a model with tied layers",
            compressed(TiedNet, lambda: torch.randn(4, 16)),
            expect="correct",
            check=tied,
        ),
        case(
            "compress a model with an LSTM inside",
            compressed(RecurrentNet, lambda: torch.randn(4, 5, 16)),
            expect="any",
            check=rebuilt,
        ),
        case(
            "compress a model reading token ids",
            compressed(TokenNet, lambda: torch.randint(0, 50, (4, 6))),
            expect="any",
            check=rebuilt,
        ),
        case("compress keep=1 of a weight_norm model", weight_norm_identity, expect="any"),
        case("compress a model on the meta device", meta_model),
        case(
            "compress a float16 model",
            compressed(lambda: ctx_free_mlp().half(), lambda: torch.randn(4, 64).half()),
            expect="any",
            check=keeps_dtype(torch.float16),
        ),
        case(
            "compress a bfloat16 model",
            compressed(lambda: ctx_free_mlp().bfloat16(), lambda: torch.randn(4, 64).bfloat16()),
            expect="any",
            check=keeps_dtype(torch.bfloat16),
        ),
        case(
            "compress lsq leaves a train-mode input as it was",
            watched(
                lambda m: compress(
                    m, keep=0.5, fuse="lsq", train=bn_data(), latency=False, example_input=torch.randn(4, 16)
                )
            ),
            expect="correct",
        ),
        case("compress merge leaves the input model as it was", leaves_input("merge"), expect="correct"),
        case(
            "compress activations leave the input model as it was",
            watched(
                lambda m: compress(
                    m, keep=0.5, source="activations", train=bn_data(), latency=False, example_input=torch.randn(4, 16)
                )
            ),
            expect="correct",
        ),
        case(
            "from_model leaves a train-mode model as it was",
            watched(lambda m: from_model(m, torch.randn(4, 16))),
            expect="correct",
        ),
        case(
            "evaluate leaves a train-mode model as it was", watched(lambda m: evaluate(m, bn_data())), expect="correct"
        ),
        case(
            "profile leaves a train-mode model as it was",
            watched(lambda m: profile(m, torch.randn(2, 16))),
            expect="correct",
        ),
        case(
            "sensitivity leaves a train-mode model as it was",
            watched(lambda m: sensitivity(m, bn_data(), example_input=torch.randn(4, 16))),
            expect="correct",
        ),
        case(
            "compress(round_to=1000) on 8-unit groups",
            lambda ctx: compress(ctx.mlp(), keep=0.5, round_to=1000, latency=False),
            expect="any",
            check=rebuilt,
        ),
        case("compress a model whose groups have 1 unit", one_unit_groups, expect="correct"),
        case(
            "compress with Retraining(epochs=-1)",
            lambda ctx: compress(ctx.mlp(), keep=0.5, retrain=Retraining(epochs=-1), train=ctx.digits(), latency=False),
        ),
        case(
            "compress distilling from a teacher of 5 classes",
            lambda ctx: compress(
                ctx.mlp(),
                keep=0.5,
                retrain=Retraining(method="distill", epochs=1, max_batches=2),
                teacher=ctx.mlp((64, 8, 5)),
                train=ctx.digits(),
                latency=False,
            ),
        ),
        case(
            "compress a user model without input_shape or example",
            lambda ctx: compress(PlainNet(), keep=0.5, latency=False),
        ),
        case("fit on inputs holding NaN", nan_inputs),
        case("fit with float targets", fit_on(lambda: (pairs()[0], torch.rand(64)))),
        case("fit with targets of shape (N, 1)", fit_on(lambda: (pairs()[0], pairs()[1][:, None]))),
        case("fit on data of one class", one_class, expect="correct"),
        case("fit(epochs=True)", fit_on(lambda: pairs(), epochs=True)),
        case("fit on a list of (x, y) pairs", fit_on(lambda: list(zip(*pairs()))), expect="any", check=trained),
        case(
            "fit on a DataLoader",
            fit_on(lambda: torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*pairs()), batch_size=8)),
            expect="any",
            check=trained,
        ),
        case("fit on a generator of batches", generator),
        case("fit on int64 inputs", fit_on(lambda: (pairs()[0].long(), pairs()[1])), expect="any", check=trained),
        case("fit on float64 inputs", fit_on(lambda: pairs(dtype=torch.float64)), expect="correct", check=trained),
        case(
            "fit an MLP of 64 inputs on 8 x 8 inputs",
            lambda ctx: fit(ctx.mlp(), (torch.randn(32, 8, 8), torch.randint(0, 10, (32,))), epochs=1, quiet=True),
            expect="any",
            check=trained,
        ),
        case(
            "distill from a teacher of 5 classes",
            lambda ctx: distill(ctx.mlp(), ctx.mlp((64, 8, 5)), ctx.digits(), epochs=1, max_batches=2, quiet=True),
        ),
        case(
            "evaluate with num_classes=3 on 10-class targets",
            lambda ctx: evaluate(ctx.mlp(), ctx.digits("test"), num_classes=3),
        ),
        case("evaluate on inputs holding NaN", nan_eval, expect="correct"),
        case("evaluate a model returning a dict", lambda ctx: evaluate(DictNet(), pairs(16))),
        case(
            "dpp on features of 1e308",
            select("dpp", features / np.abs(features).max() * 1e308),
            expect="any",
            check=kept(4),
        ),
        case("dpp on float16 features", select("dpp", features.astype(np.float16)), expect="correct", check=kept(4)),
        case("sbm on 8 identical units", select("sbm", np.ones((8, 4))), expect="any", check=kept(4)),
        case("spectral n_components=100 on 8 units", select("spectral", n_components=100)),
        case("random with a legacy RandomState", select("random", random_state=np.random.RandomState(0))),
        case("dpp on complex features", select("dpp", features.astype(np.complex128))),
        case(
            "magnitude on a scipy sparse matrix",
            lambda ctx: (
                get_selector("magnitude", budget=0.5).fit(__import__("scipy.sparse").sparse.csr_matrix(features)).keep_
            ),
            expect="any",
            check=kept(4),
        ),
        case("get_selector with preset 'nosuch'", lambda ctx: get_selector("dpp", preset="nosuch")),
        case(
            "sample_k_dpp on a 1 x 1 kernel",
            lambda ctx: sample_k_dpp(np.ones((1, 1)), 1, random_state=0),
            expect="correct",
            check=kept(1),
        ),
        case(
            "greedy_map_dpp with k above the kernel's rank",
            lambda ctx: greedy_map_dpp(np.ones((6, 6)), 3),
            expect="any",
            check=kept(3),
        ),
        case(
            "plan_from keep=1e-300 keeps one unit",
            lambda ctx: plan_from(from_model(ctx.mlp()), get_selector("magnitude"), keep=1e-300),
            expect="correct",
            check=lambda ctx, plan: verdict(
                all(s.k == 1 for _, s in plan.items()), "1 unit per group", "wrong", f"{[s.k for _, s in plan.items()]}"
            ),
        ),
        case(
            "plan_from per_layer fraction 0",
            lambda ctx: plan_from(from_model(ctx.mlp()), get_selector("magnitude"), per_layer={"layers.1": 0.0}),
        ),
        case(
            "Plan.from_json of a plan with n_units 0",
            lambda ctx: Plan.from_json(
                json.dumps(
                    {
                        "format": "workbench-plan",
                        "selections": {
                            "layers.1": {"group": "layers.1", "n_units": 0, "keep": [], "assign": [], "scores": []}
                        },
                    }
                )
            ),
        ),
        case(
            "apply fuse='lsq' without data",
            lambda ctx: apply(ctx.mlp(), plan_from(from_model(ctx.mlp()), get_selector("magnitude")), fuse="lsq"),
        ),
        case(
            "apply with an example input of the wrong shape",
            lambda ctx: apply(
                ctx.mlp(), plan_from(from_model(ctx.mlp()), get_selector("magnitude")), example_input=torch.randn(2, 63)
            ),
        ),
        case("apply a plan again to the model it made", legacy_plan),
        case(
            "factorize budget=1e-9",
            lambda ctx: factorize(ctx.mlp((64, 16, 10)), budget=1e-9),
            expect="any",
            check=lambda ctx, m: ok(f"{_count(m)} parameters"),
        ),
        case("factorize energy=1.5", lambda ctx: factorize(ctx.mlp(), energy=1.5, budget=None)),
        case("factorize layers=[]", layers_empty, expect="correct"),
        case("svd_linear rank=0", lambda ctx: svd_linear(nn.Linear(16, 8), rank=0)),
        case("sparse_decompose of an MLP (no conv layer)", lambda ctx: sparse_decompose(ctx.mlp())),
        case("prune rate=0.5 leaves the input model", pruned_input, expect="correct"),
        case(
            "huffman_code of a model without shared weights",
            lambda ctx: __import__("workbench.quantize").quantize.huffman_code(ctx.mlp()),
        ),
        case(
            "run_pipeline with no steps",
            lambda ctx: __import__("workbench.pipeline").pipeline.run_pipeline(ctx.mlp(), []),
        ),
        case("run_pipeline prune without data", pipeline_prune, expect="correct"),
        case(
            "create_model mlp with widths as a tuple",
            lambda ctx: create_model("mlp", widths=(64, 8, 10)),
            expect="correct",
            check=lambda ctx, m: verdict(_widths(m) == [64, 8, 10], "64-8-10", "wrong", f"{_widths(m)}"),
        ),
        case("create_model with random_state=np.int64(3)", same_weights, expect="correct"),
        case(
            "create_model_for_data lenet5 on 8 x 8 images",
            lambda ctx: create_model_for_data("lenet5", (1, 8, 8), 10),
            expect="any",
            check=lambda ctx, m: ok(f"{_count(m)} parameters"),
        ),
        case("create_model_for_data mlp with 0 classes", lambda ctx: create_model_for_data("mlp", (64,), 0)),
        case("register_model('mlp') over the zoo's", register_twice),
        case("register_dataset('digits') over the built-in", register_dataset_twice),
        case("register_adapter(nn.Linear) without replace", adapter_twice),
        case("load_dataset('digits', split='TRAIN')", lambda ctx: load_dataset("digits", split="TRAIN")),
        case(
            "load_dataset('mnist1d', num_samples=10**9)",
            lambda ctx: load_dataset("mnist1d", num_samples=10**9),
            limit=30,
        ),
        case("load_dataset('shapes', size=100000)", lambda ctx: load_dataset("shapes", size=100_000), limit=30),
        case(
            "ArrayDataset of float64 inputs",
            lambda ctx: ArrayDataset(
                torch.zeros(4, 3, dtype=torch.float64),
                torch.zeros(4, dtype=torch.long),
                name="x",
                split="train",
                num_classes=2,
            ),
        ),
        case("export_model format='PT2'", export(lambda: ctx_free_mlp(), lambda: torch.randn(1, 64), format="PT2")),
        case(
            "export_model of a model with data-dependent control flow",
            export(BranchNet, lambda: torch.randn(1, 16)),
            expect="any",
            check=lambda ctx, p: ok(p.name),
        ),
        case(
            "export_model pt2 into a file named .onnx",
            export(lambda: ctx_free_mlp(), lambda: torch.randn(1, 64), name="m.onnx"),
            expect="any",
            check=onnx_named,
        ),
        case("count_params counts a tied weight once", tied_count, expect="correct"),
        case("profile of a model without parameters", no_params, expect="correct"),
        case(
            "profile with a float64 example input",
            lambda ctx: profile(ctx.mlp(), torch.randn(1, 64, dtype=torch.float64), latency=False),
            expect="any",
            check=lambda ctx, p: verdict(p.params == MLP_PARAMS, f"params {p.params}", "wrong", f"{p}"),
        ),
    ]


def ctx_free_mlp() -> nn.Module:
    from workbench.zoo import create_model

    return create_model("mlp", random_state=0, widths=[64, 8, 10])


# ------------------------------------------------------------------------------ failures at the time of writing

#: Case -> "outcome: why" for the cases that failed when this probe was written (a fix shows as a flip).
KNOWN: dict[str, str] = {
    # "category/case name": "outcome: why" of each case that fails now (none at present). The last run before the
    # fixes found 67 of 306: 23 raw tracebacks, 33 accepted silently, 7 wrong results, 4 replaced files.
}


# -------------------------------------------------------------------------------------------------- main

CASE_MAKERS = {
    "cli": cli_cases,
    "checkpoints": checkpoint_cases,
    "data": data_cases,
    "study-files": study_file_cases,
    "study-runs": study_run_cases,
    "api": api_cases,
}


def all_cases(categories: Sequence[str] = CATEGORIES) -> list[Case]:
    """Every case of ``categories``, in category order (names are unique within a category)."""
    cases = [case for category in categories for case in CASE_MAKERS[category]()]
    keys = Counter(case.key for case in cases)
    repeated = [key for key, count in keys.items() if count > 1]
    assert not repeated, f"case names given twice: {repeated}"
    stale = [key for key in KNOWN if key.split("/")[0] in categories and key not in keys]
    assert not stale, f"KNOWN names cases that do not exist: {stale}"
    for case in cases:
        case.known = KNOWN.get(case.key, case.known)
    return cases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--category", help=f"comma-separated categories ({', '.join(CATEGORIES)}); default all")
    parser.add_argument("--list", action="store_true", help="list the cases and what is expected of each, run nothing")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument(
        "--limit", type=float, default=None, help="seconds before a case counts as hung (default per case)"
    )
    args = parser.parse_args(argv)
    categories = CATEGORIES
    if args.category:
        categories = tuple(name.strip() for name in args.category.split(","))
        unknown = [name for name in categories if name not in CATEGORIES]
        if unknown:
            parser.error(f"unknown categories {unknown}; choose from {', '.join(CATEGORIES)}")
    cases = all_cases(categories)
    if args.list:
        for case in cases:
            known = f"  [fails now: {case.known}]" if case.known else ""
            print(f"{case.category:<12} expect {case.expect:<8} {case.name}{known}")
        print(f"\n{len(cases)} cases")
        return 0
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()
    results = run_cases(cases, limit=args.limit)
    seconds = time.perf_counter() - start
    print(format_report(results))
    print(f"\n{len(results)} cases in {seconds:.0f} s")
    if args.json:
        payload = {
            "summary": summarize(results),
            "seconds": round(seconds, 1),
            "cases": [r.__dict__ for r in results],
        }
        Path(args.json).write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
