"""Study inputs a hostile user gives: repeated labels, damaged stores, foreign databases, a second
process on the same store, and grids too large to run by mistake."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys

import pytest

from workbench.cli import main
from workbench.errors import StudyError
from workbench.study import Store, expand, load_study, run_study
from workbench.study.schema import study_from_dict
from workbench.study.summary import collect, summary_table

TINY = """
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


def _study(models, **extra):
    return {
        "study": {"name": "labels", **extra},
        "models": models,
        "selectors": {"magnitude": {}},
        "compression": {"budgets": [0.5]},
    }


MLP = {"name": "mlp", "args": {"widths": [40, 100, 10]}, "data": "mnist1d"}


def test_two_models_with_one_label_are_refused_naming_both():
    models = [{**MLP, "label": "MLP"}, {**MLP, "label": "other"}, {**MLP, "label": "MLP", "training": {"lr": 0.01}}]
    with pytest.raises(StudyError, match=r"models\[0\] and models\[2\] have the same label 'MLP'"):
        study_from_dict(_study(models))


def test_unlabelled_models_that_differ_only_in_training_are_kept_apart():
    models = [MLP, {**MLP, "training": {"lr": 0.01}}]
    study = study_from_dict(_study(models))
    labels = [entry.display for entry in study.models]
    assert labels[0] != labels[1] and "lr 0.01" in labels[1] and "lr 0.001" in labels[0]
    # each model keeps its own row in the summary (before, both were one row holding the mean)
    runs = expand(study)
    rows = [
        {
            "hash": run.hash,
            "status": "done",
            "metrics": {"accuracy": 0.6295 if run.config["model"]["training"]["lr"] == 0.001 else 0.961},
            "error": None,
            "seconds": 1.0,
        }
        for run in runs
    ]
    table = summary_table(collect(study, rows))
    assert sorted(row["keep 0.5"] for row in table) == [0.6295, 0.961]
    # identical entries are the same runs: one label, stored once
    same = study_from_dict(_study([MLP, dict(MLP)]))
    assert same.models[0].display == same.models[1].display == "mlp(widths=[40, 100, 10])"


def _tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def _damage(store, run_hash, column="metrics_json"):
    db = sqlite3.connect(store)
    db.execute(f"UPDATE runs SET {column} = ? WHERE hash = ?", ('{"accuracy": 0.9', run_hash))
    db.commit()
    db.close()


def test_a_damaged_row_is_named_skipped_in_reports_and_computed_again(tmp_path, capsys):
    path = _tiny(tmp_path)
    store = tmp_path / "tiny.sqlite"
    assert main(["study", "run", str(path), "--quiet"]) == 0
    compress = next(run for run in expand(load_study(path)) if run.kind == "compress")
    _damage(store, compress.hash)
    capsys.readouterr()

    assert main(["study", "report", str(path)]) == 0
    err = capsys.readouterr().err
    assert compress.hash in err and "damaged" in err and "Traceback" not in err
    page = (tmp_path / "tiny-report.html").read_text()
    assert "1 damaged in the store" in page and compress.hash in page

    assert main(["study", "run", str(path), "--quiet", "--json"]) == 0
    captured = capsys.readouterr()
    assert compress.hash in captured.err and "Traceback" not in captured.err
    assert '"done": 1' in captured.out and '"skipped": 1' in captured.out
    with Store(store, readonly=True) as db:
        rows = {row["hash"]: row for row in db.rows()}
        assert not db.damaged
    assert rows[compress.hash]["status"] == "done" and "accuracy" in rows[compress.hash]["metrics"]


def test_a_foreign_database_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "app.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    db.execute("INSERT INTO users VALUES (1, 'ada')")
    db.commit()
    db.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StudyError, match="tables users"):
        Store(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.sqlite"]  # no -wal / -shm files
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_an_empty_database_is_adopted(tmp_path):
    path = tmp_path / "empty.sqlite"
    sqlite3.connect(path).execute("PRAGMA user_version = 1").connection.close()
    with Store(path) as db:
        assert db.status() == {}


@pytest.fixture
def other_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_runs_claimed_by_a_live_process_are_left_to_it(tmp_path, other_process):
    path = _tiny(tmp_path)
    store = tmp_path / "tiny.sqlite"
    runs = expand(load_study(path))
    with Store(store) as db:
        assert db.claim(run.hash for run in runs) == {}
        assert set(db.claims()) == {run.hash for run in runs}
        db.release()
    db = sqlite3.connect(store)
    compress = next(run for run in runs if run.kind == "compress")
    db.execute(
        "INSERT INTO claims (hash, pid, host, since) VALUES (?, ?, ?, strftime('%s','now'))",
        (compress.hash, other_process, __import__("socket").gethostname()),
    )
    db.commit()
    db.close()
    outcome = run_study(path, quiet=True)
    assert outcome.claimed_elsewhere == 1 and outcome.done == 1 and outcome.skipped == 0  # held: not stored
    assert outcome.held == {compress.label: f"process {other_process} on host {__import__('socket').gethostname()}"}
    with Store(store, readonly=True) as db:
        assert set(db.claims()) == {compress.hash}  # the other process's claim stays; ours are released
        assert {row["hash"] for row in db.rows()} == {runs[0].hash}


def test_a_claim_of_a_dead_process_or_too_old_is_taken_over(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store = tmp_path / "s.sqlite"
    host = __import__("socket").gethostname()
    with Store(store) as db:
        db._db.execute("INSERT INTO claims VALUES ('dead', ?, ?, strftime('%s','now'))", (proc.pid, host))
        db._db.execute("INSERT INTO claims VALUES ('old', 1, 'elsewhere', 0)")
        db._db.execute("INSERT INTO claims VALUES ('fresh', 1, 'elsewhere', strftime('%s','now'))")
        assert db.claim(["dead", "old", "fresh", "new"]) == {"fresh": (1, "elsewhere")}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process start times are read from /proc")
def test_a_claim_whose_pid_now_names_a_later_process_is_taken_over(tmp_path, other_process):
    """A crashed study's PID reused by another process: that process started after the claim, so it is not the
    claimant, and the claim is stale; a claim made after the process started stays its own."""
    host = __import__("socket").gethostname()
    with Store(tmp_path / "s.sqlite") as db:
        db._db.execute("INSERT INTO claims VALUES ('reused', ?, ?, strftime('%s','now') - 600)", (other_process, host))
        db._db.execute("INSERT INTO claims VALUES ('held', ?, ?, strftime('%s','now'))", (other_process, host))
        assert db.claim(["reused", "held"]) == {"held": (other_process, host)}


def test_a_grid_larger_than_the_limit_is_refused_unless_forced(tmp_path, capsys):
    big = TINY.replace("seeds = [0]", f"seeds = {list(range(60))}").replace(
        "budgets = [0.5]", f"budgets = {[round(0.01 * k, 2) for k in range(1, 100)]}"
    )
    path = tmp_path / "big.toml"
    path.write_text(big)
    with pytest.raises(StudyError, match="expands to 6,000 runs"):
        run_study(path, where=lambda run: False, quiet=True)  # refused before anything runs or is stored
    assert not (tmp_path / "big.sqlite").exists()
    assert main(["study", "report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "expands to 6,000 runs, more than study.max_runs = 5,000" in err and "--force" in err
    # forced: the grid is accepted (the report then finds no store, a different error)
    assert main(["study", "report", str(path), "--force"]) == 2
    assert "no store at" in capsys.readouterr().err
    path.write_text(big.replace('name = "tiny"', 'name = "tiny"\nmax_runs = 6000'))
    assert len(expand(load_study(path))) == 6000


def test_runs_of_a_phase_start_with_those_whose_base_trained_longest(tmp_path):
    """A phase should not end on one long run (ENet's controls) while the other workers idle."""
    from workbench.study.runner import longest_first
    from workbench.study.versions import RESULTS_VERSION

    with Store(tmp_path / "s.sqlite") as db:
        for key, seconds in (("quick", 2.0), ("slow", 90.0)):
            result = {"hash": key, "status": "done", "started": "", "finished": "", "seconds": seconds}
            db.write(
                {**result, "metrics": {}, "plan": None, "error": None, "version": RESULTS_VERSION},
                study="s",
                kind="train",
                label=key,
                config={"kind": "train"},
            )
        configs = [{"base": "quick", "n": 1}, {"base": "slow", "n": 2}, {"base": "quick", "n": 3}, {"n": 4}]
        assert [c["n"] for c in longest_first(configs, db)] == [2, 1, 3, 4]  # stable among equals; no base last
