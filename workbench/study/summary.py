"""Results of a study as flat records, and the summary table (printed at the end of a run, and in the report)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.study.grid import expand
from workbench.study.schema import Study


@dataclass
class Record:
    """One run of the study with its stored outcome (``status`` ``"missing"`` when not run yet, ``"damaged"``
    when its stored row cannot be read)."""

    hash: str
    kind: str
    role: str
    model: str
    data: str
    seed: int
    status: str
    selector: str | None = None
    pipeline: str | None = None
    budget: str | None = None
    keep: float | None = None
    fuse: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float | None = None

    def score(self, key: str = "accuracy") -> float | None:
        """``metrics[key]`` (``miou`` for segmentation when ``accuracy`` is asked and absent)."""
        value = self.metrics.get(key)
        if value is None and key.startswith("accuracy"):
            value = self.metrics.get(key.replace("accuracy", "miou"))
        return None if value is None else float(value)


def collect(study: Study, rows: list[dict[str, Any]], damaged: Mapping[str, str] | None = None) -> list[Record]:
    """Join the study's runs (for names and labels) with the stored rows (for outcomes).

    ``damaged`` (hash -> problem, :attr:`workbench.study.store.Store.damaged`) marks runs whose stored row
    cannot be read: status ``"damaged"``, left out of every mean like runs not done.
    """
    stored = {row["hash"]: row for row in rows}
    damaged = damaged or {}
    records = []
    for run in expand(study):
        config, row = run.config, stored.get(run.hash)
        if row is None and run.hash in damaged:
            row = {"status": "damaged", "error": f"its stored row {run.hash} is damaged: {damaged[run.hash]}"}
        budget = config.get("budget") or {}
        records.append(
            Record(
                hash=run.hash,
                kind=run.kind,
                role=run.role,
                model=config["model"]["label"],
                data=config["model"]["data"],
                seed=config["seed"],
                status=row["status"] if row else "missing",
                selector=config.get("selector"),
                pipeline=config.get("pipeline"),
                budget=budget.get("label"),
                keep=budget.get("keep"),
                fuse=config.get("fuse"),
                metrics=(row or {}).get("metrics") or {},
                error=(row or {}).get("error"),
                seconds=(row or {}).get("seconds"),
            )
        )
    return records


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation; NaN for no values."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _mean(values: list[float]) -> float | None:
    return round(mean_std(values)[0], 4) if values else None


def summary_table(records: list[Record], metric: str = "accuracy") -> list[dict[str, Any]]:
    """One row per (model, selector, fusion): base accuracy and the mean ``metric`` at each budget.

    Means are over seeds and over the runs that finished; budgets are columns ``keep <budget>``.
    """
    budgets = list(dict.fromkeys(r.budget for r in records if r.kind == "compress"))
    base: dict[tuple[str, str], list[float]] = defaultdict(list)
    cells: dict[tuple[str, str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        value = r.score(metric) if r.status == "done" else None
        if r.kind == "train" and r.role == "base":
            if value is not None:
                base[(r.model, r.data)].append(value)
        elif r.kind == "compress":
            bucket = cells[(r.model, r.data, r.selector, r.fuse)]
            if value is not None:
                bucket[r.budget].append(value)
    rows = []
    for (model, data, selector, fuse), values in cells.items():
        row: dict[str, Any] = {
            "model": model,
            "data": data,
            "selector": selector,
            "fuse": fuse,
            "base": _mean(base.get((model, data), [])),
        }
        for budget in budgets:
            row[f"keep {budget}"] = _mean(values.get(budget, []))
        rows.append(row)
    return rows


def pipeline_table(records: list[Record]) -> list[dict[str, Any]]:
    """One row per (model, pipeline): base and compressed accuracy, stored bytes and compression ratio
    (means over the seeds that finished)."""
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in records:
        if r.kind == "pipeline":
            groups[(r.model, r.data, r.pipeline)].append(r)
    rows = []
    for (model, data, pipeline), items in groups.items():
        done = [r for r in items if r.status == "done"]
        means = {
            key: _mean([v for r in done if (v := r.score(key)) is not None])
            for key in ("base_accuracy", "accuracy", "stored_bytes", "compression_ratio")
        }
        rows.append(
            {
                "model": model,
                "data": data,
                "pipeline": pipeline,
                "base": means.pop("base_accuracy"),
                **means,
                "runs": f"{len(done)}/{len(items)}",
            }
        )
    return rows


def training_table(records: list[Record]) -> list[dict[str, Any]]:
    """One row per trained model (base models and baselines): mean accuracy, params, MACs over seeds."""
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in records:
        if r.kind == "train":
            groups[(r.role, r.model, r.data)].append(r)
    rows = []
    for (role, model, data), items in groups.items():
        done = [r for r in items if r.status == "done"]
        rows.append(
            {
                "model": model,
                "data": data,
                "role": role,
                "accuracy": _mean([v for r in done if (v := r.score()) is not None]),
                "params": done[0].metrics.get("params") if done else None,
                "macs": done[0].metrics.get("macs") if done else None,
                "runs": f"{len(done)}/{len(items)}",
            }
        )
    return rows
