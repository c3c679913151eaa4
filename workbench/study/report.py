"""The study report: one HTML page built around questions, with the per-run results written beside it.

For each base model (model on data) the page answers three questions, each in its own section:

- *Which method gives the best accuracy for its cost?* -- every method (selectors x fusion, compression
  pipelines, baseline architectures) on one cost axis the reader picks (parameters, multiply-adds, stored
  bytes, latency), with the Pareto front, the base accuracy and the test set's noise floor
  (:func:`workbench.viz.tradeoff_figures.tradeoff_figure`);
- *How much accuracy does each compression cost, and can it be told from noise?* -- a ranked table with
  95% intervals and paired differences to the base model and to the reference method;
- *What did each selector keep, layer by layer?* -- kept fraction per prunable group from the stored plans
  (:func:`workbench.viz.kept_figures.kept_fraction_heatmap`).

Then the trained models, where the time went, failed runs, and links to ``<report>-runs.csv`` and
``<report>-runs.json`` (every run, with latency, run time and kept units), written atomically beside the page.
The page is self-contained (plotly.js inline) unless ``plotlyjs="file"`` writes ``plotly.min.js`` beside it.
"""

from __future__ import annotations

import html
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.study.report_data import (
    LATENCY_BATCH,
    Entry,
    Section,
    Spread,
    at_chance,
    build_sections,
    control_fields,
    csv_text,
    latency_spread,
    run_rows,
)
from workbench.study.schema import Study, load_study
from workbench.study.statistics import Difference, Estimate, estimate
from workbench.study.summary import Record, collect, control_verdict, score_name
from workbench.viz.kept_figures import budget_text

#: Ways to include plotly.js: inline in the page, or one ``plotly.min.js`` file beside it.
PLOTLYJS_MODES = ("inline", "file")
PLOTLYJS_FILE = "plotly.min.js"

GLOSSARY = {
    "drop": "the units not selected are deleted with their weights; the rest of the network is unchanged.",
    "merge": "each deleted unit's outgoing weights are added to the kept unit it is assigned to (exact for "
    "duplicate units and positive multiples under ReLU).",
    "lsq": "least-squares fusion: the next layer's weights are refitted so that the kept units reproduce the "
    "original next-layer input on training data.",
    "budget (keep)": "the fraction of units kept in every prunable group (a per-layer table overrides it).",
    "budget (cost)": 'a share of the base model\'s multiply-adds, parameters or latency ("macs 0.5"), met by per-group '
    'fractions: one for every group, one weight-norm scale across groups ("global"), or each group cut as far as '
    'its measured loss on val allows ("sensitivity"); the kept-fraction figures show where each put it.',
    "retraining": "training after the rebuild, the same for every method of the study: the samples seen and "
    "the teacher (none: labels only; base: distilled from the unpruned model) are given per row.",
    "stored bytes": "the bytes needed to store the weights as the method leaves them: 4 bytes per dense "
    "fp32 parameter; sparse, shared, quantized and Huffman-coded weights counted as stored (indices, "
    "codebooks and tables included).",
    "parameters": "weights and biases of the network; for a pipeline, its nonzero ones (a sparse model "
    "stores only those).",
    "latency": "CPU time of one forward pass of one input (batch 1, one CPU thread), measured on the machine that "
    "ran the study, once per seed; tables and figures give the median over seeds and its range (the machine's load "
    "changes it from run to run), the same statistic for base models, methods and baselines.",
    "chance level": "the accuracy of a guess, 1 / classes: a row whose 95% interval holds it cannot be told from "
    "guessing and is marked so; a base model at chance barely works, and its compressions say nothing.",
    "95% interval": "of an accuracy: the spread over seeds plus the test set's own sampling error (a Wilson "
    "interval at the effective size they leave; for one seed, the Wilson interval of its test accuracy), so it "
    "stays inside [0, 1] and is never a point; of mIoU (not a proportion of test images): the t-interval over "
    "seeds.",
    "paired difference": "per seed, accuracy minus the reference's accuracy on the same base model and seed; its "
    "interval adds both accuracies' test-set sampling error to the spread over seeds. Not distinguishable when "
    "the interval contains 0 or, after Holm's correction over the table's comparisons, its p-value is above 5%.",
}

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;color:#222;
padding:0 1em}
h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}h3{margin-bottom:.2em}
p.answers{color:#555;margin-top:0;font-style:italic}
.scroll{overflow-x:auto;scrollbar-width:auto;scrollbar-color:#999 #eee;padding-bottom:2px}
.scroll::-webkit-scrollbar{height:12px}.scroll::-webkit-scrollbar-thumb{background:#999;border-radius:6px}
.scroll::-webkit-scrollbar-track{background:#eee}
.scroll.overflows::before{content:"This table is wider than the page: scroll it sideways for the last columns.";display:block;
color:#a04000;font-size:.8em;position:sticky;left:0}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.78em}
th,td{border:1px solid #ccc;padding:2px 5px;text-align:right;white-space:nowrap;vertical-align:top}
th{white-space:normal;min-width:4.5em;max-width:9em;vertical-align:bottom}
td small{font-size:.92em}td.l{white-space:normal;min-width:7em}
.chance{color:#a04000;font-weight:600;white-space:normal;display:inline-block;max-width:11em}p.warn{color:#a04000;border-left:3px solid #a04000;padding-left:.6em}
td small{color:#666}th{background:#f3f3f3;font-weight:600}
td.l,th.l{text-align:left}.note{color:#555}.failed{color:#a00;font-size:.85em}
td.nd{color:#777}td.better{color:#0a6b2b}td.worse{color:#a00}tr.base td{background:#f7f7f7;font-weight:600}
nav.toc{background:#fafafa;border:1px solid #e3e3e3;padding:.5em 1.5em;display:inline-block}
nav.toc ul{margin:.2em 0;padding-left:1.2em}dl.glossary dt{font-weight:600;float:left;clear:left;width:10em}
dl.glossary dd{margin-left:11em;margin-bottom:.3em}
.figure{margin:.5em 0 1em}
"""


def _fixed(value: float | None, digits: int = 4, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def seeds_text(n: int) -> str:
    """``'1 seed'``, ``'3 seeds'``, ``'no run'``."""
    return "no run" if not n else f"{n} seed" if n == 1 else f"{n} seeds"


def estimate_parts(est: Estimate) -> tuple[str, str]:
    """An accuracy estimate as (value, detail): ``('0.9610', '[0.9410, 0.9810]')`` (intervals respect [0, 1]
    by construction); one seed adds ``single seed``; ``('-', '')`` for none."""
    if not est.n:
        return "-", ""
    span = f"[{_fixed(est.low)}, {_fixed(est.high)}]" if est.low is not None else ""
    return _fixed(est.mean), " ".join(part for part in (span, "single seed" if est.single_seed else "") if part)


def difference_parts(diff: Difference | None) -> tuple[str, str, str]:
    """A paired difference as (value, detail, css class): ``('+0.0120', '[+0.0040, +0.0200]', 'better')``;
    the detail says ``not distinguishable`` (class ``nd``) when the interval holds 0 or one seed is paired."""
    if diff is None or not diff.n:
        return "-", "", ""
    detail = f"[{_fixed(diff.low, sign=True)}, {_fixed(diff.high, sign=True)}]" if diff.low is not None else "1 seed"
    if not diff.distinguishable:
        return _fixed(diff.mean, sign=True), f"{detail}\nnot distinguishable", "nd"
    return _fixed(diff.mean, sign=True), detail, "better" if (diff.mean or 0) > 0 else "worse"


def _two_lines(value: str, detail: str = "") -> str:
    lines = "<br>".join(html.escape(line) for line in detail.splitlines())
    return html.escape(value) + (f"<br><small>{lines}</small>" if detail else "")


def _si(value: float | None) -> str:
    from workbench.viz.tradeoff_figures import si

    return "-" if value is None else si(value)


def _cell(text: str, css: str = "", *, raw: bool = False) -> str:
    """A table cell: ``text`` escaped (or, with ``raw``, HTML made by :func:`_two_lines`)."""
    body = text if raw else html.escape(text)
    return f"<td class='{css}'>{body}</td>" if css else f"<td>{body}</td>"


def _size(value: float | None, base: float | None, unit: str = "") -> str:
    from workbench.viz.tradeoff_figures import si_bytes

    if not value:
        return "-"
    smaller = f"{base / value:.1f}x smaller" if base and base / value >= 1.05 else ""
    return _two_lines(si_bytes(value) if unit == "B" else _si(value), smaller)


def _ranked_table(section: Section, reference: str) -> str:
    """The section's entries ranked, base model first, as an HTML table."""
    has_val = section.ranked_on == "val accuracy"
    has_rebuilt = any(e.rebuilt is not None for e in section.entries)
    has_latency = any("latency_ms" in e.costs for e in section.entries)
    columns = ["rank", "method", "seeds"]
    columns += ["val accuracy"] if has_val else []
    columns += ["test accuracy, [95% interval]", "change vs base, paired [95%]", f"vs {reference}, paired [95%]"]
    columns += ["before retraining"] if has_rebuilt else []
    columns += ["parameters", "stored size"] + ([LATENCY_COLUMN] if has_latency else [])
    budgets = {e.retraining for e in section.entries if e.runs and e.kind != "baseline"} - {"-"}
    columns += ["run time"] + (["retraining"] if len(budgets) > 1 else [])
    left = {"method", "retraining"}
    score = _section_score(section)
    head = "".join(
        f"<th class='{'l' if c in left else ''}'>{_two_lines(*c.replace('accuracy', score).partition(', ')[::2])}</th>"
        for c in columns
    )
    base = section.base_costs
    base_cells = {
        "method": _two_lines("base model", "unpruned"),
        "seeds": html.escape(seeds_text(section.base.n)),
        "val accuracy": _two_lines(*estimate_parts(section.base_val)) if section.base_val is not None else "-",
        "test accuracy, [95% interval]": _score_cell(section.base, section.chance, "barely works: at chance"),
        "parameters": _size(base.get("params"), None),
        "stored size": _size(base.get("stored_bytes"), None, "B"),
        LATENCY_COLUMN: _two_lines(*latency_parts(section.base_latency)),
    }
    lines = [
        "<tr class='base'>"
        + "".join(_cell(base_cells.get(c, ""), "l" if c in left else "", raw=True) for c in columns)
        + "</tr>"
    ]
    for entry in section.entries:
        lines.append("<tr>" + "".join(_entry_cells(entry, columns, left, base, section.chance)) + "</tr>")
    note = (
        f"<p class='note'>Retraining after the rebuild, the same for every compressed model that records it: "
        f"{html.escape(budgets.pop())} (a pipeline's retraining is the steps it names).</p>"
        if len(budgets) == 1
        else ""
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
    return f"{note}<div class='scroll'>{table}</div>"


def _class_iou_table(class_iou: dict[str, Any]) -> str:
    """Per-class IoU (mean over seeds) of the base model and every compressed model, as an HTML table."""
    names = class_iou["class_names"]
    head = "<th class='l'>method</th><th>seeds</th>" + "".join(f"<th>{html.escape(str(n))}</th>" for n in names)
    lines = []
    for label, means, seeds in class_iou["rows"]:
        cells = [f"<td class='l'>{html.escape(label)}</td>", f"<td>{seeds}</td>"]
        cells += [f"<td>{'-' if m is None else f'{m:.3f}'}</td>" for m in means]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    note = (
        "<p class='note'>Per-class IoU on the test scenes, mean over seeds (- : a class absent from them); the mIoU "
        "above is, per seed, their mean over the classes present.</p>"
    )
    return (
        f"{note}<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table></div>"
    )


def _seconds(value: float | None) -> str:
    """``12.3 s``; below one second two decimals (``0.04 s``), so that short runs do not read as zero."""
    if value is None:
        return "-"
    return f"{value:.2f} s" if value < 1 else f"{value:.1f} s"


def _latency(value: float | None) -> str:
    """``'0.0285 ms'``, ``'12.3 ms'``: three significant digits."""
    return "-" if value is None else f"{value:.3g} ms"


#: The latency column of the tables: which batch, which statistic.
LATENCY_COLUMN = f"latency, batch {LATENCY_BATCH}: median [range] over seeds"


def latency_parts(found: Spread | None) -> tuple[str, str]:
    """A latency as (value, detail): ``('0.029 ms', '[0.027 ms, 0.031 ms]')``, the median over seeds and its range
    (``'1 seed'`` for one); ``('-', '')`` for none."""
    if found is None:
        return "-", ""
    if found.n == 1:
        return _latency(found.median), "1 seed"
    return _latency(found.median), f"[{_latency(found.low)}, {_latency(found.high)}]"


def chance_text(chance: float) -> str:
    """``'1/10 = 0.100'``: the chance level of a classification with ``1 / chance`` classes."""
    return f"1/{round(1 / chance)} = {chance:.3f}"


def _score_cell(est: Estimate, chance: float | None, what: str = "at chance") -> str:
    """An accuracy cell (value and interval), with a warning line (``what``) when its interval holds the chance
    level (the section's note gives the level)."""
    cell = _two_lines(*estimate_parts(est))
    if chance is not None and at_chance(est, chance):
        cell += (
            f"<br><span class='chance' title='chance level {chance_text(chance)}'>&#9888; {html.escape(what)}</span>"
        )
    return cell


def _entry_cells(
    entry: Entry, columns: list[str], left: set[str], base: dict[str, float], chance: float | None = None
) -> list[str]:
    cells = []
    for column in columns:
        css = "l" if column in left else ""
        if column == "rank":  # entries without a val score (where others have one) are listed after, unranked
            text = html.escape(str(entry.rank) if entry.rank is not None else "-")
        elif column == "method":
            if entry.kind == "selector":
                text = _two_lines(entry.name, f"{entry.fuse}, {budget_text(entry.budget)}")
            elif entry.kind == "control":
                text = _two_lines(entry.name, f"trained from scratch, {budget_text(entry.budget)}")
            else:
                text = _two_lines(entry.name, entry.kind)
        elif column == "seeds":
            missing = entry.planned > len(entry.runs)
            text = html.escape(seeds_text(entry.accuracy.n) + (f" of {entry.planned}" if missing else ""))
        elif column == "val accuracy":
            text = _two_lines(*estimate_parts(entry.val)) if entry.val is not None else "-"
        elif column.startswith("test accuracy"):
            text = _score_cell(entry.accuracy, chance)
        elif column.startswith("change vs base"):
            value, detail, css = difference_parts(entry.vs_base)
            text = _two_lines(value, detail)
        elif column.startswith("vs "):
            if entry.is_reference:
                text = "reference"
            elif entry.kind not in ("selector", "control"):
                text = ""
            else:
                value, detail, css = difference_parts(entry.vs_reference)
                text = _two_lines(value, detail)
        elif column == "before retraining":
            text = _two_lines(*estimate_parts(entry.rebuilt)) if entry.rebuilt is not None else ""
        elif column == "parameters":
            text = _size(entry.costs.get("params"), base.get("params"))
        elif column == "stored size":
            text = _size(entry.costs.get("stored_bytes"), base.get("stored_bytes"), "B")
        elif column == LATENCY_COLUMN:
            text = _two_lines(*latency_parts(entry.latency))
        elif column == "run time":
            text = html.escape(_seconds(entry.seconds))
        else:
            text = html.escape(entry.retraining)
        cells.append(_cell(text, css, raw=True))
    return cells


def _point(accuracy: Any, costs: dict[str, float], **extra: Any) -> dict[str, Any]:
    """A point of the cost figure: the estimate's mean and interval (clipped to [0, 1]), n and the costs."""
    return {
        **extra,
        "accuracy": accuracy.mean,
        "low": None if accuracy.low is None else max(accuracy.low, 0.0),
        "high": None if accuracy.high is None else min(accuracy.high, 1.0),
        "n": accuracy.n,
        "costs": costs,
        "params": costs.get("params"),
    }


def _latency_range(found: Spread | None) -> dict[str, Any]:
    """``cost_ranges`` of a figure point: the range of latency over seeds (nothing for one seed)."""
    return {"cost_ranges": {"latency_ms": (found.low, found.high)}} if found is not None and found.n > 1 else {}


def _points(section: Section) -> list[dict[str, Any]]:
    """The cost figure's points: one per entry with runs (a control is drawn as a network trained from scratch,
    with the baselines)."""
    return [
        _point(
            e.accuracy,
            e.costs,
            name=e.name,
            kind="baseline" if e.kind == "control" else e.kind,
            fuse=e.fuse,
            label=e.label,
            **_latency_range(e.latency),
        )
        for e in section.entries
        if e.runs and e.accuracy.mean is not None
    ]


def class_counts(study: Study) -> dict[str, int]:
    """Data set name -> number of classes, for the classification data sets of ``study`` that can be loaded here
    (the chance level of a section is 1 / classes); segmentation data and data that cannot be loaded are left out."""
    from workbench.errors import WorkbenchError
    from workbench.study.execute import load_data
    from workbench.study.grid import expand
    from workbench.study.imports import num_classes_of

    counts: dict[str, int] = {}
    for run in expand(study):
        model = run.config["model"]
        if run.kind != "train" or model["data"] in counts:
            continue
        try:
            test = load_data(model, "test")
            if getattr(test, "task", "classification") == "classification":
                counts[model["data"]] = num_classes_of(test)
        except (WorkbenchError, OSError, ValueError):  # unreadable here: the section draws no chance level
            continue
    return counts


def build_figures(
    study: Study,
    records: list[Record],
    plans: dict[str, Any] | None = None,
    classes: dict[str, int] | None = None,
) -> list[tuple[str, Any]]:
    """(title, figure) pairs of the report, in page order: per base model, the everything-on-one-axis
    comparison, the kept fraction per layer (where it differs across layers) and the selectors' overlap.
    ``classes`` (data set -> classes; default :func:`class_counts`) gives the chance level."""
    figures = []
    classes = class_counts(study) if classes is None else classes
    sections = build_sections(records, plans or {}, study.study.reference, classes)
    largest = _largest_params(sections)
    for section in sections:
        if any(p["costs"] for p in _points(section)) or section.base_costs:
            figures.append(
                (
                    f"{section.model} on {section.data}: accuracy against cost",
                    _tradeoff(section, largest, list(study.selectors)),
                )
            )
        if section.kept and not section.kept_uniform:
            figures.append((f"{section.model} on {section.data}: kept per layer", _kept(section)))
        if section.overlap:
            figures.append((f"{section.model} on {section.data}: overlap between selectors", _overlap(section)))
    return figures


def _largest_params(sections: list[Section]) -> float:
    values = [e.costs.get("params") or 0 for s in sections for e in s.entries]
    values += [s.base_costs.get("params") or 0 for s in sections]
    return max(values, default=1) or 1


def _section_score(section: Section) -> str:
    """What the section's methods are scored by: ``"mIoU"`` (segmentation) or ``"accuracy"``."""
    return score_name([r for e in section.entries for r in e.runs])


def _tradeoff(section: Section, largest: float, order: Sequence[str] = ()) -> Any:
    from workbench.viz.tradeoff_figures import COST_AXES, tradeoff_figure

    axes = [a for a in COST_AXES if not (a == "macs" and section.macs_repeat_params)]
    base = None
    if section.base.n:
        base = _point(section.base, section.base_costs, **_latency_range(section.base_latency))
    score = _section_score(section)
    return tradeoff_figure(
        _points(section),
        base=base,
        axes=axes,
        n_test=section.n_test if base else None,
        largest_params=largest,
        order=order,
        accuracy_label=f"test {score}",
        title=f"{section.model} on {section.data}: test {score} against cost (choose the cost axis at the right)",
        chance=section.chance,
    )


def _kept(section: Section) -> Any:
    from workbench.viz.kept_figures import kept_fraction_heatmap

    return kept_fraction_heatmap(
        section.kept, title=f"{section.model} on {section.data}: fraction of units kept per layer (mean over seeds)"
    )


def _overlap(section: Section) -> Any:
    from workbench.viz.plan_figures import selection_overlap_figure

    chosen = section.overlap
    return selection_overlap_figure(
        chosen["plans"],
        title=f"{section.model} on {section.data}: kept units shared by two selectors (Jaccard per layer), "
        f"at {budget_text(chosen['budget'])}, seed {chosen['seed']} (one seed, one budget)",
        chance=overlap_chance(chosen.get("keep")),
    )


def overlap_chance(keep: float | None) -> float | None:
    """Expected Jaccard overlap of two random selections keeping a fraction ``keep`` of a layer:
    ``keep / (2 - keep)``; None when the fraction is unknown."""
    return None if keep is None or not 0 < keep <= 1 else keep / (2.0 - keep)


def _trained_table(records: list[Record], classes: dict[str, int] | None = None) -> str:
    """Base models and baselines: test score over seeds (marked when at chance), size and latency (the median
    over seeds and its range at batch 1, as in the method tables)."""
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in records:
        if r.kind == "train":
            groups[(r.role, r.model, r.data)].append(r)
    if not groups:
        return "<p>(none)</p>"
    columns = ["model", "data", "role", "seeds", "test score [95%]", "parameters", "multiply-adds"]
    columns += [LATENCY_COLUMN, "training time"]
    lines = []
    for (role, model, data), runs in groups.items():
        done = [r for r in runs if r.status == "done"]
        sizes = {r.metrics.get("n") for r in done} - {None}
        est = estimate(
            [v for r in done if (v := r.score()) is not None], n_test=sizes.pop() if len(sizes) == 1 else None
        )
        first = done[0].metrics if done else {}
        seconds = [r.metrics.get("train_seconds") for r in done if r.metrics.get("train_seconds") is not None]
        score = score_name(done)
        chance = 1.0 / classes[data] if classes and classes.get(data) and score == "accuracy" else None
        values = [
            html.escape(model),
            html.escape(data),
            "base model" if role == "base" else "baseline",
            html.escape(seeds_text(est.n) + (f" of {len(runs)}" if len(runs) > len(done) else "")),
            f"{score} " + _score_cell(est, chance, "barely works: at chance" if role == "base" else "at chance"),
            html.escape(_si(first.get("params"))),
            html.escape(_si(first.get("macs"))),
            _two_lines(*latency_parts(latency_spread(done))),
            f"{sum(seconds) / len(seconds):.1f} s" if seconds else "-",
        ]
        lines.append("<tr>" + "".join(_cell(v, "l" if i < 3 else "", raw=True) for i, v in enumerate(values)) + "</tr>")
    head = "".join(
        f"<th class='{'l' if i < 3 else ''}'>{_two_lines(*c.partition(', ')[::2])}</th>" for i, c in enumerate(columns)
    )
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table></div>"


def _time_table(records: list[Record]) -> str:
    groups: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.status == "done" and r.seconds is not None:
            name = {"train": "training", "pipeline": f"pipeline {r.pipeline}", "control": f"control {r.control}"}.get(
                r.kind, f"selector {r.selector}"
            )
            groups[name].append(float(r.seconds))
    if not groups:
        return "<p>(no finished run)</p>"
    total = sum(sum(v) for v in groups.values())
    rows = sorted(groups.items(), key=lambda item: -sum(item[1]))
    lines = "".join(
        "<tr>"
        + _cell(name, "l")
        + _cell(str(len(v)))
        + _cell(f"{sum(v):.1f} s")
        + _cell(f"{sum(v) / len(v):.1f} s")
        + _cell(f"{100 * sum(v) / total:.0f}%")
        + "</tr>"
        for name, v in rows
    )
    head = "<tr><th class='l'>what</th><th>runs</th><th>total</th><th>per run</th><th>share</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{lines}</tbody></table>"


def _list_runs(parts: list[str], records: list[Record], title: str, anchor: str) -> None:
    """Append a list of ``records`` with their errors (the first 50) to ``parts`` when there are any."""
    if not records:
        return
    parts.append(f"<h3 id='{anchor}'>{html.escape(title)} ({len(records)})</h3><ul class='failed'>")
    parts.extend(
        f"<li>{html.escape(r.model)} / {html.escape(r.data)} {html.escape(str(r.selector or r.pipeline or ''))} "
        f"{html.escape(str(r.budget or ''))} {html.escape(str(r.fuse or ''))} seed {r.seed}: "
        f"{html.escape(str(r.error))}</li>"
        for r in records[:50]
    )
    parts.append("</ul>")


def _figure_html(fig: Any, index: int) -> str:
    body = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"figure-{index}",
        config={"displaylogo": False, "responsive": True},
    )
    return f"<div class='figure' data-figure='{index}'>{body}</div>"


def _plotly_head(plotlyjs: str, script: str = PLOTLYJS_FILE) -> str:
    config = "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
    if plotlyjs == "file":
        return f"{config}<script src='{html.escape(script, quote=True)}'></script>"
    from plotly.offline import get_plotlyjs

    return f"{config}<script>{get_plotlyjs()}</script>"


def render_report(
    study: Study,
    records: list[Record],
    store: Path,
    *,
    plans: dict[str, Any] | None = None,
    links: dict[str, str] | None = None,
    plotlyjs: str = "inline",
    classes: dict[str, int] | None = None,
    script: str = PLOTLYJS_FILE,
) -> str:
    """The report page as HTML text.

    Parameters
    ----------
    plans
        Run hash -> stored plan (:meth:`workbench.surgery.Plan.to_dict`), for the kept-per-layer views.
    classes
        Data set name -> number of classes: the chance level of each section (default: :func:`class_counts`).
    links
        Label -> relative address of the per-run files written beside the page.
    plotlyjs
        ``"inline"`` (the page works offline on its own) or ``"file"`` (the page loads ``script``, by default
        ``plotly.min.js``, from its folder).
    """
    if plotlyjs not in PLOTLYJS_MODES:
        raise ConfigError(f"plotlyjs is one of {', '.join(PLOTLYJS_MODES)}, not {plotlyjs!r}.")
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r.status] += 1
    reference = study.study.reference or "magnitude/drop"
    classes = class_counts(study) if classes is None else classes
    sections = build_sections(records, plans or {}, study.study.reference, classes)
    largest = _largest_params(sections)
    order = [*study.selectors, *study.pipelines, *dict.fromkeys(r.model for r in records if r.role != "base")]
    toc: list[tuple[int, str, str]] = [(1, "glossary", "Glossary")]
    body: list[str] = []
    index = 0
    for section in sections:
        title = f"{section.model} on {section.data}"
        toc.append((1, section.anchor, title))
        body.append(f"<h2 id='{section.anchor}'>{html.escape(title)}</h2>")
        score = _section_score(section)
        ranked = (
            f"Ranked on val {score} (the test set is only reported)."
            if section.ranked_on == "val accuracy"
            else f"The runs store no val {score}, so methods are ranked on test {score}: read the ranking as a "
            "description of these runs, not as a tuned choice."
        )
        n_seeds = sorted({e.accuracy.n for e in section.entries if e.runs} | {section.base.n} - {0})
        seeds = " or ".join(seeds_text(n) for n in n_seeds) or "no finished run"
        noise = (
            "the grey band is the 95% interval of the base model's accuracy from the test set's size alone: a "
            "point outside it differs from the base by more than the test set's sampling error; inside it, the "
            "test set alone cannot tell them apart (the spread over seeds is in the error bars). "
            f"Error bars are 95% intervals ({seeds}; open markers: one seed, Wilson interval)."
            + (
                f" The dotted red line is the chance level, 1/{section.classes} = {section.chance:.3f}."
                if section.chance is not None
                else ""
            )
            if score == "accuracy"
            else "mIoU is not a proportion of test samples, so there is no binomial noise band: read the spread "
            f"over seeds. Error bars are 95% intervals over seeds ({seeds}; open markers: one seed, no interval)."
        )
        questions = [
            (
                "cost",
                f"Which method gives the best {score} for its cost?",
                "Every method on one cost axis (choose it in the menu): the Pareto front joins the methods no other "
                f"beats on both cost and {score}; {noise} "
                "Marker area is proportional to parameters, on one scale for the whole report. Every point is drawn at "
                "its true cost: points that share one overlap, and hovering one lists them all. On the latency axis "
                f"(batch {LATENCY_BATCH}) a point is the median over seeds and its horizontal bar the range.",
            ),
            (
                "ranked",
                f"How much {score} does each compression cost, and can it be told from noise?",
                f"{ranked} Changes are paired per seed against the base model and against {reference} at the "
                f"same budget; cells that cannot be told from 0 say not distinguishable. {section.multiplicity_note}",
            ),
        ]
        controls = [e for e in section.entries if e.kind == "control"]
        if controls:
            questions.append(
                ("controls", "Does compression beat training the small network?", _controls_answer(section))
            )
        if section.kept:
            questions.append(
                (
                    "kept",
                    "What did each selector keep, layer by layer?",
                    "The fraction of each prunable group's units kept, from the stored plans (mean over seeds and "
                    "fusion modes; the selection does not depend on the fusion mode).",
                )
            )
        body.extend(_chance_notes(section))
        for key, question, answer in questions:
            anchor = f"{section.anchor}-{key}"
            toc.append((2, anchor, question))
            body.append(f"<h3 id='{anchor}'>{html.escape(question)}</h3><p class='answers'>{html.escape(answer)}</p>")
            if key == "cost":
                if section.macs_repeat_params:
                    body.append(
                        "<p class='note'>Multiply-adds are left out of the menu: in this fully connected network they "
                        "track the parameters, so that axis would repeat the parameter one.</p>"
                    )
                if any(p["costs"] for p in _points(section)) or section.base_costs:
                    body.append(_figure_html(_tradeoff(section, largest, order), index))
                    index += 1
                else:
                    body.append("<p class='note'>No run of this model has finished yet: nothing to draw.</p>")
            elif key == "ranked":
                body.append(_ranked_table(section, reference))
                if section.class_iou:
                    body.append(_class_iou_table(section.class_iou))
            elif key == "controls":
                body.append(_controls_table(section))
            else:
                if section.kept_uniform:
                    budgets = ", ".join(dict.fromkeys(str(row["budget"]) for row in section.kept))
                    body.append(
                        "<p class='note'>Every selector kept the same fraction of every layer at each budget (the "
                        f"budget itself: keep {html.escape(budgets)}), so no per-layer chart is drawn: here the "
                        "selectors differ in which units they keep, not in how many per layer.</p>"
                    )
                else:
                    body.append(_figure_html(_kept(section), index))
                    index += 1
                if section.overlap:
                    chance = overlap_chance(section.overlap.get("keep"))
                    expected = f" = {chance:.3f}" if chance is not None else ""
                    body.append(
                        "<p class='answers'>Which units, then? The share of kept units two selectors have in common "
                        "(1: the same units; a random pair at this budget shares about budget / (2 - budget)"
                        f"{expected}, the white middle of the colour scale: blue is less overlap than chance, red "
                        f"more), per layer, at {html.escape(budget_text(section.overlap['budget']))} for seed "
                        f"{section.overlap['seed']} (one seed).</p>"
                    )
                    body.append(_figure_html(_overlap(section), index))
                    index += 1
    for anchor, title, html_part in (
        ("trained", "Trained models: how good are the base models and baselines?", _trained_table(records, classes)),
        ("time", "Where did the time go?", _time_table(records)),
    ):
        toc.append((1, anchor, title))
        body.append(f"<h2 id='{anchor}'>{html.escape(title)}</h2>{html_part}")
    if study.baselines.note:
        body.append(f"<p class='note'>{html.escape(study.baselines.note)}</p>")
    problems: list[str] = []
    for status, title, anchor in (
        ("failed", "Failed runs", "failed"),
        ("damaged", "Runs with a damaged row", "damaged"),
    ):
        _list_runs(problems, [r for r in records if r.status == status], title, anchor)
    if problems:
        toc.append((1, "problems", "Failed and damaged runs"))
        body.append("<h2 id='problems'>Failed and damaged runs</h2>" + "".join(problems))
    if links:
        toc.append((1, "raw", "Raw results"))
        items = "".join(
            f"<li><a href='{html.escape(href)}'>{html.escape(label)}</a></li>" for label, href in links.items()
        )
        body.append(
            "<h2 id='raw'>Raw results</h2><p class='answers'>Every run (one row per seed), with its metrics, latency, "
            f"run time and, for compression runs, the units kept per layer.</p><ul>{items}</ul>"
        )
    status = (
        f"{len(records)} runs: {counts['done']} done, {counts['failed']} failed, "
        f"{counts['missing'] + counts['not run']} not run"
        + (
            f", {counts['damaged']} damaged in the store (left out; `workbench study run` computes them again)"
            if counts["damaged"]
            else ""
        )
        + f". Store: {store}. Written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}."
    )
    toc_html = _toc(toc)
    glossary = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in GLOSSARY.items())
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Study {html.escape(study.study.name)}</title><style>{_STYLE}</style>",
        _plotly_head(plotlyjs, script),
        "</head><body>",
        f"<h1>Study: {html.escape(study.study.name)}</h1>",
        f"<p>{html.escape(study.study.description)}</p>" if study.study.description else "",
        f"<p class='note'>{html.escape(status)}</p>",
        toc_html,
        f"<h2 id='glossary'>Glossary</h2><dl class='glossary'>{glossary}</dl><div style='clear:both'></div>",
        *body,
        _OVERFLOW_SCRIPT,
        "</body></html>",
    ]
    return "\n".join(parts)


def _control_rows(section: Section) -> list[tuple[Any, dict[str, Any]]]:
    """The section's control entries in budget order, each with its :func:`control_fields`."""
    entries = sorted((e for e in section.entries if e.kind == "control"), key=lambda e: (str(e.budget), e.name))
    return [(e, control_fields(section, e)) for e in entries]


def _controls_answer(section: Section) -> str:
    """The section's answer, with its count, to "does compression beat training the small network?" (the numbers
    are in :func:`_controls_table`)."""
    verdicts = [control_verdict(fields) for _, fields in _control_rows(section)]
    counts = ", ".join(
        f"{name} in {verdicts.count(key)}"
        for key, name in (
            ("compression", "compression wins"),
            ("small network", "the small network trained from scratch wins"),
            ("not distinguishable", "they cannot be told apart"),
        )
        if verdicts.count(key)
    )
    return (
        "Controls (Liu et al. 2019): the same architecture at the kept widths, or at random widths of the same cost, "
        "initialized afresh and trained from scratch for as many samples as the base training and the retraining "
        "together; each is paired per seed with the compressed model whose widths it trains (rows of the table "
        f"above; differences Holm-corrected with the table's). Of {len(verdicts)} comparisons, {counts or 'none ran'}."
    )


def _mean_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _controls_table(section: Section) -> str:
    """One row per control: its budget, the compressed model and the control's scores, their paired difference."""
    score = _section_score(section)
    lines = []
    for entry, fields in _control_rows(section):
        verdict = control_verdict(fields)
        gain = "-"
        if verdict != "not run":
            span = (
                f"[{fields['gain_low']:+.4f}, {fields['gain_high']:+.4f}]"
                if fields.get("gain_low") is not None
                else "one seed: no interval"
            )
            gain = _two_lines(f"{fields['gain']:+.4f}", f"{span}, {fields['gain_n']} seeds")
        css = {"compression": "better", "small network": "worse", "not distinguishable": "nd"}.get(verdict, "")
        lines.append(
            "<tr>"
            + _cell(budget_text(entry.budget), "l")
            + _cell(str(entry.source), "l")
            + _cell(_mean_text(fields.get("source_mean")))
            + _cell(entry.name, "l")
            + _cell(_mean_text(fields.get("control_mean")))
            + _cell(gain, raw=True)
            + _cell(verdict, f"l {css}".strip())
            + "</tr>"
        )
    head = (
        f"<tr><th class='l'>budget</th><th class='l'>compressed and retrained</th><th>test {score}</th>"
        f"<th class='l'>control (trained from scratch)</th><th>test {score}</th>"
        "<th>compressed minus control<br>paired [95%]</th><th class='l'>who wins</th></tr>"
    )
    return f"<div class='scroll'><table><thead>{head}</thead><tbody>{''.join(lines)}</tbody></table></div>"


def _chance_notes(section: Section) -> list[str]:
    """Warnings of a section whose base model or some rows cannot be told from a guess (their 95% interval
    holds the chance level)."""
    if section.chance is None:
        return []
    level = f"({chance_text(section.chance)})"
    notes = []
    if section.base_at_chance:
        notes.append(
            f"<p class='warn'>&#9888; The base model barely works: its test accuracy interval holds the chance level "
            f"{html.escape(level)}. Its compressions cannot lose what it never learned; read this section as a "
            "check that the pipeline runs, not as a comparison of methods.</p>"
        )
    low = [e.label for e in section.entries if e.at_chance]
    if low:
        names = ", ".join(low[:8]) + (f" and {len(low) - 8} more" if len(low) > 8 else "")
        notes.append(
            f"<p class='warn'>&#9888; {len(low)} row{'s' if len(low) > 1 else ''} at chance {html.escape(level)}: "
            f"{html.escape(names)}. Their intervals hold the accuracy of a guess (marked in the table).</p>"
        )
    return notes


#: Marks tables wider than the page (class ``overflows``: a line above them says to scroll sideways), on load
#: and on every resize.
_OVERFLOW_SCRIPT = """<script>
(function(){function mark(){document.querySelectorAll('.scroll').forEach(function(d){
d.classList.toggle('overflows', d.scrollWidth > d.clientWidth + 1);});}
window.addEventListener('load', mark); window.addEventListener('resize', mark);})();
</script>"""


def _toc(entries: list[tuple[int, str, str]]) -> str:
    out, depth = ["<nav class='toc'><strong>Contents</strong><ul>"], 1
    for level, anchor, title in entries:
        if level > depth:
            out.append("<ul>")
        elif level < depth:
            out.append("</ul>")
        depth = level
        out.append(f"<li><a href='#{anchor}'>{html.escape(title)}</a></li>")
    out.append("</ul>" * depth + "</nav>")
    return "".join(out)


def write_report(
    study: Study | str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    plotlyjs: str = "inline",
) -> Path:
    """Write the HTML report of ``study`` from its store, and its per-run CSV and JSON beside it; return the path.

    Parameters
    ----------
    store
        The SQLite store (default: the study's).
    out
        The HTML file (default: ``<store stem>-report.html`` beside the store). The per-run files are
        ``<out stem>-runs.csv`` and ``<out stem>-runs.json``. Every file is written atomically.
    plotlyjs
        ``"inline"`` (default: one self-contained page) or ``"file"``: write ``plotly.min.js`` once beside
        the page (kept when it is already there and the same) and load it from there. A different
        ``plotly.min.js`` already there (the user's own, or another version's) is left as it is: the script
        is written beside it as ``plotly-<first 12 hex digits of its sha256>.min.js`` instead, with a warning.

    Raises
    ------
    StudyError
        The study file or the store cannot be read.
    ConfigError
        ``plotlyjs`` is not one of :data:`PLOTLYJS_MODES`, or an output cannot be written: not a usable path,
        an existing device, folder or read-only file, or one of the report's inputs, the store or the study file
        (checked for every output before anything is written).
    """
    from workbench.study.store import Store
    from workbench.utils import atomic_write_text, check_path, check_writable_target

    if plotlyjs not in PLOTLYJS_MODES:
        raise ConfigError(f"plotlyjs is one of {', '.join(PLOTLYJS_MODES)}, not {plotlyjs!r}.")
    study = study if isinstance(study, Study) else load_study(study)
    store_path = check_path(store, "the store path") if store is not None else study.store_path()
    default_out = store_path.with_name(f"{store_path.stem}-report.html")
    out_path = check_path(out, "the report path") if out is not None else default_out
    inputs = {"the store": store_path, "the study file": study.path}
    outputs = {
        "page": out_path,
        "csv": out_path.with_name(f"{out_path.stem}-runs.csv"),
        "json": out_path.with_name(f"{out_path.stem}-runs.json"),
    }
    script, plotly_name = None, PLOTLYJS_FILE
    if plotlyjs == "file":
        script, plotly_name = _plotly_script(out_path)
        if script is not None:
            outputs["plotly.js"] = out_path.with_name(plotly_name)
    for path in outputs.values():  # every output, before anything is written: a report never half replaces
        check_writable_target(path, inputs)
    with Store(store_path, readonly=True) as db:
        rows = db.rows()
        damaged = dict(db.damaged)
    records = collect(study, rows, damaged)
    plans = {row["hash"]: row.get("plan") for row in rows if row.get("plan") is not None}
    runs = run_rows(records, plans)
    csv_path = atomic_write_text(outputs["csv"], csv_text(runs), inputs=inputs)
    json_path = atomic_write_text(outputs["json"], json.dumps(runs, indent=1, default=str) + "\n", inputs=inputs)
    if script is not None:
        atomic_write_text(outputs["plotly.js"], script, inputs=inputs)
    links = {"every run as CSV": csv_path.name, "every run as JSON (with the kept units)": json_path.name}
    page = render_report(
        study,
        records,
        store_path,
        plans=plans,
        links=links,
        plotlyjs=plotlyjs,
        classes=class_counts(study),
        script=plotly_name,
    )
    return atomic_write_text(out_path, page, inputs=inputs)


def _plotly_script(out_path: Path) -> tuple[str | None, str]:
    """plotly.js to write beside the report at ``out_path`` (None when the file there already holds it) and the
    file's name: ``plotly.min.js``, unless a different file of that name is there already, which is left as it
    is (with a warning) and the script named for its content instead."""
    import hashlib
    import warnings

    from plotly.offline import get_plotlyjs

    script = get_plotlyjs()
    data = script.encode("utf-8")
    named = out_path.with_name(f"plotly-{hashlib.sha256(data).hexdigest()[:12]}.min.js")
    for target in (out_path.with_name(PLOTLYJS_FILE), named):
        if not os.path.lexists(target):
            break
        try:
            same = target.is_file() and target.read_bytes() == data
        except OSError:  # unreadable: not ours to replace either
            same = False
        if same:
            return None, target.name  # already there: kept
        if target != named:
            warnings.warn(
                f"{target} is already there and holds another script (your own, or another plotly version's); it "
                f"is left as it is, and this report loads plotly.js from {named.name} beside it instead.",
                UserWarning,
                stacklevel=3,
            )
    return script, target.name
