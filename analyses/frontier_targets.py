"""Issue 17's targets: how close the best unit selection comes to the base network, before and after retraining.

Two settings, each with one base network per seed (trained as in ``workbench/studies/demo.toml``):

- LeNet-300-100 on digits at 10% of the hidden units kept: the best method right after the rebuild (target:
  within 3 points of the base) and after an equal fine-tuning budget (target: within 1 point);
- the MNIST-1D MLP (widths 40-100-100-10) at 50% kept: the best method right after the rebuild (target:
  within 5 points).

Every candidate starts from the same base of its seed (paired). Recovery is the same for every candidate:
``--epochs`` epochs over ``train`` (LeNet only), by fine-tuning on labels, by distillation from the base, or by
label-free reconstruction of the base's outputs (Lin et al. 2016), each at every learning rate of ``--lr``.
The best candidate (with its recovery method and rate) is chosen on ``val`` (mean over seeds); only its
``test`` accuracy is reported against the base, as the mean paired difference with a 95% MOVER interval over
seeds and the test set's own sampling noise (:func:`workbench.study.statistics.paired_difference`; accuracies
with Wilson intervals at the effective size, so none leaves [0, 100]). Every candidate's test row is printed too,
for reading, not for choosing.

Measured (3 seeds, the demo study's training, ``--epochs 10 --lr 1e-3 5e-3``; paired change vs base on test),
the targets are all missed, also with the levers added since (REPAIR after the fusion, Model Folding with its
data-free repair or REPAIR):

- LeNet-300-100 at 10%, before retraining: best on val el-halabi-2022 sequential, -4.4 [-9.4, -0.4] points
  (the all-at-once el-halabi-2022 row: -3.5 [-6.8, -0.5]); target 3. REPAIR after lsq changes no prediction
  here (least squares already gives the kept units their means and nearly their spread); folding loses 57-72
  points before retraining.
- LeNet-300-100 at 10%, after 10 epochs: best on val el-halabi-2022 sequential + distillation at 5e-3,
  -1.8 [-4.8, +1.1] points; target 1.
- MNIST-1D MLP at 50%, before retraining: best on val el-halabi-2022 + REPAIR, -9.2 [-13.5, -4.9] points
  (without REPAIR -9.6 [-13.9, -5.3]; magnitude / lsq: -20.7); target 5.

Usage::

    nice -n 5 python analyses/frontier_targets.py            # 3 seeds, the demo study's training
    nice -n 5 python analyses/frontier_targets.py --quick    # 3 seeds, shorter base training (a few minutes)
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workbench.compression import Retraining, compress
from workbench.datasets import load_dataset
from workbench.study.statistics import estimate, paired_difference
from workbench.train import evaluate, fit
from workbench.zoo import create_model_for_data

#: label -> compress() settings; every one at the setting's budget, from the same base.
CANDIDATES: dict[str, dict[str, Any]] = {
    "magnitude / lsq": {"method": "magnitude", "fuse": "lsq"},
    "dpp diversity-networks sample / act / lsq": {
        "method": "dpp",
        "selector_params": {"preset": "diversity-networks"},
        "source": "activations",
        "fuse": "lsq",
    },
    "dpp diversity-networks map / act / lsq": {
        "method": "dpp",
        "selector_params": {"preset": "diversity-networks", "mode": "map"},
        "source": "activations",
        "fuse": "lsq",
    },
    "submodular el-halabi-2022 / act / lsq": {
        "method": "submodular",
        "selector_params": {"preset": "el-halabi-2022"},
        "source": "activations",
        "fuse": "lsq",
    },
    "spectral / summarize-lsq": {"method": "spectral", "fuse": "summarize-lsq"},
    "dpp diversity-networks map / act / lsq, sequential": {
        "method": "dpp",
        "selector_params": {"preset": "diversity-networks", "mode": "map"},
        "source": "activations",
        "fuse": "lsq",
        "sequential": True,
    },
    "submodular el-halabi-2022 / act / lsq, sequential": {
        "method": "submodular",
        "selector_params": {"preset": "el-halabi-2022"},
        "source": "activations",
        "fuse": "lsq",
        "sequential": True,
    },
    # the levers added since: REPAIR after the fusion (Jordan et al. 2023), Model Folding with its data-free repair
    "submodular el-halabi-2022 / act / lsq + REPAIR": {
        "method": "submodular",
        "selector_params": {"preset": "el-halabi-2022"},
        "source": "activations",
        "fuse": "lsq",
        "fuse_options": {"repair": "batches"},
    },
    "submodular el-halabi-2022 / act / lsq, sequential + REPAIR": {
        "method": "submodular",
        "selector_params": {"preset": "el-halabi-2022"},
        "source": "activations",
        "fuse": "lsq",
        "sequential": True,
        "fuse_options": {"repair": "batches"},
    },
    "magnitude / fold + data-free repair": {
        "method": "magnitude",
        "fuse": "fold",
        "fuse_options": {"repair": "data-free"},
    },
    "magnitude / fold + REPAIR": {"method": "magnitude", "fuse": "fold", "fuse_options": {"repair": "batches"}},
}


@dataclass(frozen=True)
class Setting:
    """One target: a base network (zoo name, arguments, data, training) and the fraction of units kept."""

    label: str
    model: str
    data: str
    training: dict[str, Any]
    keep: float
    target_before: float
    target_after: float | None = None
    args: dict[str, Any] = field(default_factory=dict)


SETTINGS = [
    Setting(
        "LeNet-300-100 / digits, 10% kept",
        "lenet300",
        "digits",
        {"epochs": 40, "lr": 1e-3, "batch_size": 64, "schedule": "cosine"},
        keep=0.1,
        target_before=3.0,
        target_after=1.0,
    ),
    Setting(
        "MLP 40-100-100-10 / MNIST-1D, 50% kept",
        "mlp",
        "mnist1d",
        {"epochs": 150, "lr": 1e-2, "batch_size": 100, "schedule": "constant"},
        keep=0.5,
        target_before=5.0,
        args={"widths": [40, 100, 100, 10]},
    ),
]

#: the recovery methods, all at the same budget (``--epochs``) and teacher (the base network, for distillation
#: and reconstruction); each at every learning rate of ``--lr``, the rate chosen on ``val`` with the method
RECOVERY = ("finetune", "distill", "reconstruct")

Scores = dict[str, dict[str, dict[int, float]]]  # row -> split -> seed -> accuracy (%)


def accuracy(model: torch.nn.Module, data: Any) -> float:
    return 100.0 * float(evaluate(model, data)["accuracy"])


def record(scores: Scores, row: str, seed: int, model: torch.nn.Module, val: Any, test: Any) -> None:
    scores.setdefault(row, {"val": {}, "test": {}})
    scores[row]["val"][seed] = accuracy(model, val)
    scores[row]["test"][seed] = accuracy(model, test)


def recovery_rows(lrs: list[float]) -> list[str]:
    """The names of the recovered rows of every candidate."""
    return [f"{c} + {m} (lr {lr:g})" for c in CANDIDATES for m in RECOVERY for lr in lrs]


def run_setting(setting: Setting, seeds: list[int], epochs: int, base_epochs: int | None, lrs: list[float]) -> Scores:
    """Every candidate (and its recoveries) on every seed's base: row -> split -> seed -> accuracy (%)."""
    train, val, test = (load_dataset(setting.data, split=s) for s in ("train", "val", "test"))
    training = dict(setting.training, epochs=base_epochs or setting.training["epochs"])
    scores: Scores = {}
    for seed in seeds:
        torch.manual_seed(seed)
        base = create_model_for_data(setting.model, train.input_shape, train.num_classes, **setting.args)
        fit(base, train, random_state=seed, quiet=True, **training)
        record(scores, "base", seed, base, val, test)
        for label, options in CANDIDATES.items():
            small = compress(base, keep=setting.keep, train=train, latency=False, random_state=seed, **options).model
            record(scores, label, seed, small, val, test)
            if setting.target_after is None:
                continue
            for method in RECOVERY:
                for lr in lrs:
                    recovered = copy.deepcopy(small)
                    Retraining(method=method, epochs=epochs, lr=lr).run(recovered, train, base, seed, quiet=True)
                    record(scores, f"{label} + {method} (lr {lr:g})", seed, recovered, val, test)
        print(
            f"  seed {seed}: base {scores['base']['test'][seed]:.1f}% test; "
            + "; ".join(f"{k} {v['test'][seed]:.1f}" for k, v in scores.items() if k in CANDIDATES),
            flush=True,
        )
    return scores


def _share(values: dict[int, float]) -> dict[int, float]:
    return {seed: value / 100.0 for seed, value in values.items()}


def interval(values: dict[int, float], n_test: int) -> str:
    """Mean and 95% interval over seeds and the test set's own sampling noise (Wilson at the effective size, so
    it stays within [0, 100] and is never a point), in percent."""
    e = estimate(list(_share(values).values()), n_test=n_test)
    return f"{100 * e.mean:6.2f} [{100 * e.low:6.2f}, {100 * e.high:6.2f}]" + (" (one seed)" if e.single_seed else "")


def difference(values: dict[int, float], reference: dict[int, float], n_test: int) -> str:
    """Paired change in points with its MOVER interval (seeds and both test-set terms)."""
    d = paired_difference(_share(values), _share(reference), n_test=n_test)
    if d.low is None:
        return f"{100 * d.mean:+6.2f} (n = {d.n}, no interval)"
    return f"{100 * d.mean:+6.2f} [{100 * d.low:+6.2f}, {100 * d.high:+6.2f}]"


def best_on_val(scores: Scores, rows: list[str]) -> str:
    return max(rows, key=lambda row: np.mean(list(scores[row]["val"].values())))


def verdict(scores: Scores, row: str, target: float, n_test: int) -> str:
    d = paired_difference(_share(scores[row]["test"]), _share(scores["base"]["test"]), n_test=n_test)
    met = d.mean is not None and 100 * d.mean >= -target
    sure = d.low is not None and 100 * d.low >= -target
    if sure:
        return f"target (within {target:g} points) met: the whole interval is within it"
    if met:
        return f"target (within {target:g} points) met on the mean, not by the whole interval"
    return f"target (within {target:g} points) MISSED"


def report(setting: Setting, scores: Scores, epochs: int, lrs: list[float], n_test: int) -> None:
    n = len(scores["base"]["test"])
    print(
        f"\n{setting.label}: test accuracy (%), mean [95% interval over seeds and the {n_test} test samples], "
        f"n = {n} seeds; paired change vs base (MOVER)"
    )
    base = scores["base"]["test"]
    print(f"  {'base':76s} {interval(base, n_test)}")
    for row, values in scores.items():
        if row != "base":
            print(f"  {row:76s} {interval(values['test'], n_test)}   {difference(values['test'], base, n_test)}")
    before = best_on_val(scores, list(CANDIDATES))
    print(f"  best before retraining, chosen on val: {before}")
    print(f"    test vs base: {difference(scores[before]['test'], base, n_test)} points; ", end="")
    print(verdict(scores, before, setting.target_before, n_test))
    if setting.target_after is not None:
        after = best_on_val(scores, recovery_rows(lrs))
        print(f"  best after {epochs} epochs of recovery, chosen on val: {after}")
        print(f"    test vs base: {difference(scores[after]['test'], base, n_test)} points; ", end="")
        print(verdict(scores, after, setting.target_after, n_test))


def main(argv: list[str] | None = None) -> dict[str, Scores]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10, help="recovery budget (epochs over train), every method")
    parser.add_argument(
        "--lr", type=float, nargs="+", default=[1e-3, 5e-3], help="learning rates of the recovery (chosen on val)"
    )
    parser.add_argument("--quick", action="store_true", help="shorter base training (LeNet 20 epochs, MLP 60)")
    parser.add_argument("--only", choices=("lenet", "mlp"), help="run one setting")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for setting in SETTINGS:
        if args.only and not setting.model.startswith(args.only[:3]):
            continue
        base_epochs = (20 if setting.model == "lenet300" else 60) if args.quick else None
        print(f"{setting.label}: {len(args.seeds)} seeds", flush=True)
        results[setting.label] = run_setting(setting, args.seeds, args.epochs, base_epochs, args.lr)
        n_test = len(load_dataset(setting.data, split="test"))
        report(setting, results[setting.label], args.epochs, args.lr, n_test)
    return results


if __name__ == "__main__":
    main()
