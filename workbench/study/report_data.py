"""What the study report shows, as data: per base model, every method's accuracy interval, paired differences
and costs, ranked; what each selector kept per layer; the per-run rows written beside the report.

A *section* is one base model on one data set. Its *entries* are the methods run on it: a selector with a
fusion mode at one budget, a compression pipeline, a baseline architecture trained on the same data, or a control
(``[controls]``: the kept widths, or random widths of the same cost, trained from scratch at one budget, paired
also with the compressed model whose widths it trains, :attr:`Entry.vs_source`).
Each entry pools its finished runs over seeds: n, mean and 95% interval of the accuracy
(:func:`workbench.study.statistics.estimate`: seeds and the test set's sampling noise), the paired difference to
the base model of the same seed and (selectors) to the reference method at the same budget
(:func:`~workbench.study.statistics.paired_difference`), and the mean costs. A section's differences are one
table: their "distinguishable" verdicts are Holm-corrected over all of them
(:func:`~workbench.study.statistics.control`; :attr:`Section.multiplicity_note` says so in words). Entries are
ranked on ``val_accuracy`` alone when some runs store it (entries without it are listed after, unranked:
``rank`` None), else, when no run has a val score, on test accuracy (and the report says so).

Latency is one statistic everywhere: the median over seeds with its range (:class:`Spread`), measured at batch 1
(:data:`LATENCY_BATCH`). Given the number of classes of each data set, a section knows its chance level (1 /
classes) and which rows cannot be told from a guess (:func:`at_chance`: the 95% interval holds the chance level).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.study.statistics import Difference, Estimate, control, estimate, multiplicity_note, paired_difference
from workbench.study.summary import Record, parse_reference, proportion_size, retraining_budget, score_name
from workbench.viz.kept_figures import budget_text

#: Cost axes of the report (keys of :data:`workbench.viz.tradeoff_figures.COST_AXES`).
COSTS = ("params", "macs", "stored_bytes", "latency_ms")

#: Batch size of the stored ``latency_ms`` (one example input; ``latency_b64_ms`` is the batch of 64).
LATENCY_BATCH = 1

#: Relative spread of multiply-adds per parameter below which the multiply-adds axis repeats the parameter axis.
SAME_AXIS_TOLERANCE = 0.05


@dataclass(frozen=True)
class Spread:
    """A cost measured once per seed: ``n`` values, their median and their range (``low``, ``high``)."""

    n: int
    median: float
    low: float
    high: float


def spread(values: list[float | None]) -> Spread | None:
    """The :class:`Spread` of the finite ``values`` (None when there is none)."""
    clean = sorted(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if not clean:
        return None
    mid = len(clean) // 2
    median = clean[mid] if len(clean) % 2 else (clean[mid - 1] + clean[mid]) / 2
    return Spread(n=len(clean), median=median, low=clean[0], high=clean[-1])


def latency_spread(runs: list[Record]) -> Spread | None:
    """Median and range over ``runs`` (seeds) of the latency at batch :data:`LATENCY_BATCH`."""
    return spread([r.metrics.get("latency_ms") for r in runs if r.status == "done"])


def at_chance(est: Estimate | None, chance: float | None) -> bool:
    """Whether the 95% interval of ``est`` holds the chance level (a single value: whether it is within 0.02 of
    it): the score cannot be told from a guess."""
    if est is None or chance is None or not est.n or est.mean is None:
        return False
    if est.low is None or est.high is None:
        return abs(est.mean - chance) <= 0.02
    return est.low <= chance <= est.high


@dataclass
class Entry:
    """One method on one base model: its finished ``runs`` (of ``planned``) pooled over seeds."""

    kind: str
    name: str
    fuse: str | None
    budget: str | None
    runs: list[Record]
    planned: int
    accuracy: Estimate
    val: Estimate | None
    rebuilt: Estimate | None
    vs_base: Difference
    vs_reference: Difference | None
    is_reference: bool
    costs: dict[str, float]
    seconds: float | None
    retraining: str
    rank: int | None = None  # set by build_sections: None when not ranked (no val score where the rest has one)
    latency: Spread | None = None  # median and range over seeds at batch LATENCY_BATCH
    at_chance: bool = False  # set by build_sections: the accuracy interval holds the chance level
    source: str | None = None  # a control: the compressed method (selector/fuse) whose widths it trains
    vs_source: Difference | None = None  # a control: that compressed model minus the control, paired per seed

    @property
    def label(self) -> str:
        """``sbm, lsq, keep 0.5``; ``pipeline deep-compression``; ``baseline LeNet-5``; ``scratch, widths of
        magnitude/drop, keep 0.5``."""
        if self.kind == "selector":
            return f"{self.name}, {self.fuse}, {budget_text(self.budget)}"
        if self.kind == "control":
            return f"{self.name}, {budget_text(self.budget)}"
        return f"{self.kind} {self.name}"

    @property
    def rank_value(self) -> float | None:
        """The value the entry is ranked on in a section ranked on val: its mean val accuracy (None without one;
        test accuracy is never mixed in)."""
        return self.val.mean if self.val is not None else None


@dataclass
class Section:
    """One base model on one data set: its base runs, the entries ranked, and the kept-fraction rows."""

    model: str
    data: str
    base: Estimate
    base_costs: dict[str, float]
    n_test: int | None
    entries: list[Entry]
    ranked_on: str
    kept: list[dict[str, Any]] = field(default_factory=list)
    overlap: dict[str, Any] = field(default_factory=dict)
    macs_repeat_params: bool = False
    class_iou: dict[str, Any] = field(default_factory=dict)  # segmentation: class_names and per-row mean IoU
    comparisons: int = 0  # paired differences with a p-value in the section's table (Holm-corrected together)
    base_val: Estimate | None = None  # the base runs' val score, when they store one
    base_latency: Spread | None = None
    chance: float | None = None  # 1 / classes of a classification data set, when known
    classes: int | None = None

    @property
    def base_at_chance(self) -> bool:
        """The base model barely works: its accuracy interval holds the chance level."""
        return at_chance(self.base, self.chance)

    @property
    def kept_uniform(self) -> bool:
        """Every method kept one fraction of every layer at each budget: the kept-per-layer heatmap would only
        repeat the budget."""
        per_budget: dict[str, set[float]] = defaultdict(set)
        for row in self.kept:
            per_budget[str(row["budget"])].add(round(float(row["kept"]), 6))
        return all(len(values) == 1 for values in per_budget.values())

    @property
    def multiplicity_note(self) -> str:
        """Which correction the section's "distinguishable" verdicts carry, over how many comparisons."""
        return multiplicity_note(self.comparisons)

    @property
    def anchor(self) -> str:
        """An HTML id for the section."""
        return slug(f"{self.model} on {self.data}")


def slug(text: str) -> str:
    """``'LeNet-300-100 on digits' -> 'lenet-300-100-on-digits'`` (an HTML id)."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(part for part in out.split("-") if part) or "section"


def _values(runs: list[Record], key: str) -> dict[int, float]:
    return {r.seed: v for r in runs if (v := r.score(key)) is not None}


def _mean(values: list[float]) -> float | None:
    clean = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(clean) / len(clean) if clean else None


def run_costs(record: Record) -> dict[str, float]:
    """A run's costs: parameters (nonzero weights for a pipeline, which stores only those), multiply-adds,
    stored bytes (dense fp32 bytes when the run stores no compressed size) and latency.

    A selector run stores its nonzero weights too, but its cost is its parameters, as for the controls and base
    models built at the same widths: a rebuilt network stores them all."""
    m = record.metrics
    costs = {
        "params": m.get("nonzero", m.get("params")) if record.kind == "pipeline" else m.get("params"),
        "macs": m.get("macs"),
        "stored_bytes": m.get("stored_bytes", m.get("dense_bytes")),
        "latency_ms": m.get("latency_ms"),
    }
    return {key: float(value) for key, value in costs.items() if value is not None}


def _mean_costs(runs: list[Record]) -> dict[str, float]:
    """Mean costs over ``runs``, but latency as the median over seeds (:func:`latency_spread`): the statistic
    every table and figure of the report gives."""
    per_run = [run_costs(r) for r in runs]
    means = {key: _mean([c.get(key) for c in per_run]) for key in COSTS if key != "latency_ms"}
    latency = latency_spread(runs)
    if latency is not None:
        means["latency_ms"] = latency.median
    return {key: value for key, value in means.items() if value is not None}


def _entry(
    kind: str,
    name: str,
    runs: list[Record],
    base_values: Mapping[int, float],
    *,
    fuse: str | None = None,
    budget: str | None = None,
    reference: Mapping[int, float] | None = None,
    is_reference: bool = False,
) -> Entry:
    done = [r for r in runs if r.status == "done"]
    accuracy = _values(done, "accuracy")
    val = _values(done, "val_accuracy")
    rebuilt = _values(done, "accuracy_rebuilt")
    n_test = proportion_size(done)
    return Entry(
        kind=kind,
        name=name,
        fuse=fuse,
        budget=budget,
        runs=done,
        planned=len(runs),
        accuracy=estimate(list(accuracy.values()), n_test=n_test),
        val=estimate(list(val.values()), n_test=proportion_size(done, "val_n")) if val else None,
        rebuilt=estimate(list(rebuilt.values()), n_test=n_test) if rebuilt else None,
        vs_base=paired_difference(accuracy, base_values, n_test=n_test),
        vs_reference=None if reference is None else paired_difference(accuracy, reference, n_test=n_test),
        is_reference=is_reference,
        costs=_mean_costs(done),
        seconds=_mean([r.seconds for r in done]),
        retraining=retraining_budget(done) if kind != "baseline" else "trained from scratch",
        latency=latency_spread(done),
    )


def _base_of_run(runs: list[Record], base_values: Mapping[int, float]) -> dict[int, float]:
    """Per seed, the base accuracy stored with the runs themselves, else the base model's run of that seed."""
    stored = _values(runs, "base_accuracy")
    return {**base_values, **stored}


def _macs_repeat_params(points: list[dict[str, float]]) -> bool:
    """Whether multiply-adds only repeat the parameter counts: one multiply-add per weight, as in a fully
    connected network (a conv net pruned uniformly also keeps MACs / params constant, but far from 1)."""
    ratios = [c["macs"] / c["params"] for c in points if c.get("macs") and c.get("params")]
    if len(ratios) < 2:
        return False
    return all(abs(ratio - 1.0) < SAME_AXIS_TOLERANCE for ratio in ratios)


def kept_rows(records: list[Record], plans: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Mean fraction of units kept per (selector, budget, group) over the stored plans of ``records``
    (``plans``: run hash -> :meth:`workbench.surgery.Plan.to_dict`); plans of another shape are skipped."""
    kept: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    units: dict[str, int] = {}
    for r in records:
        plan = plans.get(r.hash)
        if r.kind != "compress" or r.status != "done" or not isinstance(plan, Mapping):
            continue
        for group, selection in (plan.get("selections") or {}).items():
            try:
                n_units, keep = int(selection["n_units"]), selection["keep"]
            except (KeyError, TypeError, ValueError):
                continue
            if n_units > 0:
                kept[(str(r.selector), str(r.budget), str(group))].append(len(keep) / n_units)
                units[str(group)] = n_units
    return [
        {"method": method, "budget": budget, "group": group, "kept": sum(v) / len(v), "units": units[group]}
        for (method, budget, group), v in kept.items()
    ]


def overlap_plans(records: list[Record], plans: Mapping[str, Any]) -> dict[str, Any]:
    """The kept units of every selector on one base model, for the overlap figure: at the smallest budget (where
    selectors must disagree most), for the first seed that every selector finished.

    Returns ``{"budget", "keep" (the fraction), "seed", "plans": {selector: {group: kept indices}}}``, or ``{}``
    with fewer than two selectors.
    """
    found: dict[tuple[str, int], dict[str, dict[str, list[int]]]] = defaultdict(dict)
    keeps: dict[str, float] = {}
    for r in records:
        plan = plans.get(r.hash)
        if r.kind != "compress" or r.status != "done" or not isinstance(plan, Mapping) or r.budget is None:
            continue
        selections = plan.get("selections") or {}
        kept = {str(g): list(s["keep"]) for g, s in selections.items() if isinstance(s, Mapping) and "keep" in s}
        if kept:
            found[(r.budget, r.seed)].setdefault(str(r.selector), kept)  # the selection does not depend on fusion
            keeps[r.budget] = r.keep if r.keep is not None else 1.0
    selectors = {name for chosen in found.values() for name in chosen}
    for budget in sorted(keeps, key=lambda b: keeps[b]):
        for (b, seed), chosen in sorted(found.items(), key=lambda item: item[0][1]):
            if b == budget and len(chosen) == len(selectors) >= 2:
                return {"budget": budget, "keep": keeps[budget], "seed": seed, "plans": chosen}
    return {}


def class_iou_rows(base_runs: list[Record], entries: list[Entry]) -> dict[str, Any]:
    """Per-class IoU of a segmentation section, mean over seeds: ``class_names`` and ``rows`` of
    ``(label, [mean IoU or None per class], seeds)``, the base model first, then the entries in their order;
    empty when no run stored per-class IoU."""
    names = next((r.metrics["class_names"] for r in base_runs if r.metrics.get("class_names")), None)
    names = names or next(
        (r.metrics["class_names"] for e in entries for r in e.runs if r.metrics.get("class_names")), None
    )
    if not names:
        return {}

    def row(label: str, runs: list[Record]) -> tuple[str, list[float | None], int] | None:
        lists = [r.metrics["iou"] for r in runs if r.status == "done" and len(r.metrics.get("iou") or []) == len(names)]
        if not lists:
            return None
        means = [_mean([values[k] for values in lists]) for k in range(len(names))]
        return label, means, len(lists)

    rows = [row("base model", base_runs), *(row(e.label, e.runs) for e in entries if e.kind != "baseline")]
    return {"class_names": list(names), "rows": [r for r in rows if r is not None]}


def _rank(entries: list[Entry]) -> str:
    """Sort ``entries`` in place and number them: on mean val accuracy when some entry has one (those without
    are listed after, ``rank`` None), else on mean test accuracy. Returns what they were ranked on."""
    on_val = any(e.val is not None and e.val.mean is not None for e in entries)

    def value(entry: Entry) -> float | None:
        return entry.rank_value if on_val else entry.accuracy.mean if entry.runs else None

    entries.sort(key=lambda e: (value(e) is None, -(value(e) or 0.0)))
    for k, entry in enumerate((e for e in entries if value(e) is not None), 1):
        entry.rank = k
    return "val accuracy" if on_val else "test accuracy"


def _compare_with_source(entry: Entry, cells: Mapping[tuple[str, str, str | None, str | None], list[Record]]) -> None:
    """Give a control ``entry`` its source method and the paired difference, compressed minus control, to it."""
    entry.source = str(entry.runs[0].widths_from) if entry.runs else None
    if entry.source is None:
        return
    selector, _, fuse = entry.source.partition("/")
    source_runs = [r for r in cells.get(("selector", selector, fuse, entry.budget), []) if r.status == "done"]
    control_values = _values(entry.runs, "accuracy")
    entry.vs_source = paired_difference(
        _values(source_runs, "accuracy"), control_values, n_test=proportion_size(entry.runs)
    )


def control_fields(section: Section, entry: Entry) -> dict[str, Any]:
    """What :func:`workbench.study.summary.control_sentence` says of a control ``entry`` of ``section``."""
    selector, _, fuse = str(entry.source).partition("/")
    source = next(
        (
            e
            for e in section.entries
            if e.kind == "selector" and (e.name, e.fuse, e.budget) == (selector, fuse, entry.budget)
        ),
        None,
    )
    diff = entry.vs_source
    fields: dict[str, Any] = {
        "source": entry.source,
        "source_mean": source.accuracy.mean if source is not None and source.accuracy.n else None,
        "control_mean": entry.accuracy.mean if entry.accuracy.n else None,
    }
    if diff is not None:
        fields.update(
            gain=diff.mean,
            gain_low=diff.low,
            gain_high=diff.high,
            gain_n=diff.n,
            gain_distinguishable=diff.distinguishable,
        )
    return fields


def _control(entries: list[Entry]) -> int:
    """Holm-correct every paired difference of a section's table (vs base, vs reference and, for controls, vs the
    compressed model whose widths they train) together, in place; return how many were tested."""
    diffs = [d for e in entries for d in (e.vs_base, e.vs_reference, e.vs_source)]
    controlled = iter(control(diffs))
    for entry in entries:
        entry.vs_base, entry.vs_reference, entry.vs_source = next(controlled), next(controlled), next(controlled)
    return sum(1 for d in diffs if d is not None and d.p_value is not None)


def build_sections(
    records: list[Record],
    plans: Mapping[str, Any],
    reference: str | None = None,
    classes: Mapping[str, int] | None = None,
) -> list[Section]:
    """One :class:`Section` per base model (model, data) with compression or pipeline runs, entries ranked.

    ``classes`` (data set name -> number of classes, classification only) gives each section its chance level
    and marks the entries and base models whose interval holds it.
    """
    ref_selector, ref_fuse = parse_reference(reference)
    bases = list(dict.fromkeys((r.model, r.data) for r in records if r.kind in ("compress", "pipeline")))
    sections = []
    for model, data in bases:
        base_runs = [
            r for r in records if r.kind == "train" and r.role == "base" and (r.model, r.data) == (model, data)
        ]
        base_done = [r for r in base_runs if r.status == "done"]
        base_values = _values(base_done, "accuracy")
        mine = [r for r in records if (r.model, r.data) == (model, data)]
        cells: dict[tuple[str, str, str | None, str | None], list[Record]] = defaultdict(list)
        for r in mine:
            if r.kind == "compress":
                cells[("selector", str(r.selector), r.fuse, r.budget)].append(r)
            elif r.kind == "pipeline":
                cells[("pipeline", str(r.pipeline), None, None)].append(r)
            elif r.kind == "control":
                cells[("control", str(r.control), None, r.budget)].append(r)
        for r in records:
            if r.kind == "train" and r.role != "base" and r.data == data:
                cells[("baseline", r.model, None, None)].append(r)
        entries = []
        for (kind, name, fuse, budget), runs in cells.items():
            own_base = _base_of_run(runs, base_values) if kind != "baseline" else dict(base_values)
            reference_values = None
            is_reference = kind == "selector" and (name, fuse) == (ref_selector, ref_fuse)
            if kind in ("selector", "control") and not is_reference:
                ref_runs = cells.get(("selector", ref_selector, ref_fuse, budget))
                if ref_runs is not None:
                    reference_values = _values([r for r in ref_runs if r.status == "done"], "accuracy")
            entry = _entry(
                kind,
                name,
                runs,
                own_base,
                fuse=fuse,
                budget=budget,
                reference=reference_values,
                is_reference=is_reference,
            )
            if kind == "control":
                _compare_with_source(entry, cells)
            entries.append(entry)
        ranked_on = _rank(entries)
        comparisons = _control(entries)
        base_costs = _mean_costs(base_done)
        n_classes = (classes or {}).get(data)
        chance = 1.0 / n_classes if n_classes and score_name([*base_done, *mine]) == "accuracy" else None
        for entry in entries:
            entry.at_chance = at_chance(entry.accuracy, chance)
        base_val = _values(base_done, "val_accuracy")
        points = [e.costs for e in entries if e.runs] + [base_costs]
        sections.append(
            Section(
                model=model,
                data=data,
                base=estimate(list(base_values.values()), n_test=proportion_size(base_done)),
                base_costs=base_costs,
                n_test=proportion_size(base_done) or proportion_size([r for e in entries for r in e.runs]),
                entries=entries,
                ranked_on=ranked_on,
                kept=kept_rows(mine, plans),
                overlap=overlap_plans(mine, plans),
                macs_repeat_params=_macs_repeat_params(points),
                class_iou=class_iou_rows(base_done, entries),
                comparisons=comparisons,
                base_val=estimate(list(base_val.values()), n_test=proportion_size(base_done, "val_n"))
                if base_val
                else None,
                base_latency=latency_spread(base_done),
                chance=chance,
                classes=n_classes if chance is not None else None,
            )
        )
    return sections


#: Scalar metrics written to the per-run CSV, in column order (others go to the JSON only).
CSV_METRICS = (
    "accuracy",
    "val_accuracy",
    "accuracy_rebuilt",
    "base_accuracy",
    "n",
    "params",
    "nonzero",
    "macs",
    "dense_bytes",
    "stored_bytes",
    "compression_ratio",
    "latency_ms",
    "kept_fraction",
    "retrain_samples",
    "train_samples",
    "samples_target",
    "cost_ratio",
    "teacher",
    "train_seconds",
)


def run_rows(records: list[Record], plans: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One JSON-safe dict per run: what it was, its status, run time, every stored metric and, for a
    compression run, the units kept per group (``kept``: group -> ``{"n_units", "kept"}``)."""
    rows = []
    for r in records:
        plan = plans.get(r.hash)
        kept = None
        if r.kind == "compress" and isinstance(plan, Mapping) and isinstance(plan.get("selections"), Mapping):
            kept = {
                group: {"n_units": s.get("n_units"), "kept": s.get("keep")}
                for group, s in plan["selections"].items()
                if isinstance(s, Mapping)
            }
        rows.append(
            {
                "hash": r.hash,
                "kind": r.kind,
                "role": r.role,
                "model": r.model,
                "data": r.data,
                "seed": r.seed,
                "selector": r.selector,
                "pipeline": r.pipeline,
                "budget": r.budget,
                "fuse": r.fuse,
                "status": r.status,
                "seconds": r.seconds,
                "metrics": r.metrics,
                "kept": kept,
                "error": r.error,
            }
        )
    return rows


def csv_text(rows: list[dict[str, Any]]) -> str:
    """:func:`run_rows` as CSV: identifiers, status, seconds and the scalar metrics of :data:`CSV_METRICS`."""
    import csv
    import io

    columns = ["hash", "kind", "role", "model", "data", "seed", "selector", "pipeline", "budget", "fuse"]
    columns += ["status", "seconds", *CSV_METRICS, "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**{k: row[k] for k in columns if k in row}, **{k: row["metrics"].get(k) for k in CSV_METRICS}})
    return buffer.getvalue()
