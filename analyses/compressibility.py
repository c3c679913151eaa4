"""Do the graph's compressibility measures predict what a layer loses when it is compressed?

For every base network (LeNet-300-100 on digits and an MLP on MNIST-1D, ``--seeds`` seeds each, trained
alike) and every prunable group, the script computes the measures of
:func:`workbench.graph.compressibility.compressibility` on the training inputs, then compresses *that group
alone* to a fixed budget (``--keep`` of its units, ``--method`` selector, ``--fuse`` fusion, no
fine-tuning) and records the accuracy lost on the validation split (nothing is tuned here; the test split
is left alone). It prints one row per (network, group) and, per measure, the Spearman rank correlation
between the measure and the accuracy lost, with a 95% percentile-bootstrap interval over the (network,
group) points. A measure "predicts" only if its interval excludes 0; groups of one network are not
independent, and the number of points is small, so read the intervals, not the point values.

Usage::

    python analyses/compressibility.py                 # 3 seeds, about 2 minutes on two cores
    python analyses/compressibility.py --seeds 1 --epochs 5   # quick look (one seed per network)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from workbench.compression import compress
from workbench.datasets import load_dataset
from workbench.graph.compressibility import MEASURES, compressibility
from workbench.train import evaluate, fit
from workbench.zoo import create_model_for_data

#: (label, zoo model, its arguments, data set, training settings)
BASES = [
    ("lenet300/digits", "lenet300", {}, "digits", {"lr": 1e-3, "batch_size": 64, "schedule": "cosine"}),
    ("mlp/mnist1d", "mlp", {"widths": [40, 100, 100, 10]}, "mnist1d", {"lr": 1e-2, "batch_size": 100}),
]


@dataclass
class Point:
    """One (network, group): its measures and the validation accuracy it lost when compressed alone."""

    base: str
    seed: int
    group: str
    measures: dict[str, float]
    loss: float


def spearman_interval(x: np.ndarray, y: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Spearman's rho of (x, y) and its 95% percentile-bootstrap interval over the points."""
    from scipy.stats import spearmanr

    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        if np.ptp(x[idx]) == 0 or np.ptp(y[idx]) == 0:
            continue
        draws.append(spearmanr(x[idx], y[idx]).statistic)
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (np.nan, np.nan)
    return rho, float(low), float(high)


def measure_points(seeds: list[int], epochs: int, keep: float, method: str, fuse: str) -> list[Point]:
    points = []
    for label, name, kwargs, data, training in BASES:
        train, val = load_dataset(data, split="train"), load_dataset(data, split="val")
        for seed in seeds:
            model = create_model_for_data(name, train.input_shape, train.num_classes, **kwargs)
            fit(model, train, epochs=epochs, random_state=seed, quiet=True, **training)
            base = evaluate(model, val)["accuracy"]
            table = compressibility(model, train, random_state=seed)
            for row in table.rows:
                result = compress(
                    model,
                    method=method,
                    keep=1.0,
                    per_layer={row.group: keep},
                    fuse=fuse,
                    train=train,
                    test=val,
                    latency=False,
                    random_state=seed,
                )
                lost = base - result.rebuilt["accuracy"]
                points.append(Point(label, seed, row.group, {m: getattr(row, m) for m in MEASURES}, lost))
    return points


def main(argv: list[str] | None = None) -> list[Point]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="base networks per architecture")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs of each base")
    parser.add_argument("--keep", type=float, default=0.25, help="fraction of the group's units kept")
    parser.add_argument("--method", default="magnitude", help="selector")
    parser.add_argument("--fuse", default="drop", choices=("drop", "merge", "lsq"))
    args = parser.parse_args(argv)
    points = measure_points(list(range(args.seeds)), args.epochs, args.keep, args.method, args.fuse)
    print(
        f"each group compressed alone to {args.keep:.0%} of its units ({args.method}, {args.fuse}, no fine-tuning); "
        f"accuracy lost on val; {args.seeds} seed(s) per base network"
    )
    head = f"{'base':<18}{'seed':>5} {'group':<12}" + "".join(f"{m[:14]:>15}" for m in MEASURES) + f"{'acc lost':>10}"
    print(head)
    print("-" * len(head))
    for p in points:
        print(
            f"{p.base:<18}{p.seed:>5} {p.group:<12}"
            + "".join(f"{p.measures[m]:>15.3f}" for m in MEASURES)
            + f"{p.loss:>10.3f}"
        )
    lost = np.array([p.loss for p in points])
    print(
        f"\nSpearman correlation with the accuracy lost, over {len(points)} (network, group) points, 95% bootstrap interval"
    )
    for m in MEASURES:
        values = np.array([p.measures[m] for p in points])
        if len(points) < 4 or np.ptp(values) == 0 or np.ptp(lost) == 0:
            print(f"  {m:<24} too few distinct points to correlate")
            continue
        rho, low, high = spearman_interval(values, lost)
        verdict = "predicts" if low > 0 or high < 0 else "not distinguishable from no relation"
        print(f"  {m:<24} rho {rho:+.2f}  [{low:+.2f}, {high:+.2f}]  {verdict}")
    return points


if __name__ == "__main__":
    main()
