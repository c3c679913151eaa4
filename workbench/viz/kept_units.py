"""Kept units of a plan, whatever form it comes in (a surgery Plan, {group: Selection}, {group: indices})."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from workbench.errors import ConfigError


def kept_units(plan: Any) -> dict[str, np.ndarray]:
    """Group name -> sorted kept unit indices.

    ``plan`` is a :class:`workbench.surgery.Plan` (anything with ``selections``), or a mapping from group
    name to a :class:`workbench.selection.Selection` (anything with ``keep``) or to an array of indices.
    """
    selections = getattr(plan, "selections", plan)
    if not isinstance(selections, Mapping):
        raise ConfigError(
            f"a plan must be a Plan or a mapping group -> Selection / kept indices, got {type(plan).__name__}."
        )
    out = {}
    for group, entry in selections.items():
        keep = np.asarray(getattr(entry, "keep", entry))
        if keep.ndim != 1 or (keep.size and not np.issubdtype(keep.dtype, np.integer)):
            raise ConfigError(f"the kept units of group {group!r} must be a 1-d array of unit indices.")
        out[str(group)] = np.unique(keep.astype(np.int64))
    return out


def check_groups(kept: Mapping[str, np.ndarray], sizes: Mapping[str, int]) -> None:
    """Raise :class:`ConfigError` when a plan names a group the graph lacks or a unit out of range."""
    for group, keep in kept.items():
        if group not in sizes:
            raise ConfigError(
                f"the plan names group {group!r}, which this graph does not have; groups: {', '.join(sizes)}."
            )
        if keep.size and (keep.min() < 0 or keep.max() >= sizes[group]):
            raise ConfigError(f"the plan keeps units of {group!r} outside [0, {sizes[group] - 1}].")
