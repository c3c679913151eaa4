"""Validation of data-set options (ints and fractions), with messages that name the option
(:mod:`workbench.numeric` underneath)."""

from __future__ import annotations

from workbench.numeric import as_float, as_int


def check_int(value: object, what: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int if it is one in ``[low, high]``; a :class:`ConfigError` naming ``what`` otherwise."""
    return as_int(value, what, low=low, high=high)


def check_fraction(value: object, what: str) -> float:
    """Return ``value`` as a float if it lies strictly between 0 and 1; a :class:`ConfigError` otherwise."""
    return as_float(value, what, low=0.0, high=1.0, low_open=True, high_open=True)
