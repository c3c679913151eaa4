"""Benchmark of the k-DPP numerics of ``workbench.select`` against dppy and a dense Cholesky.

For n in {256, 1024, 4096} and k = n / 4, on L = X Xᵀ / d + 0.01 I with X an (n, n/2) Gaussian matrix
(well conditioned), it times (best of 3 for n <= 1024, once at 4096):

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
The greedy-MAP row above (n = 1024) is the explicit-kernel greedy against one Cholesky, same run.

It also times the ``sbm`` selector (plain and degree-corrected, the BIC choosing among 1..8 blocks) on
one group of n in {100, 300} units with random features (as an untrained layer's incoming weights,
144 per unit), k = n / 4, best of 3 after a warm-up fit that pays the imports, as seconds per group
and as a ratio against the ``spectral`` selector fitted to the same group in the same run.

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
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from math import lgamma

import numpy as np
import scipy.linalg


def kernel(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = max(1, n // 2)
    x = rng.standard_normal((n, d))
    L = x @ x.T / d + 0.01 * np.eye(n)
    k = n // 4
    # the k-DPP does not change with the scale of L; this scale keeps e_k(eigenvalues) <= 1 for dppy
    log_binom = lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)
    return L / (np.trace(L) / n * np.exp(log_binom / k))


def timed(fn, repeats: int = 1):
    """Best wall time of ``repeats`` calls of ``fn()`` and the last result."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench(n: int, seed: int = 0) -> dict[str, float]:
    from dppy.finite_dpps import FiniteDPP

    from workbench.select import KDPP, greedy_map_dpp
    from workbench.utils import legacy_random_state

    L = kernel(n, seed)
    k = n // 4
    repeats = 3 if n <= 1024 else 1  # small sizes take milliseconds: best of 3
    row: dict[str, float] = {"n": n, "k": k, "repeats": repeats}

    def ours_first():
        dpp = KDPP(L)
        return dpp, dpp.sample(k, seed)

    row["ours_first_s"], (dpp, _) = timed(ours_first, repeats)
    row["ours_eigh_s"], _ = timed(lambda: np.linalg.eigh(L), repeats)
    row["ours_repeat_s"], _ = timed(lambda: dpp.sample(k, seed + 1), repeats)

    def dppy_first():
        finite = FiniteDPP("likelihood", L=L)
        return finite, finite.sample_exact_k_dpp(size=k, random_state=legacy_random_state(seed))

    row["dppy_first_s"], (finite, sample) = timed(dppy_first, repeats)
    assert len(set(sample)) == k, "dppy returned a degenerate sample"
    rs = legacy_random_state(seed + 1)
    row["dppy_repeat_s"], _ = timed(lambda: finite.sample_exact_k_dpp(size=k, random_state=rs), repeats)
    row["dppy_eigh_s"], _ = timed(lambda: scipy.linalg.eigh(L), repeats)  # what dppy's first call runs

    # the work after the eigendecomposition, both given the same one (polynomial table + sampling)
    eig = np.linalg.eigh(L)
    row["ours_after_eigh_s"], _ = timed(lambda: KDPP(eig=eig).sample(k, seed), repeats)

    def dppy_after_eigh():
        finite = FiniteDPP("likelihood", L_eig_dec=(np.clip(eig[0], 0, None), eig[1]))  # checks not timed
        start = time.perf_counter()
        finite.sample_exact_k_dpp(size=k, random_state=legacy_random_state(seed))
        return time.perf_counter() - start

    row["dppy_after_eigh_s"] = min(dppy_after_eigh() for _ in range(repeats))

    row["greedy_map_s"], order = timed(lambda: greedy_map_dpp(L, k), repeats)
    assert len(set(order.tolist())) == k
    row["cholesky_s"], _ = timed(lambda: np.linalg.cholesky(L), repeats)

    row["speedup_first"] = row["dppy_first_s"] / row["ours_first_s"]
    row["speedup_repeat"] = row["dppy_repeat_s"] / row["ours_repeat_s"]
    row["speedup_after_eigh"] = row["dppy_after_eigh_s"] / row["ours_after_eigh_s"]
    row["greedy_map_over_cholesky"] = row["greedy_map_s"] / row["cholesky_s"]
    return row


def cosine_features(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    """Unit-norm Gaussian rows, scaled (as :func:`kernel`) so that dppy's polynomial table does not overflow."""
    B = np.random.default_rng(seed).standard_normal((n, d))
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    log_binom = lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)
    return B / np.sqrt(np.exp(log_binom / k))  # tr(B Bᵀ) / n = 1 before scaling


def bench_dual(n: int = 4096, d: int = 1024, k: int = 512, seed: int = 0) -> dict[str, float]:
    """First exact k-DPP sample through the dual kernel against dppy (primal and dual), same kernel, same run."""
    from dppy.finite_dpps import FiniteDPP

    from workbench.select import KDPP
    from workbench.utils import legacy_random_state

    B = cosine_features(n, d, k, seed)
    row: dict[str, float] = {"n": n, "d": d, "k": k}
    row["dual_first_s"], sample = timed(lambda: KDPP(features=B).sample(k, seed))
    assert np.unique(sample).size == k
    L = B @ B.T

    def dppy_first(**kernel):
        with contextlib.redirect_stdout(io.StringIO()):  # dppy prints a note when it forms the dual kernel
            finite = FiniteDPP("likelihood", **kernel)
            return finite.sample_exact_k_dpp(size=k, random_state=legacy_random_state(seed))

    row["dppy_first_s"], sample = timed(lambda: dppy_first(L=L))
    assert len(set(sample)) == k, "dppy returned a degenerate sample"
    row["dppy_dual_first_s"], sample = timed(lambda: dppy_first(L_gram_factor=B.T))
    assert len(set(sample)) == k, "dppy's dual route returned a degenerate sample"
    row["speedup_dual_vs_dppy"] = row["dppy_first_s"] / row["dual_first_s"]
    row["speedup_dual_vs_dppy_dual"] = row["dppy_dual_first_s"] / row["dual_first_s"]
    return row


def bench_sbm(n: int, seed: int = 0, repeats: int = 3) -> dict[str, float]:
    """Seconds per group of the sbm selector (plain and degree-corrected) and of spectral, on n random units."""
    from workbench.select import get_selector

    features = np.random.default_rng(seed).standard_normal((n, 144))
    k = n // 4

    def fit(name: str, **params):
        return get_selector(name, budget=k, random_state=seed, **params).fit(features)

    fit("sbm"), fit("spectral")  # warm-up: graspologic and scikit-learn imports
    row: dict[str, float] = {"n": n, "k": k, "repeats": repeats}
    row["sbm_s"], sbm = timed(lambda: fit("sbm"), repeats)
    row["dcsbm_s"], _ = timed(lambda: fit("sbm", degree_corrected=True), repeats)
    row["spectral_s"], _ = timed(lambda: fit("spectral"), repeats)
    row["sbm_blocks"] = sbm.n_blocks_
    row["sbm_over_spectral"] = row["sbm_s"] / row["spectral_s"]
    row["dcsbm_over_spectral"] = row["dcsbm_s"] / row["spectral_s"]
    return row


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only n = 256 and 1024")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--sizes", type=int, nargs="*", help="explicit sizes n (k = n / 4)")
    parser.add_argument("--sbm-sizes", type=int, nargs="*", default=[100, 300], help="group sizes of the sbm rows")
    parser.add_argument("--only", choices=["kdpp", "sbm", "dual"], help="only the k-DPP, sbm or dual-route rows")
    parser.add_argument("--dual-size", type=int, nargs=3, default=[4096, 1024, 512], metavar=("N", "D", "K"))
    args = parser.parse_args(argv)
    sizes = [] if args.only in ("sbm", "dual") else args.sizes or ([256, 1024] if args.quick else [256, 1024, 4096])
    rows = []
    if args.only in (None, "dual") and not args.quick:
        rows.append(bench_dual(*args.dual_size))
        if not args.json:
            r = rows[-1]
            print(
                f"dual n={r['n']} d={r['d']} k={r['k']} | exact k-DPP first sample: ours (dual) {r['dual_first_s']:.3f}s vs "
                f"dppy on L {r['dppy_first_s']:.3f}s -> {r['speedup_dual_vs_dppy']:.1f}x | dppy's dual route "
                f"{r['dppy_dual_first_s']:.3f}s -> {r['speedup_dual_vs_dppy_dual']:.1f}x",
                flush=True,
            )
    for n in [] if args.only in ("kdpp", "dual") else args.sbm_sizes:
        rows.append(bench_sbm(n))
        if not args.json:
            r = rows[-1]
            print(
                f"sbm n={r['n']:4d} k={r['k']:3d} | sbm {r['sbm_s']:.3f}s per group ({r['sbm_blocks']} blocks), "
                f"degree-corrected {r['dcsbm_s']:.3f}s, spectral {r['spectral_s']:.3f}s -> sbm / spectral "
                f"{r['sbm_over_spectral']:.1f}x, degree-corrected / spectral {r['dcsbm_over_spectral']:.1f}x",
                flush=True,
            )
    for n in sizes:
        rows.append(bench(n))
        if not args.json:
            r = rows[-1]
            print(
                f"n={r['n']:5d} k={r['k']:4d} | exact k-DPP first sample: ours {r['ours_first_s']:.3f}s "
                f"(eigh {r['ours_eigh_s']:.3f}s) vs dppy {r['dppy_first_s']:.3f}s (eigh {r['dppy_eigh_s']:.3f}s) -> "
                f"{r['speedup_first']:.1f}x | after the eigendecomposition: ours {r['ours_after_eigh_s']:.3f}s vs dppy "
                f"{r['dppy_after_eigh_s']:.3f}s -> {r['speedup_after_eigh']:.1f}x | "
                f"repeat sample: ours {r['ours_repeat_s']:.3f}s vs dppy {r['dppy_repeat_s']:.3f}s -> "
                f"{r['speedup_repeat']:.1f}x | greedy MAP {r['greedy_map_s']:.3f}s vs Cholesky {r['cholesky_s']:.3f}s "
                f"-> ratio {r['greedy_map_over_cholesky']:.2f}",
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
