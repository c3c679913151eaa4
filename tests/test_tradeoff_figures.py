"""The report's figures: every method on a cost axis chosen from a menu, and the kept fraction per layer."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from workbench.errors import ConfigError
from workbench.viz.kept_figures import kept_fraction_heatmap
from workbench.viz.tradeoff_figures import marker_size, noise_floor, pareto_front, si, si_bytes, tradeoff_figure


def _point(name, kind, accuracy, params, fuse=None, n=3, stored=None):
    return {
        "name": name,
        "kind": kind,
        "fuse": fuse,
        "accuracy": accuracy,
        "low": accuracy - 0.01,
        "high": accuracy + 0.01,
        "n": n,
        "params": params,
        "costs": {"params": params, "stored_bytes": stored or 4 * params, "latency_ms": params / 1e4},
    }


POINTS = [
    _point("sbm", "selector", 0.95, 10_000, fuse="drop"),
    _point("sbm", "selector", 0.96, 10_000, fuse="lsq", n=1),
    _point("magnitude", "selector", 0.93, 10_000, fuse="drop"),
    _point("deep-compression", "pipeline", 0.94, 5_000, stored=2_000),
    _point("LeNet-5", "baseline", 0.97, 60_000),
]
BASE = _point("base", "selector", 0.97, 50_000)


def test_the_cost_axis_menu_moves_every_trace_and_its_pareto_front():
    fig = tradeoff_figure(POINTS, base=BASE, n_test=400, largest_params=60_000)
    (menu,) = fig.layout.updatemenus  # every point near the base: no accuracy zoom
    labels = [b.label for b in menu.buttons]
    assert labels == ["parameters", "stored bytes", "latency at batch 1 (ms, CPU)"]  # no multiply-adds stored
    fronts = [i for i, t in enumerate(fig.data) if t.name == "Pareto front"]
    assert len(fronts) == 3
    for axis, button in zip(("params", "stored_bytes"), menu.buttons):
        xs, visible = button.args[0]["x"], button.args[0]["visible"]
        assert len(xs) == len(visible) == len(fig.data)
        assert [visible[i] for i in fronts] == [axis == a for a in ("params", "stored_bytes", "latency_ms")]
        sbm = next(i for i, t in enumerate(fig.data) if t.name == "sbm")
        assert list(xs[sbm]) == [POINTS[0]["costs"][axis]] * 2  # at their true cost, never moved sideways
    stored_front = menu.buttons[1].args[0]["x"][fronts[1]]
    assert stored_front[0] == 2_000  # the pipeline is the cheapest in stored bytes, first on that front


def test_a_zoom_to_the_base_accuracy_is_offered_when_a_point_lies_far_below_it():
    fig = tradeoff_figure([*POINTS, _point("random", "selector", 0.4, 10_000, fuse="drop")], base=BASE)
    zoom, _ = fig.layout.updatemenus
    assert zoom.buttons[1].args[0]["yaxis.range"] == pytest.approx([0.92, 0.995])
    assert zoom.buttons[0].args[0]["yaxis.range"][0] < 0.39


def test_fusion_modes_and_single_seeds_are_told_apart_by_marker_and_sizes_share_one_scale():
    fig = tradeoff_figure(POINTS, base=BASE, n_test=400, largest_params=60_000)
    sbm = next(t for t in fig.data if t.name == "sbm")
    assert list(sbm.marker.symbol) == ["circle", "square-open"]  # drop filled circle; lsq single seed open square
    other = tradeoff_figure(POINTS[:1], base=BASE, largest_params=60_000)
    assert next(t for t in other.data if t.name == "sbm").marker.size[0] == sbm.marker.size[0]
    assert marker_size(60_000, 60_000) / marker_size(15_000, 60_000) == pytest.approx(2.0)  # area ~ parameters
    legend = [t.name for t in fig.data if t.showlegend is not False and t.visible is not False]
    assert len(legend) == len(set(legend))  # one entry per name, not per point


def test_the_noise_floor_is_drawn_around_the_base_accuracy():
    fig = tradeoff_figure(POINTS, base=BASE, n_test=400)
    band = next(s for s in fig.layout.shapes if s.type == "rect")
    wilson = stats.binomtest(388, 400).proportion_ci(0.95, method="wilson")  # 95%, like the error bars
    assert (band.y0, band.y1) == pytest.approx((wilson.low, wilson.high))
    assert "95% sampling interval" in fig.layout.annotations[0].text
    assert noise_floor(0.97, 400)["se"] == pytest.approx(math.sqrt(0.97 * 0.03 / 400))
    assert noise_floor(0.97, 400)["one_sample"] == 0.0025 and "0.0025" in fig.layout.annotations[0].text
    with pytest.raises(ConfigError, match="test-set size"):
        noise_floor(0.9, 0)


def test_the_pareto_front_keeps_only_undominated_points():
    assert pareto_front([(1, 0.5), (2, 0.4), (3, 0.7), (3, 0.6), (0.5, 0.3), (4, None)]) == [
        (0.5, 0.3),
        (1, 0.5),
        (3, 0.7),
    ]


def test_numbers_use_si_suffixes():
    assert [si(v) for v in (17_600, 1_234_567, 812, 999_999, 0.5)] == ["17.6k", "1.23M", "812", "1M", "0.5"]
    assert si_bytes(2_440) == "2.44 kB" and si_bytes(512) == "512 B"


def test_bad_points_and_rows_are_named():
    with pytest.raises(ConfigError, match="needs costs"):
        tradeoff_figure([{"name": "a", "kind": "selector", "accuracy": 0.9}])
    with pytest.raises(ConfigError, match="unknown cost axis flops"):
        tradeoff_figure(POINTS, axes=["flops"])
    with pytest.raises(ConfigError, match="kind is 'selector', 'pipeline' or 'baseline'"):
        tradeoff_figure([{**POINTS[0], "kind": "other"}])
    with pytest.raises(ConfigError, match="between 0 and 1"):
        kept_fraction_heatmap([{"method": "sbm", "budget": "0.5", "group": "fc1", "kept": 1.5}])


def test_the_kept_figure_has_a_panel_per_budget_and_a_cell_per_method_and_layer():
    rows = [
        {"method": m, "budget": b, "group": g, "kept": k, "units": 8}
        for m, b, g, k in [("sbm", "0.25", "fc1", 0.25), ("sbm", "0.5", "fc1", 0.5), ("dpp", "0.5", "fc2", 0.75)]
    ]
    fig = kept_fraction_heatmap(rows)
    assert len(fig.data) == 2 and [a.text for a in fig.layout.annotations] == ["budget: keep 0.25", "budget: keep 0.5"]
    assert [list(line) for line in fig.data[1].z] == [
        [0.5, None],
        [None, 0.75],
    ]  # rows sbm, dpp; columns fc1, fc2; not run left empty


def test_the_stored_size_figure_calls_one_seed_a_single_seed():
    from workbench.viz import size_accuracy_figure

    fig = size_accuracy_figure(
        [
            {"name": "a", "stored_bytes": 100, "accuracy": 0.9, "seeds": 1},
            {"name": "b", "stored_bytes": 9, "accuracy": 0.8, "seeds": 3},
        ]
    )
    assert "single seed" in fig.data[0].hovertemplate and "1 seeds" not in fig.data[0].hovertemplate
    assert "mean of 3 seeds" in fig.data[1].hovertemplate


def test_a_name_keeps_its_colour_across_figures_drawn_with_one_order():
    first = tradeoff_figure(POINTS, order=["magnitude", "sbm"])
    second = tradeoff_figure(POINTS[2:3] + POINTS[:2], order=["magnitude", "sbm"])
    third = tradeoff_figure(POINTS[:2], order=["magnitude", "sbm"])

    def colour(fig, name):
        return next(t for t in fig.data if t.name == name).marker.color

    assert colour(first, "sbm") == colour(second, "sbm") == colour(third, "sbm") != colour(first, "magnitude")


def test_points_that_share_a_cost_stay_on_it_and_the_pareto_front_passes_through_them():
    fig = tradeoff_figure(POINTS, base=BASE, n_test=400)
    front = next(t for t in fig.data if t.name == "Pareto front" and t.visible is not False)
    drawn = {(x, y) for t in fig.data if t.mode == "markers" for x, y in zip(t.x, t.y) if x is not None}
    assert set(zip(front.x, front.y)) <= drawn  # every corner of the front is a marker's drawn position
    sbm = next(t for t in fig.data if t.name == "sbm")
    assert list(sbm.x) == [10_000, 10_000]
    assert "also at this cost (2)" in sbm.text[0] and "magnitude" in sbm.text[0]  # side by side in the hover only


def test_latency_ticks_are_plain_milliseconds_with_a_range_over_seeds():
    spread = {**POINTS[0], "cost_ranges": {"latency_ms": (0.5, 1.6)}}
    fig = tradeoff_figure([spread, *POINTS[1:]], base=BASE)
    (menu,) = fig.layout.updatemenus
    latency = next(b for b in menu.buttons if b.label.startswith("latency"))
    assert latency.args[1]["xaxis.tickformat"] == "~g"  # 0.03, never "30m" on a millisecond axis
    assert menu.buttons[0].args[1]["xaxis.tickformat"] == "~s" and fig.layout.xaxis.tickformat == "~s"
    sbm = next(i for i, t in enumerate(fig.data) if t.name == "sbm")
    bar = latency.args[0]["error_x"][sbm]
    assert bar["visible"] and bar["array"][0] == pytest.approx(0.6) and bar["arrayminus"][0] == pytest.approx(0.5)
    assert menu.buttons[0].args[0]["error_x"][sbm] == {"visible": False}  # parameters have no spread
    assert "range 0.500 ms to 1.600 ms" in latency.args[0]["text"][sbm][0]


def test_the_chance_level_is_a_labelled_line():
    fig = tradeoff_figure(POINTS, base=BASE, chance=0.1)
    line = [s for s in fig.layout.shapes if s.type == "line" and s.y0 == 0.1]
    assert len(line) == 1 and line[0].line.dash == "dot"
    assert any("chance level 0.100" in a.text for a in fig.layout.annotations)
    assert not [s for s in tradeoff_figure(POINTS, base=BASE).layout.shapes if s.y0 == 0.1]


def test_the_overlap_colours_are_anchored_at_chance():
    import numpy as np

    from workbench.viz import selection_overlap_figure

    plans = {"a": {"g": np.arange(0, 10)}, "b": {"g": np.arange(9, 19)}, "c": {"g": np.arange(0, 10)}}
    fig = selection_overlap_figure(plans, chance=0.05)
    heat = fig.data[0]
    assert heat.zmin == -heat.zmax and heat.colorscale[1][0] == 0.5  # white in the middle: chance
    assert np.asarray(heat.z, dtype=float)[1, 0] == pytest.approx(np.log2(1 / 0.05))  # a / c: identical
    assert heat.text[0][0] == "0.05" and "0.05 chance" in heat.colorbar.ticktext  # cells still read Jaccard
    plain = selection_overlap_figure(plans).data[0]
    assert plain.zmin == 0 and plain.zmax == 1
