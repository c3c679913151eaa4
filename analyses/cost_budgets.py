"""Budgets by cost against a uniform fraction, at equal multiply-adds.

Reads the store of ``analyses/cost_budgets.toml`` (run it first with ``workbench study run``) and prints, per model
and placement of the budget (uniform, global weight-norm scale, per-layer sensitivity on val): the share of the
base's multiply-adds reached, the test accuracy right after the rebuild and after the fine-tuning budget (mean and
95% interval over seeds, with the test set's own noise), and each placement's paired change to the uniform one
(MOVER interval over seeds and test samples; "not distinguishable" when it holds 0).

    workbench study run analyses/cost_budgets.toml --jobs 2
    python analyses/cost_budgets.py [--store PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from workbench.study import load_study
from workbench.study.statistics import estimate, paired_difference
from workbench.study.summary import proportion_size, read_records

STUDY = Path(__file__).with_name("cost_budgets.toml")
UNIFORM = "macs 0.5"


def placement_table(records: list) -> list[dict]:
    """One row per (model, budget placement): reached share, rebuilt and fine-tuned accuracy, paired changes to the
    uniform placement of the same model."""
    runs: dict[tuple[str, str], list] = defaultdict(list)
    for r in records:
        if r.status == "done" and r.kind == "compress":
            runs[(r.model, str(r.budget))].append(r)
    rows = []
    for (model, budget), items in sorted(runs.items()):
        n = proportion_size(items)
        uniform = runs.get((model, UNIFORM), [])
        row = {"model": model, "budget": budget, "seeds": len(items)}
        row["macs reached"] = estimate([r.metrics.get("budget_reached") for r in items])
        for key, column in (("accuracy_rebuilt", "rebuilt"), ("accuracy", "fine-tuned")):
            values = {r.seed: r.score(key) for r in items}
            row[column] = estimate(list(values.values()), n_test=n)
            against = {r.seed: r.score(key) for r in uniform}
            row[f"{column} vs uniform"] = None if budget == UNIFORM else paired_difference(values, against, n_test=n)
        rows.append(row)
    return rows


def _text(est, digits: int = 4) -> str:
    if est is None or est.mean is None:
        return "-"
    if est.low is None:
        return f"{est.mean:.{digits}f} (n={est.n})"
    return f"{est.mean:.{digits}f} [{est.low:.{digits}f}, {est.high:.{digits}f}]"


def _diff_text(diff) -> str:
    if diff is None:
        return "reference"
    if diff.low is None:
        return f"{diff.mean:+.4f} (n={diff.n})"
    mark = "" if diff.distinguishable else " n.d."
    return f"{diff.mean:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]{mark}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(STUDY))
    parser.add_argument("--store", default=None, help="the study's store (default: beside the study file)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = placement_table(read_records(load_study(args.study), store=args.store))
    if args.json:
        print(json.dumps([{k: (v.__dict__ if hasattr(v, "__dict__") else v) for k, v in r.items()} for r in rows]))
        return 0
    from workbench.metrics import format_table

    print(
        format_table(
            [
                {
                    "model": row["model"],
                    "budget": row["budget"],
                    "n": row["seeds"],
                    "macs reached": _text(row["macs reached"], 3),
                    "rebuilt": _text(row["rebuilt"]),
                    "rebuilt vs uniform": _diff_text(row["rebuilt vs uniform"]),
                    "fine-tuned": _text(row["fine-tuned"]),
                    "fine-tuned vs uniform": _diff_text(row["fine-tuned vs uniform"]),
                }
                for row in rows
            ]
        )
    )
    print(
        "Intervals: 95%, over seeds and the test set's sampling noise; n.d.: the paired interval holds 0 (uncorrected)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
