"""Neuron Merging (Kim et al., NeurIPS 2020) reproduced: merged against pruned, without fine-tuning.

The paper's LeNet-300-100 experiment: remove 80% of the hidden neurons (l2-norm criterion) and compare the
network pruned plainly with the one whose pruned neurons were merged into their most cosine-similar kept
neuron (the scale folded into the next layer), with no fine-tuning (published on Fashion-MNIST: 66.76% pruned,
80.02% merged). Here on the data sets this machine has (scikit-learn digits, MNIST-1D; ``--data idx --root``
for an MNIST-style folder), beside the data-using track: REPAIR (Jordan et al. 2023, statistics from
``--repair-samples`` training inputs) after pruning and after merging, and least-squares reweighting on the same
samples. Beside them, the data-free Model Folding (Wang et al. 2025): k-means on the hidden units' incoming
weights (k = the kept count, one start from the l2 selection and seeded k-means++ starts), each cluster averaged
into one unit with its outgoing weights summed, alone and with its data-free repair (each merged unit's weights
rescaled to the members' mean norm). The merge threshold is chosen on ``val`` with the first seed (from 0, 0.3,
0.45, 0.6); ``test`` is only reported. Each row: test accuracy over ``--seeds`` seeds (a base network per seed) with its 95% interval
(seeds and test set), and the paired change to plain pruning of the same seed with its interval.

Usage: ``python analyses/neuron_merging.py [--seeds 3] [--data digits,mnist1d] [--keep 0.2] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

import torch

from workbench.datasets import load_dataset
from workbench.graph import from_model
from workbench.select import get_selector
from workbench.study.statistics import estimate, paired_difference
from workbench.surgery import apply, plan_from
from workbench.train import evaluate, fit
from workbench.zoo import create_model_for_data

THRESHOLDS = (0.0, 0.3, 0.45, 0.6)
METHODS = {  # label -> apply options (threshold filled in for neuron merging)
    "pruned (l2)": {"fuse": "drop"},
    "neuron merging": {"fuse": "neuron-merging"},
    "pruned + REPAIR": {"fuse": "drop", "repair": "batches"},
    "neuron merging + REPAIR": {"fuse": "neuron-merging", "repair": "batches"},
    "least squares": {"fuse": "lsq"},
    "fold (Model Folding)": {"fuse": "fold"},
    "fold + data-free repair": {"fuse": "fold", "repair": "data-free"},
}


def base_network(data: str, seed: int, epochs: int, root: str | None) -> tuple[Any, dict[str, Any]]:
    splits = {s: load_dataset(data, root=root, split=s) for s in ("train", "val", "test")}
    model = create_model_for_data(
        "lenet300", splits["train"].input_shape, splits["train"].num_classes, random_state=seed
    )
    fit(model, splits["train"], epochs=epochs, lr=1e-3, batch_size=64, random_state=seed, quiet=True)
    return model.eval(), splits


def rebuilt(
    model: Any, splits: dict[str, Any], keep: float, options: dict[str, Any], samples: int, seed: int = 0
) -> Any:
    x = torch.as_tensor(splits["train"].inputs[:2]).float()
    graph = from_model(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = plan_from(graph, get_selector("magnitude", criterion="l2"), keep=keep)
    data = torch.as_tensor(splits["train"].inputs[:samples]).float()
    return apply(model, plan, example_input=x, graph=graph, data=data, random_state=seed, **options)


def run(data: str, seeds: int, keep: float, epochs: int, samples: int, root: str | None) -> dict[str, Any]:
    scores: dict[str, dict[int, float]] = {label: {} for label in ["base", *METHODS]}
    threshold, n_test = None, 0
    for seed in range(seeds):
        model, splits = base_network(data, seed, epochs, root)
        n_test = len(splits["test"])
        scores["base"][seed] = evaluate(model, splits["test"])["accuracy"]
        if threshold is None:  # chosen on val with the first seed's base network
            val = {
                t: evaluate(
                    rebuilt(model, splits, keep, {"fuse": "neuron-merging", "merge_threshold": t}, samples),
                    splits["val"],
                )["accuracy"]
                for t in THRESHOLDS
            }
            threshold = max(val, key=val.get)
        for label, options in METHODS.items():
            options = {**options, "merge_threshold": threshold} if options["fuse"] == "neuron-merging" else options
            smaller = rebuilt(model, splits, keep, options, samples, seed)
            scores[label][seed] = evaluate(smaller, splits["test"])["accuracy"]
    rows = comparison_rows(scores, "pruned (l2)", n_test, "vs pruned, points")
    return {"data": data, "seeds": seeds, "keep": keep, "threshold": threshold, "n_test": n_test, "rows": rows}


def comparison_rows(
    scores: dict[str, dict[int, float]], reference: str, n_test: int, column: str
) -> list[dict[str, str]]:
    """One table row per method (``scores``: label -> seed -> test accuracy; ``"base"`` first): its accuracy
    with the 95% interval (seeds and test set), and, in ``column``, the paired change to ``reference``."""

    def points(value: float | None, sign: str = "") -> str:
        return "?" if value is None else f"{100 * value:{sign}.2f}"

    rows = []
    for label, values in scores.items():
        est = estimate(list(values.values()), n_test=n_test)
        row = {"method": label, "test accuracy": f"{points(est.mean)} [{points(est.low)}, {points(est.high)}]"}
        if label != "base":
            diff = paired_difference(values, scores[reference], n_test=n_test)
            row[column] = (
                "reference"
                if label == reference
                else f"{points(diff.mean, '+')} [{points(diff.low, '+')}, {points(diff.high, '+')}]"
                + ("" if diff.distinguishable else " not distinguishable")
            )
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits,mnist1d")
    parser.add_argument("--root", default=None, help="folder of an on-disk data set (--data idx)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--keep", type=float, default=0.2, help="fraction of hidden neurons kept (paper: 0.2)")
    parser.add_argument("--epochs", type=int, default=20, help="base training epochs")
    parser.add_argument("--repair-samples", type=int, default=512, help="training inputs for REPAIR and lsq")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = [
        run(data, args.seeds, args.keep, args.epochs, args.repair_samples, args.root) for data in args.data.split(",")
    ]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return results
    from workbench.metrics import format_table

    for result in results:
        print(
            f"\nLeNet-300-100 on {result['data']}: {100 * (1 - result['keep']):.0f}% of hidden neurons removed, no "
            f"fine-tuning; {result['seeds']} seeds, {result['n_test']} test samples; merge threshold "
            f"{result['threshold']} (chosen on val, first seed); intervals 95% (seeds and test set)"
        )
        print(format_table(result["rows"]))
    return results


if __name__ == "__main__":
    main()
