"""Hardware-friendly widths: what keeping multiples of 8 or 16 channels buys in CPU latency.

The same networks are compressed to about the same fraction of their channels (magnitude selection, drop
fusion) three ways: the plain budget (widths such as 29 or 58), and the kept counts rounded to multiples of 8
and of 16 (``plan_from(..., round_to=N)``). For each: parameters, multiply-adds, and the median CPU latency at
batch 1 and batch 64 (one thread), all as ratios to the uncompressed network measured in the same run.
Measurements alternate between the variants, round after round, so that a busy machine slows them alike; the
spread is the interquartile range of the per-round medians. Latency per multiply-add (``ms/GMAC``) shows
whether rounded widths run faster per operation, not only fewer operations.

Usage: ``python analyses/bench_widths.py [--quick] [--json] [--keep 0.45] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np
import torch

from workbench.graph import from_model
from workbench.metrics import count_macs, count_params, format_table, measure_latency
from workbench.select import get_selector
from workbench.surgery import apply, plan_from
from workbench.zoo import create_model

MODELS = (("vgg_small", {}), ("resnet", {"depth": 20}), ("mobilenet_v1", {"resolution": 64, "classes": 10}))
ROUNDINGS = (None, 8, 16)


def variants(name: str, kwargs: dict, keep: float) -> dict[str, torch.nn.Module]:
    """The base network and its compressed versions, by label."""
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    x = torch.randn(2, *model.input_shape)
    graph = from_model(model, x)
    found = {"base": model}
    for multiple in ROUNDINGS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = plan_from(graph, get_selector("magnitude"), keep=keep, round_to=multiple)
        found["plain" if multiple is None else f"round_to={multiple}"] = apply(
            model, plan, example_input=x, graph=graph
        )
    return found


def measure(models: dict[str, torch.nn.Module], shape: tuple[int, ...], rounds: int, repeats: int) -> list[dict]:
    """One row per variant: sizes and latency ratios to the base."""
    latency: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for batch in (1, 64):
            x = torch.randn(batch, *shape)
            for label, model in models.items():
                timing = measure_latency(model, x, warmup=2, repeats=repeats, threads=1)
                latency.setdefault((label, batch), []).append(timing["median_ms"])
    x1 = torch.randn(1, *shape)
    base_params, base_macs = count_params(models["base"]), count_macs(models["base"], x1)
    rows = []
    for label, model in models.items():
        macs = count_macs(model, x1)
        row = {
            "variant": label,
            "widths": ",".join(
                str(m.out_channels) for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 1
            )[:60],
            "params": round(count_params(model) / base_params, 3),
            "MACs": round(macs / base_macs, 3),
        }
        for batch in (1, 64):
            times = np.asarray(latency[(label, batch)])
            base = np.median(latency[("base", batch)])
            q1, q3 = np.percentile(times / base, [25, 75])
            row[f"latency b{batch}"] = f"{np.median(times) / base:.3f} [{q1:.3f}, {q3:.3f}]"
        row["ms/GMAC b64"] = round(float(np.median(latency[(label, 64)])) / (64 * macs / 1e9), 2)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=float, default=0.45, help="fraction of each group's units kept")
    parser.add_argument("--rounds", type=int, default=5, help="alternating measurement rounds")
    parser.add_argument("--quick", action="store_true", help="one network, two rounds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    models = MODELS[:1] if args.quick else MODELS
    rounds, repeats = (2, 3) if args.quick else (args.rounds, 5)
    results = {}
    for name, kwargs in models:
        found = variants(name, kwargs, args.keep)
        label = name + "".join(f" {k}={v}" for k, v in kwargs.items())
        results[label] = measure(found, tuple(found["base"].input_shape), rounds, repeats)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return results
    print(
        f"Kept widths at keep {args.keep}: plain against rounded to multiples of 8 and 16 (ratios to the base "
        f"in the same run; latency: median over {rounds} alternating rounds, [interquartile range], 1 thread)"
    )
    for label, rows in results.items():
        print(f"\n{label}")
        print(format_table(rows))
    return results


if __name__ == "__main__":
    main()
