"""Validation of data-set options (ints and fractions), with messages that name the option."""

from __future__ import annotations

import numpy as np

from workbench.errors import ConfigError


def check_int(value: object, what: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int if it is one in ``[low, high]``; a :class:`ConfigError` naming ``what`` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{what} must be an int {bounds}, got {value!r}.")
    return int(value)


def check_fraction(value: object, what: str) -> float:
    """Return ``value`` as a float if it lies strictly between 0 and 1; a :class:`ConfigError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{what} must be a number strictly between 0 and 1, got {value!r}.")
    return float(value)
