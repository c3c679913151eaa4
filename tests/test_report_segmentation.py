"""The report names a segmentation model's score mIoU, in the trained-models table and on the trade-off axis."""

from __future__ import annotations

from workbench.study.report import _tradeoff, _trained_table
from workbench.study.report_data import build_sections
from workbench.study.summary import Record


def _run(kind: str, role: str, model: str, data: str, seed: int, **metrics) -> Record:
    return Record(
        hash=f"{model}{kind}{seed}",
        kind=kind,
        role=role,
        model=model,
        data=data,
        seed=seed,
        status="done",
        selector="magnitude" if kind == "compress" else None,
        budget="0.5" if kind == "compress" else None,
        keep=0.5 if kind == "compress" else None,
        fuse="drop" if kind == "compress" else None,
        metrics={"n": 200, "params": 1000, "macs": 5000, **metrics},
        seconds=1.0,
    )


def test_segmentation_rows_say_miou_and_classification_rows_say_accuracy():
    records = [
        *(_run("train", "baseline", "ENet", "shapes-seg", s, miou=0.6 + s / 100) for s in range(3)),
        *(_run("train", "baseline", "LeNet-5", "digits", s, accuracy=0.97) for s in range(3)),
    ]
    rows = _trained_table(records).split("<tr>")
    enet, lenet = next(r for r in rows if "ENet" in r), next(r for r in rows if "LeNet-5" in r)
    assert "mIoU 0.61" in enet and "accuracy 0.97" in lenet


def test_a_segmentation_base_models_trade_off_axis_is_miou():
    records = [_run("train", "base", "ENet", "shapes-seg", s, miou=0.6) for s in range(2)]
    records += [_run("compress", "compress", "ENet", "shapes-seg", s, miou=0.55) for s in range(2)]
    (section,) = build_sections(records, {})
    figure = _tradeoff(section, 1000.0)
    assert figure.layout.yaxis.title.text == "test mIoU" and "test mIoU against cost" in figure.layout.title.text


def test_a_segmentation_section_speaks_of_miou_and_draws_no_binomial_noise_band():
    from workbench.study.report import _ranked_table

    records = [_run("train", "base", "ENet", "shapes-seg", s, miou=0.6 + s / 50, val_miou=0.6) for s in range(3)]
    records += [_run("compress", "compress", "ENet", "shapes-seg", s, miou=0.5, val_miou=0.5) for s in range(3)]
    (section,) = build_sections(records, {})
    assert section.n_test is None  # mIoU is not a proportion of the 200 test images
    figure = _tradeoff(section, 1000.0)
    assert not figure.layout.shapes or all(s.fillcolor is None for s in figure.layout.shapes)  # no grey band
    assert all("one test sample" not in (a.text or "") for a in figure.layout.annotations)
    labels = [b.label for menu in figure.layout.updatemenus for b in menu.buttons]
    assert not any(label.startswith("accuracy") for label in labels)
    head = _ranked_table(section, "magnitude/drop").split("</thead>")[0]
    assert "val mIoU" in head and "test mIoU" in head and "accuracy" not in head
    classification = [_run("train", "base", "MLP", "digits", s, accuracy=0.9) for s in range(2)]
    classification += [_run("compress", "compress", "MLP", "digits", s, accuracy=0.8) for s in range(2)]
    (plain,) = build_sections(classification, {})
    assert plain.n_test == 200 and "test accuracy" in _ranked_table(plain, "magnitude/drop")
    from workbench.study.summary import compare_table, format_compare

    assert "test mIoU" in format_compare(compare_table(records)) and "accuracy" not in format_compare(
        compare_table(records)
    )
    assert "test accuracy" in format_compare(compare_table(classification))


def test_heatmaps_with_a_column_per_layer_thin_their_labels_when_there_are_many_layers():
    import numpy as np

    from workbench.viz.kept_figures import kept_fraction_heatmap
    from workbench.viz.plan_figures import selection_overlap_figure

    def rows(n: int) -> list[dict]:
        return [{"method": m, "budget": 0.5, "group": f"stage.{i}", "kept": 0.5} for m in ("a", "b") for i in range(n)]

    few, many = kept_fraction_heatmap(rows(6)), kept_fraction_heatmap(rows(60))
    assert few.data[0].texttemplate == "%{text}" and few.layout.xaxis.tickvals is None
    assert many.data[0].texttemplate == "" and 10 <= len(many.layout.xaxis.tickvals) <= 16
    plans = {
        name: {f"stage.{i}": np.arange(start, start + 4) for i in range(40)} for name, start in (("a", 0), ("b", 2))
    }
    overlap = selection_overlap_figure(plans)
    assert overlap.data[0].texttemplate == "" and overlap.layout.xaxis.tickvals[-1] == "mean"
    assert len(overlap.layout.xaxis.tickvals) <= 17


def test_a_segmentation_study_stores_per_class_iou_and_the_report_tables_it(tmp_path):
    from workbench.study import load_study, run_study
    from workbench.study.report import write_report
    from workbench.study.summary import read_records

    path = tmp_path / "seg.toml"
    path.write_text(
        """
[study]
name = "seg"
seeds = [0, 1]
latency = false

[[models]]
name = "enet"
data = "shapes-seg"
data_options = { num_samples = 20, size = 16 }
training = { epochs = 1, batch_size = 4, class_weights = "enet" }

[selectors]
magnitude = {}

[compression]
budgets = [0.5]

[finetune]
epochs = 1
batch_size = 4
class_weights = "enet"
"""
    )
    study = load_study(path)
    assert run_study(study, quiet=True).failed == 0
    records = read_records(study)
    names = ["background", "circle", "square", "triangle", "cross", "diamond", "ring"]
    for record in records:
        assert record.metrics["class_names"] == names and len(record.metrics["iou"]) == len(names)
        present = [v for v in record.metrics["iou"] if v is not None]  # None: a class absent from the scenes
        assert present and abs(record.metrics["miou"] - sum(present) / len(present)) <= 1e-5  # mIoU: their mean
    (section,) = build_sections(records, {})
    rows = section.class_iou["rows"]
    assert [label for label, _, _ in rows] == ["base model", "magnitude, drop, keep 0.5"]
    assert [seeds for _, _, seeds in rows] == [2, 2]
    html = write_report(study, out=tmp_path / "seg.html").read_text()
    assert "Per-class IoU" in html and "<th>triangle</th>" in html
