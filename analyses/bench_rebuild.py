"""Rebuild paths compared: graph slicing (what ``surgery.apply`` does) against torch-pruning (the oracle).

For every zoo model at a small size and a random plan keeping half of the free units of every prunable
group, with ``fuse`` = drop / merge / lsq:

1. which groups each path can rebuild (torch-pruning: its DependencyGraph couples the group as the
   NetworkGraph does; slicing: ``surgery.supported_groups``);
2. whether both paths give the same network on the groups torch-pruning supports (same parameter
   shapes; largest output difference on a random batch, relative to the output's largest value);
3. the time of each (``apply`` with the graph given; the torch-pruning path builds its DependencyGraph);
4. exactness on both paths: a duplicated unit merged, and a unit whose consumer columns are zero
   dropped, must leave the function unchanged (largest relative difference).

Measured when surgery had both paths: torch-pruning couples no group that slicing cannot (and not
ENet's trunk, tied by zero-padding and max-unpooling indices); on the others drop and lsq gave the same
networks to the last bit, and merge differed only where the torch-pruning adapter folded every BatchNorm
of a group into every producer row (residual streams, depthwise groups) instead of each into the layer
before it. Graph slicing is therefore the one editor, and torch-pruning an oracle in the tests.

Usage: ``python analyses/bench_rebuild.py`` (about a minute on one core). ``tests/tp_oracle.py`` holds
the torch-pruning path.
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from tp_oracle import SIZES, difference, random_plan, randomize_bn, selection, tp_apply, tp_reasons  # noqa: E402

from workbench.graph import from_model  # noqa: E402
from workbench.metrics import format_table  # noqa: E402
from workbench.surgery import Plan, apply, supported_groups  # noqa: E402
from workbench.zoo import create_model, example_input, list_models  # noqa: E402

FUSES = ("drop", "merge", "lsq")


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _unit_positions(group: Any, unit: int) -> dict[str, np.ndarray]:
    return {name: np.flatnonzero(np.asarray(m) == unit) for name, m in group.unit_maps.items()}


def duplicate_unit(model: nn.Module, group: Any, copy_to: int, source: int) -> nn.Module:
    """A copy of ``model`` where unit ``copy_to`` of ``group`` repeats unit ``source`` in every layer."""
    model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    src, dst = _unit_positions(group, source), _unit_positions(group, copy_to)
    with torch.no_grad():
        for name in group.unit_maps:
            module = modules[name]
            transposed = isinstance(module, nn.modules.conv._ConvNd) and module.transposed
            for key, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
                if tensor.dim() == 0 or key == "num_batches_tracked" or (tensor.numel() == 1 and tensor.dim() == 1):
                    continue
                dim = 1 if transposed and key == "weight" else 0
                for d, s in zip(dst[name], src[name]):
                    tensor.select(dim, int(d)).copy_(tensor.select(dim, int(s)))
    return model


def silence_unit(model: nn.Module, group: Any, unit: int) -> nn.Module:
    """A copy of ``model`` whose consumers read nothing from ``unit`` (their columns are zero)."""
    model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for consumer in group.consumers:
            module, cols = modules[consumer.layer], torch.as_tensor(np.flatnonzero(consumer.index == unit))
            if isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1:
                continue  # depthwise: carries the unit itself
            if len(cols):
                transposed = isinstance(module, nn.modules.conv._ConvNd) and module.transposed
                if transposed:
                    module.weight[cols] = 0.0
                else:
                    module.weight[:, cols] = 0.0
    return model


def unit_pair(group: Any) -> tuple[int, int] | None:
    """Two free units present in the same layers (so one can copy the other)."""
    free = np.flatnonzero(~np.asarray(group.fixed))
    signature = {int(u): tuple(len(p) for p in _unit_positions(group, int(u)).values()) for u in free[:16]}
    for i, a in enumerate(signature):
        for b in list(signature)[i + 1 :]:
            if signature[a] == signature[b]:
                return a, b
    return None


def exactness(model: nn.Module, graph: Any, group: Any, x: torch.Tensor, tp_ok: bool) -> list[float]:
    """[slicing merge, slicing drop, tp merge, tp drop] relative differences for one group (nan: not run)."""
    pair = unit_pair(group)
    if pair is None:
        return [float("nan")] * 4
    source, copy_to = pair
    keep = [u for u in range(group.n_units) if u != copy_to]
    plan = Plan({group.name: selection(group, keep, {copy_to: source})})
    twin, quiet = duplicate_unit(model, group, copy_to, source), silence_unit(model, group, copy_to)
    out = [
        difference(apply(twin, plan, "merge", example_input=x, graph=graph), twin, x, False),
        difference(apply(quiet, plan, "drop", example_input=x, graph=graph), quiet, x, False),
    ]
    if tp_ok:
        out += [
            difference(tp_apply(twin, plan, "merge", example_input=x, graph=graph), twin, x, False),
            difference(tp_apply(quiet, plan, "drop", example_input=x, graph=graph), quiet, x, False),
        ]
    return out + [float("nan")] * (4 - len(out))


def table(header: list[str], rows: list[list[Any]]) -> str:
    return format_table([dict(zip(header, row)) for row in rows], header)


def main() -> None:
    torch.set_num_threads(1)
    support_rows, rows, exact_rows = [], [], []
    for name in list_models():
        torch.manual_seed(0)
        model = create_model(name, **SIZES.get(name, {})).eval()
        randomize_bn(model)
        x = example_input(model, 4)
        data = torch.randn(64, *x.shape[1:])
        graph, build_s = timed(from_model, model, x)
        groups = graph.prunable_groups()
        by_tp, t_reasons = timed(tp_reasons, model, graph, x)
        by_slicing = supported_groups(model, graph)
        tp_only = [n for n in by_tp if by_tp[n] is None and by_slicing[n] is not None]
        support_rows.append(
            [
                name,
                len(groups),
                sum(r is None for r in by_tp.values()),
                sum(r is None for r in by_slicing.values()),
                len(tp_only),
                "; ".join(f"{n}: {r}" for n, r in by_tp.items() if r is not None)[:90] or "-",
            ]
        )
        full = random_plan([g for g in groups if by_slicing[g.name] is None], np.random.default_rng(0))
        common = Plan({n: s for n, s in full.items() if by_tp[n] is None})
        for fuse in FUSES:
            kwargs = {"example_input": x, "data": data if fuse == "lsq" else None}
            _, t_full = timed(apply, model, full, fuse, graph=graph, **kwargs)
            sliced, t_slice = timed(apply, model, common, fuse, graph=graph, **kwargs)
            oracle, t_tp = timed(tp_apply, model, common, fuse, graph=graph, **kwargs)
            rows.append(
                [
                    name,
                    fuse,
                    len(full),
                    len(common),
                    f"{difference(sliced, oracle, x):.1e}",
                    f"{t_full * 1e3:.0f}",
                    f"{t_slice * 1e3:.0f}",
                    f"{t_tp * 1e3:.0f}",
                ]
            )
        picks = [groups[i] for i in sorted({0, len(groups) // 2, len(groups) - 1})] if groups else []
        for group in picks:
            values = exactness(model, graph, group, x, by_tp[group.name] is None)
            exact_rows.append([name, group.name, *(f"{v:.1e}" for v in values)])
        rows.append(["", "", "", "", "", f"graph {build_s * 1e3:.0f}", "", f"tp check {t_reasons * 1e3:.0f}"])
    print("Prunable groups each path can rebuild")
    print(table(["model", "groups", "torch-pruning", "slicing", "tp only", "why not torch-pruning"], support_rows))
    print("\nSame plans (keep 0.5 of every group torch-pruning supports): slicing vs torch-pruning; times in ms")
    print(
        table(
            [
                "model",
                "fuse",
                "groups (all)",
                "groups (tp)",
                "max rel diff",
                "slicing (all)",
                "slicing (tp groups)",
                "torch-pruning (tp groups)",
            ],
            rows,
        )
    )
    print("\nExactness (relative output change; nan: not applicable): a copied unit merged, a silent unit dropped")
    print(table(["model", "group", "slicing merge", "slicing drop", "tp merge", "tp drop"], exact_rows))


if __name__ == "__main__":
    main()
