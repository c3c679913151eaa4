"""Plain aligned text tables with human-friendly numbers (for the command line)."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from typing import Any

_COUNT_WORDS = ("params", "macs", "flops")


def format_count(n: float) -> str:
    """``4230000 -> '4.23M'``, ``569300000 -> '569.3M'``, ``812 -> '812'`` (SI suffixes K, M, G, T)."""
    value = float(n)
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            scaled = value / scale
            return f"{scaled:.2f}{suffix}" if abs(scaled) < 100 else f"{scaled:.1f}{suffix}"
    return f"{value:g}" if value != int(value) else str(int(value))


def format_bytes(n: float) -> str:
    """``1234567 -> '1.2 MB'``, ``512 -> '512 B'`` (decimal units: 1 kB = 1000 bytes)."""
    value = float(n)
    for suffix, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {suffix}"
    return f"{int(value)} B"


def format_value(column: str, value: Any) -> str:
    """One cell: ``-`` for ``None``; byte sizes and counts (columns named for params/MACs/FLOPs) shortened."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Real):
        name = column.lower()
        if "bytes" in name:
            return format_bytes(value)
        if any(word in name for word in _COUNT_WORDS):
            return format_count(value)
        if isinstance(value, numbers.Integral):
            return str(int(value))
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """``rows`` as an aligned text table: a header, a rule, one line per row (numbers right-aligned).

    Parameters
    ----------
    columns
        Columns to show, in order; default every key, in order of first appearance. Missing cells show ``-``.
    """
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
    columns = [str(c) for c in columns]
    if not columns:
        return ""
    cells = [[format_value(c, row.get(c)) for c in columns] for row in rows]
    numeric = [
        all(isinstance(row.get(c), numbers.Real) or row.get(c) is None for row in rows) and rows != [] for c in columns
    ]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out.extend(line(values) for values in cells)
    return "\n".join(out)
