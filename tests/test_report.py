"""The study report: built around questions, with intervals, paired differences, fixed decimals, readable names,
the kept units per layer, the per-run files beside it, and one figure comparing everything on a chosen cost."""

from __future__ import annotations

import csv
import json
import re

import pytest
from report_study import tiny_study

from workbench.errors import ConfigError
from workbench.study.report_data import build_sections, kept_rows
from workbench.study.summary import Record


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from workbench.study import write_report

    path = write_report(tiny_study(), out=tmp_path_factory.mktemp("report") / "tiny-report.html")
    return path, path.read_text()


def _visible(text):
    """The page without scripts and tags: what a reader sees."""
    text = re.sub(r"<script.*?</script>", " ", text, flags=re.S)
    return re.sub(r"<[^>]+>", " ", text)


def test_the_report_answers_its_questions_with_contents_and_glossary(page):
    path, text = page
    assert text.count("<script") == text.count("</script>") and "<script src" not in text
    ids = set(re.findall(r"id='([^']+)'", text))
    anchors = re.findall(r"href='#([^']+)'", text)
    assert len(anchors) >= 8 and set(anchors) <= ids  # every contents entry lands somewhere
    for question in (
        "Which method gives the best accuracy for its cost?",
        "How much accuracy does each compression cost, and can it be told from noise?",
        "What did each selector keep, layer by layer?",
        "Where did the time go?",
    ):
        assert question in text, question
    for term in ("drop", "merge", "lsq", "stored bytes", "retraining", "budget (keep)"):
        assert f"<dt>{term}</dt>" in text, term
    seen = _visible(text)
    assert "1 seeds" not in seen and "stored_bytes" not in seen and "latency_ms" not in seen
    assert "2 seeds" in seen and "Ranked on val accuracy (the test set is only reported)" in seen
    assert "e+0" not in seen  # SI suffixes, not exponents
    assert "differ in which units they keep, not in how many" in seen  # every selector kept half of the layer


def test_the_ranked_table_gives_fixed_decimals_intervals_and_paired_differences(page):
    _, text = page
    start = text.index("id='tiny-mlp-on-digits-ranked'")
    table = _visible(text[start : text.index("</table>", start)])
    accuracies = re.findall(r"(?<!keep )\b[01]\.\d+\b(?! m?s\b| [kMG]?B\b)", table)  # not budgets, times, sizes
    assert accuracies and all(len(a) == 6 for a in accuracies)  # 0.9610, never 0.961
    assert "not distinguishable" in table and "reference" in table
    assert re.search(r"[+-]0\.\d{4}\s+\[[+-]0\.\d{4}, [+-]0\.\d{4}\]", table)  # a paired difference with interval
    for name in ("random", "magnitude", "w8", "LeNet-300-100", "base model"):
        assert name in table, name
    assert "x smaller" in table and " kB" in table and " ms" in table and " s" in table
    assert " 0.0 s" not in table  # short runs keep two decimals


def test_the_per_run_files_are_written_beside_the_report_and_linked(page):
    path, text = page
    csv_path, json_path = path.with_name("tiny-report-runs.csv"), path.with_name("tiny-report-runs.json")
    assert f"href='{csv_path.name}'" in text and f"href='{json_path.name}'" in text
    rows = list(csv.DictReader(csv_path.open()))
    runs = json.loads(json_path.read_text())
    assert len(rows) == len(runs) == 2 * (1 + 4 + 1 + 1)  # seeds x (base, 2 selectors x 2 fusions, pipeline, baseline)
    assert all(float(row["seconds"]) > 0 and float(row["latency_ms"]) > 0 for row in rows)
    compress = [run for run in runs if run["kind"] == "compress"]
    for run in compress:
        kept = run["kept"]
        assert set(kept) == {"layers.1"} and kept["layers.1"]["n_units"] == 16  # the one hidden layer
        share = sum(len(g["kept"]) for g in kept.values()) / sum(g["n_units"] for g in kept.values())
        assert share == pytest.approx(run["metrics"]["kept_fraction"], abs=1e-6)


def test_plotlyjs_beside_the_report_is_written_once(tmp_path):
    from workbench.study import write_report

    page = write_report(tiny_study(), out=tmp_path / "a.html", plotlyjs="file")
    script = tmp_path / "plotly.min.js"
    first = script.stat().st_mtime_ns
    write_report(tiny_study(), out=tmp_path / "b.html", plotlyjs="file")
    assert script.stat().st_mtime_ns == first and len(page.read_text()) < 200_000 < script.stat().st_size
    with pytest.raises(ConfigError, match="plotlyjs is one of inline, file"):
        write_report(tiny_study(), out=tmp_path / "c.html", plotlyjs="cdn")


def _record(kind, seed, accuracy, *, selector=None, fuse=None, budget=None, pipeline=None, role="base", **metrics):
    return Record(
        hash=f"{kind}-{selector or pipeline or role}-{fuse}-{budget}-{seed}",
        kind=kind,
        role=role,
        model="m",
        data="d",
        seed=seed,
        status="done",
        selector=selector,
        pipeline=pipeline,
        budget=budget,
        keep=None if budget is None else float(budget),
        fuse=fuse,
        metrics={"accuracy": accuracy, "n": 1000, "params": 100.0, "macs": 100.0, **metrics},
        seconds=1.0,
    )


def _study_records(val=False):
    records = []
    for seed, shift in enumerate((0.0, 0.01, -0.01)):
        records.append(_record("train", seed, 0.95 + shift))
        noisy = (0.004, -0.004, 0.001)[seed]  # random vs magnitude: differences of both signs
        for selector, gain, val_gain in (("magnitude", 0.0, 0.0), ("sbm", 0.03, -0.05), ("random", noisy, 0.0)):
            extra = {"val_accuracy": 0.9 + val_gain + shift} if val else {}
            records.append(
                _record(
                    "compress",
                    seed,
                    0.9 + gain + shift + 0.002 * seed,
                    selector=selector,
                    fuse="drop",
                    budget="0.5",
                    role="compress",
                    base_accuracy=0.95 + shift,
                    **extra,
                )
            )
    return records


def test_entries_are_paired_per_seed_and_ranked_on_val_when_it_is_stored():
    (section,) = build_sections(_study_records(), {})
    assert section.ranked_on == "test accuracy" and [e.name for e in section.entries] == ["sbm", "random", "magnitude"]
    sbm, random, magnitude = section.entries
    assert sbm.vs_reference.mean == pytest.approx(0.03) and sbm.vs_reference.low > 0  # the same 0.03 on every seed
    assert section.comparisons == 5 and sbm.vs_reference.comparisons == 5  # 3 vs base, 2 vs the reference
    assert sbm.vs_reference.distinguishable == (sbm.vs_reference.p_adjusted < 0.05)  # Holm over the 5
    assert not random.vs_reference.distinguishable and magnitude.is_reference
    assert sbm.vs_base.mean == pytest.approx(-0.018) and sbm.accuracy.n == 3  # -0.02 + 0.002 * mean seed
    (section,) = build_sections(_study_records(val=True), {})
    assert section.ranked_on == "val accuracy" and [e.name for e in section.entries][-1] == "sbm"


def test_multiply_adds_that_track_parameters_are_not_offered_as_an_axis():
    (mlp,) = build_sections(_study_records(), {})
    assert mlp.macs_repeat_params
    records = _study_records()
    records[1].metrics["macs"] = 900.0  # a convolution reuses its weights: multiply-adds tell something else
    (conv,) = build_sections(records, {})
    assert not conv.macs_repeat_params
    records = _study_records()
    for r in records:  # a conv net pruned uniformly: MACs / params constant across runs, but far from 1
        if "macs" in r.metrics:
            r.metrics["macs"] = 120.0 * r.metrics["params"]
    (uniform,) = build_sections(records, {})
    assert not uniform.macs_repeat_params


def test_kept_rows_read_the_stored_plans():
    records = [_record("compress", 0, 0.9, selector="sbm", fuse="drop", budget="0.5", role="compress")]
    plan = {"selections": {"fc1": {"n_units": 8, "keep": [0, 2, 5]}, "fc2": {"n_units": 4, "keep": [1, 2]}}}
    rows = kept_rows(records, {records[0].hash: plan, "other": "not a plan"})
    assert {(r["group"], r["kept"], r["units"]) for r in rows} == {("fc1", 3 / 8, 8), ("fc2", 0.5, 4)}


def test_the_report_command_can_write_plotlyjs_beside_the_page(tmp_path, capsys):
    from workbench.cli import main

    out = tmp_path / "page.html"
    assert main(["study", "report", str(tiny_study()), "--out", str(out), "--plotlyjs", "file", "--quiet"]) == 0
    assert (tmp_path / "plotly.min.js").is_file() and "plotly.min.js" in out.read_text()
