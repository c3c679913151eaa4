"""Run a study: skip what is stored, run the rest here, on local processes (joblib) or a Dask cluster.

Runs go in two phases: the train runs (base models, which later runs load from the cache, and
baselines), then the compression runs. Each result is written to the store by this process as soon as
its run finishes, so a study killed mid-way loses at most the runs in progress, and running it again
resumes: runs already ``done`` are skipped, failed ones are tried again.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, StudyError
from workbench.study.grid import RunConfig, expand
from workbench.study.schema import Study, load_study
from workbench.study.store import Store


@dataclass
class StudyOutcome:
    """What :func:`run_study` did: counts, wall time, the store, and the summary table rows (selector runs
    in ``summary``, pipeline runs in ``pipelines``); ``claimed_elsewhere`` runs (counted in ``skipped``) were
    being computed by another process on the same store."""

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


def cache_dir_for(store: Path) -> Path:
    """The folder of cached base models beside ``store`` (``<store stem>-cache``)."""
    return store.with_name(f"{store.stem}-cache")


# --------------------------------------------------------------------------------------------------
# back-ends: each maps execute over configs and yields results as they complete


def _sequential(configs: list[dict[str, Any]], cache: str) -> Iterator[dict[str, Any]]:
    from workbench.study.execute import execute

    for config in configs:
        yield execute(config, cache)


def _joblib(jobs: int) -> Callable[[list[dict[str, Any]], str], Iterator[dict[str, Any]]]:
    def run(configs: list[dict[str, Any]], cache: str) -> Iterator[dict[str, Any]]:
        from joblib import Parallel, delayed

        from workbench.study.execute import execute

        parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
        try:
            with warnings.catch_warnings():
                # loky restarts a worker that stopped cleanly (its memory-growth check); no job is lost
                warnings.filterwarnings("ignore", message="A worker stopped while some jobs", category=UserWarning)
                yield from parallel(delayed(execute)(config, cache) for config in configs)
        except Exception as exc:  # a worker process died (killed, out of memory): execute itself never raises
            raise StudyError(
                f"a worker process of the study died ({type(exc).__name__}: {exc}); "
                "finished runs are stored, run the study again to resume."
            ) from None

    return run


def _dask(client: Any) -> Callable[[list[dict[str, Any]], str], Iterator[dict[str, Any]]]:
    def run(configs: list[dict[str, Any]], cache: str) -> Iterator[dict[str, Any]]:
        from distributed import as_completed

        from workbench.study.execute import execute

        futures = {client.submit(execute, config, cache, pure=False): config for config in configs}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - the worker died running it (KilledWorker, ...)
                yield {
                    "hash": RunConfig(futures[future]).hash,
                    "status": "failed",
                    "started": None,
                    "finished": None,
                    "seconds": None,
                    "metrics": None,
                    "plan": None,
                    "error": f"the Dask worker running it was lost ({type(exc).__name__}: {exc})",
                }

    return run


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

    cluster = None
    try:
        if local_cluster is not None:
            try:
                cluster = LocalCluster(
                    n_workers=local_cluster,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                client = Client(cluster, timeout=timeout)
            except Exception as exc:  # noqa: BLE001
                raise StudyError(f"could not start a local Dask cluster of {local_cluster} workers: {exc}") from None
        else:
            try:
                client = Client(scheduler, timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - OSError / TimeoutError from the comm layer
                raise StudyError(
                    f"no Dask scheduler answered at {scheduler} within {timeout:g} s ({type(exc).__name__}); "
                    "check the address (tcp://host:port) and that `dask scheduler` runs there, or use --local-cluster N."
                ) from None
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
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


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


def run_study(
    study: Study | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    local_cluster: int | None = None,
    timeout: float = 10.0,
    where: Callable[[RunConfig], bool] | None = None,
    quiet: bool = False,
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
    where
        Only the runs for which this returns True (e.g. ``lambda run: run.kind == "train"``).
    quiet
        No progress bar.
    """
    from tqdm.auto import tqdm

    from workbench.study.summary import collect, pipeline_table, summary_table

    study = study if isinstance(study, Study) else load_study(study)
    _check_parallel(jobs, scheduler, local_cluster)
    store_path = Path(store) if store is not None else study.store_path()
    runs = [run for run in expand(study) if where is None or where(run)]
    clock = time.perf_counter()
    with Store(store_path) as db:
        status = db.status()
        todo = [run for run in runs if status.get(run.hash) != "done"]
        elsewhere = db.claim(run.hash for run in todo)  # runs another live `study run` is computing are left to it
        todo = [run for run in todo if run.hash not in elsewhere]
        by_hash = {run.hash: run for run in runs}
        skipped = len(runs) - len(todo)
        cache = str(cache_dir_for(store_path))
        counts = {"done": 0, "failed": 0}
        errors: dict[str, str] = {}
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
            if result["status"] == "failed":
                errors[run.label] = result["error"]
            bar.update(1)
            bar.set_postfix(failed=counts["failed"], refresh=False)

        def phases(mapper: Callable[[list[dict[str, Any]], str], Iterable[dict[str, Any]]]) -> None:
            train = [run for run in todo if run.kind == "train"]
            for result in mapper([run.config for run in train], cache):
                record(result)
            runnable = []
            for run in todo:
                if run.kind == "train":
                    continue
                if status.get(run.base_hash) == "failed":
                    record(
                        {
                            "hash": run.hash,
                            "status": "failed",
                            "started": None,
                            "finished": None,
                            "seconds": None,
                            "metrics": None,
                            "plan": None,
                            "error": f"its base model failed to train: {errors.get(by_hash[run.base_hash].label, 'see its row')}",
                        }
                    )
                else:
                    runnable.append(run)
            for result in mapper([run.config for run in runnable], cache):
                record(result)

        try:
            if scheduler is not None or local_cluster is not None:
                with dask_client(scheduler, local_cluster, timeout) as client:
                    phases(_dask(client))
            elif jobs == 1 or len(todo) <= 1:
                phases(_sequential)
            else:
                phases(_joblib(jobs))
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
        summary=summary_table(records),
        errors=errors,
        pipelines=pipeline_table(records),
        claimed_elsewhere=len(elsewhere),
    )
