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

Ratios (networkx time / ours) are computed from timings taken in the same run; short runs (under 2 s)
are repeated and the best of three is kept on both sides. Target: >= 100x.

Usage: ``python analyses/bench_graph.py [--quick] [--json] [--threads 1] [--nx-edge-cap 5000000]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
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


def run_ours(case: str) -> dict[str, Any]:
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
    best = first
    for _ in range(2 if first < 2.0 else 0):  # warm repeats for short cases: best of three
        del adjacency
        t = time.perf_counter()
        adjacency = graph.unit_adjacency("l2")
        best = min(best, time.perf_counter() - t)
    return {
        "case": case,
        "route": "ours",
        "weights": n_weights,
        "units": graph.n_nodes,
        "edges": int(adjacency.nnz),
        "groups": len(graph.groups),
        "trace_s": t1 - t0,
        "adjacency_first_s": first,
        "adjacency_s": best,
        "total_s": t1 - t0 + best,
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


def run_networkx(case: str, route: str, edge_cap: int) -> dict[str, Any]:
    """The same unit graph as ``unit_adjacency("l2")``, built with networkx by ``route`` (best of three when
    short); checked edge for edge against ours. Graphs over ``edge_cap`` edges are not attempted (networkx
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
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        g = build_networkx(graph, route)
        elapsed = time.perf_counter() - t0
        best = elapsed if best is None else min(best, elapsed)
        if elapsed > 2.0:
            break
    peak = _peak_mb() - base
    theirs = {(u, v): d["weight"] for u, v, d in g.edges(data=True)}
    same = len(theirs) == total_edges and all(
        np.isclose(theirs.get((int(u), int(v)), np.nan), w, rtol=1e-4) for u, v, w in zip(ours.row, ours.col, ours.data)
    )
    return {**row, "finished": True, "time_s": best, "peak_increase_mb": peak, "same_graph": bool(same)}


def _child(args: list[str], threads: int) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark case {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small networks only, short networkx cap")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS threads in each case (default 1)")
    parser.add_argument("--nx-edge-cap", type=int, default=5_000_000, help="edges networkx may build per case")
    parser.add_argument("--cases", nargs="*", default=None, choices=sorted(CASES))
    parser.add_argument("--child", nargs=2, metavar=("ROUTE", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        route, case = args.child
        result = run_ours(case) if route == "ours" else run_networkx(case, route, args.nx_edge_cap)
        print(json.dumps(result))
        return 0
    cases = args.cases or (list(QUICK) if args.quick else list(CASES))
    rows = []
    for case in cases:
        common = ["--threads", str(args.threads), "--nx-edge-cap", str(args.nx_edge_cap)]
        ours = _child(["--child", "ours", case, *common], args.threads)
        row = {"case": case, "ours": ours}
        for route in ROUTES:
            theirs = _child(["--child", route, case, *common], args.threads)
            row[route] = theirs
            row[f"speedup_{route}"] = theirs["time_s"] / ours["adjacency_s"] if theirs["finished"] else None
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'network':<13} {'weights':>11} {'units':>7} {'edges':>11} {'trace s':>8} {'adj s':>7} {'ours MB':>8} "
        f"{'nx add_weighted s':>18} {'x':>6} {'nx from_scipy s':>16} {'x':>6} {'nx MB':>7} {'same':>5}"
    )
    for r in rows:
        o = r["ours"]
        cells = []
        for route in ROUTES:
            n = r[route]
            if n["finished"]:
                cells.append(f"{n['time_s']:>{18 if route == ROUTES[0] else 16}.3f} {r['speedup_' + route]:5.0f}x")
            else:
                cells.append(f"{'not run':>{18 if route == ROUTES[0] else 16}} {'-':>6}")
        finished = [r[route] for route in ROUTES if r[route]["finished"]]
        nx_mb = max((n["peak_increase_mb"] for n in finished), default=0.0)
        same = "yes" if finished and all(n["same_graph"] for n in finished) else ("-" if not finished else "NO")
        print(
            f"{r['case']:<13} {o['weights']:>11,} {o['units']:>7,} {o['edges']:>11,} {o['trace_s']:8.2f} "
            f"{o['adjacency_s']:7.3f} {o['peak_increase_mb']:8.0f} {cells[0]} {cells[1]} {nx_mb:7.0f} {same:>5}"
        )
    print(
        "trace s: from_model; adj s: unit_adjacency, best of 3; MB: peak RSS increase. x = networkx time / "
        "unit_adjacency time, same run. networkx builds the same graph from vectorized per-layer edge arrays "
        "(their computation included) with add_weighted_edges_from or from_scipy_sparse_array; same: its edges "
        f"equal ours. not run: more than {args.nx_edge_cap:,} edges (networkx stores each edge as Python dicts)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
