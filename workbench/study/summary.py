"""Results of a study as flat records, and the summary table (printed at the end of a run, and in the report)."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import StudyError
from workbench.study.grid import config_hash, expand
from workbench.study.schema import Study, budget_heading
from workbench.study.statistics import Difference, control, estimate, multiplicity_note, paired_difference


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
    control: str | None = None  # a control run's method name (:func:`workbench.study.controls.control_label`)
    widths_from: str | None = None  # a control run's source method, ``selector/fuse``

    @property
    def method(self) -> str | None:
        """``selector/fuse`` of a compression run, the control's name of a control run, else None."""
        if self.kind == "compress":
            return f"{self.selector}/{self.fuse}"
        return self.control

    def score(self, key: str = "accuracy") -> float | None:
        """``metrics[key]`` (``miou`` for segmentation when ``accuracy`` is asked and absent)."""
        value = self.metrics.get(key)
        if value is None and "accuracy" in key:
            value = self.metrics.get(key.replace("accuracy", "miou"))
        return None if value is None else float(value)


#: Metrics that summaries and reports read as numbers: a stored row holding anything else there is damaged.
NUMBER_METRICS = (
    "accuracy",
    "miou",
    "val_accuracy",
    "val_miou",
    "base_accuracy",
    "accuracy_rebuilt",
    "n",
    "val_n",
    "params",
    "macs",
    "nonzero",
    "dense_bytes",
    "stored_bytes",
    "base_stored_bytes",
    "compression_ratio",
    "latency_ms",
    "latency_b64_ms",
    "kept_fraction",
    "retrain_samples",
    "train_samples",
    "samples_target",
    "cost_ratio",
    "train_seconds",
)


def _not_a_number(value: Any) -> bool:
    """Whether ``value`` is anything but a real number (true / false and text are not; NaN, a score of no samples,
    is)."""
    return isinstance(value, bool) or not isinstance(value, (int, float))


def stored_row_problem(row: Mapping[str, Any], run_hash: str | None = None) -> str | None:
    """What is wrong with a stored row (:meth:`workbench.study.store.Store.rows`) that its JSON parsed into, or None.

    Its ``config`` (when it has one) must be the configuration of its run (an object whose
    :func:`~workbench.study.grid.config_hash` is ``run_hash``, when given), ``seconds`` a number >= 0, ``plan`` an object, every metric of
    :data:`NUMBER_METRICS` a number, and ``iou`` / ``class_names`` lists of numbers (or null) / names.
    """
    config, seconds, plan = row.get("config"), row.get("seconds"), row.get("plan")
    metrics = row.get("metrics") or {}
    if "config" in row and (  # rows a store read hold their config; rows made in memory may leave it out
        not isinstance(config, Mapping) or (run_hash is not None and config_hash(dict(config)) != run_hash)
    ):
        return f"config_json is not the configuration of run {run_hash or row.get('hash')} ({str(config)[:60]})"
    if seconds is not None and (_not_a_number(seconds) or not seconds >= 0):
        return f"seconds is {seconds!r}, not a number of seconds"
    if plan is not None and not isinstance(plan, Mapping):
        return f"plan_json holds a {type(plan).__name__} ({str(plan)[:40]}), not a plan"
    if not isinstance(metrics, Mapping):
        return f"metrics_json holds a {type(metrics).__name__}, not metrics"
    for key in NUMBER_METRICS:
        if metrics.get(key) is not None and _not_a_number(metrics[key]):
            return f"metric {key} is {str(metrics[key])[:40]!r}, not a number"
    for key, wrong in (
        ("iou", lambda v: v is not None and _not_a_number(v)),
        ("class_names", lambda v: not isinstance(v, str)),
    ):
        value = metrics.get(key)
        if value is not None and (not isinstance(value, list) or any(wrong(item) for item in value)):
            return f"metric {key} is {str(value)[:40]!r}, not a list of {'numbers' if key == 'iou' else 'names'}"
    return None


def collect(study: Study, rows: list[dict[str, Any]], damaged: Mapping[str, str] | None = None) -> list[Record]:
    """Join the study's runs (for names and labels) with the stored rows (for outcomes).

    ``damaged`` (hash -> problem, :attr:`workbench.study.store.Store.damaged`) marks runs whose stored row
    cannot be read: status ``"damaged"``, left out of every mean like runs not done. So are the rows that parse
    but hold what no run stores (:func:`stored_row_problem`: text where a number goes, another run's
    configuration); a warning names each of those by its hash.
    """
    from workbench.study.controls import control_label

    runs = expand(study)
    stored = {row["hash"]: row for row in rows}
    found = {
        run.hash: problem
        for run in runs
        if run.hash in stored and (problem := stored_row_problem(stored[run.hash], run.hash)) is not None
    }
    if found:
        listed = "; ".join(f"{key}: {text}" for key, text in list(found.items())[:5])
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        warnings.warn(
            f"{len(found)} stored row(s) of study {study.study.name!r} hold what no run stores, left out of "
            f"summaries and reports (delete them from the store to compute them again): {listed}{more}",
            UserWarning,
            stacklevel=3,
        )
        stored = {key: row for key, row in stored.items() if key not in found}
    damaged = {**(damaged or {}), **found}
    records = []
    for run in runs:
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
                control=control_label(config) if run.kind == "control" else None,
                widths_from=config.get("widths_from"),
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


#: The reference of the paired differences when the study names none: ``selector/fuse``.
DEFAULT_REFERENCE = "magnitude/drop"


def parse_reference(reference: str | None) -> tuple[str, str]:
    """``"selector/fuse"`` (default :data:`DEFAULT_REFERENCE`) as ``(selector, fuse)``; StudyError otherwise."""
    text = reference or DEFAULT_REFERENCE
    selector, sep, fuse = text.partition("/")
    if not sep or not selector or not fuse or "/" in fuse:
        raise StudyError(f"reference {text!r} is not 'selector/fuse'; write it as e.g. {DEFAULT_REFERENCE!r}.")
    return selector, fuse


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _difference_fields(diff: Difference | None) -> dict[str, Any]:
    """A cell's paired-difference keys from ``diff`` (all None without a reference)."""
    if diff is None:
        keys = ("diff_n", "diff", "diff_low", "diff_high", "distinguishable", "p", "p_adjusted", "comparisons")
        return {**dict.fromkeys(keys), "correction": None}
    return {
        "diff_n": diff.n,
        "diff": _rounded(diff.mean),
        "diff_low": _rounded(diff.low),
        "diff_high": _rounded(diff.high),
        "distinguishable": diff.distinguishable,
        "p": diff.p_value,
        "p_adjusted": diff.p_adjusted,
        "comparisons": diff.comparisons,
        "correction": diff.correction,
    }


def _cell_and_difference(
    values: Mapping[int, float], n_test: int | None, reference: Mapping[int, float] | None
) -> tuple[dict[str, Any], Difference | None]:
    est = estimate(list(values.values()), n_test=n_test)
    diff = None if reference is None else paired_difference(values, reference, n_test=n_test)
    cell = {
        "n": est.n,
        "mean": _rounded(est.mean),
        "low": _rounded(est.low),
        "high": _rounded(est.high),
        "interval": est.method,
        "single_seed": est.single_seed,
        **_difference_fields(diff),
    }
    return cell, diff


def cell_stats(
    values: Mapping[int, float], n_test: int | None = None, reference: Mapping[int, float] | None = None
) -> dict[str, Any]:
    """One summary cell from per-seed ``values``: n, mean, interval ``low``/``high`` (:func:`estimate`; ``interval``
    names it), and, when ``reference`` (per-seed values of the reference) is given, the paired difference ``diff``
    with its interval ``diff_low``/``diff_high``, ``diff_n`` seeds paired, its p-value ``p`` and ``distinguishable``
    (None without one).

    A score cell given its test-set size ``n_test`` is an accuracy: its interval and difference count the test
    set's sampling noise and stay within [0, 1] and [-1, 1] without clipping (mIoU and costs get no ``n_test``).
    The verdict is for this one comparison; a table corrects it for its number of comparisons
    (:func:`control_cells`).
    """
    return _cell_and_difference(values, n_test, reference)[0]


def control_cells(pairs: list[tuple[dict[str, Any], Difference | None]]) -> int:
    """Correct the ``distinguishable`` verdicts of one table's cells (each with the :class:`Difference` it was
    built from) for their number (:func:`workbench.study.statistics.control`): each tested cell gets
    ``p_adjusted``, ``comparisons`` and ``correction``. Returns the number of comparisons."""
    controlled = control([diff for _, diff in pairs])
    for (cell, _), diff in zip(pairs, controlled):
        if diff is not None:
            cell.update(_difference_fields(diff))
    return sum(1 for diff in controlled if diff is not None and diff.comparisons)


def table_note(rows: list[dict[str, Any]]) -> str:
    """The multiplicity sentence of a :func:`summary_table`, :func:`pipeline_table` or :func:`compare_table`:
    which correction its "distinguishable" verdicts carry and over how many comparisons."""
    cells = [cell for row in rows for cell in row.get("stats", {"": row}).values()]
    return multiplicity_note(max((cell.get("comparisons") or 0 for cell in cells), default=0))


def _miou_only(records: list[Record]) -> bool:
    """Whether ``records`` (at least one) are scored by mIoU alone: segmentation runs."""
    return bool(records) and all("accuracy" not in r.metrics and "miou" in r.metrics for r in records)


def score_name(records: list[Record]) -> str:
    """``"mIoU"`` when the finished ``records`` are scored by mIoU alone (segmentation), else ``"accuracy"``."""
    return "mIoU" if _miou_only([r for r in records if r.status == "done"]) else "accuracy"


def proportion_size(records: list[Record], key: str = "n") -> int | None:
    """The test-set size stored with the runs (``metrics[key]``), when they agree on one and score accuracy.

    ``None`` for runs scored by mIoU alone (segmentation): mIoU is not a proportion of test samples, so it gets
    neither a binomial single-seed interval nor a noise floor of one test sample.
    """
    if _miou_only(records):
        return None
    sizes = {r.metrics.get(key) for r in records}
    sizes.discard(None)
    return int(sizes.pop()) if len(sizes) == 1 else None


def _per_seed(records: list[Record], metric: str) -> dict[int, float]:
    return {r.seed: v for r in records if r.status == "done" and (v := r.score(metric)) is not None}


def retraining_budget(runs: list[Record]) -> str:
    """The retraining budget the finished ``runs`` spent, for a table: training samples seen after the rebuild
    (one figure, or the range when runs differ) and the teacher (``"none"``: labels only)."""
    done = [r for r in runs if r.status == "done"]
    scratch = [r for r in done if "train_samples" in r.metrics]  # control runs: all their training is from scratch
    key = "train_samples" if scratch else "retrain_samples"
    samples = sorted({int(r.metrics.get(key, 0)) for r in done if key in r.metrics})
    teachers = sorted({str(r.metrics["teacher"]) for r in done if "teacher" in r.metrics})
    if not samples:
        return "-"
    amount = f"{samples[0]:,}" if len(samples) == 1 else f"{samples[0]:,}-{samples[-1]:,}"
    if scratch:
        return f"{amount} samples from scratch (base training + retraining)"
    return f"{amount} samples, teacher {'/'.join(teachers) or 'none'}" if samples[-1] else "none"


def _pipeline_budget(runs: list[Record]) -> str:
    """:func:`retraining_budget` of pipeline runs, marked when they kept their own schedule."""
    budget = retraining_budget(runs)
    own = any(r.metrics.get("schedule") == "own" for r in runs)
    return f"{budget} (own schedule)" if own and budget != "-" else budget


def summary_table(
    records: list[Record], metric: str = "accuracy", reference: str | None = None, controls: bool = False
) -> list[dict[str, Any]]:
    """One row per (model, selector, fusion): its retraining budget (:func:`retraining_budget`), base accuracy
    and the mean ``metric`` at each budget.

    Means are over seeds and over the runs that finished; budgets are columns ``keep <budget>`` (``macs 0.5`` for a budget by cost, :func:`~workbench.study.schema.budget_heading`). Each row's
    ``stats`` maps ``base`` and every ``keep <budget>`` column to its :func:`cell_stats` (n, interval), the
    budget cells with the paired difference to ``reference`` (``selector/fuse``, default
    :data:`DEFAULT_REFERENCE`) at the same budget, seed by seed; ``reference`` names it (None when the study
    has no such runs); the reference's own cells have ``is_reference`` True and no difference. The
    ``distinguishable`` verdicts are Holm-corrected over all the table's differences (:func:`control_cells`;
    each cell's ``comparisons`` says how many, :func:`table_note` says it in words).
    """
    ref_selector, ref_fuse = parse_reference(reference)
    ref_label = f"{ref_selector}/{ref_fuse}"
    budgets = list(dict.fromkeys(r.budget for r in records if r.kind == "compress"))
    base: dict[tuple[str, str], list[Record]] = defaultdict(list)
    cells: dict[tuple[str, str, str, str], dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.kind == "train" and r.role == "base":
            base[(r.model, r.data)].append(r)
        elif r.kind == "compress":
            cells[(r.model, r.data, r.selector, r.fuse)][r.budget].append(r)
        elif r.kind == "control" and controls:
            cells[(r.model, r.data, r.control, None)][r.budget].append(r)
    rows = []
    tested: list[tuple[dict[str, Any], Difference | None]] = []
    for (model, data, selector, fuse), by_budget in cells.items():
        base_runs = base.get((model, data), [])
        base_values = _per_seed(base_runs, metric)
        row: dict[str, Any] = {
            "model": model,
            "data": data,
            "selector": selector,
            "fuse": fuse,
            "retraining": retraining_budget([r for runs in by_budget.values() for r in runs]),
            "base": _mean(list(base_values.values())),
        }
        if fuse is None:
            row["control"] = True
        stats = {"base": cell_stats(base_values, proportion_size(base_runs))}
        is_reference = (selector, fuse) == (ref_selector, ref_fuse)
        reference_runs = cells.get((model, data, ref_selector, ref_fuse))
        for budget in budgets:
            runs = by_budget.get(budget, [])
            values = _per_seed(runs, metric)
            row[budget_heading(budget)] = _mean(list(values.values()))
            against = None
            if reference_runs is not None and not is_reference:
                against = _per_seed(reference_runs.get(budget, []), metric)
            cell, diff = _cell_and_difference(values, proportion_size(runs), against)
            tested.append((cell, diff))
            cell["reference"] = ref_label if against is not None or is_reference else None
            cell["is_reference"] = is_reference
            cell["metric"] = metric  # what the cell holds, whatever its column (a budget) is called
            stats[budget_heading(budget)] = cell
        row["stats"] = stats
        rows.append(row)
    control_cells(tested)
    return rows


def pipeline_table(records: list[Record]) -> list[dict[str, Any]]:
    """One row per (model, pipeline): base and compressed accuracy, stored bytes and compression ratio
    (means over the seeds that finished).

    Each row's ``stats`` maps ``base``, ``accuracy``, ``stored_bytes`` and ``compression_ratio`` to their
    :func:`cell_stats`; the accuracy cell holds the paired difference to the base model of the same seed
    (``reference`` ``"base"``), the compression's cost in accuracy, Holm-corrected over the table's pipelines. The
    base model is scored on the same test set as the pipeline, so its cell has the pipeline's test-set size
    when the runs store no ``base_n``.
    """
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in records:
        if r.kind == "pipeline":
            groups[(r.model, r.data, r.pipeline)].append(r)
    rows = []
    tested: list[tuple[dict[str, Any], Difference | None]] = []
    for (model, data, pipeline), items in groups.items():
        done = [r for r in items if r.status == "done"]
        per_seed = {
            key: _per_seed(done, key) for key in ("base_accuracy", "accuracy", "stored_bytes", "compression_ratio")
        }
        means = {key: _mean(list(values.values())) for key, values in per_seed.items()}
        base_values = per_seed.pop("base_accuracy")
        stats = {"base": cell_stats(base_values, proportion_size(done, "base_n") or proportion_size(done))}
        cell, diff = _cell_and_difference(per_seed["accuracy"], proportion_size(done), base_values)
        stats["accuracy"] = {**cell, "reference": "base", "is_reference": False}
        tested.append((stats["accuracy"], diff))
        stats.update({key: cell_stats(per_seed[key]) for key in ("stored_bytes", "compression_ratio")})
        rows.append(
            {
                "model": model,
                "data": data,
                "pipeline": pipeline,
                "base": means.pop("base_accuracy"),
                **means,
                "retraining": _pipeline_budget(done),
                "runs": f"{len(done)}/{len(items)}",
                "stats": stats,
            }
        )
    control_cells(tested)
    return rows


def format_cell(column: str, cell: Mapping[str, Any]) -> str:
    """A :func:`cell_stats` cell as text: ``0.912 [0.905, 0.919] n=3``; ``single seed 0.912 [0.9, 0.92]``
    (the binomial interval of the test set, when known) for one seed; ``-`` for none."""
    from workbench.metrics.table import format_value

    if not cell.get("n"):
        return "-"
    text = format_value(column, cell["mean"])
    if cell.get("low") is not None:
        text += f" [{format_value(column, cell['low'])}, {format_value(column, cell['high'])}]"
    return f"single seed {text}" if cell.get("single_seed") else f"{text} n={cell['n']}"


def format_difference(cell: Mapping[str, Any]) -> str:
    """The paired difference of a cell as text: ``+0.012 [+0.004, +0.020]``, with ``not distinguishable``
    when the interval holds 0 or one seed is paired; ``reference`` for the reference itself."""
    if cell.get("is_reference"):
        return "reference"
    if not cell.get("diff_n"):
        return "-"
    text = f"{cell['diff']:+.4f}"
    if cell.get("diff_low") is not None:
        text += f" [{cell['diff_low']:+.4f}, {cell['diff_high']:+.4f}]"
    elif cell["diff_n"] == 1:
        text += " (1 seed)"
    return text if cell.get("distinguishable") else f"{text} not distinguishable"


def display_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of :func:`summary_table` or :func:`pipeline_table` for a printed table: each cell with ``stats``
    as :func:`format_cell`, followed by a ``<column> vs <reference>`` column (:func:`format_difference`)
    when the cell has a reference."""
    references: dict[str, str] = {}
    for row in rows:
        for key, cell in row.get("stats", {}).items():
            if cell.get("reference"):
                references.setdefault(key, cell["reference"])
    shown = []
    for row in rows:
        stats = row.get("stats", {})
        line: dict[str, Any] = {}
        for key, value in row.items():
            if key == "stats":
                continue
            if key not in stats:
                line[key] = value
                continue
            line[key] = format_cell(stats[key].get("metric", key), stats[key])
            if key in references:
                line[f"{key} vs {references[key]}"] = format_difference(stats[key])
        shown.append(line)
    return shown


def compare_table(
    records: list[Record], reference: str | None = None, metric: str = "accuracy"
) -> list[dict[str, Any]]:
    """Per (model, data, budget), every method (``selector/fuse``) ranked on ``val``: n, mean ``metric`` on test with
    its interval, the paired difference to ``reference`` (default :data:`DEFAULT_REFERENCE`) with its interval, and
    ``distinguishable`` (False when the reference and the method cannot be told apart; None for the reference).

    Methods are ranked by their mean ``val_<metric>`` (``val``; ``ranked_on`` says ``"val"``); test is reported, never
    used to choose: a method without a val score in a block ranked on val is listed after the ranked ones, with
    ``rank`` None and ``ranked`` False. Blocks whose runs have no validation score at all (base models trained on
    ``trainval``) are ranked on test, and ``ranked_on`` then says ``"test"``. ``distinguishable`` is Holm-corrected
    over the table's ``comparisons`` (:func:`summary_table`). Control runs (``[controls]``) are methods of their
    blocks too (``control`` True), with what :func:`control_comparisons` gives: ``gain`` (the compressed model of
    the same seed minus the control, with its interval) and ``vs_base``.

    Raises
    ------
    StudyError
        ``reference`` is not one of the study's methods.
    """
    ref_selector, ref_fuse = parse_reference(reference)
    ref_label = f"{ref_selector}/{ref_fuse}"
    rows = summary_table(records, metric, reference=ref_label, controls=True)
    methods = list(dict.fromkeys(_row_method(row) for row in rows if not row.get("control")))
    if rows and ref_label not in methods:
        raise StudyError(
            f"reference {ref_label!r} is not a method of this study; choose one of {', '.join(methods)} "
            "(--reference selector/fuse, or reference in the study's [study] table)."
        )
    val_means = {
        (row["model"], row["data"], _row_method(row), key): cell["mean"]
        for row in summary_table(records, f"val_{metric}", reference=ref_label, controls=True)
        for key, cell in row["stats"].items()
    }
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        method = _row_method(row)
        for key, cell in row["stats"].items():
            if key == "base":
                continue
            val = val_means.get((row["model"], row["data"], method, key))
            groups[(row["model"], row["data"], key.removeprefix("keep "))].append(
                {"method": method, "val": val, "control": bool(row.get("control")), **cell}
            )
    gains = control_comparisons(records, metric)
    scores = {
        (model, data): score_name([r for r in records if (r.model, r.data) == (model, data)])
        for model, data, _ in groups
    }
    table = []
    for (model, data, budget), cells in groups.items():
        if not any(c["n"] for c in cells):
            continue  # a budget this model does not run (its own grid), or nothing finished yet
        ranked_on = "val" if any(c["val"] is not None for c in cells) else "test"
        order = "val" if ranked_on == "val" else "mean"
        cells.sort(key=lambda c: -c[order] if c[order] is not None and c["n"] else math.inf)  # stable: others after
        ranks = {id(c): k for k, c in enumerate((c for c in cells if c[order] is not None and c["n"]), 1)}
        for cell in cells:
            table.append(
                {
                    "model": model,
                    "data": data,
                    "budget": budget,
                    "rank": ranks.get(id(cell)),
                    "ranked": id(cell) in ranks,
                    "ranked_on": ranked_on,
                    "score": scores[(model, data)],
                    "method": cell["method"],
                    "val": cell["val"],
                    "n": cell["n"],
                    "mean": cell["mean"],
                    "low": cell["low"],
                    "high": cell["high"],
                    "single_seed": cell["single_seed"],
                    "reference": ref_label,
                    "is_reference": cell["is_reference"],
                    "diff_n": cell["diff_n"],
                    "diff": cell["diff"],
                    "diff_low": cell["diff_low"],
                    "diff_high": cell["diff_high"],
                    "distinguishable": None if cell["is_reference"] else bool(cell["distinguishable"]),
                    "p": cell["p"],
                    "p_adjusted": cell["p_adjusted"],
                    "comparisons": cell["comparisons"],
                    "correction": cell["correction"],
                    **(
                        {"control": True, **gains.get((model, data, budget, cell["method"]), {})}
                        if cell["control"]
                        else {}
                    ),
                }
            )
    return table


def _row_method(row: Mapping[str, Any]) -> str:
    """The method of a :func:`summary_table` row: ``selector/fuse``, or the control's name."""
    return str(row["selector"]) if row.get("control") else f"{row['selector']}/{row['fuse']}"


def _gain_fields(prefix: str, diff: Difference) -> dict[str, Any]:
    return {
        f"{prefix}_n": diff.n,
        prefix: _rounded(diff.mean),
        f"{prefix}_low": _rounded(diff.low),
        f"{prefix}_high": _rounded(diff.high),
        f"{prefix}_distinguishable": diff.distinguishable,
        f"{prefix}_p_adjusted": diff.p_adjusted,
        f"{prefix}_comparisons": diff.comparisons,
    }


def control_comparisons(records: list[Record], metric: str = "accuracy") -> dict[tuple[str, str, str, str], Any]:
    """Per (model, data, budget label, control name): what the control (``[controls]``) is compared with, seed by
    seed: ``source`` (the compressed method whose widths it trains) and its mean ``source_mean``, the control's
    mean ``control_mean``, ``gain`` = compressed minus control with its interval (``gain_low``, ``gain_high``,
    ``gain_n`` seeds paired, ``gain_distinguishable``), and ``vs_base`` = control minus the base model.

    The gains and the differences to the base are one family, Holm-corrected together (``*_comparisons``).
    """
    base: dict[tuple[str, str], list[Record]] = defaultdict(list)
    methods: dict[tuple[str, str, str | None, str | None], list[Record]] = defaultdict(list)
    for r in records:
        if r.kind == "train" and r.role == "base":
            base[(r.model, r.data)].append(r)
        elif r.kind in ("compress", "control"):
            methods[(r.model, r.data, r.budget, r.method)].append(r)
    found: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    diffs: list[tuple[tuple[str, str, str, str], str, Difference]] = []
    for (model, data, budget, method), runs in methods.items():
        if runs[0].kind != "control" or budget is None or method is None:
            continue
        source = str(runs[0].widths_from)
        n_test = proportion_size([r for r in runs if r.status == "done"])
        values = _per_seed(runs, metric)
        pruned = _per_seed(methods.get((model, data, budget, source), []), metric)
        key = (model, data, budget, method)
        found[key] = {
            "source": source,
            "source_mean": _mean(list(pruned.values())),
            "control_mean": _mean(list(values.values())),
        }
        diffs.append((key, "gain", paired_difference(pruned, values, n_test=n_test)))
        diffs.append((key, "vs_base", paired_difference(values, _per_seed(base[(model, data)], metric), n_test=n_test)))
    for (key, prefix, _), diff in zip(diffs, control([diff for _, _, diff in diffs])):
        found[key].update(_gain_fields(prefix, diff))
    return found


def control_verdict(fields: Mapping[str, Any]) -> str:
    """Who wins one control's paired comparison (:func:`control_comparisons` ``fields``): ``"compression"``,
    ``"small network"``, ``"not distinguishable"`` or ``"not run"`` (no finished pair yet)."""
    if fields.get("source_mean") is None or fields.get("control_mean") is None or not fields.get("gain_n"):
        return "not run"
    if not fields.get("gain_distinguishable"):
        return "not distinguishable"
    return "compression" if fields["gain"] > 0 else "small network"


#: :func:`control_verdict` in the words of :func:`control_sentence`.
_VERDICT_WORDS = {
    "not distinguishable": "not distinguishable: these seeds cannot tell compression from training the small network",
    "compression": "compression beats training the small network",
    "small network": "training the small network beats compression",
}


def control_sentence(
    model: str, data: str, budget: str, control_name: str, fields: Mapping[str, Any], score: str = "accuracy"
) -> str:
    """The answer to "does compression beat training the small network?" for one control, with the numbers, from
    :func:`control_comparisons` ``fields``."""
    where = f"{model} on {data}, {budget_heading(budget)}"
    verdict = control_verdict(fields)
    if verdict == "not run":
        return f"{where}: {control_name} has no finished run paired with {fields.get('source', 'its source')} yet."
    gain = fields["gain"]
    span = (
        f" [{fields['gain_low']:+.4f}, {fields['gain_high']:+.4f}]"
        if fields.get("gain_low") is not None
        else " (one seed: no interval)"
    )
    verdict = _VERDICT_WORDS[verdict]
    return (
        f"{where}: {fields['source']} (compressed and retrained) scores {fields['source_mean']:.4f} test {score}, "
        f"{control_name} (trained from scratch) {fields['control_mean']:.4f}; compressed minus control "
        f"{gain:+.4f}{span}, {fields['gain_n']} seeds paired: {verdict}."
    )


def control_answers(table: list[dict[str, Any]]) -> list[str]:
    """:func:`control_sentence` for every control row of a :func:`compare_table`."""
    return [
        control_sentence(row["model"], row["data"], row["budget"], row["method"], row, row.get("score", "accuracy"))
        for row in table
        if row.get("control") and "source" in row
    ]


def _val_text(row: Mapping[str, Any]) -> str:
    """A :func:`compare_table` row's val score: ``0.9500``; ``- (not ranked)`` for a method with runs but no val."""
    if row["val"] is not None:
        return f"{row['val']:.4f}"
    return "- (not ranked)" if row["n"] and not row.get("ranked", True) else "-"


def format_compare(table: list[dict[str, Any]]) -> str:
    """:func:`compare_table` as text: one block per (model, data, budget), methods ranked (a method without a val
    score, in a block ranked on val, listed after and marked ``not ranked``), cells that cannot be told apart
    from the reference marked ``not distinguishable``, and the multiplicity correction in words at the end."""
    from workbench.metrics.table import format_table

    blocks: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in table:
        blocks[(row["model"], row["data"], row["budget"])].append(row)
    text = []
    for (model, data, budget), rows in blocks.items():
        reference, ranked_on = rows[0]["reference"], rows[0]["ranked_on"]
        lines = [
            {
                f"rank ({ranked_on})": row["rank"],
                "method": row["method"],
                "n": row["n"],
                "val": _val_text(row),
                f"test {row.get('score', 'accuracy')}": format_cell("accuracy", row),
                f"vs {reference}": format_difference(row),
            }
            for row in rows
        ]
        text.append(f"{model} on {data}, {budget_heading(budget)}:\n{format_table(lines)}")
    answers = control_answers(table)
    if answers:
        text.append(
            "Does compression beat training the small network? (paired per seed; Holm-corrected over the "
            "controls' comparisons)\n" + "\n".join(f"- {answer}" for answer in answers)
        )
    return "\n\n".join([*text, table_note(table)]) if table else ""


def read_records(study: Study, store: str | Path | None = None) -> list[Record]:
    """The study's records from its store (read only; nothing is run).

    Raises
    ------
    StudyError
        No store, or the store holds no finished compression run of the study (it was never run).
    """
    from workbench.study.store import Store

    path = Path(store) if store is not None else study.store_path()
    with Store(path, readonly=True) as db:
        records = collect(study, db.rows(), dict(db.damaged))
    if not any(r.kind == "compress" and r.status == "done" for r in records):
        raise StudyError(
            f"study {study.study.name!r} has no finished compression run in {path}: run it first "
            f"(`workbench study run {study.path or 'STUDY.toml'}`)."
        )
    return records


def training_table(records: list[Record]) -> list[dict[str, Any]]:
    """One row per trained model (base models and baselines): mean accuracy, params, MACs over seeds; ``stats``
    holds the accuracy's :func:`cell_stats` (n and 95% interval; a single seed's binomial interval)."""
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
                "stats": {"accuracy": cell_stats(_per_seed(done, "accuracy"), proportion_size(done))},
            }
        )
    return rows


def time_table(records: list[Record]) -> list[dict[str, Any]]:
    """Where a study's time went: per kind of run (base models, baselines, selector runs by selector, pipelines
    by pipeline), the runs stored and their summed and mean seconds (run time in the worker, not wall time when
    runs overlap). Runs not done are left out."""
    groups: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.status != "done" or r.seconds is None:
            continue
        if r.kind == "train":
            what = "training: base models" if r.role == "base" else "training: baselines"
        elif r.kind == "compress":
            what = f"selector: {r.selector}"
        elif r.kind == "control":
            what = f"control: {r.control}"
        else:
            what = f"pipeline: {r.pipeline}"
        groups[what].append(float(r.seconds))
    total = sum(sum(v) for v in groups.values()) or 1.0
    rows = [
        {
            "runs of": what,
            "runs": len(seconds),
            "seconds": round(sum(seconds), 1),
            "per run": round(sum(seconds) / len(seconds), 2),
            "share": f"{100 * sum(seconds) / total:.0f}%",
        }
        for what, seconds in groups.items()
    ]
    return sorted(rows, key=lambda row: -row["seconds"])
