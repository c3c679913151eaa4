"""The main job on embedded data: the demo study (``workbench/studies/demo.toml``, shipped with the package),
run and reported.

``workbench demo`` runs :func:`run_demo`: LeNet-300-100 on digits and an MLP on MNIST-1D are trained,
compressed by six selectors at three budgets with drop and least-squares fusion, fine-tuned and
profiled, next to small baseline architectures trained on the same data; the runs are stored in
``<out>/demo.sqlite`` (a rerun skips what is stored) and the report is written to ``<out>/report.html``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from workbench.errors import StudyError
from workbench.utils import atomic_write_text

#: The study file of the main job: package data of ``workbench`` (declared in pyproject.toml).
DEMO_STUDY = resources.files("workbench") / "studies" / "demo.toml"


@dataclass
class DemoResult:
    """The demo's study outcome, its report, the trained-model table, where the time went (:func:`time_table`:
    run seconds per kind of run), the methods ranked per model and budget (:func:`compare_table`) and the wall
    time in seconds."""

    outcome: Any
    report: Path
    trained: list[dict[str, Any]]
    seconds: float
    times: list[dict[str, Any]] = field(default_factory=list)
    comparison: list[dict[str, Any]] = field(default_factory=list)


def load_demo_study(path: str | os.PathLike | None = None, quick: bool = False) -> Any:
    """The demo study (:data:`DEMO_STUDY`, or the study file ``path``); ``quick`` keeps one seed, two selectors,
    one budget, one fusion mode, the last (cheapest) compression pipeline, the models on the study's own
    retraining budget (not the convolutional ones, which carry their own), no baselines and no controls."""
    from workbench.study.schema import load_study

    if path is not None:
        study = load_study(path)
    elif not DEMO_STUDY.is_file():
        raise StudyError(
            "the demo study (workbench/studies/demo.toml) is missing from the installed package; "
            "reinstall the workbench, or run your own study with `workbench study run STUDY.toml`."
        )
    else:
        with resources.as_file(DEMO_STUDY) as file:
            study = load_study(file)
    if quick:
        selectors = dict(list(study.selectors.items())[:2])
        budgets = study.compression.budgets[len(study.compression.budgets) // 2 :][:1]
        compression = study.compression.model_copy(update={"budgets": budgets, "fuse": study.compression.fuse[:1]})
        pipelines = dict(list(study.pipelines.items())[-1:])
        quick_study = study.model_copy(
            update={
                "study": study.study.model_copy(update={"seeds": study.study.seeds[:1]}),
                "models": [m for m in study.models if m.finetune is None] or study.models[:1],
                "selectors": selectors,
                "compression": compression,
                "pipelines": pipelines,
                "baselines": study.baselines.model_copy(update={"models": []}),
                "controls": study.controls.model_copy(update={"scratch": False, "random_widths": False}),
            }
        )
        quick_study._path = study.path
        study = quick_study
    return study


def run_demo(
    quick: bool = False,
    quiet: bool = False,
    out: str | os.PathLike | None = None,
    jobs: int | None = None,
    study: str | os.PathLike | None = None,
) -> DemoResult:
    """Run the demo study and write its report; return a :class:`DemoResult`.

    Parameters
    ----------
    quick
        A smaller grid (one seed, two selectors, one budget, one fusion mode, one pipeline, no baselines) for smoke tests.
    quiet
        No progress bar.
    out
        Folder for the store, the cached base models, ``report.html`` and ``results.json``
        (default ``./workbench-demo``).
    jobs
        Local worker processes (default: the number of cores, at most 4).
    study
        Another study file to run the same way.
    """
    from workbench.study.report import write_report
    from workbench.study.runner import run_study
    from workbench.study.store import Store
    from workbench.study.summary import collect, compare_table, time_table, training_table

    clock = time.perf_counter()
    out_dir = Path(out) if out is not None else Path("workbench-demo")
    demo = load_demo_study(study, quick=quick)
    jobs = jobs if jobs is not None else max(1, min(4, os.cpu_count() or 1))
    store = out_dir / "demo.sqlite"
    outcome = run_study(demo, store=store, jobs=jobs, quiet=quiet)
    report = write_report(demo, store=store, out=out_dir / "report.html")
    with Store(store, readonly=True) as db:
        records = collect(demo, db.rows())
    trained, times = training_table(records), time_table(records)
    comparison = compare_table(records, reference=demo.study.reference) if demo.selectors else []
    atomic_write_text(
        out_dir / "results.json",
        json.dumps(
            {"summary": outcome.summary, "pipelines": outcome.pipelines, "trained": trained, "times": times}, indent=2
        ),
    )
    return DemoResult(
        outcome=outcome,
        report=report,
        trained=trained,
        seconds=round(time.perf_counter() - clock, 2),
        times=times,
        comparison=comparison,
    )
