"""Faults under a running study: a Dask cluster that loses every worker or its scheduler, a parent killed
with its local worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from workbench.errors import ConfigError, StudyError
from workbench.study import Store, expand, load_study, run_study, study_from_dict, write_report

ROOT = Path(__file__).resolve().parents[1]

# Two train runs (a base model and a baseline) that each take tens of seconds, then compression runs.
SLOW = """
[study]
name = "slow"
seeds = [0]
latency = false

[[models]]
label = "slow MLP"
name = "mlp"
args = { widths = [64, 256, 256, 10] }
data = "digits"
training = { epochs = 400 }

[selectors]
random = {}

[compression]
budgets = [0.5]

[finetune]
epochs = 0

[baselines]
models = [{ name = "lenet300", data = "digits", training = { epochs = 400 } }]
"""


def _wait_for(condition, seconds, step=0.1):
    """Poll ``condition`` until it returns something true or ``seconds`` pass; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def _end(processes):
    """SIGKILL each of ``processes`` (psutil.Process) still alive, and reap them."""
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=5)


def _loky_workers(process):
    found = []
    for child in process.children():
        try:
            if "popen_loky" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _alive(processes):
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_local_workers_end_with_a_killed_parent(tmp_path):
    path = tmp_path / "slow.toml"
    path.write_text(SLOW)
    command = [sys.executable, "-m", "workbench.cli", "study", "run", str(path), "--jobs", "2", "--quiet"]
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    children: list[psutil.Process] = []
    try:
        me = psutil.Process(parent.pid)
        assert _wait_for(lambda: len(_loky_workers(me)) >= 2, 90), "the study never started its two workers"
        time.sleep(1.0)  # the workers are running their first runs
        children = me.children(recursive=True)
        assert len(children) >= 2
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        left = _wait_for(lambda: not _alive(children), 10)
        assert left, f"still alive 10 s after the parent was killed: {[(p.pid, p.cmdline()) for p in _alive(children)]}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        _end(children)
        parent.stdout.close()


# --------------------------------------------------------------------------------------------------
# a Dask cluster of separate processes: a scheduler and workers without nannies (so that a killed
# worker stays dead), on 127.0.0.1


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _dask_cluster(tmp_path, workers):
    """Start a scheduler and ``workers`` workers; yield (address, scheduler, workers) as Popen objects;
    every process started is killed on the way out."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started: list[subprocess.Popen] = []
    log = open(tmp_path / "cluster.log", "wb")

    def start(*args):
        started.append(subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=tmp_path, stdout=log, stderr=log))
        return started[-1]

    try:
        scheduler = start(
            "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
            "--no-dashboard",
        )  # fmt: skip
        crew = [
            start("distributed.cli.dask_worker", address, "--no-nanny", "--nthreads", "1", "--no-dashboard",
                  "--host", "127.0.0.1", "--memory-limit", "0", "--name", f"worker-{i}")
            for i in range(workers)
        ]  # fmt: skip
        yield address, scheduler, crew
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
        for process in started:
            process.wait(timeout=10)
        log.close()


def _wait_until_busy(address, runs):
    """Wait until the scheduler has ``runs`` tasks on its workers."""
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        busy = _wait_for(lambda: sum(map(len, client.processing().values())) >= runs, 60, step=0.2)
    assert busy, "the study never started its runs on the cluster"


def _stopped_study(tmp_path, workers, kill, worker_timeout):
    """Run the slow study with ``workbench study run`` on a cluster of ``workers``, and ``kill`` (address,
    scheduler, workers) once its first runs are running; its exit status and error output, the seconds
    from the kill to its end, and the stored rows."""
    path = tmp_path / "slow.toml"
    path.write_text(SLOW)
    with _dask_cluster(tmp_path, workers) as (address, scheduler, crew):
        command = [sys.executable, "-m", "workbench.cli", "study", "run", str(path), "--scheduler", address]
        command += ["--timeout", "30", "--worker-timeout", str(worker_timeout), "--quiet"]
        study = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_until_busy(address, min(workers, 2))
            kill(address, scheduler, crew)
            killed = time.monotonic()
            _, errors = study.communicate(timeout=60)
            seconds = time.monotonic() - killed
        finally:
            if study.poll() is None:
                study.kill()
                study.wait(timeout=10)
    with Store(tmp_path / "slow.sqlite", readonly=True) as store:
        rows = store.rows()
    return study.returncode, errors, seconds, rows


def test_a_dask_study_stops_when_no_worker_is_left_and_stores_its_runs_as_not_run(tmp_path):
    def kill_workers(address, scheduler, workers):
        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)

    status, message, seconds, rows = _stopped_study(tmp_path, 2, kill_workers, worker_timeout=2)
    assert status == 2 and message.startswith("error: no Dask worker was alive at tcp://127.0.0.1:")
    assert "for 2 s" in message and "start workers with `dask worker tcp://127.0.0.1:" in message
    assert "the 3 runs left are stored as not run; run the study again" in message and "Traceback" not in message
    assert seconds >= 2  # it waited for workers to come back
    assert len(rows) == 3 and {row["status"] for row in rows} == {"not run"}  # not "failed"
    assert all("no Dask worker was alive" in row["error"] for row in rows)


def test_a_lost_dask_scheduler_is_named_and_stops_the_study_without_waiting_for_workers(tmp_path):
    def kill_scheduler(address, scheduler, workers):
        os.kill(scheduler.pid, signal.SIGKILL)

    status, message, seconds, rows = _stopped_study(tmp_path, 1, kill_scheduler, worker_timeout=30)
    assert status == 2 and message.startswith("error: the Dask scheduler at tcp://127.0.0.1:")
    assert "was lost" in message and "Traceback" not in message
    assert "worker" not in message.split(";")[0]  # not blamed on a worker
    assert seconds < 30  # it did not wait for the worker timeout
    assert len(rows) == 3 and {row["status"] for row in rows} == {"not run"}
    assert all("scheduler" in row["error"] and "was lost" in row["error"] for row in rows)


FAST = SLOW.replace("epochs = 400", "epochs = 1, max_batches = 2").replace("latency = false", "latency = false\n")


def test_runs_stored_as_not_run_are_counted_as_such_and_run_by_the_next_study_run(tmp_path):
    path = tmp_path / "fast.toml"
    path.write_text(FAST)
    study = load_study(path)
    runs = expand(study)
    with Store(tmp_path / "fast.sqlite") as store:
        for run in runs:
            result = {"hash": run.hash, "status": "not run", "error": "the study stopped: test"}
            store.write(result, study="slow", kind=run.kind, label=run.label, config=run.config)
    page = write_report(path).read_text()
    assert f"{len(runs)} runs: 0 done, 0 failed, {len(runs)} not run" in page
    outcome = run_study(study, where=lambda run: run.kind == "train", quiet=True)
    assert (outcome.total, outcome.skipped, outcome.done, outcome.failed) == (2, 0, 2, 0)


def test_the_worker_timeout_is_a_positive_study_setting(tmp_path):
    base = {"study": {"name": "s"}, "models": [{"name": "mlp", "data": "digits"}], "selectors": {"random": {}}}
    base["compression"] = {"budgets": [0.5]}
    assert study_from_dict(base).cluster.worker_timeout == 60
    assert study_from_dict({**base, "cluster": {"worker_timeout": 5}}).cluster.worker_timeout == 5
    with pytest.raises(StudyError, match="cluster.worker_timeout"):
        study_from_dict({**base, "cluster": {"worker_timeout": 0}})
    with pytest.raises(ConfigError, match="worker_timeout is a positive number of seconds"):
        run_study(study_from_dict(base), store=tmp_path / "s.sqlite", worker_timeout=-1, quiet=True)
