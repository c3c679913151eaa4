"""Benchmark: building the unit graph of a network, workbench.graph versus networkx.

For each network (LeNet-300-100, ResNet-20, MobileNet v1, a VGG-16-sized network with ~138M weights)
it measures, each in a fresh subprocess so that peak memories do not mix:

- ``ours``: ``from_model`` (torch.fx trace + shape propagation + coupled groups) and ``unit_adjacency``
  (scipy.sparse CSR, float32 data, int32 indices), wall time and peak-RSS increase (``ru_maxrss``);
- ``networkx``: the same unit graph built as a networkx user would with its fastest documented calls: the
  per-layer edge arrays computed with numpy (vectorized; duplicate pairs of residual groups summed in
  squares), then one ``nx.DiGraph`` by ``add_weighted_edges_from`` or by ``from_scipy_sparse_array``.
  The traced structure is reused, so only the edge computation and graph construction are compared;
  the result is checked edge for edge against ours. Graphs with more edges than ``--nx-edge-cap`` are
  not attempted.

Timings: inside each subprocess the trace is timed once cold (the process's first ``from_model`` of the
network) and ``--repeats`` times warm; ``unit_adjacency`` once cold and then warm, at least ``--repeats``
times and for at least 0.2 s (short cases run many times); each networkx route ``--repeats`` times. The
whole set of subprocesses runs ``--rounds`` times, one case after another, so both sides of a ratio see the
same load. Per case it prints the median [min, max] over rounds of each round's median, and the ratio
(networkx / ``unit_adjacency``, both warm) as the median [min, max] of the per-round ratios; the trace time
is printed beside it (it is paid once per network, by either route: networkx reuses our traced structure).
The conditions (load average before and after, nice, threads) are printed first; on a busy machine compare
the ratios, not the absolute times. Target: >= 100x.

Usage: ``python analyses/bench_graph.py [--quick] [--json] [--threads 1] [--rounds 3] [--repeats 3]
[--nx-edge-cap 5000000]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from statistics import median
from typing import Any

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "lenet300": ("lenet300", {}),
    "resnet20": ("resnet", {"depth": 20}),
    "mobilenet_v1": ("mobilenet_v1", {"width": 1.0, "resolution": 224, "classes": 1000}),
    "vgg16": ("vgg_small", {"cfg": "vgg16", "input_size": 224, "classes": 1000}),
}
QUICK = ("lenet300", "resnet20", "mobilenet_v1")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KB on Linux


def _build(case: str) -> Any:
    import torch

    from workbench.zoo import create_model

    name, kwargs = CASES[case]
    torch.manual_seed(0)
    return create_model(name, **kwargs)


def _warm_up() -> None:
    """Trace a tiny network once so that one-time imports do not count as the case's memory or time."""
    import torch

    from workbench.graph import from_model

    from_model(torch.nn.Sequential(torch.nn.Linear(2, 2)), torch.zeros(1, 2)).unit_adjacency()


def _warm_times(fn: Any, repeats: int, min_seconds: float = 0.0, max_calls: int = 500) -> list[float]:
    """Wall times of at least ``repeats`` calls of ``fn()``, more (up to ``max_calls``) until ``min_seconds``."""
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < max_calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run_ours(case: str, repeats: int) -> dict[str, Any]:
    """``from_model`` and ``unit_adjacency("l2")`` of one case: cold times, warm medians, peak-RSS increase."""
    from workbench.graph import from_model

    _warm_up()
    model = _build(case)
    n_weights = sum(p.numel() for p in model.parameters())
    base = _peak_mb()
    t0 = time.perf_counter()
    graph = from_model(model)
    t1 = time.perf_counter()
    adjacency = graph.unit_adjacency("l2")
    first = time.perf_counter() - t1
    peak = _peak_mb() - base
    del adjacency
    warm = _warm_times(lambda: graph.unit_adjacency("l2"), repeats, min_seconds=0.2)
    traces = _warm_times(lambda: from_model(model), repeats)
    return {
        "case": case,
        "route": "ours",
        "weights": n_weights,
        "units": graph.n_nodes,
        "edges": int(graph.unit_adjacency("l2").nnz),
        "groups": len(graph.groups),
        "trace_first_s": t1 - t0,
        "trace_s": median(traces),
        "adjacency_first_s": first,
        "adjacency_s": median(warm),
        "adjacency_calls": len(warm),
        "peak_increase_mb": peak,
        "weights_mb": n_weights * 4 / 2**20,
    }


ROUTES = ("add_weighted_edges_from", "from_scipy_sparse_array")


def edge_arrays(graph: Any) -> tuple[Any, Any, Any]:
    """The unit graph's weighted edges as numpy arrays ``(sources, targets, weights)``, computed the way a
    networkx user would from the traced structure: per layer, the l2 norm over each kernel of the weights
    between two units (vectorized), summed in squares where several layers read the same pair (residuals)."""
    import numpy as np

    from workbench.graph.adjacency import input_columns, weight_out_in

    n = graph.n_nodes
    sources, targets, squares = [], [], []
    for read in graph.reads:
        if read.coupled:
            continue
        w, groups = weight_out_in(graph.module_of(read.layer))
        w = w.detach().numpy()
        sq = (w.reshape(w.shape[0], w.shape[1], -1).astype(np.float64) ** 2).sum(axis=2)  # (out, in_per_group)
        cols = input_columns(w.shape[0], w.shape[1], groups)
        if cols is None:
            cols = np.broadcast_to(np.arange(w.shape[1]), sq.shape)
        src = graph.unit_nodes(read.ids)[cols]
        tgt = np.broadcast_to(graph.unit_nodes(graph.layer_units(read.layer))[:, None], src.shape)
        ok = src >= 0
        sources.append(src[ok])
        targets.append(tgt[ok])
        squares.append(sq[ok])
    key = np.concatenate(sources).astype(np.int64) * n + np.concatenate(targets)
    pairs, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(squares))
    keep = total != 0
    return pairs[keep] // n, pairs[keep] % n, np.sqrt(total[keep])


def build_networkx(graph: Any, route: str) -> Any:
    """``nx.DiGraph`` of the unit graph by one of networkx's fast documented routes (see :data:`ROUTES`)."""
    import networkx as nx
    import scipy.sparse as sp

    src, dst, weight = edge_arrays(graph)
    if route == "add_weighted_edges_from":
        g = nx.DiGraph()
        g.add_nodes_from(range(graph.n_nodes))
        g.add_weighted_edges_from(zip(src.tolist(), dst.tolist(), weight.tolist()))
        return g
    matrix = sp.coo_array((weight, (src, dst)), shape=(graph.n_nodes, graph.n_nodes))
    return nx.from_scipy_sparse_array(matrix, create_using=nx.DiGraph)


def run_networkx(case: str, route: str, edge_cap: int, repeats: int) -> dict[str, Any]:
    """The same unit graph as ``unit_adjacency("l2")``, built with networkx by ``route`` (median of ``repeats``
    builds); checked edge for edge against ours. Graphs over ``edge_cap`` edges are not attempted (networkx
    holds each edge as Python dicts, some hundreds of bytes)."""
    import numpy as np

    from workbench.graph import from_model

    model = _build(case)
    graph = from_model(model)
    ours = graph.unit_adjacency("l2").tocoo()
    total_edges = int(ours.nnz)
    row = {"case": case, "route": f"networkx {route}", "edges_total": total_edges}
    if total_edges > edge_cap:
        return {**row, "finished": False, "time_s": None, "peak_increase_mb": 0.0, "why": "edge cap"}
    base = _peak_mb()
    g = None

    def build() -> None:
        nonlocal g
        g = None  # the previous graph goes before the next is built (peak memory of one graph)
        g = build_networkx(graph, route)

    times = _warm_times(build, repeats)
    peak = _peak_mb() - base
    theirs = {(u, v): d["weight"] for u, v, d in g.edges(data=True)}
    same = len(theirs) == total_edges and all(
        np.isclose(theirs.get((int(u), int(v)), np.nan), w, rtol=1e-4) for u, v, w in zip(ours.row, ours.col, ours.data)
    )
    return {**row, "finished": True, "time_s": median(times), "peak_increase_mb": peak, "same_graph": bool(same)}


def _child(args: list[str], threads: int) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark case {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cell(stats: dict[str, float] | None, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """``median [min, max]`` of a spread scaled by ``scale`` (e.g. 1e3 for ms), or "not run"."""
    from bench_select import fmt

    return "not run" if stats is None else fmt({key: value * scale for key, value in stats.items()}, unit, digits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small networks only, short networkx cap")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS threads in each case (default 1)")
    parser.add_argument("--nx-edge-cap", type=int, default=5_000_000, help="edges networkx may build per case")
    parser.add_argument("--cases", nargs="*", default=None, choices=sorted(CASES))
    parser.add_argument("--rounds", type=int, default=3, help="fresh subprocesses per case and route (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per subprocess, at least (default 3)")
    parser.add_argument("--child", nargs=2, metavar=("ROUTE", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be >= 1")
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        route, case = args.child
        if route == "ours":
            result = run_ours(case, args.repeats)
        else:
            result = run_networkx(case, route, args.nx_edge_cap, args.repeats)
        print(json.dumps(result))
        return 0
    from bench_select import conditions, describe, spread  # analyses/ is on sys.path when run as a script

    before = conditions()
    cases = args.cases or (list(QUICK) if args.quick else list(CASES))
    common = ["--threads", str(args.threads), "--nx-edge-cap", str(args.nx_edge_cap), "--repeats", str(args.repeats)]
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case in cases}
    for _ in range(args.rounds):
        for case in cases:
            run = {"ours": _child(["--child", "ours", case, *common], args.threads)}
            for route in ROUTES:
                run[route] = _child(["--child", route, case, *common], args.threads)
            runs[case].append(run)
    after = conditions()
    rows = []
    for case in cases:
        ours = [run["ours"] for run in runs[case]]
        row: dict[str, Any] = {"case": case, "rounds": runs[case], "ours": ours[-1]}
        for key in ("trace_first_s", "trace_s", "adjacency_first_s", "adjacency_s", "peak_increase_mb"):
            row[key] = spread([o[key] for o in ours])
        for route in ROUTES:
            theirs = [run[route] for run in runs[case]]
            finished = all(t["finished"] for t in theirs)
            row[route] = spread([t["time_s"] for t in theirs]) if finished else None
            row[f"speedup_{route}"] = (
                spread([t["time_s"] / o["adjacency_s"] for t, o in zip(theirs, ours)]) if finished else None
            )
            row[f"same_{route}"] = all(t.get("same_graph", False) for t in theirs) if finished else None
            row[f"nx_mb_{route}"] = max(t["peak_increase_mb"] for t in theirs)
        rows.append(row)
    if args.json:
        print(
            json.dumps(
                {"conditions": {"before": before, "after": after, "threads": args.threads}, "rows": rows}, indent=2
            )
        )
        return 0
    print(describe(before, after) + f"; --threads {args.threads} in each case")
    print(f"{args.rounds} rounds of fresh subprocesses; median [min, max] over rounds of each round's median")
    for r in rows:
        o = r["ours"]
        same = [r[f"same_{route}"] for route in ROUTES if r[f"same_{route}"] is not None]
        print(
            f"{r['case']:<13} {o['weights']:>11,} weights {o['units']:>7,} units {o['edges']:>11,} edges | trace "
            f"{_cell(r['trace_s'], 1, 2, ' s')} (cold {_cell(r['trace_first_s'], 1, 2, ' s')}) | unit_adjacency "
            f"{_cell(r['adjacency_s'], 1e3, 3, ' ms')} (cold {_cell(r['adjacency_first_s'], 1e3, 1, ' ms')}), "
            f"+{r['peak_increase_mb']['max']:.0f} MB"
        )
        for route in ROUTES:
            print(
                f"{'':<13} networkx {route:<24} {_cell(r[route], 1e3, 1, ' ms'):>28} -> "
                f"{_cell(r['speedup_' + route], 1, 0, 'x'):>18}  +{r['nx_mb_' + route]:.0f} MB"
            )
        print(f"{'':<13} same graph as ours: {'yes' if same and all(same) else ('-' if not same else 'NO')}")
    print(
        "trace: from_model (warm; cold: the process's first); unit_adjacency: warm (cold: first call). MB: peak RSS "
        "increase. x = networkx time / unit_adjacency time, same round. networkx builds the same graph from vectorized "
        "per-layer edge arrays (their computation included) with add_weighted_edges_from or from_scipy_sparse_array; "
        f"same: its edges equal ours. not run: more than {args.nx_edge_cap:,} edges (networkx stores each edge as "
        "Python dicts)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
