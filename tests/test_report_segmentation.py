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
