"""Running studies: here, on local processes, on a Dask LocalCluster; failures, resume after a kill, the report."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from workbench.datasets import load_dataset
from workbench.errors import StudyError
from workbench.study import Store, expand, load_study, run_study, write_report
from workbench.study.runner import cache_dir_for

SMALL = """
[study]
name = "small"
seeds = [0]

[[models]]
label = "tiny MLP"
name = "mlp"
args = { widths = [64, 16, 10] }
data = "digits"
training = { epochs = 2 }

[selectors]
random = {}
magnitude = {}

[compression]
budgets = [0.5, { keep = 0.5, per_layer = { "no_such_layer" = 0.5 } }]
fuse = ["drop", "lsq"]

[finetune]
epochs = 1

[baselines]
models = [{ name = "lenet300", data = "digits", training = { epochs = 1, max_batches = 2 } }]
"""


def write_study(tmp_path, text=SMALL, name="small.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def stored(path):
    with Store(path, readonly=True) as store:
        return {row["hash"]: row for row in store.rows()}


def test_run_records_every_run_goes_on_after_failures_and_skips_finished_runs(tmp_path):
    study = load_study(write_study(tmp_path))
    runs = expand(study)
    outcome = run_study(study, quiet=True)
    assert outcome.total == len(runs) == 2 + 2 * 2 * 2
    assert (outcome.done, outcome.failed) == (6, 4)  # the per-layer budget names a group that does not exist
    rows = stored(tmp_path / "small.sqlite")
    assert set(rows) == {run.hash for run in runs}
    failed = [row for row in rows.values() if row["status"] == "failed"]
    assert all(
        "'no_such_layer' is not a prunable group" in row["error"] and "layers.1" in row["error"] for row in failed
    )
    done = [row for row in rows.values() if row["status"] == "done" and row["kind"] == "compress"]
    base = next(row for row in rows.values() if row["kind"] == "train" and row["config"]["role"] == "base")
    n_train = len(load_dataset("digits", split="train"))
    for row in done:
        metrics = row["metrics"]
        assert metrics["params"] < metrics["base_params"] and metrics["macs"] < metrics["base_macs"]
        # every run compresses the one stored base model, and is scored on the same test and val sets
        assert metrics["base_accuracy"] == base["metrics"]["accuracy"] and metrics["n"] == base["metrics"]["n"]
        assert metrics["val_n"] == base["metrics"]["val_n"] > 0
        assert metrics["retrain_samples"] == n_train and metrics["teacher"] == "none"  # one epoch of fine-tuning
        for key in ("accuracy", "accuracy_rebuilt"):  # shares of the n test samples, not of another set
            assert metrics[key] * metrics["n"] == pytest.approx(round(metrics[key] * metrics["n"]), abs=1e-6)
        assert metrics["latency_ms"] > 0
        assert row["plan"]["format"] == "workbench-plan" and row["config"]["selector"] in ("random", "magnitude")
        kept = [len(sel["keep"]) for sel in row["plan"]["selections"].values()]
        assert kept == [8]  # half of the 16 hidden units
    assert len(list(cache_dir_for(tmp_path / "small.sqlite").glob("*.pt"))) == 2  # one base model, one baseline
    again = run_study(study, quiet=True)
    assert again.skipped == 6 and again.done == 0 and again.failed == 4  # failed runs are tried again
    assert {h: r["finished"] for h, r in stored(tmp_path / "small.sqlite").items() if r["status"] == "done"} == {
        h: r["finished"] for h, r in rows.items() if r["status"] == "done"
    }


def test_local_processes_give_the_same_results_as_one_process(tmp_path):
    text = SMALL.replace(', { keep = 0.5, per_layer = { "no_such_layer" = 0.5 } }', "").replace(
        "[baselines]\nmodels = [", "#"
    )
    text = text.replace('{ name = "lenet300", data = "digits", training = { epochs = 1, max_batches = 2 } }]', "")
    path = write_study(tmp_path, text)
    here = run_study(path, store=tmp_path / "one.sqlite", quiet=True)
    there = run_study(path, store=tmp_path / "two.sqlite", jobs=2, quiet=True)
    assert here.failed == there.failed == 0 and here.done == there.done == 5
    one, two = stored(tmp_path / "one.sqlite"), stored(tmp_path / "two.sqlite")
    assert {h: r["metrics"]["accuracy"] for h, r in one.items()} == {
        h: r["metrics"]["accuracy"] for h, r in two.items()
    }


def test_study_on_a_local_dask_cluster(tmp_path):
    text = SMALL.replace(', { keep = 0.5, per_layer = { "no_such_layer" = 0.5 } }', "").replace(
        'fuse = ["drop", "lsq"]', 'fuse = ["drop"]'
    )
    outcome = run_study(write_study(tmp_path, text), local_cluster=2, timeout=30, quiet=True)
    assert (outcome.total, outcome.done, outcome.failed) == (4, 4, 0)
    assert all(row["status"] == "done" for row in stored(tmp_path / "small.sqlite").values())


def test_a_scheduler_that_does_not_answer_is_a_clear_error_not_a_hang(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free once closed: nothing listens there
    start = time.perf_counter()
    with pytest.raises(StudyError, match="no Dask scheduler answered at tcp://127.0.0.1"):
        run_study(write_study(tmp_path), scheduler=f"tcp://127.0.0.1:{port}", timeout=1, quiet=True)
    assert time.perf_counter() - start < 20


def test_a_killed_study_resumes_where_it_stopped(tmp_path):
    text = SMALL.replace(', { keep = 0.5, per_layer = { "no_such_layer" = 0.5 } }', ", 0.25, 0.75").replace(
        "[finetune]\nepochs = 1", "[finetune]\nepochs = 3"
    )
    path = write_study(tmp_path, text)
    store = tmp_path / "small.sqlite"
    command = [sys.executable, "-m", "workbench.cli", "study", "run", str(path), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        done = 0
        while time.time() < deadline and process.poll() is None:
            if store.exists():
                try:
                    done = (
                        sqlite3.connect(store)
                        .execute("SELECT COUNT(*) FROM runs WHERE status = 'done' AND kind = 'compress'")
                        .fetchone()[0]
                    )
                except sqlite3.Error:
                    done = 0
                if done >= 1:
                    break
            time.sleep(0.02)
        assert process.poll() is None, "the study finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    before = {h: r for h, r in stored(store).items() if r["status"] == "done"}
    total = len(expand(load_study(path)))
    assert 1 <= len(before) < total
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"({len(before)} already stored, {total - len(before)} done, 0 failed)" in result.stdout
    after = stored(store)
    assert len(after) == total and all(row["status"] == "done" for row in after.values())
    assert sqlite3.connect(store).execute("SELECT COUNT(*) FROM runs").fetchone()[0] == total
    for run_hash, row in before.items():
        assert after[run_hash]["finished"] == row["finished"] and after[run_hash]["metrics"] == row["metrics"]


def test_report_is_one_self_contained_page_with_contents_first(tmp_path):
    path = write_study(tmp_path)
    run_study(path, quiet=True)
    report = write_report(path)
    page = report.read_text()
    assert report == tmp_path / "small-report.html"
    assert page.count("window.PlotlyConfig") == 1 and len(page) > 1_000_000  # plotly.js embedded, once
    # cost and overlap; a uniform budget's kept-per-layer chart would repeat the budget, a sentence says so
    assert "<script src" not in page and page.count("Plotly.newPlot") == 2
    assert "so no per-layer chart is drawn" in page
    contents = page.index("Contents")
    assert contents < page.index("Plotly.newPlot") and "tiny MLP" in page[contents : page.index("Plotly.newPlot")]
    for title in (
        "Which method gives the best accuracy for its cost?",
        "What did each selector keep, layer by layer?",
        "lenet300",
        "Failed runs (4)",
        "single seed",
    ):
        assert title in page, title
    assert (tmp_path / "small-report-runs.csv").is_file() and (tmp_path / "small-report-runs.json").is_file()


def test_report_and_run_of_unusable_inputs(tmp_path, capsys):
    from workbench.cli import main

    path = write_study(tmp_path)
    with pytest.raises(StudyError, match="no store at"):
        write_report(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not sqlite")
    assert main(["study", "run", str(path), "--store", str(junk), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not a SQLite database" in err and "Traceback" not in err
    assert junk.read_text() == "not sqlite"
