"""Faults under a running study: a Dask cluster that loses every worker or its scheduler, a parent killed
with its local worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

# Two train runs (a base model and a baseline) that each take tens of seconds, then compression runs.
SLOW = """
[study]
name = "slow"
seeds = [0]
latency = false

[[models]]
label = "slow MLP"
name = "mlp"
args = { widths = [256, 256, 10] }
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
