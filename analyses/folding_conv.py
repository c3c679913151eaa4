"""Model Folding (Wang et al., ICLR 2025) on small convolutional networks, without fine-tuning.

VGG-small and ResNet-8 are trained on the embedded ``shapes`` images (one base network per seed); every group
surgery can rebuild keeps ``--keep`` of its units (l2 magnitude selection, the same plan for every method), and
the network is rebuilt by each method and scored on ``test`` with no fine-tuning:

- ``drop``: the dropped filters deleted; ``merge``: each folded into the kept filter the selector assigns it to;
  ``neuron merging`` (Kim et al. 2020): into its most cosine-similar kept filter (threshold 0, not tuned);
- ``fold``: k-means clusters of the filters (k = the kept count), each averaged into one filter, the next
  layer's columns summed; ``fold + data-free repair``: the merged filters' BatchNorm variances corrected from
  the weights alone (no data);
- with data (``--samples`` training images): ``drop + REPAIR`` (Jordan et al. 2023, statistics measured) and
  ``least squares`` (the next layers re-fitted, Mariet & Sra 2016).

Each row: test accuracy over ``--seeds`` seeds with its 95% interval (seeds and test set), and the paired
change to ``drop`` of the same seed with its interval (:mod:`workbench.study.statistics`).

Usage: ``python analyses/folding_conv.py [--models vgg_small,resnet8] [--seeds 3] [--keep 0.5] [--epochs 10]
[--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Any

import torch
from neuron_merging import comparison_rows  # analyses/ is on sys.path when run as a script

from workbench.datasets import load_dataset
from workbench.graph import from_model
from workbench.select import get_selector
from workbench.surgery import apply, plan_from
from workbench.train import evaluate, fit
from workbench.zoo import create_model_for_data

MODELS = {"vgg_small": ("vgg_small", {}), "resnet8": ("resnet", {"depth": 8})}
METHODS = {  # label -> apply options
    "drop": {"fuse": "drop"},
    "merge": {"fuse": "merge"},
    "neuron merging": {"fuse": "neuron-merging"},
    "fold": {"fuse": "fold"},
    "fold + data-free repair": {"fuse": "fold", "repair": "data-free"},
    "drop + REPAIR (batches)": {"fuse": "drop", "repair": "batches"},
    "least squares": {"fuse": "lsq"},
}


def run(key: str, seeds: int, keep: float, epochs: int, lr: float, samples: int) -> dict[str, Any]:
    name, options = MODELS[key]
    splits = {s: load_dataset("shapes", split=s) for s in ("train", "test")}
    train, test = splits["train"], splits["test"]
    data = torch.as_tensor(train.inputs[:samples]).float()
    scores: dict[str, dict[int, float]] = {label: {} for label in ["base", *METHODS]}
    for seed in range(seeds):
        started = time.perf_counter()
        model = create_model_for_data(name, train.input_shape, train.num_classes, random_state=seed, **options)
        fit(model, train, epochs=epochs, lr=lr, batch_size=64, random_state=seed, quiet=True)
        model.eval()
        scores["base"][seed] = evaluate(model, test)["accuracy"]
        x = data[:2]
        graph = from_model(model, x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = plan_from(graph, get_selector("magnitude", criterion="l2"), keep=keep)
        for label, fusing in METHODS.items():
            smaller = apply(model, plan, example_input=x, graph=graph, data=data, random_state=seed, **fusing)
            scores[label][seed] = evaluate(smaller, test)["accuracy"]
        print(f"{key} seed {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    rows = comparison_rows(scores, "drop", len(test), "vs drop, points")
    return {"model": key, "seeds": seeds, "keep": keep, "epochs": epochs, "n_test": len(test), "rows": rows}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg_small,resnet8", help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--keep", type=float, default=0.5, help="fraction of every group's units kept")
    parser.add_argument("--epochs", type=int, default=10, help="base training epochs")
    parser.add_argument("--lr", type=float, default=3e-3, help="base training learning rate (Adam, cosine)")
    parser.add_argument("--samples", type=int, default=512, help="training images for REPAIR and least squares")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = [run(key, args.seeds, args.keep, args.epochs, args.lr, args.samples) for key in args.models.split(",")]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return results
    from workbench.metrics import format_table

    for result in results:
        print(
            f"\n{result['model']} on shapes ({result['epochs']} epochs): every group keeps "
            f"{100 * result['keep']:.0f}% of its units (l2 magnitude), no fine-tuning; {result['seeds']} seeds, "
            f"{result['n_test']} test images; intervals 95% (seeds and test set)"
        )
        print(format_table(result["rows"]))
    return results


if __name__ == "__main__":
    main()
