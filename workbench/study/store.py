"""The study store: one SQLite row per run.

Table ``runs``: ``hash`` (primary key), ``study``, ``kind``, ``label``, ``config_json``, ``status``
(``"done"``, ``"failed"``, or ``"not run"`` when its study stopped first), ``started``, ``finished``,
``seconds``, ``metrics_json``, ``plan_json``, ``error``, ``version`` (the results version of the code that
computed it, :mod:`workbench.study.versions`; NULL in rows stored before it was recorded). The database is in
WAL mode; each write is one transaction, and a finished (``done``) row is only overwritten by a finished
result of another results version, so a killed or failing study loses nothing already stored. A store
written before the ``version`` column existed is migrated (the column added, NULL) when opened for writing,
and read as it is when opened read-only. A row whose JSON cells cannot be read (a damaged file) is named by
its hash in a warning, left out of :meth:`Store.rows`, not counted as done, and replaced when its run is
computed again.

Table ``claims``: ``hash`` (primary key), ``pid``, ``host``, ``since`` (Unix time): the runs a
``workbench study run`` process is computing (:meth:`Store.claim`), so that a second process on the
same store leaves them alone. A claim whose process has ended (same host), or that is older than
``claim_limit`` seconds, is taken over.

A file that exists is only written to once it is known to be a study store (an empty SQLite
database, or one holding just these tables); anything else is refused and left byte for byte unchanged. The
store and the journals SQLite keeps beside it (``-wal``, ``-shm``, ``-journal``) must be regular, writable files
(:func:`workbench.utils.check_writable_target`): a device, a pipe, a socket, a folder or a link to one is refused.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.errors import StudyError
from workbench.utils import check_path, check_writable_target

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
    "version",
)
#: The columns of ``runs`` in stores written before results versions were recorded (migrated when opened).
LEGACY_COLUMNS = COLUMNS[:-1]
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
    error TEXT,
    version INTEGER
)
"""
_CLAIMS = """
CREATE TABLE IF NOT EXISTS claims (
    hash TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    since REAL NOT NULL
)
"""
CLAIM_COLUMNS = ("hash", "pid", "host", "since")
_JSON_COLUMNS = ("config_json", "metrics_json", "plan_json")
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: The files SQLite keeps beside a database (write-ahead log, its index, the rollback journal).
_SIDE_FILES = ("-wal", "-shm", "-journal")
#: Seconds after which a claim is taken over even when its process may still run (another host).
CLAIM_LIMIT = 24 * 3600.0


#: Seconds of slack when a process's start time is compared with its claim's: the start time is read from whole
#: seconds of the boot time and clock ticks.
START_SLACK = 2.0


def _started(fields: list[str]) -> float | None:
    """When a process started (seconds since the epoch), from the fields of its ``/proc/PID/stat`` after the command
    name; None where that cannot be read (not Linux)."""
    try:
        ticks = int(fields[19])  # field 22 of the whole line: start time in clock ticks after boot
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _alive(pid: int, since: float | None = None) -> bool:
    """Whether process ``pid`` of this host runs (an ended process its parent has not reaped yet does not) and, with
    ``since`` (when it claimed a run), is the process that claimed it: a process that started later holds a reused
    PID, and the claimant has ended."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    try:  # Linux: the state after the command name in /proc/PID/stat; Z (zombie) and X (dead) have ended
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        state = fields[0]
    except (OSError, IndexError):
        return True
    if state in ("Z", "X"):
        return False
    started = _started(fields) if since is not None else None
    return started is None or started <= since + START_SLACK


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
    claim_limit
        Seconds after which another process's claim on a run is taken over (:meth:`claim`).

    Raises
    ------
    StudyError
        The path is a folder, the file is not a SQLite database or holds other tables than a study
        store's, the folder cannot be written, or another process holds the store locked for longer
        than ``timeout``.
    """

    def __init__(
        self, path: str | Path, *, timeout: float = 5.0, readonly: bool = False, claim_limit: float = CLAIM_LIMIT
    ) -> None:
        self.path = check_path(path, "the store path", StudyError)
        self.readonly = readonly
        self.claim_limit = claim_limit
        #: Hash -> what is wrong with it, for every damaged row met so far (left out of rows, not done).
        self.damaged: dict[str, str] = {}
        #: Whether the ``runs`` table lacks the ``version`` column (a store written before it existed).
        self._legacy = False
        self._owner = (os.getpid(), socket.gethostname())
        self._check_file()
        try:
            existing = self.path.is_file() and self.path.stat().st_size > 0
            if readonly or existing:  # look before writing anything into a file that exists
                self._db = sqlite3.connect(
                    f"file:{self.path.resolve()}?mode=ro", uri=True, timeout=timeout, isolation_level=None
                )
                self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                self._check_tables()
                if not readonly:
                    self._db.close()
            if not readonly:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
                self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
                self._db.execute("PRAGMA journal_mode = WAL")
                with self._transaction():
                    self._db.execute(_SCHEMA)
                    self._db.execute(_CLAIMS)
                self._check_tables()
                self._migrate()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise StudyError(
                f"cannot create the store {self.path}: {exc.strerror or exc}; give a writable path with --store."
            ) from None

    # -- checks ----------------------------------------------------------------------------------
    def _check_file(self) -> None:
        if self.path.exists() and not self.path.is_file():
            kind = "a folder" if self.path.is_dir() else "a device, pipe or socket"
            raise StudyError(
                f"the store {self.path} is {kind}, not a file; give the path of a SQLite file with --store "
                "(it was left as it is)."
            )
        if not self.readonly:  # SQLite writes the file and its journals beside it: each a regular file of ours
            for path in (self.path, *(Path(f"{self.path}{suffix}") for suffix in _SIDE_FILES)):
                if path == self.path or path.exists() or path.is_symlink():
                    check_writable_target(path, error=StudyError)
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

    def _check_tables(self) -> None:
        tables = [row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        others = [name for name in tables if name not in ("runs", "claims") and not name.startswith("sqlite_")]
        if others:
            raise StudyError(
                f"{self.path} is a SQLite database of something else (tables {', '.join(others[:8])}), not a "
                "study store; give another path with --store (the file was left as it is)."
            )
        for table, columns in (("runs", COLUMNS), ("claims", CLAIM_COLUMNS)):
            found = [row[1] for row in self._db.execute(f"PRAGMA table_info({table})")]
            if table == "runs":
                self._legacy = set(found) == set(LEGACY_COLUMNS)
                if self._legacy:
                    continue
            if found and set(found) != set(columns):
                raise StudyError(
                    f"{self.path} has a {table!r} table that is not a study store's (columns {', '.join(found)}); "
                    "give another path with --store (the file was left as it is)."
                )
        if self.readonly and "runs" not in tables:
            raise StudyError(f"{self.path} holds no study runs (no 'runs' table).")

    def _migrate(self) -> None:
        """Add the ``version`` column to a ``runs`` table written before it existed (its rows get NULL)."""
        if self._legacy:
            with self._transaction():
                self._db.execute("ALTER TABLE runs ADD COLUMN version INTEGER")
            self._legacy = False

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

        A row already ``done`` is left unchanged, unless ``result`` is done too and of another results
        version (its ``"version"``; :mod:`workbench.study.versions`): then it replaces the stale row.
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
            result.get("version"),
        )
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
        keep_done = (
            ""
            if result["hash"] in self.damaged
            else " WHERE runs.status != 'done' OR (excluded.status = 'done' AND runs.version IS NOT excluded.version)"
        )
        try:
            with self._transaction():
                self._db.execute(
                    f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                    f"ON CONFLICT(hash) DO UPDATE SET {updates}{keep_done}",
                    values,
                )
                self._db.execute(
                    "DELETE FROM claims WHERE hash = ? AND pid = ? AND host = ?", (result["hash"], *self._owner)
                )
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        self.damaged.pop(result["hash"], None)

    def status(self) -> dict[str, str]:
        """Hash -> status of every stored run; a damaged row (see :meth:`rows`) is ``"damaged"``, not done."""
        status = {row["hash"]: row["status"] for row in self._read()}
        status.update({key: "damaged" for key in self.damaged if key in status})
        return status

    def versions(self) -> dict[str, int | None]:
        """Hash -> results version of every stored run (None: stored before versions were recorded)."""
        column = "NULL" if self._legacy else "version"
        try:
            return {row[0]: row[1] for row in self._db.execute(f"SELECT hash, {column} FROM runs")}
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def rows(self, hashes: list[str] | None = None) -> list[dict[str, Any]]:
        """Stored runs (all, or those of ``hashes``) as dicts with ``config``, ``metrics`` and ``plan`` parsed.

        A row whose JSON cells cannot be parsed is left out, named by its hash in a warning and recorded
        in :attr:`damaged`; a study run computes it again.
        """
        wanted = None if hashes is None else set(hashes)
        return [row for row in self._read() if (wanted is None or row["hash"] in wanted) and "config" in row]

    def _read(self) -> list[dict[str, Any]]:
        """Every row, parsed where its JSON cells are intact (damaged rows keep only their raw columns)."""
        try:
            columns = [("NULL AS version" if self._legacy and c == "version" else c) for c in COLUMNS]
            cursor = self._db.execute(f"SELECT {', '.join(columns)} FROM runs ORDER BY started")
            raw = [dict(zip(COLUMNS, row)) for row in cursor]
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        out, damaged = [], {}
        for row in raw:
            parsed, problem = {}, None
            for column in _JSON_COLUMNS:
                try:
                    value = None if row[column] is None else json.loads(row[column])
                    if column != "plan_json" and not isinstance(
                        value, dict if column == "config_json" else (dict, type(None))
                    ):
                        raise ValueError(f"a JSON {type(value).__name__}, not an object")
                except (TypeError, ValueError) as exc:
                    problem = f"{column} cannot be read ({str(exc)[:80]})"
                    break
                parsed[column[: -len("_json")]] = value
            if problem is not None:
                damaged[row["hash"]] = problem
                out.append(row)
                continue
            for column in _JSON_COLUMNS:
                row.pop(column)
            out.append({**row, **parsed})
        new = {key: text for key, text in damaged.items() if key not in self.damaged}
        self.damaged.update(damaged)
        if new:
            listed = "; ".join(f"{key}: {text}" for key, text in list(new.items())[:5])
            more = f" (and {len(new) - 5} more)" if len(new) > 5 else ""
            warnings.warn(
                f"the store {self.path} has {len(new)} damaged row(s), left out of summaries and reports and "
                f"computed again by `workbench study run`: {listed}{more}",
                UserWarning,
                stacklevel=3,
            )
        return out

    # -- claims ----------------------------------------------------------------------------------
    def claim(self, hashes: Iterable[str]) -> dict[str, tuple[int, str]]:
        """Claim the runs ``hashes`` for this process in one transaction; return those claimed by another
        live process (hash -> (pid, host)), which this process should leave alone.

        A claim is taken over when its process has ended (on this host; a process that started after the claim
        holds a reused PID) or is older than ``claim_limit``.
        """
        if self.readonly:
            raise StudyError(f"the store {self.path} was opened read-only.")
        now = time.time()
        others: dict[str, tuple[int, str]] = {}
        pid, host = self._owner
        try:
            with self._transaction():
                held = {
                    row[0]: (row[1], row[2], row[3])
                    for row in self._db.execute("SELECT hash, pid, host, since FROM claims")
                }
                for key in hashes:
                    owner = held.get(key)
                    if owner is not None and (owner[0], owner[1]) != self._owner:
                        live = owner[1] != host or _alive(owner[0], owner[2])
                        if live and now - owner[2] < self.claim_limit:
                            others[key] = (owner[0], owner[1])
                            continue
                    self._db.execute(
                        "INSERT OR REPLACE INTO claims (hash, pid, host, since) VALUES (?, ?, ?, ?)",
                        (key, pid, host, now),
                    )
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        return others

    def release(self, hashes: Iterable[str] | None = None) -> None:
        """Drop the claims of this process: all of them (the runs it did not finish), or those of ``hashes``."""
        if self.readonly:
            return
        try:
            with self._transaction():
                if hashes is None:
                    self._db.execute("DELETE FROM claims WHERE pid = ? AND host = ?", self._owner)
                else:
                    self._db.executemany(
                        "DELETE FROM claims WHERE hash = ? AND pid = ? AND host = ?",
                        [(key, *self._owner) for key in hashes],
                    )
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def claims(self) -> dict[str, tuple[int, str, float]]:
        """Hash -> (pid, host, since) of every claimed run."""
        try:
            return {row[0]: tuple(row[1:]) for row in self._db.execute("SELECT hash, pid, host, since FROM claims")}
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return {}
            raise self._error(exc) from None

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
