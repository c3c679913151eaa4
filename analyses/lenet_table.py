"""Reproduce the shape of the LeNet compression table of the pruning / Deep Compression papers on our data.

For LeNet-300-100 (and LeNet-5 where the inputs are images) it trains a baseline and then applies:
magnitude pruning with iterative retraining (Han et al. 2015), dynamic network surgery (Guo et al. 2016),
Deep Compression (Han et al. 2016), soft weight-sharing (Ullrich et al. 2017), BinaryConnect, ternary
connect, power-of-two and fixed-point weights. Every row reports test accuracy, nonzero weights,
stored bytes (``workbench.metrics.storage.storage_report``: CSR for sparse float weights, the real
Huffman streams for shared weights), the compression ratio against the dense fp32 model (everything:
weights, biases at fp32, codebooks, code tables, headers) and the weights-only ratio (the papers'
accounting: layer weights only, biases left out).

The papers' targets on MNIST: pruning ~12x fewer parameters at no accuracy loss, Deep Compression
>= 35x (LeNet-300-100 40x, LeNet-5 39x) within ~0.3 points. Our data sets are far smaller (digits: 8x8
images, 1.8k samples; MNIST-1D: 40-sample signals), so the numbers are ours, not the papers'.

    python analyses/lenet_table.py --data digits --quick
    python analyses/lenet_table.py --data mnist1d --json out.json
    python analyses/lenet_table.py --data idx --root ~/data/mnist
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import torch

from workbench.datasets import load_dataset
from workbench.metrics.storage import storage_report
from workbench.quantize import (
    DeepCompression,
    binary_connect,
    fixed_point,
    power_of_two,
    soft_weight_sharing,
    ternary_connect,
)
from workbench.sparse import SurgeryHook, dynamic_surgery, finish_surgery, get_masks, iterative_prune
from workbench.train import evaluate, fit
from workbench.zoo import create_model


def _settings(quick: bool) -> dict[str, int]:
    if quick:
        return {"base": 12, "retrain": 4, "quant": 3, "dns": 10, "sws": 6, "qat": 3}
    return {"base": 40, "retrain": 6, "quant": 12, "dns": 30, "sws": 20, "qat": 10}


def _data(name: str, root: str | None):
    return tuple(load_dataset(name, root=root, split=split) for split in ("train", "val", "test"))


def _models(data_name: str, train) -> list[tuple[str, dict[str, Any]]]:
    shape = tuple(train.inputs.shape[1:])
    classes = int(train.targets.max()) + 1
    features = int(math.prod(shape))
    out = [("lenet300", {"inputs": features, "classes": classes})]
    if len(shape) == 3 and shape[1] == shape[2]:
        out.append(("lenet5", {"in_channels": shape[0], "input_size": shape[1], "classes": classes}))
    return out


def _layer_rates(model) -> dict[str, float]:
    """Per-layer rates in the spirit of the papers (LeNet-300-100: 92/91/74 %, LeNet-5: 34/88/92/81 %)."""
    from workbench.sparse import weight_layers

    layers = weight_layers(model)
    rates = {}
    for i, (name, module) in enumerate(layers):
        if isinstance(module, torch.nn.Conv2d):
            rates[name] = 0.5 if i == 0 else 0.85
        elif i == 0:
            rates[name] = 0.9
        elif i == len(layers) - 1:
            rates[name] = 0.7
        else:
            rates[name] = 0.94
    return rates


def _row(method: str, model, test, base_bytes: float, base_weight_bits: int, seconds: float, **extra) -> dict[str, Any]:
    report = storage_report(model)
    weight_bits = sum(r.weight_bits for r in report.layers)
    acc = evaluate(model, test)["accuracy"]
    row = {
        "method": method,
        "accuracy": round(100 * acc, 2),
        "weights": report.weights,
        "nonzero": report.nonzero,
        "param_reduction": round(report.weights / max(report.nonzero, 1), 1),
        "stored_bytes": round(report.stored_bytes),
        "ratio": round(base_bytes / report.stored_bytes, 1),
        "weights_only_ratio": round(base_weight_bits / weight_bits, 1),
        "schemes": sorted({r.scheme for r in report.layers}),
        "seconds": round(seconds, 1),
    }
    row.update(extra)
    return row


def run(data_name: str, root: str | None, quick: bool, seed: int, log=print) -> list[dict[str, Any]]:
    train, val, test = _data(data_name, root)
    steps = _settings(quick)
    fit_kw = {"quiet": True, "batch_size": 64, "random_state": seed}
    results = []
    for arch, kwargs in _models(data_name, train):
        torch.manual_seed(seed)
        t0 = time.time()
        base = create_model(arch, **kwargs)
        fit(base, train, val_data=val, epochs=steps["base"], lr=1e-3, **fit_kw)
        base_report = storage_report(base)
        base_bytes = base_report.stored_bytes
        base_wbits = sum(r.weight_bits for r in base_report.layers)
        rows = [_row("baseline (fp32)", base, test, base_bytes, base_wbits, time.time() - t0)]
        log(f"{arch}: {rows[-1]}")
        rates = _layer_rates(base)

        def timed(method, make, **extra):
            t = time.time()
            model = make()
            rows.append(_row(method, model, test, base_bytes, base_wbits, time.time() - t, **extra))
            log(f"{arch}: {rows[-1]}")
            return model

        schedule = [{k: v * f for k, v in rates.items()} for f in (0.5, 0.8, 1.0)]
        timed("magnitude pruning + retrain (Han 2015)", lambda: iterative_prune(
            base, train, rates=schedule, retrain_epochs=steps["retrain"], lr=1e-3, **fit_kw))

        def dns():
            model = dynamic_surgery(base, c_rate={"conv": 0.5, "linear": 1.5})
            hook = SurgeryHook(interval=1, gamma=1e-3, power=1.0, random_state=seed)
            fit(model, train, epochs=steps["dns"], lr=5e-4, hooks=(hook,), **fit_kw)
            finish_surgery(model)
            fit(model, train, epochs=steps["retrain"], lr=2e-4, hooks=(get_masks(model).hook(),), **fit_kw)
            return model

        timed("dynamic network surgery (Guo 2016)", dns)

        def deep():
            pipeline = DeepCompression(
                prune_rounds=schedule, retrain_epochs=steps["retrain"], quant_epochs=steps["quant"],
                bits={"conv": 8, "linear": 5}, index_bits={"conv": 8, "linear": 5},
                fit_kwargs={"lr": 1e-3, **fit_kw}, quant_fit_kwargs={"lr": 1e-3, **fit_kw}, random_state=seed,
            )
            return pipeline.run(base, train)

        timed("Deep Compression (prune+share 8/5 bit+Huffman)", deep)

        timed("soft weight-sharing (Ullrich 2017, s0=.01)", lambda: soft_weight_sharing(
            base, train, components=17, epochs=steps["sws"], tau=5e-3, lr=5e-4, zero_std=0.01, random_state=seed))

        def retrained(transform, hooks=()):
            def make():
                model = transform(base)
                fit(model, train, epochs=steps["qat"], lr=5e-4, hooks=hooks, **fit_kw)
                return model
            return make

        timed("BinaryConnect (det, scaled)", retrained(lambda m: binary_connect(m, scale="mean")))
        timed("ternary connect (stoch, scaled)", retrained(lambda m: ternary_connect(m, mode="stoch", scale="mean")))
        timed("power-of-two weights (4 bit)", retrained(lambda m: power_of_two(m, min_exp=-6, max_exp=0)))
        timed("fixed point W8/A8", retrained(lambda m: fixed_point(m, weight_bits=8, act_bits=8)))
        timed("fixed point W4/A8", retrained(lambda m: fixed_point(m, weight_bits=4, act_bits=8)))
        for row in rows:
            row.update(model=arch, data=data_name)
        results.extend(rows)
    return results


def format_rows(rows: list[dict[str, Any]]) -> str:
    head = (f"{'model':<9}{'method':<48}{'acc %':>7}{'nonzero':>9}{'params x':>9}{'bytes':>10}{'ratio':>8}"
            f"{'w-only':>8}{'s':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['model']:<9}{r['method']:<48}{r['accuracy']:>7.2f}{r['nonzero']:>9}{r['param_reduction']:>8.1f}x"
            f"{r['stored_bytes']:>10}{r['ratio']:>7.1f}x{r['weights_only_ratio']:>7.1f}x{r['seconds']:>7.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["digits", "mnist1d", "idx"], default="digits")
    parser.add_argument("--root", default=None, help="folder with MNIST-style IDX files (for --data idx)")
    parser.add_argument("--quick", action="store_true", help="few epochs (about a minute per model)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a shared machine)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data == "idx" and not args.root:
        parser.error("--data idx needs --root PATH (a folder with MNIST-style IDX files)")
    torch.manual_seed(args.seed)
    log = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, file=sys.stderr, **k))
    rows = run(args.data, args.root, args.quick, args.seed, log=log)
    print(format_rows(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
