"""Split names and deterministic ways of cutting a data set into train / val / test parts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from workbench.errors import ConfigError, DataError, closest
from workbench.utils import RandomState, check_random_state

SPLITS = ("train", "val", "test", "trainval")


def check_split(split: str, name: str) -> str:
    """Return ``split`` if it is a known split name; a :class:`ConfigError` naming the allowed ones otherwise."""
    if split not in SPLITS:
        raise ConfigError(
            f"unknown split {split!r} for data set {name!r}.{closest(str(split), SPLITS)} "
            "Allowed splits: 'train', 'val', 'test', and 'trainval' (train and val together)."
        )
    return split


def stratified_split(labels: np.ndarray, fractions: Sequence[float], random_state: RandomState = 0) -> list[np.ndarray]:
    """Cut positions ``0..len(labels)-1`` into disjoint parts that keep the class proportions.

    Within each class the positions are shuffled with ``random_state`` and cut at the cumulative
    ``fractions`` (rounded), so the same labels and seed always give the same parts.

    Returns
    -------
    list of numpy.ndarray
        One sorted int64 position array per fraction; together they cover every position once.
    """
    fractions = np.asarray(fractions, dtype=float)
    if fractions.ndim != 1 or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ConfigError(f"split fractions must be non-negative and sum to 1, got {fractions.tolist()}.")
    rng = check_random_state(random_state)
    labels = np.asarray(labels)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(members)).astype(int)
        for part, chunk in zip(parts, np.split(members, cuts)):
            part.append(chunk)
    return [np.sort(np.concatenate(part)).astype(np.int64) if part else np.empty(0, np.int64) for part in parts]


def contiguous_split(n: int, fractions: Sequence[float]) -> list[np.ndarray]:
    """Cut positions ``0..n-1`` into consecutive blocks of the given ``fractions`` (for i.i.d. generated data)."""
    fractions = np.asarray(fractions, dtype=float)
    cuts = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [block.astype(np.int64) for block in np.split(np.arange(n), cuts)]


def fractions_hint(**fractions: float) -> str:
    """What to change when a split cut with the held-out ``fractions`` (``val_fraction=0.1``, ...) is empty."""
    shown = " and ".join(f"{name} (now {value:g})" for name, value in fractions.items())
    return f"change {shown} so that every split keeps samples, or give the data set more samples"


def pick_split(split: str, parts: Mapping[str, np.ndarray], hint: str = "") -> np.ndarray:
    """Positions of ``split`` given the ``"train"``, ``"val"`` and ``"test"`` parts (``"trainval"`` = train + val).

    Raises
    ------
    DataError
        The split is empty; the message gives the size of every part and ``hint`` (the options that cut them).
    """
    rows = np.sort(np.concatenate([parts["train"], parts["val"]])) if split == "trainval" else parts[split]
    if len(rows) == 0:
        sizes = ", ".join(f"{name} {len(part)}" for name, part in parts.items())
        total = sum(len(part) for part in parts.values())
        advice = hint or "give the data set more samples"
        raise DataError(f"split {split!r} is empty: the {total} samples are cut into {sizes}; {advice}.")
    return rows
