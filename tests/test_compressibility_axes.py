"""analyses/compressibility_axes.py: compressed accuracy per base-training choice, paired by seed to the reference."""

from __future__ import annotations

import pytest
from analysis_scripts import load_analysis

from workbench.study.summary import Record


@pytest.fixture(scope="module")
def axes():
    return load_analysis("compressibility_axes")


def _records(model, base, after, shift=0.0):
    out = [
        Record(f"{model}b{s}", "train", "base", model, "digits", s, "done", metrics={"accuracy": a})
        for s, a in enumerate(base)
    ]
    out += [
        Record(
            f"{model}c{s}",
            "compress",
            "compress",
            model,
            "digits",
            s,
            "done",
            selector="magnitude",
            budget="0.1",
            keep=0.1,
            fuse="lsq",
            metrics={"accuracy": a + shift, "accuracy_rebuilt": a - 0.05},
        )
        for s, a in enumerate(after)
    ]
    return out


def test_the_change_against_the_reference_base_is_paired_by_seed(axes):
    records = _records("default", [0.97, 0.97, 0.98], [0.90, 0.80, 0.95])
    records += _records("other init", [0.96, 0.97, 0.97], [0.90, 0.80, 0.95], shift=0.02)
    rows = {row["base training"]: row for row in axes.axes_table(records, "default")}
    assert rows["default"]["vs reference base"] is None
    diff = rows["other init"]["vs reference base"]
    # seeds differ by 0.15 between them, but every pair differs by exactly +0.02: the pairing finds it
    assert diff.n == 3 and diff.mean == pytest.approx(0.02) and diff.distinguishable
    assert rows["other init"]["after fine-tuning"].low < 0.85  # unpaired, the seeds' spread hides it
    assert rows["default"]["rebuilt"].mean == pytest.approx((0.85 + 0.75 + 0.90) / 3)
    fig = axes.figure(list(rows.values()), ["default", "other init"])
    assert list(fig.data[0].x) == ["default", "other init"] and len(fig.data[0].error_y.array) == 2
