"""LeNet-300-100 on digits at 10% of hidden units kept: summarization against select-then-lsq (before any
retraining), and fine-tuning against label-free reconstruction at the same budget (same epochs).

Run: ``python analyses/frontier_lenet.py [--seeds 3] [--epochs 5]``. Each seed trains its own base
network; every method of a seed starts from it (paired). Accuracies are on ``test``; the table gives the
mean, the standard deviation and the 95% t-interval over seeds, and the paired difference to the reference.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from workbench.compression import Retraining, compress
from workbench.datasets import load_dataset
from workbench.study.statistics import t_interval
from workbench.train import evaluate, fit
from workbench.zoo import create_model

BEFORE = [("sbm", "summarize"), ("sbm", "summarize-lsq"), ("spectral", "summarize"), ("spectral", "summarize-lsq")]
BEFORE += [("sbm", "lsq"), ("spectral", "lsq"), ("magnitude", "lsq")]
AFTER = ("finetune", "reconstruct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--keep", type=float, default=0.1)
    args = parser.parse_args()
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    rows: dict[str, list[float]] = {"base": []}
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        base = create_model("lenet300", inputs=64)
        fit(base, train, epochs=20, quiet=True, random_state=seed)
        rows["base"].append(evaluate(base, test)["accuracy"])
        for method, fuse in BEFORE:
            result = compress(
                base, method=method, keep=args.keep, fuse=fuse, train=train, test=test, latency=False, random_state=seed
            )
            rows.setdefault(f"{method}/{fuse} (no retraining)", []).append(result.rebuilt["accuracy"])
        for retrain in AFTER:
            result = compress(
                base,
                method="spectral",
                keep=args.keep,
                fuse="summarize-lsq",
                train=train,
                test=test,
                latency=False,
                random_state=seed,
                retrain=Retraining(method=retrain, epochs=args.epochs, lr=1e-3),
            )
            rows.setdefault(f"spectral/summarize-lsq + {retrain} ({args.epochs} epochs)", []).append(
                result.after["accuracy"]
            )
    print(f"LeNet-300-100, digits, keep {args.keep:g}, n = {args.seeds} seeds (test accuracy, %)")
    reference = np.asarray(rows["spectral/lsq (no retraining)"]) if "spectral/lsq (no retraining)" in rows else None
    for name, values in rows.items():
        values = np.asarray(values) * 100
        mean, low, high = t_interval(values)
        paired = ""
        if reference is not None and name != "base":
            d_mean, d_low, d_high = t_interval(values - reference * 100)
            paired = f"   vs spectral/lsq {d_mean:+.1f} [{d_low:+.1f}, {d_high:+.1f}]"
        print(f"{name:52s} {mean:5.1f} sd {values.std(ddof=1):.1f} [{low:.1f}, {high:.1f}]{paired}")


if __name__ == "__main__":
    main()
