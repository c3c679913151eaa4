"""Does the dpp selector's default (cosine kernel of the weights) or the Diversity Networks preset keep more accuracy?

LeNet-300-100 on digits (trained as in ``lenet_table.py``, one base per seed), 10% of hidden units kept,
least-squares fusion, no fine-tuning: test accuracy right after the rebuild for

- ``default``: ``dpp`` with its defaults (k-DPP sample, cosine kernel of the incoming weights);
- ``diversity-networks``: the preset (k-DPP sample, RBF kernel of the activations on the training split);
- ``diversity-networks, map``: the preset with greedy MAP (``mode="map"``), the paper's other mode.

Nothing is tuned (no ``val`` needed); ``test`` is only reported. Each row gives the mean over seeds, and the
paired difference to the default with a 95% t-interval (n = number of seeds).

    python analyses/dpp_presets.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics

import torch
from scipy import stats

from workbench.compression import compress
from workbench.datasets import load_dataset
from workbench.train import fit
from workbench.zoo import create_model

VARIANTS = {
    "default": ({}, "weights"),
    "diversity-networks": ({"preset": "diversity-networks"}, "activations"),
    "diversity-networks, map": ({"preset": "diversity-networks", "mode": "map"}, "activations"),
}


def run(seeds: list[int], keep: float = 0.1) -> dict[str, list[float]]:
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    results: dict[str, list[float]] = {"base": [], **{name: [] for name in VARIANTS}}
    for seed in seeds:
        torch.manual_seed(seed)
        base = create_model("lenet300", inputs=int(train.inputs[0].numel()), classes=int(train.targets.max()) + 1)
        fit(base, train, epochs=40, lr=1e-3, batch_size=64, random_state=seed, quiet=True)
        for name, (params, source) in VARIANTS.items():
            result = compress(
                base, method="dpp", selector_params=params, keep=keep, fuse="lsq", source=source,
                train=train, test=test, latency=False, random_state=seed,
            )  # fmt: skip
            results[name].append(100 * result.rebuilt["accuracy"])
            if name == "default":
                results["base"].append(100 * result.before["accuracy"])
            print(f"seed {seed}: {name}: {results[name][-1]:.2f}% (base {results['base'][-1]:.2f}%)", flush=True)
    return results


def interval(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if n < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / n**0.5
    return statistics.mean(values) - half, statistics.mean(values) + half


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", type=float, default=0.1)
    args = parser.parse_args(argv)
    results = run(args.seeds, args.keep)
    n = len(args.seeds)
    print(f"\nLeNet-300-100 / digits, keep {args.keep:.0%}, lsq fusion, before fine-tuning, n = {n} seeds")
    print(f"base: {statistics.mean(results['base']):.2f}%")
    for name in VARIANTS:
        diffs = [a - b for a, b in zip(results[name], results["default"])]
        low, high = interval(diffs)
        print(
            f"{name:26s} {statistics.mean(results[name]):6.2f}%  vs default {statistics.mean(diffs):+6.2f} points "
            f"(95% interval {low:+.2f} .. {high:+.2f})"
        )


if __name__ == "__main__":
    main()
