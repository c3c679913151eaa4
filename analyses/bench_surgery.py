"""Surgery benchmark: is the rebuilt model really faster, and how much accuracy does fusion keep?

1. CPU latency ratio (original / rebuilt) against the multiply-add ratio for vgg_small, resnet20 and
   mobilenet_v1 with 50% of the channels of every rebuildable group kept (magnitude selection), batch 64.
   Target: latency gain >= 0.7 x MACs gain (a masked model would show a latency gain of about 1).
2. Accuracy right after selection + fusion, without fine-tuning, for drop / merge / lsq fusion and
   random / magnitude / dpp selection at 25 / 50 / 75% kept, on MNIST-1D (MLP 40-100-100-10) and digits
   (LeNet-300-100). Diversity Networks' claim: fusion keeps much more accuracy than dropping.

Usage: ``python analyses/bench_surgery.py [--quick] [--json] [--threads N]``. All ratios come from one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import torch

from workbench.datasets import load_dataset
from workbench.graph import from_model
from workbench.metrics import count_macs, format_table, measure_latency
from workbench.select import get_selector
from workbench.surgery import apply, plan_from
from workbench.train import evaluate, fit
from workbench.zoo import create_model, create_model_for_data

# MobileNet v1 is measured at 64x64 and at 32x32: at 32x32 its last blocks run on 1x1 maps, where the
# per-operation overhead of depthwise convolutions, not multiply-adds, sets the time.
LATENCY_MODELS = (
    ("vgg_small", {}),
    ("resnet", {"depth": 20}),
    ("mobilenet_v1", {"resolution": 64, "classes": 10}),
    ("mobilenet_v1", {"resolution": 32, "classes": 10}),
)


def latency_rows(batch: int, repeats: int) -> list[dict]:
    rows = []
    for name, kwargs in LATENCY_MODELS:
        torch.manual_seed(0)
        model = create_model(name, **kwargs).eval()
        x = torch.randn(batch, *model.input_shape)
        graph = from_model(model, x[:2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
        small = apply(model, plan, graph=graph, example_input=x[:2])
        macs_gain = count_macs(model, x) / count_macs(small, x)
        before = measure_latency(model, x, warmup=3, repeats=repeats)["median_ms"]
        after = measure_latency(small, x, warmup=3, repeats=repeats)["median_ms"]
        gain = before / after
        rows.append(
            {
                "model": name,
                "input": "x".join(map(str, model.input_shape)),
                "batch": batch,
                "macs_gain": round(macs_gain, 2),
                "latency_ms": round(before, 2),
                "rebuilt_ms": round(after, 2),
                "latency_gain": round(gain, 2),
                "gain/macs_gain": round(gain / macs_gain, 2),
                "target_met": gain >= 0.7 * macs_gain,
            }
        )
    return rows


FUSION_CASES = (
    (
        "mnist1d",
        "mlp",
        {"widths": [40, 100, 100, 10]},
        dict(epochs=150, lr=1e-2, batch_size=100, schedule="constant"),
        "trainval",
    ),
    ("digits", "lenet300", {}, dict(epochs=40), "train"),
)
SELECTORS = (("random", {}), ("magnitude", {}), ("dpp", {"mode": "sample"}))


def fusion_rows(quick: bool) -> list[dict]:
    rows = []
    for data, model_name, kwargs, fit_kwargs, split in FUSION_CASES:
        train, test = load_dataset(data, split=split), load_dataset(data, split="test")
        torch.manual_seed(0)
        model = create_model_for_data(model_name, train.input_shape, train.num_classes, **kwargs)
        if quick:
            fit_kwargs = {**fit_kwargs, "epochs": max(1, fit_kwargs["epochs"] // 5)}
        fit(model, train, quiet=True, random_state=0, **fit_kwargs)
        base = evaluate(model, test)["accuracy"]
        graph = from_model(model)
        for keep in (0.25, 0.5, 0.75):
            for selector, params in SELECTORS:
                plan = plan_from(graph, get_selector(selector, random_state=0, **params), keep=keep)
                row = {"data": data, "model": model_name, "keep": keep, "selector": selector, "base": round(base, 4)}
                for fuse in ("drop", "merge", "lsq"):
                    small = apply(model, plan, fuse=fuse, graph=graph, data=train)
                    row[fuse] = round(evaluate(small, test)["accuracy"], 4)
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batch, fewer repeats and epochs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    latency = latency_rows(batch=16 if args.quick else 64, repeats=5 if args.quick else 20)
    fusion = fusion_rows(args.quick)
    if args.json:
        print(json.dumps({"latency": latency, "fusion": fusion}, indent=2))
    else:
        print("Latency of the rebuilt models (50% of channels kept):")
        print(format_table(latency))
        print("\nTest accuracy right after selection and fusion (no fine-tuning):")
        print(format_table(fusion))
    return 0


if __name__ == "__main__":
    sys.exit(main())
