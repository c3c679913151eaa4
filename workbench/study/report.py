"""The study report: one self-contained HTML page of Plotly figures with a summary table at the top.

Figures, per base model: accuracy against parameters and against multiply-adds per selector (mean over
seeds, bars for the spread), accuracy against the budget with and without retraining; per data set:
accuracy against operations in the style of Canziani et al. (2016), marker area proportional to the
parameters, with the baseline architectures, the base models and the compressed networks; per base
model with compression pipelines: accuracy against stored bytes.
"""

from __future__ import annotations

import html
import math
import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.study.schema import Study, load_study
from workbench.study.summary import (
    Record,
    collect,
    display_rows,
    mean_std,
    pipeline_table,
    summary_table,
    training_table,
)

_PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)


def _colors(names: list[str]) -> dict[str, str]:
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def _points(records: list[Record]) -> dict[tuple[str, str, str], dict[str, tuple[float, float]]]:
    """(selector, fuse, budget) -> metric -> (mean, std over seeds), over finished compression runs."""
    values: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.kind != "compress" or r.status != "done":
            continue
        bucket = values[(r.selector, r.fuse, r.budget)]
        for key in ("accuracy", "accuracy_rebuilt", "params", "macs"):
            value = r.score(key) if key.startswith("accuracy") else r.metrics.get(key)
            if value is not None:
                bucket[key].append(float(value))
        bucket["keep"].append(float(r.keep))
    return {key: {m: mean_std(v) for m, v in metrics.items()} for key, metrics in values.items()}


def _base_point(records: list[Record], model: str, data: str) -> dict[str, tuple[float, float]] | None:
    found = [r for r in records if r.kind == "train" and r.model == model and r.data == data and r.status == "done"]
    if not found:
        return None
    return {
        key: mean_std([float(r.score(key) if key == "accuracy" else r.metrics[key]) for r in found])
        for key in ("accuracy", "params", "macs")
    }


def _tradeoff_figure(records: list[Record], model: str, data: str, x: str, colors: dict[str, str]) -> Any:
    """Accuracy against ``x`` (``"params"``, ``"macs"`` or ``"keep"``), one column per fusion mode."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    points = _points(records)
    fuses = list(dict.fromkeys(f for (_, f, _) in points))
    selectors = list(dict.fromkeys(s for (s, _, _) in points))
    budgets = list(dict.fromkeys(b for (_, _, b) in points))
    names = {"params": "parameters", "macs": "multiply-adds", "keep": "fraction of units kept"}
    fig = make_subplots(
        rows=1, cols=max(1, len(fuses)), shared_yaxes=True, subplot_titles=[f"fusion: {f}" for f in fuses] or [""]
    )
    base = _base_point(records, model, data)
    for col, fuse in enumerate(fuses, start=1):
        for selector in selectors:
            keys = [(selector, fuse, b) for b in budgets if (selector, fuse, b) in points]
            if not keys:
                continue
            keys.sort(key=lambda k: points[k]["keep"][0])
            xs = [points[k][x][0] for k in keys]
            series = [("accuracy", "solid", "retrained")]
            if x == "keep":
                series.append(("accuracy_rebuilt", "dot", "rebuilt, not retrained"))
            for metric, dash, what in series:
                ys = [points[k].get(metric, (math.nan, math.nan)) for k in keys]
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=[m for m, _ in ys],
                        error_y={"type": "data", "array": [s for _, s in ys], "visible": True},
                        mode="lines+markers",
                        name=f"{selector} ({what})" if x == "keep" else selector,
                        legendgroup=f"{selector}{metric}",
                        showlegend=col == 1,
                        line={"color": colors[selector], "dash": dash},
                        hovertemplate=f"{selector}, {fuse}, {what}<br>budget %{{text}}<br>{names[x]} %{{x:,.4g}}<br>"
                        "accuracy %{y:.4f}<extra></extra>",
                        text=[k[2] for k in keys],
                    ),
                    row=1,
                    col=col,
                )
        if base is not None:
            base_x = 1.0 if x == "keep" else base[x][0]
            fig.add_trace(
                go.Scatter(
                    x=[base_x],
                    y=[base["accuracy"][0]],
                    error_y={"type": "data", "array": [base["accuracy"][1]]},
                    mode="markers",
                    marker={"symbol": "star", "size": 14, "color": "black"},
                    name="unpruned",
                    legendgroup="unpruned",
                    showlegend=col == 1,
                    hovertemplate="unpruned<br>accuracy %{y:.4f}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text=names[x], row=1, col=col)
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    title = {
        "params": "Accuracy against parameters",
        "macs": "Accuracy against multiply-adds",
        "keep": "Accuracy against budget, with and without retraining",
    }[x]
    fig.update_layout(
        title=f"{title}: {model} on {data}", height=430, template="plotly_white", legend={"orientation": "v"}
    )
    return fig


def _canziani_figure(records: list[Record], data: str, colors: dict[str, str]) -> Any:
    """Accuracy against operations; marker area proportional to parameters (Canziani et al. 2016)."""
    import plotly.graph_objects as go

    trained: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        if r.kind == "train" and r.data == data and r.status == "done":
            trained[(r.role, r.model)].append(r)
    sizes = [r.metrics["params"] for r in records if r.data == data and r.status == "done" and "params" in r.metrics]
    largest = max(sizes) if sizes else 1

    def size(params: float) -> float:
        return 8 + 40 * math.sqrt(params / largest)

    fig = go.Figure()
    for selector in colors:
        runs = [
            r
            for r in records
            if r.kind == "compress" and r.data == data and r.selector == selector and r.status == "done"
        ]
        if not runs:
            continue
        fig.add_trace(
            go.Scatter(
                x=[r.metrics["macs"] for r in runs],
                y=[r.score() for r in runs],
                mode="markers",
                name=f"{selector} (compressed)",
                marker={
                    "size": [size(r.metrics["params"]) for r in runs],
                    "color": colors[selector],
                    "opacity": 0.55,
                    "line": {"width": 0.5, "color": "white"},
                },
                text=[
                    f"{r.model}, {r.selector}, keep {r.budget}, {r.fuse}, seed {r.seed}<br>{r.metrics['params']:,} parameters"
                    for r in runs
                ],
                hovertemplate="%{text}<br>%{x:,} multiply-adds<br>accuracy %{y:.4f}<extra></extra>",
            )
        )
    for (role, model), runs in trained.items():
        acc = mean_std([r.score() for r in runs if r.score() is not None])
        params, macs = runs[0].metrics["params"], runs[0].metrics["macs"]
        fig.add_trace(
            go.Scatter(
                x=[macs],
                y=[acc[0]],
                error_y={"type": "data", "array": [acc[1]]},
                mode="markers+text",
                text=[model],
                textposition="top center",
                name=f"{model} ({'unpruned base' if role == 'base' else 'baseline'})",
                marker={
                    "size": size(params),
                    "symbol": "diamond" if role == "base" else "circle",
                    "color": "rgba(0,0,0,0)",
                    "line": {"width": 2, "color": "black" if role == "base" else "#555"},
                },
                hovertemplate=f"{model}<br>{params:,} parameters<br>%{{x:,}} multiply-adds<br>accuracy %{{y:.4f}}<extra></extra>",
            )
        )
    fig.update_xaxes(type="log", title_text="multiply-adds per input (log scale)")
    fig.update_yaxes(title_text="test accuracy")
    fig.update_layout(
        title=f"Accuracy against operations on {data} (marker area proportional to parameters)",
        height=520,
        template="plotly_white",
    )
    return fig


def _storage_figure(records: list[Record], model: str, data: str) -> Any:
    """Accuracy against stored bytes for every pipeline run on one base model (mean and spread over seeds)."""
    from workbench.viz.compression_figures import size_accuracy_figure

    runs = [r for r in records if r.model == model and r.data == data and r.status == "done" and r.kind == "pipeline"]
    by_pipeline: dict[str, list[Record]] = defaultdict(list)
    for r in runs:
        by_pipeline[r.pipeline].append(r)
    points = []
    for name, items in by_pipeline.items():
        acc = mean_std([r.score() for r in items])
        points.append(
            {
                "name": name,
                "stored_bytes": mean_std([r.metrics["stored_bytes"] for r in items])[0],
                "accuracy": acc[0],
                "accuracy_std": acc[1],
                "seeds": len(items),
                "ratio": mean_std([r.metrics["compression_ratio"] for r in items])[0],
            }
        )
    base = None
    if runs:
        base = {
            "stored_bytes": runs[0].metrics["base_stored_bytes"],
            "accuracy": mean_std([v for r in runs if (v := r.score("base_accuracy")) is not None])[0],
        }
    return size_accuracy_figure(
        points, base=base, title=f"{model} on {data}: compression pipelines, accuracy against stored size"
    )


def build_figures(study: Study, records: list[Record]) -> list[tuple[str, Any]]:
    """(heading, figure) pairs of the report, in page order."""
    selectors = list(study.selectors)
    colors = _colors(selectors)
    figures = []
    bases = list(dict.fromkeys((r.model, r.data) for r in records if r.kind == "compress"))
    for model, data in bases:
        mine = [r for r in records if r.model == model and r.data == data]
        for x in ("params", "macs", "keep"):
            figures.append((f"{model} on {data}", _tradeoff_figure(mine, model, data, x, colors)))
    for model, data in dict.fromkeys((r.model, r.data) for r in records if r.kind == "pipeline"):
        figures.append((f"{model} on {data}: compression pipelines", _storage_figure(records, model, data)))
    for data in dict.fromkeys(r.data for r in records):
        figures.append((f"Accuracy against operations: {data}", _canziani_figure(records, data, colors)))
    return figures


def _table(rows: list[dict[str, Any]]) -> str:
    from workbench.metrics.table import format_value

    if not rows:
        return "<p>(none)</p>"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(c, row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.note{color:#555}.failed{color:#a00;font-size:0.85em}
"""


def _list_runs(parts: list[str], records: list[Record], title: str) -> None:
    """Append a list of ``records`` with their errors (the first 50) to ``parts`` when there are any."""
    if not records:
        return
    parts.append(f"<h3>{html.escape(title)} ({len(records)})</h3><ul class='failed'>")
    parts.extend(
        f"<li>{html.escape(r.model)} / {html.escape(r.data)} {html.escape(str(r.selector or r.pipeline or ''))} "
        f"{html.escape(str(r.budget or ''))} {html.escape(str(r.fuse or ''))} seed {r.seed}: "
        f"{html.escape(str(r.error))}</li>"
        for r in records[:50]
    )
    parts.append("</ul>")


def render_report(study: Study, records: list[Record], store: Path) -> str:
    """The report page as HTML text (plotly.js embedded once, so the page works offline)."""
    counts = defaultdict(int)
    for r in records:
        counts[r.status] += 1
    figures = build_figures(study, records)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Study {html.escape(study.study.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Study: {html.escape(study.study.name)}</h1>",
        f"<p>{html.escape(study.study.description)}</p>" if study.study.description else "",
        f"<p class='note'>{len(records)} runs: {counts['done']} done, {counts['failed']} failed, "
        f"{counts['missing'] + counts['not run']} not run"
        + (
            f", {counts['damaged']} damaged in the store (left out; `workbench study run` computes them again)"
            if counts["damaged"]
            else ""
        )
        + f". Store: {html.escape(str(store))}. Written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.</p>",
        *(
            [
                "<h2>Summary: test accuracy after retraining, mean over seeds [95% interval] (or one seed, so marked)</h2>",
                _table(display_rows(summary_table(records, reference=study.study.reference))),
            ]
            if study.selectors
            else []
        ),
        *(
            [
                "<h2>Compression pipelines: test accuracy, stored bytes and compression ratio, mean over seeds [95% interval] (or one seed, so marked)</h2>",
                _table(display_rows(pipeline_table(records))),
            ]
            if study.pipelines
            else []
        ),
        "<h2>Trained models (base models and baselines)</h2>",
        _table(training_table(records)),
    ]
    if study.baselines.note:
        parts.append(f"<p class='note'>{html.escape(study.baselines.note)}</p>")
    for status, title in (("failed", "Failed runs"), ("damaged", "Runs with a damaged row in the store")):
        _list_runs(parts, [r for r in records if r.status == status], title)
    heading = None
    for i, (title, fig) in enumerate(figures):
        if title != heading:
            parts.append(f"<h2>{html.escape(title)}</h2>")
            heading = title
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    study: Study | str | os.PathLike, *, store: str | os.PathLike | None = None, out: str | os.PathLike | None = None
) -> Path:
    """Write the HTML report of ``study`` from its store; return the path.

    Parameters
    ----------
    store
        The SQLite store (default: the study's).
    out
        The HTML file (default: ``<store stem>-report.html`` beside the store). Written atomically.

    Raises
    ------
    StudyError
        The study file or the store cannot be read.
    """
    from workbench.study.store import Store
    from workbench.utils import atomic_write_text

    study = study if isinstance(study, Study) else load_study(study)
    store_path = Path(store) if store is not None else study.store_path()
    with Store(store_path, readonly=True) as db:
        rows = db.rows()
        damaged = dict(db.damaged)
    records = collect(study, rows, damaged)
    out_path = Path(out) if out is not None else store_path.with_name(f"{store_path.stem}-report.html")
    path = atomic_write_text(out_path, render_report(study, records, store_path))
    try:
        path.chmod(0o644)  # a page to open and share (temporary files are created private)
    except OSError:
        pass
    return path
