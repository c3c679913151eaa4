"""The data contract between selectors and surgery: :class:`Selection` and the budget rule :func:`resolve_budget`.

Selectors (:mod:`workbench.select`) make Selections, surgery (:mod:`workbench.surgery`) reads them; neither
package needs the other, so the contract lives here, beside :mod:`workbench.unitview`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.errors import SelectionError


def resolve_budget(n: int, budget: int | float) -> int:
    """Number of units to keep out of ``n``.

    ``budget`` is an int k in [1, n], or a float fraction in (0, 1] giving k = max(1, round(fraction * n))
    (rounded half up). Anything else (0, k > n, fraction <= 0 or > 1, NaN, bool, str) raises
    :class:`SelectionError`.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SelectionError(f"the number of units must be a positive int, got {n!r}.")
    n = int(n)
    if isinstance(budget, (bool, np.bool_)):
        raise SelectionError(
            f"budget must be an int k in [1, {n}] or a float fraction in (0, 1], got the bool {budget!r}."
        )
    if isinstance(budget, (int, np.integer)):
        if not 1 <= budget <= n:
            raise SelectionError(
                f"budget k = {int(budget)} is out of range: keep between 1 and {n} units (the group size)."
            )
        return int(budget)
    if isinstance(budget, (float, np.floating)):
        fraction = float(budget)
        if math.isnan(fraction) or not 0.0 < fraction <= 1.0:
            raise SelectionError(
                f"budget fraction {budget!r} is out of range: give a fraction in (0, 1] or an int k in [1, {n}]."
            )
        return max(1, min(n, int(math.floor(fraction * n + 0.5))))
    raise SelectionError(
        f"budget must be an int k in [1, {n}] or a float fraction in (0, 1], got {type(budget).__name__} {budget!r}."
    )


def _index_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise SelectionError(f"Selection.{name} must be a 1-d array, got shape {array.shape}.")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise SelectionError(f"Selection.{name} must hold integer unit indices, got {array.dtype} values.")
    return array.astype(np.int64)


@dataclass
class Selection:
    """Which units of a group to keep, and where each dropped unit goes.

    Attributes
    ----------
    group
        Name of the prunable group.
    n_units
        Number of units in the group.
    keep
        Sorted unique indices of the kept units.
    assign
        (n_units,) ``assign[i]`` is the kept unit that unit i maps to (kept units map to themselves);
        merging fuses each dropped unit into its target.
    scores
        (n_units,) per-unit scores, higher = more worth keeping unless the selector documents otherwise.
    method
        Name of the selector that made it.
    params
        The selector's parameters (JSON-safe).
    info
        What the fit found beyond the choice, JSON-safe (e.g. the block model fitted and any fallback used).
    """

    group: str
    n_units: int
    keep: np.ndarray
    assign: np.ndarray
    scores: np.ndarray
    method: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.n_units, bool) or not isinstance(self.n_units, (int, np.integer)) or self.n_units < 1:
            raise SelectionError(f"Selection {self.group!r}: n_units must be a positive int, got {self.n_units!r}.")
        n = self.n_units = int(self.n_units)
        keep = _index_array(self.keep, "keep")
        if keep.size == 0:
            raise SelectionError(f"Selection {self.group!r}: keep is empty; at least one unit must be kept.")
        if keep.min() < 0 or keep.max() >= n:
            raise SelectionError(f"Selection {self.group!r}: keep has indices outside [0, {n - 1}].")
        if np.unique(keep).size != keep.size:
            raise SelectionError(f"Selection {self.group!r}: keep has repeated indices.")
        self.keep = np.sort(keep)
        assign = _index_array(self.assign, "assign")
        if assign.size != n:
            raise SelectionError(f"Selection {self.group!r}: assign has {assign.size} entries for {n} units.")
        kept = np.zeros(n, dtype=bool)
        kept[self.keep] = True
        if assign.min() < 0 or assign.max() >= n or not np.all(kept[assign]):
            bad = np.flatnonzero((assign < 0) | (assign >= n) | ~kept[np.clip(assign, 0, n - 1)])
            raise SelectionError(
                f"Selection {self.group!r}: assign must map every unit to a kept unit; units {bad[:10].tolist()} do not."
            )
        if not np.array_equal(assign[self.keep], self.keep):
            raise SelectionError(f"Selection {self.group!r}: kept units must be assigned to themselves.")
        self.assign = assign
        scores = np.asarray(self.scores, dtype=np.float64)
        if scores.shape != (n,):
            raise SelectionError(f"Selection {self.group!r}: scores has shape {scores.shape}, expected ({n},).")
        self.scores = scores

    @property
    def k(self) -> int:
        """Number of kept units."""
        return int(self.keep.size)

    @property
    def fraction(self) -> float:
        """Fraction of units kept."""
        return self.k / self.n_units

    @property
    def dropped(self) -> np.ndarray:
        """Sorted indices of the dropped units."""
        mask = np.ones(self.n_units, dtype=bool)
        mask[self.keep] = False
        return np.flatnonzero(mask)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (plain lists and numbers)."""
        return {
            "group": self.group,
            "n_units": self.n_units,
            "keep": self.keep.tolist(),
            "assign": self.assign.tolist(),
            "scores": [float(s) if np.isfinite(s) else None for s in self.scores],
            "method": self.method,
            "params": json_safe(self.params),
            "info": json_safe(self.info),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        """Inverse of :meth:`to_dict`."""
        try:
            scores = [np.nan if s is None else s for s in data["scores"]]
            return cls(
                group=data["group"],
                n_units=data["n_units"],
                keep=np.asarray(data["keep"], dtype=np.int64),
                assign=np.asarray(data["assign"], dtype=np.int64),
                scores=np.asarray(scores, dtype=np.float64),
                method=data.get("method", ""),
                params=dict(data.get("params", {})),
                info=dict(data.get("info", {})),
            )
        except KeyError as exc:
            raise SelectionError(f"a Selection dict needs the key {exc.args[0]!r}.") from None


def block_cells(n: int, blocks: Any) -> np.ndarray:
    """Cell of each unit in the common refinement of the block labelings (-1: in no block)."""
    if not len(blocks):
        return np.full(n, -1, dtype=np.int64)
    stacked = np.stack([np.asarray(b, dtype=np.int64) for b in blocks])
    inside = (stacked >= 0).any(axis=0)
    _, cell = np.unique(stacked.T, axis=0, return_inverse=True)
    return np.where(inside, cell.reshape(-1), -1)


def constraint_violation(keep: Any, n_units: int, blocks: Any = (), cover: Any = ()) -> str | None:
    """Why kept units ``keep`` break a group's constraints (None when they do not).

    ``blocks``: (n_units,) labelings whose blocks must each keep the same number of units (-1: no block);
    ``cover``: unit sets of which at least one must be kept.
    """
    kept = np.zeros(n_units, dtype=bool)
    kept[np.asarray(keep, dtype=np.int64)] = True
    for labels in blocks:
        labels = np.asarray(labels)
        counts = {int(b): int(kept[labels == b].sum()) for b in np.unique(labels[labels >= 0])}
        if len(set(counts.values())) > 1 or 0 in counts.values():
            found = sorted(set(counts.values()))
            return (
                f"its units fall into {len(counts)} blocks of a grouped layer that must each keep the same number "
                f"(at least one), but keep {found[0]} to {found[-1]}"
            )
    for units in cover:
        if not kept[np.asarray(units, dtype=np.int64)].any():
            return f"it removes all {len(units)} units of one of its layers"
    return None


def constrained(selection: Selection, *, fixed: Any = None, blocks: Any = (), cover: Any = ()) -> Selection:
    """``selection`` made to satisfy its group's constraints, changing as little as it can.

    Fixed units are kept; every block of ``blocks`` (see :func:`constraint_violation`) keeps the same
    number of units (the kept fraction of the blocked units, rounded, at least one), chosen among the
    selector's kept units first and then by score; every set of ``cover`` keeps at least one unit (its
    best). Dropped units whose target went are assigned to the best kept unit of their block (or of the
    group); newly kept units map to themselves.
    """
    n = selection.n_units
    kept = np.zeros(n, dtype=bool)
    kept[selection.keep] = True
    must = np.zeros(n, dtype=bool)
    if fixed is not None:
        must[np.asarray(fixed, dtype=bool)] = True
    scores = np.nan_to_num(np.asarray(selection.scores, dtype=np.float64), nan=-np.inf)
    priority = np.lexsort((scores, kept, must))[::-1]  # best first: fixed, then kept, then score
    rank = np.empty(n, dtype=np.int64)
    rank[priority] = np.arange(n)
    new = kept | must
    cell = block_cells(n, blocks)
    inside = cell >= 0
    if inside.any():
        cells, sizes = np.unique(cell[inside], return_counts=True)
        fraction = kept[inside].sum() / inside.sum()  # the selector's budget; fixed units come on top
        least = max(1, max(int(must[cell == c].sum()) for c in cells))
        for c, size in zip(cells, sizes):
            members = np.flatnonzero(cell == c)
            target = min(size, max(least, int(np.floor(fraction * size + 0.5))))
            new[members] = False
            new[members[np.argsort(rank[members])[:target]]] = True
    for units in cover:
        units = np.asarray(units, dtype=np.int64)
        if len(units) and not new[units].any():
            new[units[np.argmin(rank[units])]] = True
    if np.array_equal(new, kept):
        return selection
    keep = np.flatnonzero(new)
    assign = np.asarray(selection.assign).copy()
    for d in np.flatnonzero(~new):
        if not new[assign[d]]:
            near = keep[cell[keep] == cell[d]] if cell[d] >= 0 else keep
            pool = near if len(near) else keep
            assign[d] = pool[np.argmin(rank[pool])]
    assign[keep] = keep
    return Selection(
        group=selection.group,
        n_units=n,
        keep=keep,
        assign=assign,
        scores=selection.scores,
        method=selection.method,
        params=selection.params,
        info={**selection.info, "constrained": int(np.sum(new != kept))},
    )


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: dicts with str keys, lists, bool / int / float / str / None (numpy scalars and
    arrays converted, a random Generator named, anything else by its ``repr``)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, np.random.Generator):
        return "Generator"
    return repr(value)
