"""Two `workbench study run` processes on one store, and interrupted runs: a run another live process holds
is named with that process and not counted as stored, the command fails (or waits for it with --wait, taking
over what a killed process left); Ctrl-C leaves one line and a store to resume, with local processes or a
local Dask cluster."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.test_study_faults import SLOW  # runs of tens of seconds: interrupted long before they end
from tests.test_study_inputs import TINY
from workbench.cli import main
from workbench.study import Store, expand, load_study
from workbench.study import runner as study_runner

ROOT = Path(__file__).resolve().parents[1]


# `workbench study run` whose runs wait for a gate file before they compute (it holds its claims meanwhile).
GATED = """
import sys, time, pathlib
import workbench.study.execute as execute
real, gate = execute.execute, pathlib.Path(sys.argv[2])
def gated(config, cache, threads=1):
    (gate.parent / "started").touch()
    while not gate.exists():
        time.sleep(0.05)
    return real(config, cache, threads)
execute.execute = gated
from workbench.cli import main
sys.exit(main(["study", "run", sys.argv[1], "--quiet"]))
"""


def _wait_for(condition, seconds, step=0.05):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture
def first(tmp_path):
    """A `workbench study run` of the tiny study in another process, holding all its runs until ``open()``."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    gate = tmp_path / "gate"
    process = subprocess.Popen(
        [sys.executable, "-c", GATED, str(path), str(gate)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _wait_for(lambda: (tmp_path / "started").exists() or process.poll() is not None, 60)
    assert process.poll() is None, process.communicate()
    process.path, process.store, process.open = path, tmp_path / "tiny.sqlite", gate.touch
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate()


@pytest.fixture
def quick_wait(monkeypatch):
    """--wait looks every 0.1 s, and gives up (fails the test) after 60 s instead of waiting for ever."""
    monkeypatch.setattr(study_runner, "WAIT_POLL", 0.1)
    settle, deadline = study_runner._settle, time.monotonic() + 60

    def bounded(*args, **kwargs):
        assert time.monotonic() < deadline, "still waiting for the other process after 60 s"
        return settle(*args, **kwargs)

    monkeypatch.setattr(study_runner, "_settle", bounded)


def _rows(store):
    with Store(store, readonly=True) as db:
        return {row["hash"]: row["status"] for row in db.rows()}, db.claims()


def test_runs_another_process_holds_are_named_not_counted_as_stored_and_fail_the_command(first, capsys):
    host = socket.gethostname()
    assert main(["study", "run", str(first.path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "2 runs (0 already stored, 0 done, 0 failed, 2 held by another process)" in out
    assert f"2 runs are held by process {first.pid} on host {host}" in out and "--wait" in out
    assert "tiny MLP" in out
    rows, claims = _rows(first.store)
    assert rows == {} and {owner[0] for owner in claims.values()} == {first.pid}  # its claims stay its own
    first.open()
    assert first.wait(timeout=60) == 0
    assert main(["study", "run", str(first.path), "--quiet"]) == 0
    assert "2 runs (2 already stored, 0 done, 0 failed)" in capsys.readouterr().out


def test_wait_lets_the_other_process_finish_its_runs(first, capsys, quick_wait):
    threading.Timer(1.0, first.open).start()
    assert main(["study", "run", str(first.path), "--quiet", "--wait"]) == 0
    out = capsys.readouterr().out
    assert "2 runs (0 already stored, 0 done, 2 done by another process, 0 failed)" in out and "held" not in out
    assert first.wait(timeout=60) == 0
    rows, claims = _rows(first.store)
    assert set(rows.values()) == {"done"} and len(rows) == 2 and claims == {}


def test_wait_takes_over_the_runs_of_a_killed_process(first, capsys, quick_wait):
    threading.Timer(1.0, first.kill).start()
    assert main(["study", "run", str(first.path), "--quiet", "--wait"]) == 0
    out = capsys.readouterr().out
    assert "2 runs (0 already stored, 2 done, 0 failed)" in out
    rows, claims = _rows(first.store)
    runs = expand(load_study(first.path))
    assert rows == {run.hash: "done" for run in runs} and claims == {}


def _interrupt(tmp_path, extra, ready, group, settle=0.0):
    """Start ``workbench study run SLOW extra``, send SIGINT ``settle`` s after ``ready(process)`` (to the process
    group, as the terminal's Ctrl-C does, or to the process alone); return (rc, stderr, store)."""
    path = tmp_path / "slow.toml"
    path.write_text(SLOW)
    command = [sys.executable, "-m", "workbench.cli", "study", "run", str(path), "--quiet", *extra]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert _wait_for(lambda: ready(psutil.Process(process.pid)) or process.poll() is not None, 60)
        assert process.poll() is None, "the study ended before it could be interrupted"
        time.sleep(settle)
        (os.killpg if group else os.kill)(process.pid, signal.SIGINT)  # the terminal's Ctrl-C / a kill -INT
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return process.returncode, err, tmp_path / "slow.sqlite"


def _workers(process, marker):
    found = []
    for child in process.children(recursive=True):
        try:
            if marker in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _resumable(store):
    db = sqlite3.connect(store)
    try:
        claims = db.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
        statuses = {row[0] for row in db.execute("SELECT status FROM runs")}
    finally:
        db.close()
    return claims == 0 and statuses <= {"done"}  # nothing held, nothing stored as failed: a rerun computes the rest


def test_ctrl_c_on_a_local_dask_cluster_is_one_line_and_leaves_a_store_to_resume(tmp_path):
    code, err, store = _interrupt(
        tmp_path, ["--local-cluster", "2"], lambda p: len(_workers(p, "spawn_main")) >= 2, group=True, settle=2.0
    )
    assert code == 130 and err.strip().splitlines() == ["interrupted"], err
    assert _resumable(store)


def _busy(workers, seconds):
    """Whether every one of ``workers`` has run ``seconds`` of CPU time (imported what it needs, and training)."""
    try:
        return len(workers) >= 2 and all(sum(w.cpu_times()[:2]) >= seconds for w in workers)
    except psutil.Error:
        return False


def test_an_interrupted_study_on_local_processes_leaves_no_semaphore_behind(tmp_path):
    code, err, store = _interrupt(tmp_path, ["--jobs", "2"], lambda p: _busy(_workers(p, "popen_loky"), 5.0), False)
    assert code == 130 and err.strip().splitlines() == ["interrupted"], err  # no resource_tracker warning
    assert _resumable(store)
