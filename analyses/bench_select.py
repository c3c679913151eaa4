"""Benchmark of the k-DPP numerics of ``workbench.select`` against dppy and a dense Cholesky.

For n in {256, 1024, 4096} and k = n / 4, on L = X Xᵀ / d + 0.01 I with X an (n, n/2) Gaussian matrix
(well conditioned), it times:

- our exact k-DPP sampler, first sample (eigendecomposition + log-domain polynomial table + sampling)
  and a repeated sample (the eigendecomposition and table cached, as when drawing many samples);
- dppy's ``FiniteDPP('likelihood', L=...).sample_exact_k_dpp`` the same two ways (its first call does
  its own ``scipy.linalg.eigh``; it caches eigenvectors and the polynomial table for later calls);
- our greedy MAP (k steps) against one ``numpy.linalg.cholesky`` of the full n x n kernel.

Dual route (``--only dual``; also part of the default run): on a cosine kernel L = B Bᵀ of n = 4096
units with d = 1024 features (B: Gaussian rows scaled to unit norm; rank d < n), k = 512, the first exact
k-DPP sample through the dual kernel Bᵀ B (``KDPP(features=B)``: d x d eigendecomposition, nothing
n x n) against dppy's first sample on L (``FiniteDPP('likelihood', L=L)``, its n x n ``eigh`` included)
and, for reference, dppy's own dual route (``L_gram_factor=Bᵀ``). All get the same scaled kernel.
Our first sample is also split into its construction (Gram Bᵀ B and its ``eigh``) and the sample itself
(polynomial table, eigenvector choice, map-back, orthonormalization, projection phase), beside one
``numpy.linalg.eigh`` of the d x d Gram: the floor of an exact spectral sampler.
The greedy-MAP row above (n = 1024) is the explicit-kernel greedy against one Cholesky, same run.

It also times the ``sbm`` selector (plain and degree-corrected, the BIC choosing among 1..8 blocks) on
one group of n in {100, 300} units with random features (as an untrained layer's incoming weights,
144 per unit), k = n / 4, after a warm-up fit that pays the imports, as seconds per group
and as a ratio against the ``spectral`` selector fitted to the same group in the same run.

Every timing is repeated (``--repeats``, default 3) with the compared calls interleaved round by round,
so that both sides of a ratio see the same load; it prints the median with the [min, max] spread, and
each ratio as the median [min, max] of the per-round ratios. Before each timed call it sleeps
``--pause`` seconds (not timed): an OpenBLAS pool spins for a while after its work, and numpy and scipy
(dppy's ``eigh``) each bring one, so back-to-back calls would slow whichever library runs second. The
conditions (load average before and after, nice, BLAS threads, versions) are printed first; on a
machine with other work, compare the ratios, not the absolute times.

At n = 4096 the eigendecomposition (``numpy.linalg.eigh`` for us, ``scipy.linalg.eigh`` in dppy) is
most of a first sample; the first-sample ratio counts it, and the work after it (polynomial table and
sampling, both given the same eigendecomposition) is timed and compared separately.

The k-DPP is invariant to scaling L, so L is scaled (as :func:`workbench.select.sample_k_dpp_dppy`
does) to keep dppy's plain polynomial table from overflowing; both samplers get the same kernel.

Usage::

    python analyses/bench_select.py            # n = 256, 1024, 4096 (dppy takes minutes at 4096)
    python analyses/bench_select.py --quick    # n = 256, 1024
    python analyses/bench_select.py --json     # machine-readable output
    python analyses/bench_select.py --only sbm # only the sbm rows (seconds)
    python analyses/bench_select.py --only dual --dual-size 4096 1024 512   # the dual-route row
    python analyses/bench_select.py --only dual --repeats 5 --threads 1     # 5 rounds, one BLAS thread
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import time
from collections.abc import Callable
from math import lgamma
from typing import Any

import numpy as np
import scipy.linalg

#: seconds slept before each timed call (see the module docstring); set by ``--pause``
PAUSE = 0.25
#: rounds of every timing; set by ``--repeats``
REPEATS = 3


def kernel(n: int, seed: int = 0) -> np.ndarray:
    """A well-conditioned n x n kernel, scaled so that dppy's polynomial table does not overflow at k = n / 4."""
    rng = np.random.default_rng(seed)
    d = max(1, n // 2)
    x = rng.standard_normal((n, d))
    L = x @ x.T / d + 0.01 * np.eye(n)
    k = n // 4
    # the k-DPP does not change with the scale of L; this scale keeps e_k(eigenvalues) <= 1 for dppy
    log_binom = lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)
    return L / (np.trace(L) / n * np.exp(log_binom / k))


def conditions() -> dict[str, Any]:
    """What the timings depend on: load average, nice, CPU count, BLAS pools and their threads, versions."""
    from threadpoolctl import threadpool_info

    pools = [
        f"{pool['internal_api']} {pool.get('version')} ({os.path.basename(pool['filepath']).split('-')[0]}): "
        f"{pool['num_threads']} threads"
        for pool in threadpool_info()
    ]
    return {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "nice": os.nice(0),
        "cpus": os.cpu_count(),
        "blas": pools,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def describe(before: dict[str, Any], after: dict[str, Any] | None = None) -> str:
    """One paragraph with the conditions of a run (``after``: the load average at its end)."""
    return (
        f"conditions: load average (1, 5, 15 min) {before['load_average']} before"
        + (f", {after['load_average']} after" if after else "")
        + f"; nice {before['nice']}; {before['cpus']} CPUs; BLAS {'; '.join(before['blas'])}; Python "
        f"{before['python']}, numpy {before['numpy']}, scipy {before['scipy']}"
    )


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def fmt(stats: dict[str, float], unit: str = "s", digits: int = 3) -> str:
    """``median [min, max]unit`` of a :func:`spread`."""
    return f"{stats['median']:.{digits}f}{unit} [{stats['min']:.{digits}f}, {stats['max']:.{digits}f}]"


Call = Callable[[], Any] | tuple[Callable[[], Any], Callable[[Any], Any]]


def rounds(calls: dict[str, Call], repeats: int | None = None) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Wall times of each call over ``repeats`` rounds (default :data:`REPEATS`), interleaved one of each per
    round, and the last results. A call is ``fn`` (timed) or ``(setup, fn)``: ``fn(setup())``, only ``fn`` timed.
    Each timed call is preceded by a :data:`PAUSE` sleep.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    results: dict[str, Any] = {}
    for _ in range(REPEATS if repeats is None else repeats):
        for name, call in calls.items():
            setup, fn = call if isinstance(call, tuple) else (None, call)
            args = () if setup is None else (setup(),)
            time.sleep(PAUSE)
            start = time.perf_counter()
            results[name] = fn(*args)
            times[name].append(time.perf_counter() - start)
    return times, results


def record(row: dict[str, Any], times: dict[str, list[float]], ratios: dict[str, tuple[str, str]]) -> None:
    """Store each timing's median as ``row[name]`` and its spread as ``row[name + '_spread']``, and each
    ratio ``numerator / denominator`` (per round) as ``row[ratio]`` (median) and ``row[ratio + '_spread']``."""
    for name, values in times.items():
        stats = spread(values)
        row[name], row[f"{name}_spread"] = stats["median"], stats
    for ratio, (numerator, denominator) in ratios.items():
        stats = spread([a / b for a, b in zip(times[numerator], times[denominator])])
        row[ratio], row[f"{ratio}_spread"] = stats["median"], stats


def show(row: dict[str, Any], name: str, unit: str = "s", digits: int = 3) -> str:
    """A timing or ratio of ``row`` as ``median [min, max]``."""
    return fmt(row[f"{name}_spread"], unit, digits)


def bench(n: int, seed: int = 0) -> dict[str, Any]:
    """Exact k-DPP samples (first, repeated, after a given eigendecomposition) against dppy, and greedy MAP
    against one Cholesky, on the explicit kernel :func:`kernel` of size n, k = n / 4."""
    from dppy.finite_dpps import FiniteDPP

    from workbench.select import KDPP, greedy_map_dpp
    from workbench.utils import legacy_random_state

    L = kernel(n, seed)
    k = n // 4
    row: dict[str, Any] = {"n": n, "k": k, "repeats": REPEATS}
    dpp = KDPP(L)  # cached spectrum for the repeated samples
    dpp.sample(k, seed)
    finite = FiniteDPP("likelihood", L=L)  # dppy caches its eigendecomposition and table after the first call
    finite.sample_exact_k_dpp(size=k, random_state=legacy_random_state(seed))
    eig = np.linalg.eigh(L)

    def dppy_first() -> np.ndarray:
        return FiniteDPP("likelihood", L=L).sample_exact_k_dpp(size=k, random_state=legacy_random_state(seed))

    def dppy_given_eigh() -> Any:  # its constructor checks the eigendecomposition: not timed
        return FiniteDPP("likelihood", L_eig_dec=(np.clip(eig[0], 0, None), eig[1]))

    times, results = rounds(
        {
            "ours_first_s": lambda: KDPP(L).sample(k, seed),
            "ours_eigh_s": lambda: np.linalg.eigh(L),
            "ours_repeat_s": lambda: dpp.sample(k, seed + 1),
            "ours_after_eigh_s": lambda: KDPP(eig=eig).sample(k, seed),
            "dppy_first_s": dppy_first,
            "dppy_eigh_s": lambda: scipy.linalg.eigh(L),  # what dppy's first call runs
            "dppy_repeat_s": lambda: finite.sample_exact_k_dpp(size=k, random_state=legacy_random_state(seed + 1)),
            "dppy_after_eigh_s": (
                dppy_given_eigh,
                lambda f: f.sample_exact_k_dpp(size=k, random_state=legacy_random_state(seed)),
            ),
            "greedy_map_s": lambda: greedy_map_dpp(L, k),
            "cholesky_s": lambda: np.linalg.cholesky(L),
        }
    )
    assert len(set(results["dppy_first_s"])) == k, "dppy returned a degenerate sample"
    assert len(set(results["greedy_map_s"].tolist())) == k
    record(
        row,
        times,
        {
            "speedup_first": ("dppy_first_s", "ours_first_s"),
            "speedup_repeat": ("dppy_repeat_s", "ours_repeat_s"),
            "speedup_after_eigh": ("dppy_after_eigh_s", "ours_after_eigh_s"),
            "greedy_map_over_cholesky": ("greedy_map_s", "cholesky_s"),
        },
    )
    return row


def cosine_features(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """Unit-norm Gaussian rows, scaled (as :func:`kernel`) so that dppy's polynomial table does not overflow."""
    B = np.random.default_rng(seed).standard_normal((n, d))
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    log_binom = lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)
    return B / np.sqrt(np.exp(log_binom / k))  # tr(B Bᵀ) / n = 1 before scaling


def bench_dual(n: int = 4096, d: int = 1024, k: int = 512, seed: int = 0) -> dict[str, Any]:
    """First exact k-DPP sample through the dual kernel against dppy (primal and dual), same kernel, same rounds;
    our first sample split into construction and sampling, beside one ``eigh`` of the d x d Gram (the floor)."""
    from dppy.finite_dpps import FiniteDPP

    from workbench.select import KDPP
    from workbench.utils import legacy_random_state

    B = cosine_features(n, d, k, seed)
    L = B @ B.T
    row: dict[str, Any] = {"n": n, "d": d, "k": k, "repeats": REPEATS}

    def dppy_first(**kernel: np.ndarray) -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):  # dppy prints a note when it forms the dual kernel
            finite = FiniteDPP("likelihood", **kernel)
            return finite.sample_exact_k_dpp(size=k, random_state=legacy_random_state(seed))

    times, results = rounds(
        {
            "dual_first_s": lambda: KDPP(features=B).sample(k, seed),
            "dual_init_s": lambda: KDPP(features=B),
            "dual_sample_s": (lambda: KDPP(features=B), lambda dpp: dpp.sample(k, seed)),
            "dual_eigh_s": (lambda: B.T @ B, np.linalg.eigh),
            "dppy_first_s": lambda: dppy_first(L=L),
            "dppy_dual_first_s": lambda: dppy_first(L_gram_factor=B.T),
        }
    )
    assert np.unique(results["dual_first_s"]).size == k
    assert len(set(results["dppy_first_s"])) == k, "dppy returned a degenerate sample"
    assert len(set(results["dppy_dual_first_s"])) == k, "dppy's dual route returned a degenerate sample"
    record(
        row,
        times,
        {
            "speedup_dual_vs_dppy": ("dppy_first_s", "dual_first_s"),
            "speedup_dual_vs_dppy_dual": ("dppy_dual_first_s", "dual_first_s"),
            "dual_first_over_eigh": ("dual_first_s", "dual_eigh_s"),
        },
    )
    return row


def bench_sbm(n: int, seed: int = 0) -> dict[str, Any]:
    """Seconds per group of the sbm selector (plain and degree-corrected) and of spectral, on n random units."""
    from workbench.select import get_selector

    features = np.random.default_rng(seed).standard_normal((n, 144))
    k = n // 4

    def fit(name: str, **params: Any) -> Any:
        return get_selector(name, budget=k, random_state=seed, **params).fit(features)

    fit("sbm"), fit("spectral")  # warm-up: graspologic and scikit-learn imports
    row: dict[str, Any] = {"n": n, "k": k, "repeats": REPEATS}
    times, results = rounds(
        {
            "sbm_s": lambda: fit("sbm"),
            "dcsbm_s": lambda: fit("sbm", degree_corrected=True),
            "spectral_s": lambda: fit("spectral"),
        }
    )
    row["sbm_blocks"] = results["sbm_s"].n_blocks_
    record(
        row,
        times,
        {"sbm_over_spectral": ("sbm_s", "spectral_s"), "dcsbm_over_spectral": ("dcsbm_s", "spectral_s")},
    )
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global PAUSE, REPEATS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only n = 256 and 1024")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--sizes", type=int, nargs="*", help="explicit sizes n (k = n / 4)")
    parser.add_argument("--sbm-sizes", type=int, nargs="*", default=[100, 300], help="group sizes of the sbm rows")
    parser.add_argument("--only", choices=["kdpp", "sbm", "dual"], help="only the k-DPP, sbm or dual-route rows")
    parser.add_argument("--dual-size", type=int, nargs=3, default=[4096, 1024, 512], metavar=("N", "D", "K"))
    parser.add_argument("--repeats", type=int, default=REPEATS, help="rounds of every timing (default 3)")
    parser.add_argument("--pause", type=float, default=PAUSE, help="untimed sleep before each timed call (s)")
    parser.add_argument("--threads", type=int, help="BLAS threads of numpy and scipy (default: their own)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    REPEATS, PAUSE = args.repeats, args.pause
    limits = contextlib.nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=args.threads)
    sizes = [] if args.only in ("sbm", "dual") else args.sizes or ([256, 1024] if args.quick else [256, 1024, 4096])
    rows: list[dict[str, Any]] = []

    def report(line: str) -> None:
        if not args.json:
            print(line, flush=True)

    with limits:
        before = conditions()
        report(describe(before))
        report(f"{REPEATS} rounds; times: median [min, max]; ratios: median [min, max] of the per-round ratios")
        if args.only in (None, "dual") and not args.quick:
            r = bench_dual(*args.dual_size)
            rows.append(r)
            report(
                f"dual n={r['n']} d={r['d']} k={r['k']} | exact k-DPP first sample: ours (dual) "
                f"{show(r, 'dual_first_s')} vs dppy on L {show(r, 'dppy_first_s')} -> "
                f"{show(r, 'speedup_dual_vs_dppy', 'x', 1)} | dppy's dual route {show(r, 'dppy_dual_first_s')} -> "
                f"{show(r, 'speedup_dual_vs_dppy_dual', 'x', 1)}\n"
                f"    ours split: construction (Gram + eigh) {show(r, 'dual_init_s')}, sample {show(r, 'dual_sample_s')}"
                f" | one eigh of the d x d Gram (floor) {show(r, 'dual_eigh_s')}: first sample / eigh "
                f"{show(r, 'dual_first_over_eigh', 'x', 2)}"
            )
        for n in [] if args.only in ("kdpp", "dual") else args.sbm_sizes:
            r = bench_sbm(n)
            rows.append(r)
            report(
                f"sbm n={r['n']:4d} k={r['k']:3d} | sbm {show(r, 'sbm_s')} per group ({r['sbm_blocks']} blocks), "
                f"degree-corrected {show(r, 'dcsbm_s')}, spectral {show(r, 'spectral_s')} -> sbm / spectral "
                f"{show(r, 'sbm_over_spectral', 'x', 1)}, degree-corrected / spectral "
                f"{show(r, 'dcsbm_over_spectral', 'x', 1)}"
            )
        for n in sizes:
            r = bench(n)
            rows.append(r)
            report(
                f"n={r['n']:5d} k={r['k']:4d} | exact k-DPP first sample: ours {show(r, 'ours_first_s')} "
                f"(eigh {show(r, 'ours_eigh_s')}) vs dppy {show(r, 'dppy_first_s')} (eigh {show(r, 'dppy_eigh_s')}) "
                f"-> {show(r, 'speedup_first', 'x', 1)}\n"
                f"    after the eigendecomposition: ours {show(r, 'ours_after_eigh_s')} vs dppy "
                f"{show(r, 'dppy_after_eigh_s')} -> {show(r, 'speedup_after_eigh', 'x', 1)} | repeat sample: ours "
                f"{show(r, 'ours_repeat_s')} vs dppy {show(r, 'dppy_repeat_s')} -> {show(r, 'speedup_repeat', 'x', 1)}"
                f"\n    greedy MAP {show(r, 'greedy_map_s')} vs Cholesky {show(r, 'cholesky_s')} -> ratio "
                f"{show(r, 'greedy_map_over_cholesky', 'x', 2)}"
            )
        after = conditions()
    report(describe(before, after))
    result = {"conditions": {"before": before, "after": after, "repeats": REPEATS, "pause_s": PAUSE}, "rows": rows}
    if args.json:
        print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
