"""Why MobileNet v1 0.25 does not learn the ``shapes`` images, one factor at a time.

Every row trains on ``shapes`` (difficulty "moderate", 32 px, 1,800 training images, 6 classes) at the demo's
budget for ResNet-8 (``workbench/studies/demo.toml``: Adam 3e-3, batch 32, 8 cosine epochs, ``workbench.train.fit``),
built and trained under each seed as the study does, and prints val and test accuracy with 95% intervals
(``workbench.study.statistics.estimate``: seeds and the 600-image test set) next to ResNet-8 and the small VGG
trained in the same run (the VGG at its own demo rate, 1e-3).

Rows: the published ImageNet layout; the stride layout (a stride-1 stem alone; the small-image layout,
``layout="small"``); then one factor at a time on top of ``--base`` (the ImageNet layout by default, which
keeps the run near 15 minutes on one core; ``--base small`` measures them where the network learns, about
three times longer): depthwise kernels initialized with their true fan (9) instead of PyTorch's
``fan_out = 9 * channels``, at least 16 channels everywhere (the 8-channel stem of width 0.25), the TensorFlow
reference's BatchNorm (decay 0.9997, eps 1e-3), Adam at 1e-2 and 1e-3, SGD (momentum 0.9, 0.05), AdamW
weight decay 0.01 with and without the depthwise kernels, and dropout 0.2 before the classifier. Zero-initialized
last BatchNorm is left out: without a residual connection it zeroes the block's output.

Rows on the small layout: Adam at 1e-2 (``small_lr``), width 0.5 (``small_w05``), ``min_channels=16`` with Adam
at 1e-2 (``small_best``, the demo's baseline before), and the demo's baseline, ``min_channels=32`` with Adam at
1e-2 (``small_min32``; at 5e-3, ``small_min32_slow``); and output strides between the two layouts, 16 (the
stride-1 stem alone) and 8 (block 2 at stride 1 too), with ``min_channels=16`` and Adam at 1e-2 (``os16``,
``os8``). ``--curve`` also prints val accuracy after each epoch (the training curve under the budget's cosine
schedule), ``--epochs`` changes the budget of every row, and ``--data digits32`` trains on scikit-learn's 8x8
digits upscaled to 32 pixels instead of ``shapes``.

Usage::

    python analyses/mobilenet_small_images.py            # 3 seeds
    python analyses/mobilenet_small_images.py --rows resnet8,vgg,small_min32 --curve
    python analyses/mobilenet_small_images.py --quick    # seed 0 only
    python analyses/mobilenet_small_images.py --base small --rows small,init,channels
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from workbench.datasets import load_dataset
from workbench.study.statistics import estimate
from workbench.train import evaluate, fit
from workbench.zoo import create_model_for_data

#: ResNet-8's training on shapes in the demo study.
BUDGET: dict[str, Any] = {"epochs": 8, "lr": 3e-3, "batch_size": 32, "schedule": "cosine", "optimizer": "adam"}


def depthwise_fan_in_init(model: nn.Module) -> None:
    """Depthwise kernels ~ N(0, 2 / 9): He initialization with the kernel's true fan (3 x 3 inputs per output)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")


def unstrided(blocks: tuple[int, ...]) -> Callable[[nn.Module], None]:
    """An edit: a stride-1 stem and the 1-based ``blocks`` at stride 1 (the ImageNet layout's other strides kept)."""

    def edit(model: nn.Module) -> None:
        model.stem[0].stride = (1, 1)
        for index in blocks:
            model.blocks[index - 1].dw.stride = (1, 1)

    return edit


def tf_batchnorm(model: nn.Module) -> None:
    """The TensorFlow reference's BatchNorm: moving-average decay 0.9997 (momentum 3e-4), eps 1e-3."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum, module.eps = 3e-4, 1e-3


def classifier_dropout(model: nn.Module) -> None:
    """Dropout 0.2 between the pooled features and the classifier."""
    model.flatten = nn.Sequential(nn.Flatten(), nn.Dropout(0.2))


def weight_decay_groups(model: nn.Module, depthwise: bool) -> list[dict[str, Any]]:
    """AdamW groups: weight decay 0.01 on conv and linear weights, the depthwise kernels' only if ``depthwise``."""
    decayed, free = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            is_depthwise = isinstance(module, nn.Conv2d) and module.groups > 1
            wants = name == "weight" and isinstance(module, (nn.Conv2d, nn.Linear)) and (depthwise or not is_depthwise)
            (decayed if wants else free).append(param)
    return [{"params": decayed, "weight_decay": 0.01}, {"params": free, "weight_decay": 0.0}]


@dataclass
class Row:
    """One configuration: the model and its arguments, an edit of the built model, training overrides."""

    label: str
    name: str = "mobilenet_v1"
    args: dict[str, Any] = field(default_factory=dict)
    edit: Callable[[nn.Module], None] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    groups: Callable[[nn.Module], list[dict[str, Any]]] | None = None


def small_row(min_channels: int, lr: float) -> Row:
    """MobileNet v1 0.25 in the small layout with ``min_channels`` and Adam at ``lr``."""
    return Row(
        f'layout="small", min_channels={min_channels}, Adam {lr:.0e}'.replace("e-0", "e-"),
        args={"width": 0.25, "layout": "small", "min_channels": min_channels},
        training={"lr": lr},
    )


def rows(base: str) -> dict[str, Row]:
    """Every row by key: references, layouts, then the factors on top of layout ``base``."""
    mobile = {"width": 0.25}
    on = {**mobile, "layout": base}
    tag = f"{base} + "
    return {
        "resnet8": Row("ResNet-8", "resnet", {"depth": 8}),
        "vgg": Row("VGG-small", "vgg_small", training={"lr": 1e-3}),
        "imagenet": Row("MobileNet v1 0.25, ImageNet layout", args=mobile),
        "stem": Row("stride-1 stem only", args=mobile, edit=lambda m: setattr(m.stem[0], "stride", (1, 1))),
        "small": Row('layout="small"', args={**mobile, "layout": "small"}),
        "small_lr": Row('layout="small", Adam 1e-2', args={**mobile, "layout": "small"}, training={"lr": 1e-2}),
        "small_w05": Row('layout="small", width 0.5', args={"width": 0.5, "layout": "small"}),
        "small_best": small_row(16, 1e-2),
        "small_min32": small_row(32, 1e-2),
        "small_min32_slow": small_row(32, 5e-3),
        "os16": Row(
            "output stride 16 (stride-1 stem), min_channels=16, Adam 1e-2",
            args={**mobile, "min_channels": 16},
            edit=unstrided(()),
            training={"lr": 1e-2},
        ),
        "os8": Row(
            "output stride 8 (block 2 unstrided too), min_channels=16, Adam 1e-2",
            args={**mobile, "min_channels": 16},
            edit=unstrided((2,)),
            training={"lr": 1e-2},
        ),
        "init": Row(tag + "depthwise init fan 9", args=on, edit=depthwise_fan_in_init),
        "channels": Row(tag + "min_channels=16", args={**on, "min_channels": 16}),
        "bn": Row(tag + "TF BatchNorm", args=on, edit=tf_batchnorm),
        "lr_high": Row(tag + "Adam 1e-2", args=on, training={"lr": 1e-2}),
        "lr_low": Row(tag + "Adam 1e-3", args=on, training={"lr": 1e-3}),
        "sgd": Row(tag + "SGD 0.05", args=on, training={"optimizer": "sgd", "lr": 0.05}),
        "wd": Row(
            tag + "AdamW wd 0.01",
            args=on,
            training={"optimizer": "adamw"},
            groups=lambda m: weight_decay_groups(m, True),
        ),
        "wd_nodw": Row(
            tag + "AdamW wd 0.01, not depthwise",
            args=on,
            training={"optimizer": "adamw"},
            groups=lambda m: weight_decay_groups(m, False),
        ),
        "dropout": Row(tag + "dropout 0.2", args=on, edit=classifier_dropout),
    }


def train_one(
    row: Row, seed: int, data: dict[str, Any], epochs: int | None = None, curve: list[float] | None = None
) -> tuple[float, float, float]:
    """Val accuracy, test accuracy and seconds of ``row`` trained under ``seed`` (built as the study builds) for
    ``epochs`` (default the budget's); with a ``curve`` list, val accuracy after every epoch is appended to it."""
    train = data["train"]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create_model_for_data(row.name, train.input_shape, train.num_classes, **row.args)
        if row.edit is not None:
            row.edit(model)
    model = model.to(memory_format=torch.channels_last)  # float rounding aside the same; depthwise ~1.6x faster on CPU
    settings = {**BUDGET, **row.training, **({"epochs": epochs} if epochs else {})}
    start = time.perf_counter()
    history = fit(
        model,
        train,
        val_data=data["val"] if curve is not None else None,
        param_groups=row.groups(model) if row.groups else None,
        random_state=seed,
        quiet=True,
        **settings,
    )
    seconds = time.perf_counter() - start
    if curve is not None:
        curve.extend(float(scores["accuracy"]) for scores in history.val)
    return evaluate(model, data["val"])["accuracy"], evaluate(model, data["test"])["accuracy"], seconds


def upscaled_digits(split: str, size: int = 32) -> Any:
    """scikit-learn's 8x8 digits upscaled to ``size`` pixels (bilinear): small images of another kind."""
    from torch.nn import functional

    from workbench.datasets.base import ArrayDataset

    small = load_dataset("digits", split=split)
    inputs = functional.interpolate(small.inputs, size=(size, size), mode="bilinear", align_corners=False)
    return ArrayDataset(inputs, small.targets, name="digits32", split=split, num_classes=small.num_classes)


def print_curves(curves: dict[str, list[list[float]]], n_val: int) -> None:
    """Val accuracy (mean over seeds, 95% interval) after selected epochs of each row's training."""
    epochs = len(next(iter(curves.values()))[0])
    marks = sorted({e for e in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64) if e <= epochs} | {epochs})
    print(f"\nval accuracy after epoch (cosine schedule over {epochs} epochs):")
    print(f"{'row':44s} " + " ".join(f"{e:>7d}" for e in marks))
    for label, runs in curves.items():
        cells = [estimate([run[e - 1] for run in runs], n_test=n_val).mean for e in marks]
        print(f"{label:44s} " + " ".join(f"{c:7.3f}" for c in cells))


def interval(values: list[float], n_test: int) -> str:
    """``mean [low, high]`` of per-seed accuracies."""
    est = estimate(values, n_test=n_test)
    return f"{est.mean:.3f} [{est.low:.3f}, {est.high:.3f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="seed 0 only")
    parser.add_argument("--base", choices=["imagenet", "small"], default="imagenet", help="layout under the factors")
    parser.add_argument("--rows", default=None, help="comma-separated row keys (default: all)")
    parser.add_argument(
        "--data", choices=["shapes", "digits32"], default="shapes", help="digits32: 8x8 digits at 32 px"
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every row (default: the budget's 8)")
    parser.add_argument("--curve", action="store_true", help="also print val accuracy after every epoch")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [0] if args.quick else args.seeds
    table = rows(args.base)
    keys = args.rows.split(",") if args.rows else list(table)
    unknown = sorted(set(keys) - set(table))
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(table)}")
    if args.data == "digits32":
        data = {split: upscaled_digits(split) for split in ("train", "val", "test")}
    else:
        data = {split: load_dataset("shapes", split=split, difficulty="moderate") for split in ("train", "val", "test")}
    n_val, n_test = len(data["val"]), len(data["test"])
    budget = {**BUDGET, **({"epochs": args.epochs} if args.epochs else {})}
    print(f"{args.data} (32 px): {len(data['train'])} train, seeds {seeds}, budget {budget}")
    print(f"{'row':44s} {'val accuracy':>24s} {'test accuracy':>24s} {'s/run':>6s}")
    curves: dict[str, list[list[float]]] = {}
    for key in keys:
        row = table[key]
        curves[row.label] = [[] for _ in seeds]
        runs = [
            train_one(row, seed, data, args.epochs, curves[row.label][i] if args.curve else None)
            for i, seed in enumerate(seeds)
        ]
        val, test, seconds = zip(*runs, strict=True)
        print(
            f"{row.label:44s} {interval(list(val), n_val):>24s} {interval(list(test), n_test):>24s} "
            f"{sum(seconds) / len(seconds):6.0f}   per seed: {', '.join(f'{t:.3f}' for t in test)}",
            flush=True,
        )
    if args.curve:
        print_curves(curves, n_val)


if __name__ == "__main__":
    main()
