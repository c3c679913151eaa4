"""Numerics of k-determinantal point processes: exact sampling, exact marginals and greedy MAP.

A k-DPP with likelihood kernel L (n x n, symmetric PSD) draws a k-subset S with probability
proportional to det(L_S) (Kulesza & Taskar 2012). The kernel is given as L, as its eigendecomposition,
or as features B (n x d) with L = B Bᵀ + ridge·I. With features and d < n the spectrum comes from the
dual kernel Bᵀ B (d x d; Kulesza & Taskar 2012, sec. 3.3): its eigenvectors w_i map to those of L
as v_i = B w_i / sqrt(l_i), and the n - rank(B) eigenvalues equal to the ridge share one eigenspace,
the complement of B's columns, of which only a Haar-random basis of the needed dimension is drawn
(the k-DPP does not depend on the basis of an eigenspace). Nothing n x n is formed.

- :func:`sample_k_dpp` is the exact spectral sampler (Kulesza & Taskar, Alg. 8 then the projection
  chain rule). Phase 1 selects k eigenvectors using elementary symmetric polynomials computed in the
  log domain (each row of the table is a cumulative ``logaddexp`` of the previous one), so nothing
  overflows for n = 4096 and any scale of L. Phase 2 samples from the projection DPP with kernel
  V Vᵀ by the chain rule, through the blocked pivoted Cholesky engine below.
- :func:`k_dpp_marginals` gives the exact inclusion probabilities P(i in S).
- :func:`greedy_map_dpp` is the greedy MAP of Chen, Zhang & Zhou (2018): at each step the item with
  the largest conditional variance (Schur complement diagonal) joins; this is pivoted Cholesky with
  diagonal pivoting. With features it runs on the rows of B (kernel columns B B[S]ᵀ, O(n k d)).

The pivoted Cholesky engine keeps the partial factor C (n x k). While C fits in cache, every step
updates all n residuals exactly (one matrix-vector product: few Python steps, no waiting on memory).
Beyond that it works in blocks: inside a block of b steps only a few candidates are evaluated exactly
(the residual variances only decrease, so stale values are upper bounds: the greedy takes the best
bound after checking it, the sampler thins proposals drawn from the bounds); at the end of the block
all n residuals are refreshed with one matrix product, O(n k^2) in level-3 BLAS.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from workbench.errors import SelectionError
from workbench.select.greedy import lazy_argmax
from workbench.select.validation import clip_spectrum
from workbench.utils import RandomState, check_random_state

__all__ = [
    "KDPP",
    "sample_k_dpp",
    "sample_k_dpp_dppy",
    "k_dpp_marginals",
    "greedy_map_dpp",
    "greedy_map_details",
    "feature_columns",
    "log_elementary_symmetric",
]

Columns = Callable[[np.ndarray | None, np.ndarray], np.ndarray]
_KERNEL = "the k-DPP kernel L"


def _check_square(L: np.ndarray, name: str = "L") -> np.ndarray:
    L = np.asarray(L, dtype=np.float64)
    if L.ndim != 2 or L.shape[0] != L.shape[1] or L.shape[0] == 0:
        raise SelectionError(f"{name} must be a non-empty square (n x n) matrix, got shape {L.shape}.")
    asymmetry = _max_asymmetry(L)
    if not np.isfinite(asymmetry):
        raise SelectionError(f"{name} contains NaN or infinite values; check the features it was computed from.")
    if asymmetry > 1e-8 * max(float(np.abs(L).max()), 1e-300):
        raise SelectionError(
            f"{name} is not symmetric (largest |L - L.T| = {asymmetry:.3g}); a DPP kernel is a symmetric PSD "
            "similarity (cosine, linear or RBF): symmetrize it, e.g. (L + L.T) / 2, if the asymmetry is an error."
        )
    return L


def _max_asymmetry(L: np.ndarray, tile: int = 256) -> float:
    """max |L - Lᵀ| (NaN or infinite when L is not finite), tile by tile so that transposes stay in cache."""
    n = L.shape[0]
    worst = 0.0
    for i in range(0, n, tile):
        for j in range(i, n, tile):
            worst = max(worst, float(np.abs(L[i : i + tile, j : j + tile] - L[j : j + tile, i : i + tile].T).max()))
            if not np.isfinite(worst):
                return worst
    return worst


def _check_k(k: object, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= n:
        raise SelectionError(f"k must be an int in [1, {n}] (the number of items), got {k!r}.")
    return int(k)


def log_elementary_symmetric(eigenvalues: np.ndarray, k: int) -> np.ndarray:
    """Log of the elementary symmetric polynomials e_j(λ_1..λ_m), j = 0..k, m = 0..n.

    Returns a (k+1, n+1) array ``logE`` with ``logE[j, m] = log e_j(λ_1, ..., λ_m)`` (-inf where it is 0).
    Uses e_j(λ_1..λ_m) = Σ_{r<=m} λ_r e_{j-1}(λ_1..λ_{r-1}): each row is a cumulative log-sum-exp of the
    previous one, so the table never overflows or underflows (Kulesza & Taskar 2012, Alg. 7, in logs).
    """
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    n = lam.size
    table = np.full((k + 1, n + 1), -np.inf)
    table[0, :] = 0.0
    # zero eigenvalues add -inf terms, which leave a cumulative log-sum-exp exactly as it was: leading zeros keep
    # rows j >= 1 at -inf, trailing ones repeat the last column; only the positive stretch is accumulated
    positive = np.flatnonzero(lam)
    if not positive.size:
        return table
    first, last = int(positive[0]), int(positive[-1]) + 1
    with np.errstate(divide="ignore"):
        log_lam = np.log(lam[first:last])
    for j in range(1, k + 1):
        table[j, first + 1 : last + 1] = np.logaddexp.accumulate(log_lam + table[j - 1, first:last])
    table[:, last + 1 :] = table[:, last : last + 1]
    return table


def _numerical_rank(eigenvalues: np.ndarray, size: int | None = None) -> tuple[np.ndarray, int]:
    """Eigenvalues with those below ``size`` * eps * max set to 0, and how many are left."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    top = float(lam.max()) if lam.size else 0.0
    tol = max(top, 0.0) * (lam.size if size is None else size) * np.finfo(float).eps
    lam = np.where(lam > tol, lam, 0.0)
    return lam, int(np.count_nonzero(lam))


def _check_ridge(ridge: object) -> float:
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float, np.integer, np.floating)) or not ridge >= 0:
        raise SelectionError(f"ridge must be a number >= 0 (added to the kernel's diagonal), got {ridge!r}.")
    if not np.isfinite(ridge):
        raise SelectionError(f"ridge must be finite, got {ridge!r}.")
    return float(ridge)


def _check_features(features: np.ndarray) -> np.ndarray:
    B = np.asarray(features, dtype=np.float64)
    if B.ndim != 2 or B.shape[0] == 0 or B.shape[1] == 0:
        raise SelectionError(f"features must be a non-empty (n items x d features) array, got shape {B.shape}.")
    if not np.all(np.isfinite(B)):
        raise SelectionError(
            "features contain NaN or infinite values; check the weights or activations they came from."
        )
    return B


#: Gram deviation max |VᵀV - I| below which one CholeskyQR pass leaves V orthonormal to rounding
_ONE_PASS = 1e-6


def _orthonormal(V: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the span of V's columns (full column rank): ``V R⁻¹`` with R upper triangular.

    CholeskyQR2 (Fukaya et al. 2014): V <- V R⁻¹ with RᵀR = VᵀV, no pass when max |VᵀV - I| <= k·eps
    (V is then as orthonormal as Householder QR would leave it: the dual map-back of a well-conditioned
    kernel), one when it is within :data:`_ONE_PASS`, else two. Level-3 BLAS only (one ``syrk`` and one
    product with the k x k inverse per pass), a few times faster than Householder QR with its Q formed.
    A pass leaves an error of about eps·cond(V)², so when the second Gram is still far from I (cond(V)
    beyond ~1e7) or a Cholesky fails, Householder QR gives the basis instead. Any orthonormal basis of
    the span gives the same projection kernel V Vᵀ, so the sampler's distribution does not depend on
    which one is returned. V is not modified (it is returned as is when no pass is needed).
    """
    if not V.shape[1]:
        return V
    Q = V
    identity = np.eye(V.shape[1])
    for second in (False, True):
        gram = Q.T @ Q  # a syrk: numpy recognizes the transposed operand
        deviation = float(np.abs(gram - identity).max())
        if not second and deviation <= V.shape[1] * np.finfo(float).eps:
            return V  # as orthonormal as Householder QR would leave it (the usual dual map-back): nothing to do
        if second and not deviation < 0.5:
            break
        try:
            lower = np.linalg.cholesky(gram)  # gram = L Lᵀ, R = Lᵀ
        except np.linalg.LinAlgError:
            break
        # numpy has no triangular solve; the k x k inverse costs k³ and, like a solve, moves the span by ~eps·cond(V)
        Q = Q @ np.linalg.inv(lower).T
        if second or deviation <= _ONE_PASS:
            return Q
    return np.linalg.qr(V)[0]


def feature_columns(B: np.ndarray, ridge: float = 0.0) -> Columns:
    """Columns of L = B Bᵀ + ridge·I from the features B: ``columns(rows, cols)`` = L[rows][:, cols]."""

    def columns(rows: np.ndarray | None, cols: np.ndarray) -> np.ndarray:
        block = (B if rows is None else B[rows]) @ B[cols].T
        if ridge:
            if rows is None:
                block[cols, np.arange(cols.size)] += ridge
            else:
                block += ridge * (rows[:, None] == cols[None, :])
        return block

    return columns


class KDPP:
    """A k-DPP family for one kernel, with its spectrum computed once and reused.

    Give exactly one of ``L``, ``eig`` or ``features``.

    Parameters
    ----------
    L
        (n, n) symmetric PSD likelihood kernel. Eigenvalues below n * eps * max are treated as zero; negative
        ones are clipped to zero when they are rounding (see :func:`~workbench.select.validation.clip_spectrum`)
        and refused with a :class:`SelectionError` when they are not.
    eig
        Precomputed ``(eigenvalues, eigenvectors)`` of L (as from ``np.linalg.eigh``).
    features
        (n, d) features B of the kernel L = B Bᵀ + ridge·I. With d < n the spectrum comes from the dual
        kernel Bᵀ B (d x d) and nothing n x n is formed (``dual`` is True); otherwise L is formed.
    ridge
        Added to L's diagonal (absolute), whichever way L is given.
    """

    def __init__(
        self,
        L: np.ndarray | None = None,
        eig: tuple[np.ndarray, np.ndarray] | None = None,
        features: np.ndarray | None = None,
        ridge: float = 0.0,
    ) -> None:
        if sum(x is not None for x in (L, eig, features)) != 1:
            raise SelectionError(
                "KDPP takes exactly one of L (the n x n kernel), eig=(values, vectors) or features=B (L = B Bᵀ)."
            )
        ridge = _check_ridge(ridge)
        self.features: np.ndarray | None = None
        if features is not None:
            B = _check_features(features)
            if B.shape[1] < B.shape[0]:
                self._init_dual(B, ridge)
                return
            L = B @ B.T
        if eig is None:
            L = _check_square(L)
            eigenvalues, eigenvectors = np.linalg.eigh((L + L.T) / 2.0)
        else:
            eigenvalues, eigenvectors = (np.asarray(a, dtype=np.float64) for a in eig)
        eigenvalues, _ = clip_spectrum(eigenvalues, _KERNEL, stacklevel=3)
        self.eigenvalues, self.rank = _numerical_rank(eigenvalues + ridge)
        self.eigenvectors = eigenvectors
        self.n = int(self.eigenvalues.size)
        self.n_explicit = self.n  # every eigenvector is stored
        self._tables: dict[int, np.ndarray] = {}

    def _init_dual(self, B: np.ndarray, ridge: float) -> None:
        n = B.shape[0]
        values, W = np.linalg.eigh(B.T @ B)
        values, _ = clip_spectrum(values, _KERNEL, stacklevel=4)
        values, r = _numerical_rank(values, size=n)
        kept = np.flatnonzero(values)
        self.features = B
        self._dual_values, self._dual_vectors = values[kept], W[:, kept]
        # eigenvalues of L: l_i + ridge on B's column space (explicit), then ridge on its complement
        self.eigenvalues, self.rank = _numerical_rank(np.concatenate([values[kept] + ridge, np.full(n - r, ridge)]))
        self.n = n
        self.n_explicit = r
        self._tables = {}

    @property
    def dual(self) -> bool:
        """Whether the spectrum came from the dual kernel Bᵀ B."""
        return self.features is not None

    def vectors(self, columns: np.ndarray) -> np.ndarray:
        """The explicit eigenvectors ``columns`` (< ``n_explicit``) of L as an (n, len(columns)) array."""
        columns = np.asarray(columns, dtype=int)
        if not self.dual:
            return self.eigenvectors[:, columns]
        W = self._dual_vectors[:, columns] / np.sqrt(self._dual_values[columns])
        return self.features @ W

    def _complement(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """m orthonormal vectors spanning a Haar-random subspace of the complement of B's column space."""
        G = rng.standard_normal((self.n, m))
        B, W = self.features, self._dual_vectors / self._dual_values
        for _ in range(2):  # projection onto col(B), B (BᵀB)⁺ Bᵀ G, removed twice for stability
            G = G - B @ (W @ (self._dual_vectors.T @ (B.T @ G)))
        return G

    def _table(self, k: int) -> np.ndarray:
        if k > self.rank:
            raise SelectionError(
                f"the kernel has numerical rank {self.rank} < k = {k}: every k-subset has determinant 0. "
                "Add a ridge to the kernel (L + 1e-6 * mean(diag(L)) * I, the `ridge` option of the dpp selector) "
                "or lower k."
            )
        if k not in self._tables:
            self._tables[k] = log_elementary_symmetric(self.eigenvalues, k)
        return self._tables[k]

    def select_eigenvectors(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """Phase 1: indices of the k eigenvectors of the elementary DPP to sample from.

        Indices >= ``n_explicit`` stand for vectors of the complement eigenspace (dual kernels only).
        """
        k = _check_k(k, self.n)
        table = self._table(k)
        with np.errstate(divide="ignore"):
            log_lam = np.log(self.eigenvalues)
        chosen = []
        remaining = k
        uniforms = rng.random(self.n)
        for m in range(self.n, 0, -1):
            log_p = log_lam[m - 1] + table[remaining - 1, m - 1] - table[remaining, m]
            if uniforms[m - 1] < np.exp(log_p):
                chosen.append(m - 1)
                remaining -= 1
                if remaining == 0:
                    break
        if remaining:
            raise SelectionError(
                "phase 1 of the k-DPP sampler failed to select k eigenvectors; the kernel is degenerate."
            )
        return np.array(sorted(chosen))

    def sample(self, k: int, random_state: RandomState = None, block: int | None = None) -> np.ndarray:
        """One exact sample: sorted indices of a k-subset drawn with probability ∝ det(L_S).

        ``block`` is passed to the pivoted Cholesky engine (None: chosen by size).
        """
        rng = check_random_state(random_state)
        columns = self.select_eigenvectors(k, rng)
        explicit = columns[columns < self.n_explicit]
        V = self.vectors(explicit)
        if self.dual:  # map-back and complement vectors are orthonormal only up to rounding: re-orthonormalize
            m = columns.size - explicit.size
            V = _orthonormal(np.hstack([V, self._complement(m, rng)]) if m else V)
        V = np.ascontiguousarray(V)
        order, _, _ = _pivoted_cholesky(
            lambda rows, cols: (V if rows is None else V[rows]) @ V[cols].T,
            np.einsum("ij,ij->i", V, V),
            k,
            rng=rng,
            block=block,
            factor=V,
        )
        return np.sort(order)

    def marginals(self, k: int) -> np.ndarray:
        """Exact P(i in S) for the k-DPP (see :func:`k_dpp_marginals`)."""
        k = _check_k(k, self.n)
        prefix = self._table(k)  # prefix[j, m] = log e_j(λ_1..λ_m)
        suffix = log_elementary_symmetric(self.eigenvalues[::-1], k - 1)  # suffix[j, m] = log e_j(last m)
        n = self.n
        # log e_{k-1}(all but item r) = logsumexp_a prefix[a, r] + suffix[k-1-a, n-1-r]
        a = np.arange(k)
        terms = prefix[a][:, :n] + suffix[k - 1 - a][:, n - 1 - np.arange(n)]
        log_minus = np.logaddexp.reduce(terms, axis=0)
        with np.errstate(divide="ignore"):
            log_weights = np.log(self.eigenvalues) + log_minus - prefix[k, n]
        weights = np.exp(log_weights)
        if not self.dual:
            return np.clip((self.eigenvectors**2) @ weights, 0.0, 1.0)
        # Σ_i w_i v_i v_iᵀ on col(B) is B W diag(w / l) Wᵀ Bᵀ; the complement (weight w_c each, all equal)
        # adds w_c (I - projection onto col(B)), whose diagonal is w_c (1 - diag of B W diag(1 / l) Wᵀ Bᵀ).
        r = self.n_explicit
        w_c = weights[r] if r < n else 0.0
        W = self._dual_vectors * ((weights[:r] - w_c) / self._dual_values)
        M = W @ self._dual_vectors.T
        diagonal = np.einsum("ij,ij->i", self.features @ M, self.features) + w_c
        return np.clip(diagonal, 0.0, 1.0)


def sample_k_dpp(L: np.ndarray, k: int, random_state: RandomState = None, n_samples: int | None = None) -> np.ndarray:
    """Exact sample of a k-DPP with likelihood kernel ``L``.

    Parameters
    ----------
    L
        (n, n) symmetric PSD kernel.
    k
        Subset size, 1 <= k <= rank(L).
    random_state
        Seed or Generator.
    n_samples
        None for one sample (a sorted index array of length k); an int for an (n_samples, k) array,
        reusing one eigendecomposition.

    Raises
    ------
    SelectionError
        L not square / not finite / not positive semi-definite beyond rounding, k out of range, or rank(L) < k.
    """
    L = _check_square(L)
    k = _check_k(k, L.shape[0])
    rng = check_random_state(random_state)
    dpp = KDPP(L)
    if n_samples is None:
        return dpp.sample(k, rng)
    return np.stack([dpp.sample(k, rng) for _ in range(int(n_samples))])


def k_dpp_marginals(L: np.ndarray, k: int) -> np.ndarray:
    """Exact inclusion probabilities P(i in S) of the k-DPP with kernel ``L``.

    With L = Σ_m λ_m v_m v_mᵀ: P(i in S) = Σ_m v_m[i]^2 λ_m e_{k-1}(λ without m) / e_k(λ). The
    leave-one-out polynomials are assembled from prefix and suffix tables of log elementary symmetric
    polynomials (all terms positive, so no cancellation); the marginals sum to k.
    """
    L = _check_square(L)
    k = _check_k(k, L.shape[0])
    return KDPP(L).marginals(k)


#: the engine updates every residual at every step while the factor C (n x k) and the column work (n x width)
#: hold at most this many numbers (4 MiB: cache-resident); beyond, it works in blocks of :data:`BLOCK`
UNBLOCKED_MAX = 2**19
#: block size of the blocked engine: explicit kernel or features, and projection factor. A factor's refresh is
#: one product V @ (r x b), whose BLAS efficiency grows with b; 64 was 10-20% faster than 32 on the sampler's
#: projection phase at n = 4096, k = 512 (fewer, wider products; more stale bounds to thin)
BLOCK = {"columns": 32, "factor": 64}


def _pivoted_cholesky(
    columns: Columns,
    diag: np.ndarray,
    k: int,
    rng: np.random.Generator | None = None,
    block: int | None = None,
    eps: float = 0.0,
    factor: np.ndarray | None = None,
    width: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pivoted Cholesky of a PSD kernel given by ``columns(rows, cols)`` and its diagonal.

    ``block=1`` updates all residuals exactly after every pivot (:func:`_pivoted_cholesky_unblocked`);
    a larger block uses the blocked engine below; None picks the first when n * (k + ``width``) <=
    :data:`UNBLOCKED_MAX` (``width``: the numbers per item read to compute one kernel column: 0 for an
    explicit L, d for features, r for a factor).

    When the kernel is a projection V Vᵀ with orthonormal columns ``factor`` = V (n x r), the factor
    is C = V Q with Q an orthonormal basis of the pivots' rows, so a block refresh costs one product
    V @ (k x s) instead of two.

    With ``rng=None`` the pivot is the largest residual variance (greedy MAP; stops early when that is
    <= eps). With a Generator the pivot is drawn with probability ∝ residual variance (the chain rule
    of a projection DPP when the kernel is a projection).

    Returns the pivot order, the residual variance of each pivot when it was chosen, and the final
    residual variance of every item (selected items get 0).
    """
    n = diag.size
    if factor is not None:
        width = max(width, factor.shape[1])
    if block is None:
        block = 1 if n * (k + width) <= UNBLOCKED_MAX else BLOCK["columns" if factor is None else "factor"]
    if block == 1:
        return _pivoted_cholesky_unblocked(columns, diag, k, rng, eps)
    C = np.zeros((n, k))
    base = np.array(diag, dtype=np.float64)  # exact residuals at the start of the current block
    bounds = base.copy()  # upper bounds of the current residuals
    selected = np.zeros(n, dtype=bool)
    order: list[int] = []
    gains: list[float] = []
    tri_inv = np.zeros((block, block))  # inverse of the current block's Cholesky factor
    panel_old = np.zeros((block, k))  # rows C[j, :t0] of the block's pivots
    panel: list[int] = []
    t0 = 0
    Q = None if factor is None else np.zeros((factor.shape[1], k))

    def evaluate(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = len(panel)
        if s == 0:
            return base[rows], np.zeros((rows.size, 0))
        a = columns(rows, np.asarray(panel)) - C[rows, :t0] @ panel_old[:s, :t0].T
        x = a @ tri_inv[:s, :s].T
        return base[rows] - np.einsum("ij,ij->i", x, x), x

    def flush() -> None:
        nonlocal t0, base, bounds
        s = len(panel)
        if s == 0:
            return
        cols = np.asarray(panel)
        if factor is None:
            a = columns(None, cols) - C[:, :t0] @ panel_old[:s, :t0].T
            new = a @ tri_inv[:s, :s].T
        else:
            w = factor[cols].T
            for _ in range(2):  # block Gram-Schmidt against the earlier pivots' basis, twice for stability
                w = w - Q[:, :t0] @ (Q[:, :t0].T @ w)
            Q[:, t0 : t0 + s] = w @ tri_inv[:s, :s].T
            new = factor @ Q[:, t0 : t0 + s]
        C[:, t0 : t0 + s] = new
        base = base - np.einsum("ij,ij->i", new, new)
        base[selected] = 0.0
        t0 += s
        panel.clear()
        bounds = base.copy()

    def accept(j: int, value: float, row: np.ndarray) -> None:
        s = len(panel)
        d = np.sqrt(value)
        # inverse of the block's lower-triangular factor, grown by one row: [[T, 0], [r, d]]^-1
        tri_inv[s, :s] = -(row @ tri_inv[:s, :s]) / d
        tri_inv[s, s] = 1.0 / d
        panel_old[s, :t0] = C[j, :t0]
        panel.append(j)
        selected[j] = True
        order.append(j)
        gains.append(value)

    while len(order) < k:
        if len(panel) == block:
            flush()
        if rng is None:
            j, value, row = lazy_argmax(bounds, selected, evaluate)
            if value <= eps:
                break
        else:
            j, value, row = _sampled_pivot(bounds, selected, evaluate, rng)
        accept(j, value, row)
    flush()
    return np.asarray(order, dtype=int), np.asarray(gains), np.clip(base, 0.0, None)


def _pivoted_cholesky_unblocked(
    columns: Columns, diag: np.ndarray, k: int, rng: np.random.Generator | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pivoted Cholesky one pivot at a time: after each pivot every residual is updated exactly.

    A step is one matrix-vector product with the factor's rows so far (C is kept k x n, row-major), so
    the work is O(n k^2) in a few NumPy calls per step; fast while C stays in cache. Same contract as
    :func:`_pivoted_cholesky`; selected items carry a residual of -inf while it runs.
    """
    n = diag.size
    C = np.zeros((k, n))
    residual = np.array(diag, dtype=np.float64)
    order: list[int] = []
    gains: list[float] = []
    for t in range(k):
        if rng is None:
            j = int(np.argmax(residual))
            value = float(residual[j])
            if not value > eps:
                break
        else:
            cumulative = np.cumsum(np.maximum(residual, 0.0))
            total = cumulative[-1]
            if not total > 0:
                raise SelectionError("the projection kernel has no mass left; the eigenvectors are degenerate.")
            j = min(int(np.searchsorted(cumulative, rng.random() * total, side="right")), n - 1)
            value = float(residual[j])
        column = columns(None, np.array([j]))[:, 0]
        if t:
            column = column - C[:t, j] @ C[:t]
        column *= 1.0 / np.sqrt(value)
        C[t] = column
        residual -= column * column
        residual[j] = -np.inf
        order.append(j)
        gains.append(value)
    return np.asarray(order, dtype=int), np.asarray(gains), np.clip(residual, 0.0, None)


def _sampled_pivot(bounds, selected, evaluate, rng):
    """Draw a pivot ∝ exact residual by thinning proposals drawn ∝ the (larger) bounds."""
    weights = np.where(selected, 0.0, np.clip(bounds, 0.0, None))
    while True:
        cumulative = np.cumsum(weights)
        total = cumulative[-1]
        if not total > 0:
            raise SelectionError("the projection kernel has no mass left; the eigenvectors are degenerate.")
        proposals = np.searchsorted(cumulative, rng.random(8) * total, side="right")
        proposals = np.minimum(proposals, weights.size - 1)
        unique, inverse = np.unique(proposals, return_inverse=True)
        exact, rows = evaluate(unique)
        exact = np.clip(exact, 0.0, None)
        accept = rng.random(proposals.size)
        for t, p in enumerate(proposals):
            i = inverse[t]
            bound = weights[p]
            # weights[p] may already be lowered by an earlier rejection in this batch; the proposal was
            # drawn with the old value, so the acceptance uses the value it was drawn with.
            if accept[t] * bound < exact[i]:
                return int(p), float(exact[i]), rows[i]
        weights[unique] = exact
        bounds[unique] = exact


def greedy_map_dpp(
    L: np.ndarray | None,
    k: int,
    eps: float | None = None,
    block: int | None = None,
    features: np.ndarray | None = None,
    ridge: float = 0.0,
) -> np.ndarray:
    """Greedy MAP of a DPP (Chen, Zhang & Zhou 2018): indices in order of selection.

    Each step adds the item with the largest residual variance L_ii - L_iS L_SS^{-1} L_Si, i.e. the
    largest increase of log det(L_S). If the best residual is <= ``eps`` (default 1e-10 * max diag)
    before k items are chosen (rank(L) < k), the rest are filled by the largest remaining diagonal
    entries L_ii, with a ``UserWarning``.

    Give the kernel as ``L`` or (with ``L=None``) as ``features`` B, L = B Bᵀ + ``ridge``·I: then the
    kernel's columns come from B's rows (O(n k d)) and L is never formed. ``block``: see the engine
    (None: by size).
    """
    order, _, _ = greedy_map_details(L, k, eps=eps, block=block, features=features, ridge=ridge)
    return order


def greedy_map_details(
    L: np.ndarray | None,
    k: int,
    eps: float | None = None,
    block: int | None = None,
    features: np.ndarray | None = None,
    ridge: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`greedy_map_dpp`, also returning the gain (residual variance) of each pick and the
    final residual variance of every item (0 for the picked ones, and for filled ones the gain is 0)."""
    if (L is None) == (features is None):
        raise SelectionError("greedy MAP takes either the kernel L or features=B (L = B Bᵀ + ridge·I), not both.")
    ridge = _check_ridge(ridge)
    if features is not None:
        B = _check_features(features)
        diag = np.einsum("ij,ij->i", B, B) + ridge
        columns, width = feature_columns(B, ridge), B.shape[1]
    else:
        L = _check_square(L)
        if ridge:
            L = L + ridge * np.eye(L.shape[0])
        diag = np.diag(L).copy()
        width = 0

        def columns(rows: np.ndarray | None, cols: np.ndarray) -> np.ndarray:
            return L[cols].T if rows is None else L[np.ix_(rows, cols)]

    n = diag.size
    k = _check_k(k, n)
    if eps is None:
        eps = 1e-10 * max(float(diag.max()), 0.0)
    order, gains, residual = _pivoted_cholesky(columns, diag, k, block=block, eps=eps, width=width)
    if order.size < k:
        warnings.warn(
            f"the kernel has numerical rank {order.size} < k = {k}; the remaining {k - order.size} items are "
            "the ones with the largest diagonal L_ii.",
            UserWarning,
            stacklevel=2,
        )
        rest = np.setdiff1d(np.arange(n), order)
        fill = rest[np.argsort(-diag[rest], kind="stable")[: k - order.size]]
        order = np.concatenate([order, fill])
        gains = np.concatenate([gains, np.zeros(fill.size)])
        residual[fill] = 0.0
    return order, gains, residual


def sample_k_dpp_dppy(L: np.ndarray, k: int, random_state: RandomState = None) -> np.ndarray:
    """Exact k-DPP sample with dppy (``FiniteDPP('likelihood', L_eig_dec=...).sample_exact_k_dpp``).

    L's spectrum is checked as in :class:`KDPP`. The k-DPP does not change when L is scaled, so L is first divided by
    c = (tr L / n) * C(n, k)^(1/k); then e_k of the scaled eigenvalues is at most 1 (Maclaurin's
    inequality) and dppy's plain elementary-symmetric-polynomial table does not overflow. dppy's
    failures on ill-conditioned kernels are raised as :class:`SelectionError`.
    """
    from math import lgamma

    from dppy.finite_dpps import FiniteDPP

    from workbench.utils import legacy_random_state

    L = _check_square(L)
    n = L.shape[0]
    k = _check_k(k, n)
    values, vectors = np.linalg.eigh((L + L.T) / 2.0)
    values, _ = clip_spectrum(values, _KERNEL, stacklevel=3)
    mean = float(values.sum()) / n
    if not mean > 0:
        raise SelectionError("the kernel has a non-positive trace; a k-DPP kernel must be PSD and non-zero.")
    log_binom = lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)
    scale = mean * np.exp(log_binom / k)
    try:
        with np.errstate(all="ignore"):
            sample = FiniteDPP("likelihood", L_eig_dec=(values / scale, vectors)).sample_exact_k_dpp(
                size=k, random_state=legacy_random_state(random_state)
            )
        sample = np.asarray(sample, dtype=int)
    except Exception as exc:  # dppy raises bare ValueErrors (e.g. "probabilities do not sum to 1")
        raise SelectionError(
            f"dppy could not sample the k-DPP ({type(exc).__name__}: {exc}); the kernel is probably ill-conditioned. "
            "Use backend='workbench' or regularize the kernel (a ridge, L + eps * I)."
        ) from exc
    if sample.size != k or np.unique(sample).size != k or sample.min() < 0 or sample.max() >= n:
        raise SelectionError(
            f"dppy returned an invalid k-DPP sample ({sample.size} items, {np.unique(sample).size} distinct, k = {k}); "
            "the kernel is probably ill-conditioned. Use backend='workbench' or regularize the kernel."
        )
    return np.sort(sample)
