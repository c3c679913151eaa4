"""The study store: atomic rows, finished rows never overwritten, clear errors for unusable files."""

from __future__ import annotations

import sqlite3

import pytest

from workbench.errors import StudyError
from workbench.study import Store


def result(run_hash, status="done", accuracy=0.9, finished="2026-01-01T00:00:01"):
    return {
        "hash": run_hash,
        "status": status,
        "started": "2026-01-01T00:00:00",
        "finished": finished,
        "seconds": 1.0,
        "metrics": {"accuracy": accuracy} if status == "done" else None,
        "plan": {"format": "workbench-plan"},
        "error": None if status == "done" else "ConfigError: bad",
    }


def write(store, res):
    store.write(res, study="s", kind="compress", label=f"run {res['hash']}", config={"seed": 0})


def test_rows_round_trip_and_done_rows_are_never_overwritten(tmp_path):
    path = tmp_path / "runs.sqlite"
    with Store(path) as store:
        write(store, result("a"))
        write(store, result("b", status="failed"))
        write(store, result("a", accuracy=0.1, finished="later"))  # a second result for a finished run is ignored
        write(store, result("b", accuracy=0.5))  # a failed run that succeeds on retry is replaced
        assert store.status() == {"a": "done", "b": "done"}
    with Store(path, readonly=True) as store:
        rows = {row["hash"]: row for row in store.rows()}
    assert rows["a"]["metrics"] == {"accuracy": 0.9} and rows["a"]["finished"] == "2026-01-01T00:00:01"
    assert rows["b"]["metrics"] == {"accuracy": 0.5} and rows["b"]["error"] is None
    assert rows["a"]["config"] == {"seed": 0} and rows["a"]["plan"] == {"format": "workbench-plan"}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"important notes, not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(StudyError, match="not a SQLite database"):
        Store(path)
    assert path.read_bytes() == before


def test_a_folder_or_missing_store_is_refused(tmp_path):
    with pytest.raises(StudyError, match="not a file"):
        Store(tmp_path)
    with pytest.raises(StudyError, match="no store at"):
        Store(tmp_path / "missing.sqlite", readonly=True)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE runs (x INTEGER)").connection.commit()
    with pytest.raises(StudyError, match="not a study store"):
        Store(other)


def test_a_locked_store_gives_a_clear_error_and_loses_nothing(tmp_path):
    path = tmp_path / "runs.sqlite"
    with Store(path) as store:
        write(store, result("a"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StudyError, match="locked by another process"):
            with Store(path, timeout=0.2) as store:
                write(store, result("b"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Store(path, readonly=True) as store:
        assert [row["hash"] for row in store.rows()] == ["a"]
