"""Checks of what selectors read: unit views, features and kernels."""

from __future__ import annotations

import warnings

import numpy as np

from workbench.errors import SelectionError
from workbench.unitview import UnitView, as_float_array

#: relative asymmetry ||K - Kᵀ||_F / ||K||_F below which a kernel is symmetrized silently
SILENT_ASYMMETRY = 1e-10
#: relative asymmetry up to which a kernel is symmetrized with a warning (above: refused)
MAX_ASYMMETRY = 1e-3
#: relative negative eigenvalue |λ_min| / λ_max below which a kernel counts as PSD (rounding)
SILENT_NEGATIVE = 1e-10
#: relative negative eigenvalue up to which negative eigenvalues are clipped with a warning (above: refused)
MAX_NEGATIVE = 1e-3


def as_unit_view(view: UnitView | np.ndarray, group: str = "units") -> UnitView:
    """A :class:`UnitView` as it is, or a raw (n, d) feature array wrapped in one."""
    if isinstance(view, UnitView):
        return view
    if isinstance(view, np.ndarray) or isinstance(view, (list, tuple)):
        return UnitView(group=group, features=view)
    raise SelectionError(
        f"selectors read a workbench.unitview.UnitView or an (n, d) feature array, got {type(view).__name__}."
    )


def check_finite(array: np.ndarray, name: str, group: str) -> np.ndarray:
    """``array`` as float64, refusing values that are not numbers (naming the dtype), NaN and infinite values."""
    array = as_float_array(array, name, group)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise SelectionError(
            f"group {group!r}: {name} contain {bad} NaN or infinite values; fix the weights or activations they "
            "come from (a diverged training run?) before selecting."
        )
    return array


def require(view: UnitView, name: str, selector: str, hint: str = "") -> np.ndarray:
    """The view's array ``name`` (finite), or a SelectionError naming it when it is missing."""
    value = getattr(view, name)
    if value is None:
        raise SelectionError(
            f"selector {selector!r} needs view.{name} but the unit view of group {view.group!r} has none. "
            f"{hint or 'Build the view with that array (NetworkGraph.unit_view provides it).'}"
        )
    return check_finite(value, f"view.{name}", view.group)


def check_symmetric(kernel: np.ndarray, group: str) -> np.ndarray:
    """Symmetrize a nearly symmetric kernel (warning when the asymmetry is not just rounding); refuse others."""
    norm = float(np.linalg.norm(kernel))
    asym = float(np.linalg.norm(kernel - kernel.T)) / norm if norm > 0 else 0.0
    if asym > MAX_ASYMMETRY:
        raise SelectionError(
            f"group {group!r}: the kernel is not symmetric (relative asymmetry ||K - Kᵀ|| / ||K|| = {asym:.3g} > "
            f"{MAX_ASYMMETRY:g}); a similarity must be symmetric: pass (K + K.T) / 2 if that is what you mean."
        )
    if asym > SILENT_ASYMMETRY:
        warnings.warn(
            f"group {group!r}: the kernel is slightly asymmetric (relative asymmetry {asym:.3g}); using (K + Kᵀ) / 2.",
            UserWarning,
            stacklevel=3,
        )
    return (kernel + kernel.T) / 2.0


def clip_spectrum(eigenvalues: np.ndarray, subject: str, stacklevel: int = 3) -> tuple[np.ndarray, bool]:
    """The eigenvalues of a kernel that must be PSD, with negative rounding clipped to 0.

    Relative to the largest ``|eigenvalue|``: negatives down to ``SILENT_NEGATIVE`` are clipped silently,
    down to ``MAX_NEGATIVE`` with a warning; larger ones are refused with a :class:`SelectionError` naming
    ``subject``. Also returns whether the clipping was more than rounding (and warned about).
    """
    values = np.asarray(eigenvalues, dtype=np.float64)
    top = float(np.max(np.abs(values))) if values.size else 0.0
    lowest = float(np.min(values)) if values.size else 0.0
    if top == 0 or lowest >= -SILENT_NEGATIVE * top:
        return np.clip(values, 0.0, None), False
    if -lowest > MAX_NEGATIVE * top:
        negative = int(np.count_nonzero(values < -MAX_NEGATIVE * top))
        raise SelectionError(
            f"{subject} is not positive semi-definite: {negative} of its {values.size} eigenvalues are negative "
            f"beyond rounding, the smallest {lowest:.3g} against a largest of {float(np.max(values)):.3g} (tolerance "
            f"{MAX_NEGATIVE:g} of the largest |eigenvalue|). A DPP or log-det objective needs a PSD kernel such as a "
            "cosine, linear or rbf similarity of features (workbench.unitview.similarity_matrix)."
        )
    warnings.warn(
        f"{subject} has small negative eigenvalues (down to {lowest:.3g}, largest {top:.3g}); they are clipped to 0.",
        UserWarning,
        stacklevel=stacklevel,
    )
    return np.clip(values, 0.0, None), True


def check_psd(kernel: np.ndarray, group: str) -> np.ndarray:
    """A PSD kernel: small negative eigenvalues are clipped with a warning, large ones refused."""
    eigenvalues, eigenvectors = np.linalg.eigh(kernel)
    clipped, changed = clip_spectrum(eigenvalues, f"group {group!r}: the kernel", stacklevel=4)
    if not changed:
        return kernel
    rebuilt = (eigenvectors * clipped) @ eigenvectors.T
    return (rebuilt + rebuilt.T) / 2.0


def check_not_constant(view: UnitView, selector: str) -> None:
    """Refuse views whose units are indistinguishable (every similarity is the same)."""
    if view.kernel is not None:
        kernel = np.asarray(view.kernel)
        if kernel.size > 1 and np.ptp(kernel) == 0:
            raise SelectionError(
                f"selector {selector!r}: every entry of the kernel of group {view.group!r} is the same, so no unit "
                "is more similar to one than to another; use magnitude or random selection, or other features."
            )
        return
    features = view.features
    if features.shape[0] > 1 and np.all(np.ptp(features, axis=0) == 0):
        raise SelectionError(
            f"selector {selector!r}: the features of group {view.group!r} are constant (all {features.shape[0]} "
            "units have identical rows), so similarities cannot tell units apart; use magnitude or random "
            "selection, or features from another source (activations instead of weights)."
        )


def similarity(view: UnitView, selector: str, psd: bool = False) -> np.ndarray:
    """The view's (n, n) similarity, checked: finite, square, symmetric and, when ``psd``, PSD."""
    check_finite(view.features, "features", view.group)
    kernel = check_finite(view.similarity(), "kernel", view.group)
    n = view.n_units
    if kernel.shape != (n, n):
        raise SelectionError(f"group {view.group!r}: the kernel has shape {kernel.shape}, expected ({n}, {n}).")
    kernel = check_symmetric(kernel, view.group)
    if psd:
        kernel = check_psd(kernel, view.group)
    return kernel
