"""What makes a network compressible? Accuracy after compression against how the base model was trained.

Reads the store of ``analyses/compressibility_axes.toml`` (run it first with ``workbench study run``) and, for
every base-training choice (initialization, weight decay, dropout, training length) and selector, prints the base
accuracy, the compressed accuracy before and after fine-tuning (mean and 95% interval over seeds), and the change of
the compressed accuracy against the reference base (the first ``[[models]]`` entry), paired by seed. The bases are
different networks, so the seed pairing is weak: a difference whose interval holds 0 is not a finding. Writes a
Plotly figure (accuracy after compression per training choice, one trace per selector, 95% error bars).

    workbench study run analyses/compressibility_axes.toml --jobs 2
    python analyses/compressibility_axes.py [--store PATH] [--out compressibility-axes.html] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from workbench.study import load_study
from workbench.study.statistics import estimate, paired_difference
from workbench.study.summary import read_records

STUDY = Path(__file__).with_name("compressibility_axes.toml")


def axes_table(records: list, reference: str) -> list[dict]:
    """One row per (base-training choice, selector, budget): base, rebuilt and retrained accuracy with intervals,
    and the retrained accuracy's paired change to the reference base's."""
    base: dict[str, dict[int, float]] = defaultdict(dict)
    runs: dict[tuple[str, str, str], list] = defaultdict(list)
    for r in records:
        if r.status != "done":
            continue
        if r.kind == "train" and r.role == "base":
            base[r.model][r.seed] = r.score()
        elif r.kind == "compress":
            runs[(r.model, str(r.selector), str(r.budget))].append(r)
    rows = []
    for (model, selector, budget), items in runs.items():
        after = {r.seed: r.score() for r in items}
        before = {r.seed: r.score("accuracy_rebuilt") for r in items}
        against = {r.seed: r.score() for r in runs.get((reference, selector, budget), [])}
        diff = paired_difference(after, against) if model != reference else None
        rows.append(
            {
                "base training": model,
                "selector": selector,
                "keep": budget,
                "base": estimate(list(base[model].values())),
                "rebuilt": estimate(list(before.values())),
                "after fine-tuning": estimate(list(after.values())),
                "vs reference base": diff,
            }
        )
    return rows


def _text(est) -> str:
    if est is None or est.mean is None:
        return "-"
    if est.low is None:
        return f"{est.mean:.4f} (n={est.n})"
    return f"{est.mean:.4f} [{est.low:.4f}, {est.high:.4f}] n={est.n}"


def _diff_text(diff) -> str:
    if diff is None:
        return "reference"
    if diff.low is None:
        return f"{diff.mean:+.4f} (n={diff.n})"
    mark = "" if diff.distinguishable else " not distinguishable"
    return f"{diff.mean:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]{mark}"


def figure(rows: list[dict], models: list[str]):
    """Accuracy after compression per base-training choice, one trace per selector, with 95% error bars."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for selector in dict.fromkeys(row["selector"] for row in rows):
        mine = {row["base training"]: row["after fine-tuning"] for row in rows if row["selector"] == selector}
        xs = [m for m in models if m in mine and mine[m].mean is not None]
        ys = [mine[m].mean for m in xs]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers+lines",
                name=selector,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [(mine[m].high or mine[m].mean) - mine[m].mean for m in xs],
                    "arrayminus": [mine[m].mean - (mine[m].low or mine[m].mean) for m in xs],
                },
            )
        )
    fig.update_layout(
        title="Accuracy after compression (10% of hidden units kept, lsq, fine-tuned) against the base's training",
        xaxis_title="how the base model was trained",
        yaxis_title="test accuracy (mean over seeds, 95% interval)",
        template="plotly_white",
        height=520,
    )
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(STUDY))
    parser.add_argument("--store", default=None, help="the study's store (default: beside the study file)")
    parser.add_argument("--out", default="compressibility-axes.html", help="the figure's HTML file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    study = load_study(args.study)
    records = read_records(study, store=args.store)
    models = [entry.display for entry in study.models]
    rows = axes_table(records, models[0])
    if args.json:
        print(json.dumps([{k: (v.__dict__ if hasattr(v, "__dict__") else v) for k, v in r.items()} for r in rows]))
    else:
        from workbench.metrics import format_table

        print(
            format_table(
                [
                    {
                        **{k: row[k] for k in ("base training", "selector", "keep")},
                        "base": _text(row["base"]),
                        "rebuilt": _text(row["rebuilt"]),
                        "after fine-tuning": _text(row["after fine-tuning"]),
                        f"vs {models[0]}": _diff_text(row["vs reference base"]),
                    }
                    for row in sorted(rows, key=lambda r: (r["selector"], models.index(r["base training"])))
                ]
            )
        )
    if rows:
        from workbench.utils import atomic_write_text

        atomic_write_text(args.out, figure(rows, models).to_html(include_plotlyjs=True, full_html=True))
        print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
