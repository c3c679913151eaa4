"""One check for every numeric setting: command-line flags, study files, checkpoint specs and API arguments.

A setting is a number when it is a Python or numpy integer or real scalar, or a 0-d array (numpy or torch) of
one. :func:`as_int` and :func:`as_float` return it as a plain ``int`` or ``float`` inside the range asked for,
and refuse, with an error that names the setting, the value and the range:

- what is not a number: ``bool`` (``True`` is not the seed 1), ``str``, ``None``, lists, complex numbers;
- numbers that are not finite: NaN, +-infinity (and integers too large to be a float, for a float setting);
- integers that do not fit in 64 bits (a seed, a width or a batch beyond :data:`INT64_MAX` cannot be stored,
  hashed with numpy or passed to torch), or that lie outside the range;
- for an integer setting, fractional numbers; integral floats (``2.0``) only where the caller allows them.

The error is a :class:`~workbench.errors.ConfigError` unless the caller passes another
:class:`~workbench.errors.WorkbenchError` subclass (``CompressionError`` for a transform's parameter).
:func:`unusable_numbers` finds NaN, infinities and over-long integers anywhere in nested lists and dicts (the
free-form parts of a study file: model arguments, selector parameters, pipeline steps).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from workbench.errors import ConfigError, WorkbenchError

#: The range of a signed 64-bit integer (numpy's int64, SQLite's INTEGER, torch's int64).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: Longest wait, in seconds, any setting accepts (a Dask scheduler or worker timeout): a week. Larger values
#: overflow the clocks of the libraries that wait.
MAX_WAIT_SECONDS = 7 * 24 * 3600.0


def _shown(value: Any) -> str:
    """``value`` as an error message shows it: numpy scalars as the plain number, long texts cut."""
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(bound: float) -> str:
    """A bound as a message shows it: whole numbers in full (``1048576``, not ``1.04858e+06``)."""
    if isinstance(bound, int) or (float(bound).is_integer() and abs(bound) < 1e16):
        return str(int(bound))
    return f"{bound:g}"


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """`` in [0, 1)``, `` >= 1``, `` < 5`` or the empty string."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{_number(low)}, {_number(high)}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {_number(low)}"
    if high is not None:
        return f" {'<' if high_open else '<='} {_number(high)}"
    return ""


def _refuse(
    error: type[WorkbenchError], name: str, what: str | None, expected: str, value: Any, note: str = ""
) -> WorkbenchError:
    """The error for ``value``: ``"epochs must be an integer >= 1, got 0."``, ``"--finetune is a number of epochs,
    an integer >= 0; got -1."`` (with ``what``), or without a name (a study file names the key itself)."""
    if what and name:
        return error(f"{name} is {what}, {expected}; got {_shown(value)}{note}.")
    return error(f"{name} must be {expected}{f' ({what})' if what else ''}, got {_shown(value)}{note}.".lstrip())


def _scalar(value: Any) -> Any:
    """A 0-d numpy array or tensor as the scalar it holds; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    if (
        not isinstance(value, (np.generic, numbers.Number))
        and getattr(value, "ndim", None) == 0
        and callable(getattr(value, "item", None))
    ):
        return value.item()  # a 0-d tensor (torch is not imported here)
    return value


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def as_int(
    value: Any,
    name: str,
    *,
    low: int | None = None,
    high: int | None = None,
    integral_floats: bool = False,
    what: str | None = None,
    error: type[WorkbenchError] = ConfigError,
) -> int:
    """``value`` as a plain ``int`` in ``[low, high]`` (each bound optional) that fits in 64 bits.

    Parameters
    ----------
    value
        A Python or numpy integer, or a 0-d array or tensor of one; with ``integral_floats``, also a float
        that is a whole number (``2.0``, as a TOML file may write it).
    name
        The setting, as the user wrote it (``"epochs"``, ``"--batch-size"``, ``"widths[1]"``).
    low, high
        Smallest and largest value allowed (inclusive).
    integral_floats
        Accept whole-number floats.
    what
        What the setting is, for the message (``"a number of epochs"``).
    error
        The exception class raised.

    Raises
    ------
    ConfigError
        (or ``error``) naming ``name``, the value and the range.
    """
    expected = "an integer" + _bounds(low, high, False, False)
    scalar = _scalar(value)
    if _is_bool(scalar) or not isinstance(scalar, numbers.Real):
        note = " (true / false is not a number)" if _is_bool(scalar) else ""
        raise _refuse(error, name, what, expected, value, note)
    if not isinstance(scalar, numbers.Integral):
        number = float(scalar)
        if not (integral_floats and math.isfinite(number) and number.is_integer()):
            raise _refuse(error, name, what, expected, value)
    number = int(scalar)
    if (low is not None and number < low) or (high is not None and number > high):
        raise _refuse(error, name, what, expected, value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise _refuse(error, name, what, expected, value, f", which does not fit in 64 bits (at most {INT64_MAX})")
    return number


def as_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    what: str | None = None,
    error: type[WorkbenchError] = ConfigError,
) -> float:
    """``value`` as a finite plain ``float`` within ``low`` and ``high`` (each bound optional).

    Parameters
    ----------
    value
        A Python or numpy real number (integers too), or a 0-d array or tensor of one.
    name
        The setting, as the user wrote it (``"lr"``, ``"--keep"``).
    low, high
        The bounds; inclusive unless ``low_open`` / ``high_open`` (``low=0, low_open=True``: ``> 0``).
    what
        What the setting is, for the message (``"a share of the base model's multiply-adds"``).
    error
        The exception class raised.

    Raises
    ------
    ConfigError
        (or ``error``) naming ``name``, the value and the range: also for NaN, infinities and integers too large
        to be a float.
    """
    expected = "a finite number" + _bounds(low, high, low_open, high_open)
    scalar = _scalar(value)
    if _is_bool(scalar) or not isinstance(scalar, numbers.Real):
        note = " (true / false is not a number)" if _is_bool(scalar) else ""
        raise _refuse(error, name, what, expected, value, note)
    try:
        number = float(scalar)
    except OverflowError:  # an int beyond the float range
        raise _refuse(error, name, what, expected, value) from None
    if not math.isfinite(number):
        raise _refuse(error, name, what, expected, value)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        raise _refuse(error, name, what, expected, value)
    return number


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (a Python or numpy one, not a bool), finite or not."""
    scalar = _scalar(value)
    return isinstance(scalar, numbers.Real) and not _is_bool(scalar)


def unusable_numbers(value: Any, where: str = "") -> list[tuple[str, Any]]:
    """``(path, number)`` of every NaN, infinity and integer that does not fit in 64 bits inside nested
    dicts and lists (``"widths[1]"``, ``"args.depth"``), in document order; empty when there is none."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, Mapping):
        for key, inner in value.items():
            found += unusable_numbers(inner, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, inner in enumerate(value):
            found += unusable_numbers(inner, f"{where}[{index}]")
    elif is_number(value):
        scalar = _scalar(value)
        if isinstance(scalar, numbers.Integral):
            if not INT64_MIN <= int(scalar) <= INT64_MAX:
                found.append((where, value))
        elif not math.isfinite(float(scalar)):
            found.append((where, value))
    return found


__all__ = ["INT64_MAX", "INT64_MIN", "MAX_WAIT_SECONDS", "as_float", "as_int", "is_number", "unusable_numbers"]
