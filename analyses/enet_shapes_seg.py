"""ENet on ``shapes-seg`` at the demo's budget: the settings the demo had, the settings it has now, and why.

Every row builds and trains ENet as the study does (``workbench.zoo.create_model_for_data`` under the seed,
``workbench.train.fit`` with ``random_state=seed``) and prints test mIoU with a 95% interval over the seeds
(``workbench.study.statistics.estimate``: the t-interval), the per-class IoU (mean over seeds), val mIoU, and
the training time per seed: wall seconds and the process's CPU seconds (with one thread the CPU seconds are
the work done, and hardly change when other processes share the cores; the wall seconds do). The machine's
load average is printed with every row.

Rows (``--rows``; default ``old,new``):

``old``
    The demo before this analysis: scenes rendered at 32 px (600 training scenes), the published ENet,
    20 epochs of Adam 1e-2, batch 16, cosine, class weights ``1 / ln(1.02 + p)``.
``new``
    The demo's ENet entry as ``workbench/studies/demo.toml`` holds it now (read from the file).
``no_scores``, ``enet_weights``, ``size32``
    ``new`` with one factor put back: without the encoder's class scores (``encoder_scores=False``), with the
    class weights ``"enet"``, at 32 px (as ``old``; as many scenes as ``new``).
``encoder_only``
    ``new``'s encoder and class scores without the decoder (:class:`EncoderOnly`).
``unet_old``, ``unet``
    The ceiling: a small U-Net (two 2x poolings, 16 / 32 / 64 channels, two 3x3 convolutions per level,
    117k parameters) on ``old``'s and on ``new``'s scenes, with their epochs and batch size at its own setting
    (:data:`UNET`: Adam 3e-3, class weights ``"enet"``).

Usage::

    python analyses/enet_shapes_seg.py                      # old and new, seeds 0-2 (about 8 CPU minutes)
    python analyses/enet_shapes_seg.py --rows no_scores,enet_weights,size32,encoder_only,unet_old,unet --seeds 0
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from workbench.datasets import load_dataset
from workbench.demo import DEMO_STUDY
from workbench.metrics.scores import confusion_matrix, mean_iou
from workbench.study.schema import load_study
from workbench.study.statistics import estimate
from workbench.train import evaluate, fit
from workbench.zoo import create_model_for_data

#: The demo's ENet entry before this analysis (its data options and training).
OLD_DATA: dict[str, Any] = {"size": 32}
OLD_TRAINING: dict[str, Any] = {
    "epochs": 20,
    "lr": 1e-2,
    "batch_size": 16,
    "schedule": "cosine",
    "optimizer": "adam",
    "class_weights": "enet",
}
#: The U-Net's own setting (at new's Adam 1e-2 without class weights it stays on the plateau: mIoU 0.23).
UNET: dict[str, Any] = {"lr": 3e-3, "class_weights": "enet"}
FIT_KEYS = ("epochs", "lr", "batch_size", "schedule", "optimizer", "weight_decay", "class_weights")


@dataclass
class Row:
    """One configuration: what is built (with ENet's arguments), data options of ``shapes-seg``, ``fit`` settings."""

    label: str
    args: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    build: str = "enet"  # "enet", "encoder" (EncoderOnly) or "unet" (SmallUNet)


class SmallUNet(nn.Module):
    """U-Net-like reference: two 2x poolings, ``width``/2x/4x channels, skip connections by concatenation."""

    def __init__(self, in_channels: int, classes: int, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.enc1, self.enc2, self.enc3 = _double_conv(in_channels, c1), _double_conv(c1, c2), _double_conv(c2, c3)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(c3, c2, 2, stride=2), _double_conv(2 * c2, c2)
        self.up1, self.dec1 = nn.ConvTranspose2d(c2, c1, 2, stride=2), _double_conv(2 * c1, c1)
        self.head = nn.Conv2d(c1, classes, 1)
        self.task = "segmentation"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.enc1(x)
        b = self.enc2(self.pool(a))
        c = self.enc3(self.pool(b))
        d = self.dec2(torch.cat([self.up2(c), b], dim=1))
        return self.head(self.dec1(torch.cat([self.up1(d), a], dim=1)))


class EncoderOnly(nn.Module):
    """ENet's encoder and its 1x1 class scores alone, upsampled 8x as the output: the paper's first stage."""

    def __init__(self, enet: nn.Module) -> None:
        super().__init__()
        self.enet = enet
        self.task = "segmentation"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enet
        x, _ = e.down1(e.initial(x))
        x, _ = e.down2(e.stage1(x))
        return F.interpolate(e.scores(e.stage3(e.stage2(x))), scale_factor=8, mode="bilinear", align_corners=False)


def coarse_ceiling(data: Any, cell: int = 8) -> float:
    """mIoU of the best labels constant on ``cell`` x ``cell`` blocks (each block's most frequent label)."""
    targets = torch.as_tensor(np.asarray(data.targets))
    n, h, w = targets.shape
    blocks = (
        targets.reshape(n, h // cell, cell, w // cell, cell).permute(0, 1, 3, 2, 4).reshape(n, h // cell, w // cell, -1)
    )
    votes = F.one_hot(blocks, data.num_classes).sum(dim=-2).argmax(dim=-1)
    coarse = votes.repeat_interleave(cell, dim=1).repeat_interleave(cell, dim=2)
    return mean_iou(confusion_matrix(coarse, targets, data.num_classes))


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(2):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


def demo_entry() -> Row:
    """The demo study's ENet entry (model ``enet``) as a row."""
    study = load_study(str(DEMO_STUDY))
    entry = next(m for m in study.models if m.name == "enet")
    training = entry.training.model_dump() if entry.training is not None else {}
    return Row("new (demo.toml)", dict(entry.args), dict(entry.data_options), training)


def rows() -> dict[str, Row]:
    """Every row by key (see the module text)."""
    new = demo_entry()
    return {
        "old": Row("old: published ENet, 32 px, weights enet", {}, OLD_DATA, OLD_TRAINING),
        "new": new,
        "no_scores": Row("new, encoder_scores off", {**new.args, "encoder_scores": False}, new.data, new.training),
        "enet_weights": Row("new, class weights enet", new.args, new.data, {**new.training, "class_weights": "enet"}),
        "size32": Row("new at 32 px", new.args, {**new.data, **OLD_DATA}, new.training),
        "encoder_only": Row("new's encoder and scores alone", new.args, new.data, new.training, build="encoder"),
        "unet_old": Row("ceiling: small U-Net on old's scenes", {}, OLD_DATA, {**OLD_TRAINING, **UNET}, build="unet"),
        "unet": Row("ceiling: small U-Net on new's scenes", {}, new.data, {**new.training, **UNET}, build="unet"),
    }


def train_one(row: Row, seed: int) -> dict[str, Any]:
    """Test and val scores and training seconds (wall, CPU) of ``row`` under ``seed``, built as the study builds."""
    train, val, test = (load_dataset("shapes-seg", split=s, **row.data) for s in ("train", "val", "test"))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if row.build == "unet":
            model = SmallUNet(train.input_shape[0], train.num_classes)
        else:
            model = create_model_for_data("enet", train.input_shape, train.num_classes, **row.args)
            model = EncoderOnly(model) if row.build == "encoder" else model
    settings = {key: row.training[key] for key in FIT_KEYS if key in row.training}
    wall, cpu = time.perf_counter(), time.process_time()
    fit(model, train, random_state=seed, quiet=True, **settings)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    scores = evaluate(model, test)
    return {
        "miou": scores["miou"],
        "iou": scores["iou"],
        "val_miou": evaluate(model, val)["miou"],
        "wall": wall,
        "cpu": cpu,
        "train_size": len(train),
        "side": train.input_shape[-1],
        "class_names": list(train.class_names),
    }


def interval(values: list[float]) -> str:
    """``mean [low, high]`` of per-seed values (t-interval; the mean alone for one seed)."""
    est = estimate(values)
    if est.low is None:
        return f"{est.mean:.3f}"
    return f"{est.mean:.3f} [{est.low:.3f}, {est.high:.3f}]"


def report(key: str, row: Row, runs: list[dict[str, Any]]) -> None:
    """Print one row: settings, mIoU with its interval, per-class IoU, times, load."""
    first = runs[0]
    names = first["class_names"]
    per_class = np.nanmean(np.array([run["iou"] for run in runs], dtype=float), axis=0)
    model = {"unet": "small U-Net", "encoder": "encoder only of "}.get(row.build, "")
    model += "" if row.build == "unet" else f"enet {row.args or '(published)'}"
    print(f"[{key}] {row.label}")
    print(
        f"    model {model}; shapes-seg {first['side']} px, {first['train_size']} training scenes; fit {row.training}"
    )
    per_seed = ", ".join(f"{run['miou']:.3f}" for run in runs)
    print(
        f"    test mIoU {interval([run['miou'] for run in runs])}  (per seed: {per_seed}); "
        f"val mIoU {interval([run['val_miou'] for run in runs])}"
    )
    print("    test IoU per class: " + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, per_class, strict=True)))
    walls, cpus = [run["wall"] for run in runs], [run["cpu"] for run in runs]
    print(
        f"    training per seed: {np.mean(walls):.0f} s wall ({', '.join(f'{w:.0f}' for w in walls)}), "
        f"{np.mean(cpus):.0f} s CPU ({', '.join(f'{c:.0f}' for c in cpus)}); "
        f"load average now {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", default="old,new", help="comma-separated row keys (see the module text)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    table = rows()
    keys = args.rows.split(",")
    unknown = sorted(set(keys) - set(table))
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(table)}")
    print(
        f"ENet on shapes-seg; seeds {args.seeds}; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    for label, data in (("old", OLD_DATA), ("new", table["new"].data)):
        test = load_dataset("shapes-seg", split="test", **data)
        print(
            f"{label}'s test scenes ({test.input_shape[-1]} px): labels constant on ENet's 1/8 grid (8x8-pixel cells) "
            f"score at most mIoU {coarse_ceiling(test):.3f}"
        )
    for key in keys:
        report(key, table[key], [train_one(table[key], seed) for seed in args.seeds])


if __name__ == "__main__":
    main()
