"""Run a study: skip what is stored, run the rest here, on local processes (joblib) or a Dask cluster.

Runs go in three phases: the train runs (base models, which later runs load from the cache, and
baselines), then the compression runs, then the control runs (``[controls]``), each given the stored plan and
metrics of the compression run it takes its widths from. Each result is written to the store by this process as soon as
its run finishes, so a study killed mid-way loses at most the runs in progress, and running it again
resumes: runs already ``done`` are skipped, failed ones are tried again. A stored run, or a cached base
model, computed by another results version of the workbench (:mod:`workbench.study.versions`) is not
reused: it is computed again, with a warning and a note in the outcome saying how many and why. A study
that cannot go on (its Dask scheduler lost, no Dask worker alive for ``[cluster] worker_timeout`` seconds,
a local worker process dead) stops with a :class:`~workbench.errors.StudyError`, after storing the runs it
had left as ``"not run"``.

A run another live ``workbench study run`` process has claimed on the same store
(:meth:`~workbench.study.store.Store.claim`) is left to it: it is not counted as stored, the outcome names
the process holding it (:attr:`StudyOutcome.held`), and with ``wait`` the study waits for it, taking it
over if that process ends without storing it. Interrupted (Ctrl-C), a study keeps every run it stored,
releases its claims and stops its worker processes and Dask cluster quietly; running it again resumes.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, StudyError
from workbench.study.grid import RunConfig, expand
from workbench.study.schema import Study, load_study
from workbench.study.store import Store
from workbench.study.versions import stale_reason
from workbench.utils import check_path


@dataclass
class StudyOutcome:
    """What :func:`run_study` did: counts, wall time, the store, and the summary table rows (selector runs
    in ``summary``, pipeline runs in ``pipelines``). ``skipped`` runs were already stored (done);
    ``held`` runs (label -> ``"process PID on host HOST"``, ``claimed_elsewhere`` of them) were being
    computed by another process on the same store when this one ended, so they are not stored yet;
    ``finished_elsewhere`` runs were stored done by such a process while this one waited for it (its
    failed runs count in ``failed``). ``recomputed`` runs were stored by another results version and
    computed again; ``notes`` say what was not reused and why (stored runs, cached base models)."""

    study: str
    store: Path
    total: int
    skipped: int
    done: int
    failed: int
    seconds: float
    summary: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    claimed_elsewhere: int = 0
    recomputed: int = 0
    notes: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)
    finished_elsewhere: int = 0

    @property
    def complete(self) -> bool:
        """Whether every run of the study is stored done (none failed, none left to another process)."""
        return not self.failed and not self.held

    def held_lines(self) -> list[str]:
        """One line per process holding runs of this study (empty when none): which runs, and what to do."""
        by_holder: dict[str, list[str]] = {}
        for label, holder in self.held.items():
            by_holder.setdefault(holder, []).append(label)
        lines = []
        for holder, labels in by_holder.items():
            named = "; ".join(labels[:5]) + (f"; and {len(labels) - 5} more" if len(labels) > 5 else "")
            lines.append(
                f"{len(labels)} runs are held by {holder} (another `workbench study run` on this store) and are "
                f"not stored yet: {named}. Run the study again once it has ended, or add --wait to wait for it."
            )
        return lines


def cache_dir_for(store: Path) -> Path:
    """The folder of cached base models beside ``store`` (``<store stem>-cache``)."""
    return store.with_name(f"{store.stem}-cache")


# --------------------------------------------------------------------------------------------------
# back-ends: each maps execute over configs and yields results as they complete


def _unfinished(run_hash: str, status: str, error: str) -> dict[str, Any]:
    """The result of a run that did not finish: ``"failed"`` or ``"not run"``, with why."""
    return {
        "hash": run_hash,
        "status": status,
        "started": None,
        "finished": None,
        "seconds": None,
        "metrics": None,
        "plan": None,
        "error": error,
    }


class _Stopped(Exception):
    """The back-end cannot go on (its cluster or a worker process is gone); the message says why and what to do."""


def _sequential(configs: list[dict[str, Any]], cache: str) -> Iterator[dict[str, Any]]:
    from workbench.study.execute import execute

    for config in configs:
        yield execute(config, cache)


def end_with_parent(parent: int, interval: float = 0.5) -> None:
    """Worker initializer: end this process as soon as ``parent`` (the study process) is gone.

    A thread checks every ``interval`` seconds that this process's parent is still ``parent``; once the
    parent has died (SIGKILL, out of memory) the process is re-parented and ends at once, so no worker
    outlives the study holding its memory, its output pipe and the resource tracker.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    if os.getppid() != parent:  # the parent died while this process started
        os._exit(1)
    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _joblib(jobs: int) -> Callable[[list[dict[str, Any]], str], Iterator[dict[str, Any]]]:
    def run(configs: list[dict[str, Any]], cache: str) -> Iterator[dict[str, Any]]:
        from joblib import Parallel, delayed

        from workbench.study.execute import execute_in_worker

        parallel = Parallel(
            n_jobs=jobs,
            backend="loky",
            return_as="generator_unordered",
            initializer=end_with_parent,
            initargs=(os.getpid(),),
        )
        try:
            with warnings.catch_warnings():
                # loky restarts a worker that stopped cleanly (its memory-growth check); no job is lost
                warnings.filterwarnings("ignore", message="A worker stopped while some jobs", category=UserWarning)
                yield from parallel(delayed(execute_in_worker)(config, cache) for config in configs)
        except Exception as exc:  # a worker process died (killed, out of memory): execute itself never raises
            raise _Stopped(f"a worker process of the study died ({type(exc).__name__}: {exc})") from None

    return run


def _dask(client: Any, worker_timeout: float) -> Callable[[list[dict[str, Any]], str], Iterator[dict[str, Any]]]:
    """Runs on ``client``'s cluster; stops (:class:`_Stopped`) when the scheduler is lost or no worker has
    been alive for ``worker_timeout`` seconds."""
    address = client.scheduler.address
    watch_every = min(1.0, worker_timeout / 4)

    def lost(reason: str) -> _Stopped:
        return _Stopped(f"the Dask scheduler at {address} {reason}; start it and its workers again")

    def check(alone_since: float | None) -> float | None:
        """When the cluster has had no worker since (None: it has workers); raises when it must stop."""
        if client.status != "running":
            raise lost("was lost (the connection to it closed)")
        try:
            workers = client.sync(client.scheduler.ncores, callback_timeout=worker_timeout)
        except Exception as exc:  # noqa: BLE001 - the comm layer raises OSError, TimeoutError, CommClosedError
            if client.status != "running":
                raise lost("was lost (the connection to it closed)") from None
            raise lost(f"did not answer for {worker_timeout:g} s ({type(exc).__name__})") from None
        if workers:
            return None
        now = time.monotonic()
        if alone_since is not None and now - alone_since > worker_timeout:
            raise _Stopped(
                f"no Dask worker was alive at {address} for {worker_timeout:g} s ([cluster] worker_timeout in the "
                f"study file, or --worker-timeout); start workers with `dask worker {address}`"
            )
        return now if alone_since is None else alone_since

    def run(configs: list[dict[str, Any]], cache: str) -> Iterator[dict[str, Any]]:
        from workbench.study.execute import execute_in_worker

        pending = {client.submit(execute_in_worker, config, cache, pure=False): config for config in configs}
        alone_since, checked = None, time.monotonic()
        try:
            while pending:
                finished = [future for future in pending if future.done()]
                for future in finished:
                    config = pending.pop(future)
                    if future.cancelled():  # nothing here cancels a future: the client lost the scheduler
                        raise lost("was lost (the connection to it closed)")
                    try:
                        yield future.result(timeout=worker_timeout)
                    except Exception as exc:  # noqa: BLE001 - the run killed its workers (KilledWorker, ...)
                        yield _unfinished(
                            RunConfig(config).hash,
                            "failed",
                            f"the Dask worker running it was lost ({type(exc).__name__}: {exc})",
                        )
                if time.monotonic() - checked >= watch_every:
                    alone_since, checked = check(alone_since), time.monotonic()
                if not finished:
                    time.sleep(0.1)
        except KeyboardInterrupt:  # the client closes next, which drops its runs; cancelling makes workers log each
            pending.clear()
            raise
        finally:
            if pending and client.status == "running":
                client.cancel(list(pending))

    return run


@contextmanager
def _silenced(*loggers: str) -> Iterator[None]:
    """No log records below CRITICAL from ``loggers`` and their descendants inside the block."""
    names = {
        name
        for name in (*loggers, *logging.Logger.manager.loggerDict)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in loggers)
    }
    logs = [logging.getLogger(name) for name in sorted(names)]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


@contextmanager
def _sigint_kept_from_children() -> Iterator[None]:
    """Processes started inside the block never receive SIGINT (Ctrl-C): this process stops them in order.

    The signal is blocked in this thread while they start, and so in them and in the threads started
    meanwhile (a blocked signal stays blocked across fork and exec); one sent meanwhile reaches this
    process when the block ends. The resource tracker is started first, as starting it unblocks the signal.
    """
    import signal
    from multiprocessing import resource_tracker

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def dask_client(scheduler: str | None = None, local_cluster: int | None = None, timeout: float = 10.0) -> Iterator[Any]:
    """A ``distributed.Client``: to the scheduler at ``scheduler``, or to a new LocalCluster of ``local_cluster`` workers.

    Raises
    ------
    StudyError
        No scheduler answers at ``scheduler`` within ``timeout`` seconds, it has no workers, or the
        local cluster cannot start.
    """
    from distributed import Client, LocalCluster

    cluster, clean = None, False
    try:
        if local_cluster is not None:
            try:
                with _sigint_kept_from_children():  # Ctrl-C reaches this process only, which stops the workers
                    cluster = LocalCluster(
                        n_workers=local_cluster,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=None,
                        # its HTTP server (health, metrics) on a free port, not 8787 (and a warning when taken)
                        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                        preload=["workbench.study.execute"],  # its dask_setup ignores SIGINT in restarted workers
                    )
                client = Client(cluster, timeout=timeout)
            except Exception as exc:  # noqa: BLE001
                raise StudyError(f"could not start a local Dask cluster of {local_cluster} workers: {exc}") from None
        else:
            where = scheduler_host_port(scheduler)
            try:
                client = Client(scheduler, timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - OSError / TimeoutError from the comm layer, anything from a non-Dask server
                raise StudyError(_unreachable(scheduler, where, timeout, exc)) from None
            try:
                client.wait_for_workers(1, timeout=timeout)
            except Exception:  # noqa: BLE001
                client.close()
                raise StudyError(
                    f"the Dask scheduler at {scheduler} has no workers after {timeout:g} s; "
                    "start some with `dask worker " + str(scheduler) + "`."
                ) from None
        try:
            yield client
            clean = True
        finally:
            if client.status == "running" and clean:
                client.close()
            else:  # the scheduler is gone, or the study was interrupted: closing logs tracebacks
                if cluster is not None and client.status == "running":  # here and in the workers it started
                    from workbench.study.execute import quiet_worker

                    with _silenced("distributed"), suppress(Exception):
                        client.run(quiet_worker)
                with _silenced("distributed"):
                    client.close()
    finally:
        if cluster is not None:
            with _silenced(*(() if clean else ("distributed",))):  # workers stopped mid-run: kill warnings
                cluster.close()


def scheduler_host_port(address: str) -> tuple[str, int] | None:
    """The host and port of the Dask scheduler ``address`` (``tcp://host:port``, ``tls://``, ``ws://``, ``wss://``);
    None for the other Dask schemes (an in-process scheduler ``inproc://...``, UCX), which are not looked into.

    Raises
    ------
    ConfigError
        The address cannot be one: an unknown scheme, no host, no port or one out of 1..65535.
    """
    from distributed.comm import get_address_host_port, parse_address
    from distributed.comm.registry import get_backend

    example = "an address looks like tcp://host:8786"
    try:
        scheme, _ = parse_address(str(address))
        get_backend(scheme)  # an unknown scheme
        if scheme not in ("tcp", "tls", "ws", "wss"):  # in-process, UCX: no host and port to check
            return None
        host, port = get_address_host_port(str(address))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the Dask scheduler address {address!r} is not valid ({exc}); {example}.") from None
    if not host:
        raise ConfigError(f"the Dask scheduler address {address!r} names no host; {example}.")
    if not 1 <= port <= 65535:
        raise ConfigError(f"the Dask scheduler address {address!r} has port {port}, not in 1..65535; {example}.")
    return host, port


def _unreachable(address: str, where: tuple[str, int] | None, timeout: float, exc: BaseException) -> str:
    """Why the Dask scheduler at ``address`` did not answer (``exc``: what ``Client`` raised), and what to do.

    A connection failure is looked at again with one plain TCP connection, which tells an unknown host, a port
    where nothing listens and a host that does not answer apart (the Dask client retries until its timeout, so
    its own error may only say that time ran out)."""
    import socket

    if not isinstance(exc, (OSError, TimeoutError)):  # a server answered, but not in the Dask protocol
        return (
            f"no Dask scheduler answered at {address}: a server there answered in another protocol "
            f"({type(exc).__name__} reading its reply); check the port (a scheduler listens on 8786 unless told "
            "otherwise), or use --local-cluster N."
        )
    if where is None:  # an in-process or UCX scheduler: no host and port to look at
        return f"no Dask scheduler answered at {address} ({type(exc).__name__}: {exc}); check it, or use --local-cluster N."
    host, port = where
    try:
        socket.create_connection((host, port), timeout=min(timeout, 5.0)).close()
        why = f"something listens there, but did not answer as a Dask scheduler within {timeout:g} s"
    except socket.gaierror:
        why = f"the host {host!r} is not known"
    except ConnectionRefusedError:
        why = f"nothing listens on port {port} of {host} (connection refused)"
    except OSError as error:  # a timeout, no route to the host, ...
        why = f"no answer from {host} ({error.strerror or 'timed out'})"
    return (
        f"no Dask scheduler answered at {address}: the address could not be reached ({why}); check the address "
        "(tcp://host:port) and that `dask scheduler` runs there, or use --local-cluster N."
    )


# --------------------------------------------------------------------------------------------------


def _check_parallel(jobs: int, scheduler: str | None, local_cluster: int | None) -> None:
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs == 0 or jobs < -1:
        raise ConfigError(f"jobs must be a positive number of processes (or -1 for all cores), got {jobs!r}.")
    if scheduler is not None and local_cluster is not None:
        raise ConfigError("give either a scheduler address or a local cluster size, not both.")
    if local_cluster is not None and (not isinstance(local_cluster, int) or local_cluster < 1):
        raise ConfigError(f"a local cluster needs at least 1 worker, got {local_cluster!r}.")
    if scheduler is not None and "://" not in str(scheduler):
        raise ConfigError(f"a scheduler address looks like tcp://host:8786, got {scheduler!r}.")
    if scheduler is not None:
        scheduler_host_port(scheduler)  # refused before the store is opened


def run_study(
    study: Study | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    local_cluster: int | None = None,
    timeout: float = 10.0,
    worker_timeout: float | None = None,
    where: Callable[[RunConfig], bool] | None = None,
    quiet: bool = False,
    wait: bool = False,
) -> StudyOutcome:
    """Run every run of ``study`` not already done in the store; return a :class:`StudyOutcome`.

    Parameters
    ----------
    study
        A :class:`Study` or the path of a TOML study file.
    store
        The SQLite store (default: ``study.store``, or ``<study>.sqlite`` beside the study file).
    jobs
        Local worker processes (joblib, loky); 1 runs in this process.
    scheduler, local_cluster
        Run on the Dask scheduler at this address instead, or on a LocalCluster of this many worker
        processes started here.
    timeout
        Seconds to wait for a Dask scheduler (and its first worker) to answer.
    worker_timeout
        Seconds a Dask cluster may go without any worker before the study stops (default: the study's
        ``cluster.worker_timeout``).
    where
        Only the runs for which this returns True (e.g. ``lambda run: run.kind == "train"``).
    quiet
        No progress bar.
    wait
        When another live process holds some runs (another ``workbench study run`` on the same store),
        wait until it has stored them, and compute here those it leaves unfinished (it ended, or stored
        them as not run). Without it they are left to that process and named in
        :attr:`StudyOutcome.held`.

    Raises
    ------
    StudyError
        The study stopped before its end: the Dask scheduler was lost, no Dask worker was alive for
        ``worker_timeout`` seconds, or a local worker process died. Finished runs are stored; the runs
        left are stored as ``"not run"`` and the next run of the study runs them.
    """
    from tqdm.auto import tqdm

    from workbench.study.summary import collect, pipeline_table, summary_table

    study = study if isinstance(study, Study) else load_study(study)
    _check_parallel(jobs, scheduler, local_cluster)
    worker_timeout = study.cluster.worker_timeout if worker_timeout is None else worker_timeout
    for name, seconds in (("worker_timeout", worker_timeout), ("timeout", timeout)):
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
            raise ConfigError(f"{name} is a positive number of seconds (and finite), got {seconds!r}.")
    store_path = check_path(store, "--store", StudyError) if store is not None else study.store_path()
    expanded = expand(study)
    runs = [run for run in expanded if where is None or where(run)]
    clock = time.perf_counter()
    with Store(store_path) as db:
        status = db.status()
        stale = _stale_runs(runs, status, db.versions())
        notes = [f"{count} {reason}: computed again" for reason, count in Counter(stale.values()).items()]
        for note in notes:
            warnings.warn(f"the store {store_path} has {note}", UserWarning, stacklevel=2)
        todo = [run for run in runs if status.get(run.hash) != "done" or run.hash in stale]
        held = db.claim(run.hash for run in todo)  # runs another live `study run` is computing are left to it
        before = _marks(db, held)  # what they hold now, to tell the results they store later apart
        mine = [run for run in todo if run.hash not in held]
        by_hash = {run.hash: run for run in runs}
        skipped = len(runs) - len(todo)
        cache = str(cache_dir_for(store_path))
        counts = {"done": 0, "failed": 0, "not run": 0, "elsewhere": 0}
        errors: dict[str, str] = {}
        recorded: set[str] = set()
        bar = tqdm(
            total=len(runs),
            initial=skipped,
            desc=f"study {study.study.name}",
            unit="run",
            disable=quiet,
            dynamic_ncols=True,
        )

        def record(result: dict[str, Any]) -> None:
            run = by_hash[result["hash"]]
            db.write(result, study=study.study.name, kind=run.kind, label=run.label, config=run.config)
            status[run.hash] = result["status"]
            counts[result["status"]] += 1
            recorded.add(run.hash)
            if result["status"] == "failed":
                errors[run.label] = result["error"]
            notes.extend(note for note in result.get("notes") or () if note not in notes)
            if result["status"] == "not run":
                return
            bar.update(1)
            bar.set_postfix(failed=counts["failed"], refresh=False)

        def phases(
            mapper: Callable[[list[dict[str, Any]], str], Iterable[dict[str, Any]]], todo: list[RunConfig]
        ) -> None:
            train = [run for run in todo if run.kind == "train"]
            for result in mapper([run.config for run in train], cache):
                record(result)
            runnable = []
            for run in todo:
                if run.kind in ("train", "control"):
                    continue
                if status.get(run.base_hash) == "failed":
                    base = errors.get(by_hash[run.base_hash].label) or _stored_error(db, run.base_hash)
                    record(_unfinished(run.hash, "failed", f"its base model failed to train: {base}"))
                else:
                    runnable.append(run)
            for result in mapper(longest_first([run.config for run in runnable], db), cache):
                record(result)
            controls, waiting = [], [run for run in todo if run.kind == "control"]
            sources = {row["hash"]: row for row in db.rows([run.source_hash for run in waiting])} if waiting else {}
            everything = {run.hash: run for run in expanded}
            for run in waiting:
                config, problem = _with_source(run, sources.get(run.source_hash), everything)
                if problem is None:
                    controls.append(config)
                else:
                    record(_unfinished(run.hash, "failed", problem))
            for result in mapper(longest_first(controls, db), cache):
                record(result)

        def work(mapper: Callable[[list[dict[str, Any]], str], Iterable[dict[str, Any]]]) -> None:
            phases(mapper, mine)
            while wait and held:
                time.sleep(WAIT_POLL)
                taken = [by_hash[key] for key in _settle(db, held, before, by_hash, settled)]
                if taken:
                    mine.extend(taken)
                    phases(mapper, taken)

        def settled(run_hash: str, row: dict[str, Any]) -> None:
            """A held run the other process stored: done (counted apart) or failed (counted and named)."""
            status[run_hash] = row["status"]
            if row["status"] == "failed":
                counts["failed"] += 1
                errors[by_hash[run_hash].label] = f"{row.get('error')} (in another process)"
            else:
                counts["elsewhere"] += 1
            bar.update(1)

        try:
            if scheduler is not None or local_cluster is not None:
                with dask_client(scheduler, local_cluster, timeout) as client:
                    work(_dask(client, worker_timeout))
            elif jobs == 1 or len(mine) + (len(held) if wait else 0) <= 1:
                work(_sequential)
            else:
                work(_joblib(jobs))
        except _Stopped as stop:
            for run in mine:
                if run.hash not in recorded:
                    record(_unfinished(run.hash, "not run", f"the study stopped: {stop}"))
            raise StudyError(
                f"{stop}.\nThe study stopped: {counts['done']} runs done and {counts['failed']} failed here are "
                f"stored, the {counts['not run']} runs left are stored as not run; run the study again to run them."
            ) from None
        finally:
            bar.close()
            db.release()
        rows = db.rows([run.hash for run in runs])
    records = collect(study, rows)
    return StudyOutcome(
        study=study.study.name,
        store=store_path,
        total=len(runs),
        skipped=skipped,
        done=counts["done"],
        failed=counts["failed"],
        seconds=round(time.perf_counter() - clock, 2),
        summary=summary_table(records, reference=study.study.reference),
        errors=errors,
        pipelines=pipeline_table(records),
        claimed_elsewhere=len(held),
        recomputed=sum(key in recorded and status[key] == "done" for key in stale),
        notes=notes,
        held={by_hash[key].label: f"process {pid} on host {host}" for key, (pid, host) in held.items()},
        finished_elsewhere=counts["elsewhere"],
    )


#: Seconds between two looks at the runs another process holds, when a study waits for them.
WAIT_POLL = 2.0


def _marks(db: Store, keys: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """Hash -> (status, finished, version) of the stored rows of ``keys``: what tells a result stored later apart."""
    return {row["hash"]: (row["status"], row.get("finished"), row.get("version")) for row in db.rows(list(keys))}


def _settle(
    db: Store,
    held: dict[str, tuple[int, str]],
    before: dict[str, tuple[Any, ...]],
    by_hash: dict[str, RunConfig],
    settled: Callable[[str, dict[str, Any]], None],
) -> list[str]:
    """Look again at the runs ``held`` by other processes (their rows' :func:`_marks` ``before``): drop from it
    those they have stored since (``settled`` is told of each), claim those they left unfinished (their process
    ended, or released them without storing a result) and return these, to compute here; the rest stay in
    ``held``."""

    def stored(keys: list[str]) -> dict[str, dict[str, Any]]:
        """The rows of ``keys`` stored since ``before``: failed, or done by this results version."""
        rows, versions = db.rows(keys), db.versions()
        return {
            row["hash"]: row
            for row in rows
            if (row["status"], row.get("finished"), row.get("version")) != before.get(row["hash"])
            and (
                row["status"] == "failed"
                or (
                    row["status"] == "done" and not _stale_runs([by_hash[row["hash"]]], {row["hash"]: "done"}, versions)
                )
            )
        }

    claims = db.claims()
    for key, row in stored([key for key in held if key not in claims]).items():
        held.pop(key)
        settled(key, row)
    others = db.claim(list(held))
    taken = [key for key in held if key not in others]
    finished = stored(taken)  # stored and released between the two looks
    for key, row in finished.items():
        settled(key, row)
    db.release(finished)
    held.clear()
    held.update(others)
    return [key for key in taken if key not in finished]


def _stored_error(db: Store, run_hash: str) -> str:
    """The stored error of a failed run (one another process stored), or where to look."""
    rows = db.rows([run_hash])
    return (rows[0].get("error") if rows else None) or "see its row"


def longest_first(configs: list[dict[str, Any]], db: Store) -> list[dict[str, Any]]:
    """``configs`` ordered by the stored training seconds of their base models, longest first (stable): a
    compression or control run costs about what its base's training cost (times its share of the epochs), and
    starting the long ones first keeps a phase from ending on one long run while the other workers idle."""
    bases = {config.get("base") for config in configs} - {None}
    if len(bases) < 2:
        return list(configs)
    seconds = {row["hash"]: float(row.get("seconds") or 0.0) for row in db.rows(sorted(bases))}
    return sorted(configs, key=lambda config: -seconds.get(config.get("base"), 0.0))


def _with_source(
    run: RunConfig, row: dict[str, Any] | None, by_hash: dict[str, RunConfig]
) -> tuple[dict[str, Any], str | None]:
    """A control run's config with its source run's stored plan and metrics (``source_run``, not hashed), from the
    source's stored ``row`` (None when it has none), or why it cannot run: its source compression run did not
    finish."""
    if row is None or row.get("status") != "done" or row.get("plan") is None:
        source = by_hash.get(run.source_hash)
        name = source.label if source is not None else run.source_hash
        why = (row or {}).get("error") or "it has not run (run the whole study, or include it in `where`)"
        return run.config, f"its source run {name} did not finish: {why}"
    return {**run.config, "source_run": {"plan": row["plan"], "metrics": row.get("metrics") or {}}}, None


def _stale_runs(runs: list[RunConfig], status: dict[str, str], versions: dict[str, int | None]) -> dict[str, str]:
    """Hash -> why, for each of ``runs`` stored ``done`` by another results version (computed again)."""
    stale = {}
    for run in runs:
        if status.get(run.hash) == "done":
            reason = stale_reason(versions.get(run.hash), "stored runs")
            if reason is not None:
                stale[run.hash] = reason
    return stale
