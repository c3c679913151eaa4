"""Bring your own network: the workbench and Torch-Pruning on networks written the way people publish them.

For every network of ``tests/published_models.py`` (plain ``nn.Module`` classes copied in the style of
kuangliu/pytorch-cifar, akamaster's ResNet-56, timm-like ViTs, ...; not the workbench zoo), at a small
width, with BatchNorm statistics and affine parameters moved away from their defaults (seeded, so that
folding them matters), one row:

1. the tracer the graph used (``graph.module.meta["tracer"]``, ``fx`` when not recorded), the number of
   groups, prunable groups and groups surgery can rebuild (``workbench.graph.from_model``,
   ``graph.prunable_groups()``, ``workbench.surgery.supported_groups``);
2. a magnitude plan keeping half of every rebuildable group (``plan_from(graph, magnitude, keep=0.5)``)
   rebuilt with ``apply`` for ``fuse`` = drop / merge / lsq (lsq fits on 64 random inputs) and for Model
   Folding, ``fuse="fold"`` (k-means clusters of each group's units, each folded into one), without and with
   its data-free repair (``repair="data-free"``, ``fold+df``); the parameter and multiply-add ratios
   (rebuilt / original, from ``workbench.metrics.count_params`` / ``count_macs``) of the drop rebuild, and
   the time of each step. Folding changes the function: ``fold change`` is the relative output change
   (largest difference relative to the largest output) of fold / fold+df against the original, not an
   exactness check; the repair should keep the outputs' scale (move the change towards the original);
3. two exactness checks, each the largest output difference relative to the largest output (pass: <= 1e-5):

   - ``keep=1``: a magnitude plan keeping every unit, rebuilt with drop, must give the same outputs;
   - ``silent``: in every rebuildable group, a random half of the free (not fixed) units (seeded; balanced
     per block where grouped layers require it, ``workbench.selection.constrained``) is silenced: the weights
     by which every consumer reads them (Linear columns, convolution input channels, within their group for
     grouped convolutions; transposed-convolution input rows) are set to zero, so nothing downstream depends
     on them. A plan that drops exactly those units (all groups at once, fuse=drop) must then give the
     silenced network's outputs (``Nu``: units dropped). This checks the coupling (a reader the graph missed
     would read a column that is gone or shifted) and the slicing bookkeeping across groups, without relying
     on any selector. Groups holding a LayerNorm (its statistics run over every unit, so no removal is
     exact) or an attention layer (it reads its units through its own projections) are not checked and are
     counted (``g not checkable``); tests/test_adapters.py checks attention exactly with silenced projections;
4. Torch-Pruning (the version installed) on the same network: ``MagnitudePruner`` with L1 magnitude
   importance, ``pruning_ratio=0.5``, the final classifier (the last Linear / convolution executed) ignored,
   one ``step()``, then a forward pass; ``ok`` when the output shape is unchanged, with its parameter ratio;
5. a cost budget: ``workbench.compression.compress`` with the magnitude selector and the budget
   ``{"macs": 0.5, "scope": "global", "min_keep": 0.1}`` (no data, no latency); ``macs 0.5`` is the share of
   the multiply-adds the result reached (``result.budget["reached"]``; its tolerance is 0.02).

Every cell catches its own exceptions (the class and the first line of the message are listed under the
table), so the script always finishes. Below the table, for each network, the graph's warnings and the
reasons groups cannot be rebuilt (distinct, shortened).

Usage: ``python analyses/bring_your_own.py [--models resnet18,vit_tiny] [--json]`` (3 to 5 minutes on one core,
3.5 measured; the lsq rebuilds of GoogLeNet and DenseNet take most of it, fold and fold+df about 12 s).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from published_models import PUBLISHED, example_input  # noqa: E402

from workbench.compression import compress  # noqa: E402
from workbench.graph import from_model  # noqa: E402
from workbench.metrics import count_macs, count_params, format_table  # noqa: E402
from workbench.select import Selection, get_selector  # noqa: E402
from workbench.selection import constrained  # noqa: E402
from workbench.surgery import Plan, apply, plan_from, supported_groups  # noqa: E402

#: column -> (fuse, repair) of ``apply``: the rebuilds of one plan, in the order of the times column
FUSES: dict[str, tuple[str, str | None]] = {
    "drop": ("drop", None),
    "merge": ("merge", None),
    "lsq": ("lsq", None),
    "fold": ("fold", None),
    "fold+df": ("fold", "data-free"),
}
#: the rebuilds whose output change against the original is reported (``fold change``)
FOLDS = ("fold", "fold+df")
TIMES = "apply ms d/m/l/f/fr"
#: the cost budget of the ``macs 0.5`` column
BUDGET = {"macs": 0.5, "scope": "global", "min_keep": 0.1}
TOLERANCE = 1e-5
_CONV = nn.modules.conv._ConvNd

COLUMNS = [
    "model",
    "tracer",
    "groups",
    "prunable",
    "rebuildable",
    "drop",
    "merge",
    "lsq",
    "fold",
    "fold+df",
    "fold change",
    "keep=1",
    "silent",
    "param ratio",
    "MAC ratio",
    "macs 0.5",
    "graph ms",
    "plan ms",
    TIMES,
    "tp",
    "tp param ratio",
    "tp ms",
]


def first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


class Row:
    """One model's cells; ``cell`` runs a step and records its error instead of raising."""

    def __init__(self, name: str) -> None:
        self.values: dict[str, Any] = {"model": name}
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []

    def cell(self, column: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fn(*args, **kwargs)
        except Exception as exc:  # every failure is a finding, never a crash
            self.errors[column] = first_line(exc)
            self.values[column] = f"ERR {type(exc).__name__}"
            return None


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - start) * 1e3


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """BatchNorm statistics and affine parameters away from their defaults (a trained network's look)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.4 * torch.rand(n, generator=generator) - 0.2)


def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model.eval()(x)
    return out[0] if isinstance(out, (tuple, list)) else out


def relative_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """Largest |a(x) - b(x)| relative to the largest |b(x)|."""
    ya, yb = outputs(a, x), outputs(b, x)
    if ya.shape != yb.shape:
        raise ValueError(f"output shapes differ: {tuple(ya.shape)} vs {tuple(yb.shape)}")
    return float((ya - yb).abs().max() / yb.abs().max().clamp_min(1e-12))


def verdict(value: float) -> str:
    return f"{'ok' if value <= TOLERANCE else 'FAIL'} {value:.0e}"


def last_layer(model: nn.Module, x: torch.Tensor) -> nn.Module | None:
    """The last Linear or convolution executed on ``x`` (the classifier Torch-Pruning must not prune)."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda module, *_: order.append(module))
        for m in model.modules()
        if isinstance(m, (nn.Linear, _CONV))
    ]
    try:
        outputs(model, x)
    finally:
        for hook in hooks:
            hook.remove()
    return order[-1] if order else None


def silence(model: nn.Module, graph: Any, units: dict[str, np.ndarray]) -> nn.Module:
    """A copy of ``model`` where no consumer reads ``units[group]`` (their input columns are zeroed)."""
    model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, chosen in units.items():
            group = graph.group(name)
            for consumer in group.consumers:
                module = modules[consumer.layer]
                cols = np.flatnonzero(np.isin(consumer.index, chosen))
                if not len(cols):
                    continue
                if isinstance(module, nn.Linear):
                    module.weight[:, cols] = 0.0
                elif isinstance(module, _CONV) and module.transposed and module.groups == 1:
                    module.weight[cols] = 0.0
                elif isinstance(module, _CONV) and not module.transposed:
                    per_in = module.in_channels // module.groups  # grouped: rows of the column's group
                    per_out = module.out_channels // module.groups
                    for col in cols:
                        block = col // per_in
                        module.weight[block * per_out : (block + 1) * per_out, col % per_in] = 0.0
                else:
                    raise ValueError(f"consumer {consumer.layer!r} ({type(module).__name__}) cannot be silenced")
    return model


#: Layers of a group that silencing the consumers cannot make exact: LayerNorm normalizes with statistics
#: over every unit (removing any changes them), attention reads its units through its own projections.
NOT_SILENCED = {"LayerNorm", "MultiheadAttention"}


def silent_check(model: nn.Module, graph: Any, supported: dict[str, Any], x: torch.Tensor) -> str:
    """Silence a random half of the free units of every rebuildable group (balanced as the group's grouped
    layers require), drop exactly those; the relative output difference."""
    rng = np.random.default_rng(0)
    chosen, selections, skipped = {}, {}, 0
    for group in graph.prunable_groups():
        if supported.get(group.name) is not None:
            continue
        if any(graph.layers[name].module_type in NOT_SILENCED for name in group.layers):
            skipped += 1
            continue
        scores = rng.random(group.n_units)
        free = np.flatnonzero(~np.asarray(group.fixed))
        keep = np.union1d(np.flatnonzero(group.fixed), free[np.argsort(-scores[free])[: len(free) // 2]])
        assign = np.where(np.isin(np.arange(group.n_units), keep), np.arange(group.n_units), keep[0])
        draft = Selection(group.name, group.n_units, keep, assign, scores, method="silent")
        selection = constrained(draft, fixed=group.fixed, blocks=group.blocks, cover=group.cover())
        silent = np.setdiff1d(np.arange(group.n_units), selection.keep)
        if len(silent):
            chosen[group.name], selections[group.name] = silent, selection
    note = f", {skipped}g not checkable" if skipped else ""
    if not selections:
        return f"-{note}"
    quiet = silence(model, graph, chosen)
    rebuilt = apply(quiet, Plan(selections), "drop", example_input=x, graph=graph)
    return f"{verdict(relative_difference(rebuilt, quiet, x))} ({sum(map(len, chosen.values()))}u{note})"


def rebuild(model: nn.Module, plan: Plan, column: str, x: torch.Tensor, graph: Any, data: torch.Tensor) -> nn.Module:
    """``plan`` rebuilt with the fuse and repair of ``FUSES[column]`` (lsq fits on ``data``)."""
    fuse, repair = FUSES[column]
    return apply(
        model,
        plan,
        fuse=fuse,
        example_input=x,
        graph=graph,
        data=data if fuse == "lsq" else None,
        repair=repair,
    )


def macs_budget(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """The budget record (target, tolerance, ``reached``) of a magnitude compression under :data:`BUDGET`."""
    return compress(model, method="magnitude", budget=BUDGET, example_input=x, latency=False).budget


def torch_pruning(model: nn.Module, x: torch.Tensor) -> tuple[str, float]:
    """Torch-Pruning's MagnitudePruner at ratio 0.5 on a copy: ('ok' | what went wrong, parameter ratio)."""
    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    before = count_params(model)
    reference = outputs(model, x)
    classifier = last_layer(model, x)
    pruner = tp.pruner.MagnitudePruner(
        model,
        x,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5,
        ignored_layers=[classifier] if classifier is not None else [],
    )
    pruner.step()
    out = outputs(model, x)
    status = "ok" if out.shape == reference.shape else f"output {tuple(out.shape)}"
    return status, count_params(model) / before


def analyse_model(name: str) -> Row:
    row = Row(name)
    torch.manual_seed(0)
    model = row.cell("model", PUBLISHED[name])
    if model is None:
        return row
    randomize_bn(model)
    x = example_input(name)
    if x.is_floating_point():
        data = torch.randn(64, *x.shape[1:], generator=torch.Generator().manual_seed(2))
    else:
        data = torch.randint(0, int(x.max()) + 1, (64, *x.shape[1:]), generator=torch.Generator().manual_seed(2))
    base_params = count_params(model)
    base_macs = row.cell("MAC ratio", count_macs, model, x)

    result = row.cell("tracer", timed, from_model, model, x)
    if result is not None:
        graph, graph_ms = result
        row.values["graph ms"] = round(graph_ms)
        row.values["tracer"] = getattr(graph.module, "meta", {}).get("tracer", "fx")
        row.values["groups"] = len(graph.groups)
        prunable = graph.prunable_groups()
        row.values["prunable"] = len(prunable)
        row.notes += [f"graph: {w}" for w in dict.fromkeys(graph.warnings)]
        supported = row.cell("rebuildable", supported_groups, model, graph=graph)
        if supported is not None:
            row.values["rebuildable"] = sum(reason is None for reason in supported.values())
            row.notes += [f"not rebuildable: {r}" for r in dict.fromkeys(r for r in supported.values() if r)]
        planned = row.cell("plan ms", timed, plan_from, graph, get_selector("magnitude"), keep=0.5)
        if planned is not None:
            plan, plan_ms = planned
            row.values["plan ms"] = round(plan_ms)
            times, changes = [], {}
            for column in FUSES:
                rebuilt = row.cell(column, timed, rebuild, model, plan, column, x, graph, data)
                if rebuilt is None:
                    times.append("-")
                    continue
                small, apply_ms = rebuilt
                times.append(f"{apply_ms:.0f}")
                change = changes[column] = row.cell(column, relative_difference, small, model, x)
                row.values[column] = f"ok ({len(plan)}g)" if change is not None else row.values[column]
                if column == "drop":
                    row.values["param ratio"] = round(count_params(small) / base_params, 3)
                    macs = row.cell("MAC ratio", count_macs, small, x)
                    if macs is not None and base_macs:
                        row.values["MAC ratio"] = round(macs / base_macs, 3)
            row.values[TIMES] = "/".join(times)
            if any(changes.get(column) is not None for column in FOLDS):
                row.values["fold change"] = " / ".join(
                    "-" if changes.get(column) is None else f"{changes[column]:.3g}" for column in FOLDS
                )
        full = row.cell("keep=1", plan_from, graph, get_selector("magnitude"), keep=1.0)
        if full is not None:
            same = row.cell("keep=1", lambda: apply(model, full, "drop", example_input=x, graph=graph))
            if same is not None:
                diff = row.cell("keep=1", relative_difference, same, model, x)
                if diff is not None:
                    row.values["keep=1"] = verdict(diff)
        if supported is not None:
            silent = row.cell("silent", silent_check, model, graph, supported, x)
            if silent is not None:
                row.values["silent"] = silent

    budget = row.cell("macs 0.5", macs_budget, model, x)
    if budget is not None:
        row.values["macs 0.5"] = round(budget["reached"], 3)
    tp_result = row.cell("tp", timed, torch_pruning, model, x)
    if tp_result is not None:
        (status, ratio), tp_ms = tp_result
        row.values.update({"tp": status, "tp param ratio": round(ratio, 3), "tp ms": round(tp_ms)})
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()] or list(PUBLISHED)
    torch.set_num_threads(1)
    rows = []
    for name in names:
        if name not in PUBLISHED:
            row = Row(name)
            row.errors["model"] = f"KeyError: unknown model; one of {', '.join(PUBLISHED)}"
            rows.append(row)
            continue
        try:
            rows.append(analyse_model(name))
        except Exception as exc:  # a failure outside any cell: still a row
            row = Row(name)
            row.errors["row"] = first_line(exc)
            rows.append(row)
    if args.json:
        print(json.dumps([{**r.values, "errors": r.errors, "notes": r.notes} for r in rows], indent=1, default=str))
        return
    print(f"Published networks, magnitude plan at keep 0.5; exactness: relative output change (pass <= {TOLERANCE:g})")
    print(format_table([r.values for r in rows], COLUMNS))
    print("\nErrors (model / cell: class: first line)")
    for r in rows:
        for column, message in r.errors.items():
            print(f"  {r.values['model']} / {column}: {message}")
    print("\nGraph warnings and reasons groups cannot be rebuilt (distinct, shortened)")
    for r in rows:
        for note in r.notes[:8]:
            print(f"  {r.values['model']}: {note[:200]}")
        if len(r.notes) > 8:
            print(f"  {r.values['model']}: ... {len(r.notes) - 8} more")


if __name__ == "__main__":
    main()
