"""What a reviewer found in the report and the figures, held fixed: heatmap values rounded, the block diagram as
wide as its page with every arc and count in view, and a report that states the latency's batch and spread, marks
rows at chance, fills the base model's val score and draws a kept-per-layer chart only where layers differ."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from report_study import tiny_study

from workbench.study.report_data import build_sections, spread
from workbench.study.summary import Record


def test_heatmap_values_are_rounded_to_three_digits_in_float32():
    from workbench.viz.graph_figures import adjacency_heatmap
    from workbench.viz.heatmap_style import compact_z
    from workbench.viz.selection_figures import kernel_heatmap

    assert compact_z(np.array([0.123456, -98765.4, 0.0, np.nan])).tolist()[:3] == pytest.approx(
        [0.123, -98800.0, 0.0], rel=1e-6
    )
    kernel = np.corrcoef(np.random.default_rng(0).random((300, 20)))
    fig = kernel_heatmap(kernel, labels=np.arange(300) % 4, keep=np.arange(0, 300, 2))
    z = np.asarray(fig.data[0].z)
    assert z.dtype == np.float32 and np.asarray(fig.data[0].customdata).dtype == np.int16
    assert np.all(np.abs(z.astype(np.float64) - compact_z(z)) < 1e-6)  # already at 3 significant digits
    assert len(fig.to_json()) < 1_100_000  # was 1.7 MB of float64 values and int64 unit pairs
    assert np.asarray(adjacency_heatmap(kernel[:40, :40]).data[0].z).dtype == np.float32


def test_the_block_diagram_fits_its_container_with_arcs_and_counts_in_view():
    from workbench.graph import from_model
    from workbench.viz import layered_block_diagram
    from workbench.zoo import create_model

    torch.manual_seed(0)
    graph = from_model(create_model("resnet", depth=20))
    fig = layered_block_diagram(graph)
    assert fig.layout.autosize and fig.layout.width is None  # no fixed 1400 px: as wide as the cell or page
    arcs = [np.nanmax(np.asarray(t.y, dtype=float)) for t in fig.data if t.mode == "lines"]
    assert max(arcs) <= fig.layout.yaxis.range[1]  # the residual arcs are not clipped at the top
    counts = [a for a in fig.layout.annotations if a.bgcolor]
    assert len(counts) == len(fig.layout.meta["sizes"]) and all(a.text.isdigit() for a in counts)


def _record(kind, seed, accuracy, *, role="base", model="m", selector=None, latency=0.03, **metrics):
    return Record(
        hash=f"{kind}-{role}-{model}-{selector}-{seed}",
        kind=kind,
        role=role,
        model=model,
        data="d",
        seed=seed,
        status="done",
        selector=selector,
        fuse="drop" if selector else None,
        budget="0.5" if selector else None,
        keep=0.5 if selector else None,
        metrics={"accuracy": accuracy, "n": 1000, "params": 100.0, "latency_ms": latency * (1 + seed), **metrics},
        seconds=1.0,
    )


def test_sections_know_the_chance_level_and_the_latency_spread():
    records = [_record("train", s, 0.9, val_accuracy=0.88, val_n=200) for s in range(3)]
    records += [_record("compress", s, 0.11, role="compress", selector="magnitude") for s in range(3)]
    records += [_record("train", s, 0.1, role="baseline", model="guess") for s in range(3)]
    (section,) = build_sections(records, {}, classes={"d": 10})
    assert section.chance == pytest.approx(0.1) and not section.base_at_chance
    assert {e.name: e.at_chance for e in section.entries} == {"magnitude": True, "guess": True}
    assert section.base_val is not None and section.base_val.mean == pytest.approx(0.88)
    latency = section.entries[0].latency
    assert (latency.n, latency.median, latency.low, latency.high) == pytest.approx((3, 0.06, 0.03, 0.09))
    assert section.entries[0].costs["latency_ms"] == pytest.approx(0.06)  # the median, as in every table
    assert spread([2.0, None, 1.0, 4.0, 3.0]).median == 2.5
    (unknown,) = build_sections(records, {})
    assert unknown.chance is None and not any(e.at_chance for e in unknown.entries)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from workbench.study import write_report

    return write_report(tiny_study(), out=tmp_path_factory.mktemp("review") / "tiny.html").read_text()


def _visible(text):
    return re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", " ", text, flags=re.S))


def test_the_report_states_the_latency_batch_and_its_spread_over_seeds(page):
    seen = _visible(page)
    assert seen.count("batch 1: median [range] over seeds") >= 2  # the method table and the trained models
    assert "batch 1, one CPU thread" in seen
    assert re.search(r"\d\.\d+ ms\s+\[\d\.\d+ ms, \d\.\d+ ms\]", seen)  # a median with its range


def test_the_report_marks_rows_at_chance_and_fills_the_base_val_score(page):
    seen = _visible(page)
    start = page.index("id='tiny-mlp-on-digits-ranked'")
    table = page[start : page.index("</table>", start)]
    base = re.search(r"<tr class='base'>(.*?)</tr>", table, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", base, re.S)
    assert re.match(r"0\.\d{4}<br>", cells[3])  # val accuracy of the base model, no longer blank
    assert "LeNet-300-100" in seen and "at chance" in seen  # the two-batch baseline cannot beat a guess
    assert "rows at chance (1/10 = 0.100)" in seen or "row at chance (1/10 = 0.100)" in seen
    assert "chance level 0.100" in page  # the line in the accuracy figure


def test_uniform_budgets_get_a_sentence_not_a_heatmap(page):
    assert "so no per-layer chart is drawn" in _visible(page)
    assert "fraction of units kept per layer" not in page
