"""The study store: one SQLite row per run.

Table ``runs``: ``hash`` (primary key), ``study``, ``kind``, ``label``, ``config_json``, ``status``
(``"done"``, ``"failed"``, or ``"not run"`` when its study stopped first), ``started``, ``finished``,
``seconds``, ``metrics_json``, ``plan_json``, ``error``. The database is in WAL mode; each write is one
transaction, and a finished (``done``) row is never overwritten, so a killed or failing study loses
nothing already stored.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from workbench.errors import StudyError

COLUMNS = (
    "hash",
    "study",
    "kind",
    "label",
    "config_json",
    "status",
    "started",
    "finished",
    "seconds",
    "metrics_json",
    "plan_json",
    "error",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT,
    config_json TEXT NOT NULL,
    status TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    seconds REAL,
    metrics_json TEXT,
    plan_json TEXT,
    error TEXT
)
"""
_SQLITE_MAGIC = b"SQLite format 3\x00"


class Store:
    """A study store at ``path`` (created when missing unless ``readonly``).

    Parameters
    ----------
    path
        The SQLite file.
    timeout
        Seconds to wait for a lock held by another process before giving up (``busy_timeout``).
    readonly
        Open for reading only (reports); the file must exist.

    Raises
    ------
    StudyError
        The path is a folder, the file is not a SQLite database or holds another ``runs`` table, the
        folder cannot be written, or another process holds the store locked for longer than ``timeout``.
    """

    def __init__(self, path: str | Path, *, timeout: float = 5.0, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._check_file()
        try:
            if readonly:
                self._db = sqlite3.connect(
                    f"file:{self.path.resolve()}?mode=ro", uri=True, timeout=timeout, isolation_level=None
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                with self._transaction():
                    self._db.execute(_SCHEMA)
            self._check_table()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise StudyError(
                f"cannot create the store {self.path}: {exc.strerror or exc}; give a writable path with --store."
            ) from None

    # -- checks ----------------------------------------------------------------------------------
    def _check_file(self) -> None:
        if self.path.exists() and not self.path.is_file():
            raise StudyError(f"the store {self.path} is not a file; give the path of a SQLite file with --store.")
        if self.readonly and not self.path.is_file():
            raise StudyError(f"no store at {self.path}: run the study first (`workbench study run STUDY.toml`).")
        if self.path.is_file():
            try:
                with open(self.path, "rb") as handle:
                    head = handle.read(len(_SQLITE_MAGIC))
            except OSError as exc:
                raise StudyError(f"cannot read the store {self.path}: {exc.strerror or exc}.") from None
            if head and head != _SQLITE_MAGIC:
                raise StudyError(
                    f"{self.path} is not a SQLite database, so it cannot be a study store; "
                    "give another path with --store (the file was left as it is)."
                )

    def _check_table(self) -> None:
        found = [row[1] for row in self._db.execute("PRAGMA table_info(runs)")]
        if self.readonly and not found:
            raise StudyError(f"{self.path} holds no study runs (no 'runs' table).")
        if found and set(found) != set(COLUMNS):
            raise StudyError(
                f"{self.path} has a 'runs' table that is not a study store's (columns {', '.join(found)}); "
                "give another path with --store."
            )

    def _error(self, exc: sqlite3.Error) -> StudyError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StudyError(
                f"the store {self.path} is locked by another process (another `workbench study run` "
                "on the same store?); wait for it to finish or give another store with --store."
            )
        if "not a database" in text or "malformed" in text:
            return StudyError(
                f"{self.path} is not a readable SQLite database ({text}); give another path with --store."
            )
        return StudyError(f"the store {self.path} cannot be used: {text}.")

    def _transaction(self) -> Any:
        db = self._db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _Tx()

    # -- reading and writing ---------------------------------------------------------------------
    def write(self, result: dict[str, Any], *, study: str, kind: str, label: str, config: dict[str, Any]) -> None:
        """Record one run's result (from :func:`workbench.study.execute.execute`) in one transaction.

        A row already ``done`` is left unchanged.
        """
        if self.readonly:
            raise StudyError(f"the store {self.path} was opened read-only.")
        values = (
            result["hash"],
            study,
            kind,
            label,
            json.dumps(config, sort_keys=True),
            result["status"],
            result.get("started"),
            result.get("finished"),
            result.get("seconds"),
            None if result.get("metrics") is None else json.dumps(result["metrics"], sort_keys=True),
            None if result.get("plan") is None else json.dumps(result["plan"]),
            result.get("error"),
        )
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
        try:
            with self._transaction():
                self._db.execute(
                    f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                    f"ON CONFLICT(hash) DO UPDATE SET {updates} WHERE runs.status != 'done'",
                    values,
                )
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def status(self) -> dict[str, str]:
        """Hash -> status of every stored run."""
        try:
            return dict(self._db.execute("SELECT hash, status FROM runs"))
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def rows(self, hashes: list[str] | None = None) -> list[dict[str, Any]]:
        """Stored runs (all, or those of ``hashes``) as dicts with ``config``, ``metrics`` and ``plan`` parsed."""
        try:
            cursor = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM runs ORDER BY started")
            raw = [dict(zip(COLUMNS, row)) for row in cursor]
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        wanted = None if hashes is None else set(hashes)
        out = []
        for row in raw:
            if wanted is not None and row["hash"] not in wanted:
                continue
            row["config"] = json.loads(row.pop("config_json"))
            row["metrics"] = None if row["metrics_json"] is None else json.loads(row.pop("metrics_json"))
            row["plan"] = None if row["plan_json"] is None else json.loads(row.pop("plan_json"))
            row.pop("metrics_json", None)
            row.pop("plan_json", None)
            out.append(row)
        return out

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
