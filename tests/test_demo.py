"""The main job: the demo study's baselines reach their targets, and a quick demo writes its report."""

from __future__ import annotations

import json

from workbench.checkpoints import load_checkpoint
from workbench.demo import load_demo_study, run_demo
from workbench.study import Store, run_study
from workbench.study.runner import cache_dir_for

TARGETS = {
    "LeNet-300-100": ("digits", 0.97),
    "MLP 40-100-100-10": ("mnist1d", 0.63),  # the MNIST-1D paper's MLP baseline (~0.65), on 3600 of its 4000 samples
    "CNN-1D": ("mnist1d", 0.90),
}
# The conv nets of the main job on shapes at difficulty "moderate": clearly below 100%, far above chance (1/6).
CONV_TARGETS = {"ResNet-8": ("shapes", 0.85, 0.99), "VGG-small": ("shapes", 0.85, 0.99)}  # seed 0 val: 0.90, 0.96
# ENet (width 0.5, encoder scores) on shapes-seg at 64 pixels: far above predicting background everywhere (mIoU
# 0.12), below a small U-Net (0.77); seed 0 val: 0.678 (analyses/enet_shapes_seg.py).
SEGMENTATION_TARGETS = {"ENet": ("shapes-seg", 0.55, 0.9)}


def test_the_demo_study_ships_with_the_package_and_quick_shrinks_it():
    import tomllib
    from importlib import resources

    packaged = resources.files("workbench") / "studies" / "demo.toml"
    assert tomllib.loads(packaged.read_text())["study"]["name"] == "demo"
    full, quick = load_demo_study(), load_demo_study(quick=True)
    assert full.path.parent.name == "studies" and full.path.parent.parent.name == "workbench"
    assert len(full.selectors) == 6 and list(quick.selectors) == list(full.selectors)[:2]
    assert len(quick.compression.budgets) == 1 and not quick.baselines.models
    assert len(full.study.seeds) >= 3 and quick.study.seeds == full.study.seeds[:1]  # intervals need seeds


def test_every_compressed_model_of_the_demo_has_both_controls_beside_it():
    """Scratch-trained and random-width controls for every model, budget and seed, ENet included."""
    from workbench.study import expand

    runs = expand(load_demo_study())
    for entry in load_demo_study().models:
        budgets = {
            r.config["budget"]["keep"]
            for r in runs
            if r.kind == "compress" and r.config["model"]["label"] == entry.label
        }
        controls = [r for r in runs if r.kind == "control" and r.config["model"]["label"] == entry.label]
        assert budgets and {(r.config["control"], r.config["budget"]["keep"], r.config["seed"]) for r in controls} == {
            (kind, keep, seed) for kind in ("scratch", "random-widths") for keep in budgets for seed in (0, 1, 2)
        }, entry.label


def test_demo_baselines_reach_their_targets_and_the_quick_demo_reports(tmp_path):
    store = tmp_path / "demo.sqlite"
    outcome = run_study(
        load_demo_study(),
        store=store,
        quiet=True,
        where=lambda run: run.kind == "train" and run.config["seed"] == 0 and run.config["model"]["label"] in TARGETS,
    )
    assert (outcome.done, outcome.failed) == (3, 0)
    with Store(store, readonly=True) as db:
        rows = {row["config"]["model"]["label"]: row for row in db.rows()}
    for label, (data, target) in TARGETS.items():
        assert rows[label]["config"]["model"]["data"] == data
        assert rows[label]["metrics"]["accuracy"] >= target, (label, rows[label]["metrics"])
    model, meta = load_checkpoint(cache_dir_for(store) / f"{rows['LeNet-300-100']['hash']}.pt")
    assert meta["data"] == "digits" and model.layers[1].in_features == 64

    result = run_demo(quick=True, quiet=True, out=tmp_path, jobs=1)  # reuses the two stored base models
    assert result.outcome.skipped == 2 and result.outcome.failed == 0 and result.outcome.done == 4 + 2  # + pipeline
    assert result.report == tmp_path / "report.html" and "Plotly.newPlot" in result.report.read_text()
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"] == result.outcome.summary and len(saved["summary"]) == 2 * 2  # models x selectors
    assert [row["pipeline"] for row in saved["pipelines"]] == ["fixed-point-w8a8"] * 2
    assert all(3.5 < row["compression_ratio"] < 4.1 for row in saved["pipelines"])  # 8-bit weights, 32-bit biases
    assert {row["model"] for row in saved["trained"]} == {"LeNet-300-100", "MLP 40-100-100-10"}


def test_the_conv_base_models_sit_below_100_percent_and_far_above_chance(tmp_path):
    """ResNet-8 and the VGG on shapes, and ENet on shapes-seg (mIoU) for seed 0."""
    store = tmp_path / "conv.sqlite"
    outcome = run_study(
        load_demo_study(),
        store=store,
        quiet=True,
        jobs=2,
        where=lambda r: (
            r.kind == "train"
            and r.config["seed"] == 0
            and r.config["model"]["label"] in {**CONV_TARGETS, **SEGMENTATION_TARGETS}
        ),
    )
    assert (outcome.done, outcome.failed) == (3, 0)
    with Store(store, readonly=True) as db:
        rows = {row["config"]["model"]["label"]: row for row in db.rows()}
    for label, (data, low, high) in CONV_TARGETS.items():
        assert rows[label]["config"]["model"]["data"] == data
        assert low <= rows[label]["metrics"]["val_accuracy"] <= high, (label, rows[label]["metrics"])
    (data, low, high), metrics = SEGMENTATION_TARGETS["ENet"], rows["ENet"]["metrics"]
    assert rows["ENet"]["config"]["model"]["data"] == data and "accuracy" not in metrics
    assert low <= metrics["val_miou"] <= high, metrics
