"""The results version: which code computed a stored run or a cached base model.

A run's hash names *what* it computes (its configuration, :mod:`workbench.study.grid`); the results version
says *which workbench* computed it. Bump :data:`RESULTS_VERSION` (and add a line to :data:`CHANGES`) in every
change that alters the numbers a run computes for the same configuration: training, selection, fusion,
retraining, scoring. ``study run`` stores the version with every run and every cached base model, and
computes again (saying how many and why) any stored run or cached base model of another version, instead of
reusing it. Run hashes do not include it, so the runs of a study keep their hashes across versions.
"""

from __future__ import annotations

#: The version of the numbers this workbench computes (see the module docstring).
RESULTS_VERSION = 2

#: Version -> what changed the numbers in it.
CHANGES = {
    1: "stores and cached base models written before results versions were recorded",
    2: "each group selects with its own seed; surgery fuses in eval mode and keeps pruned weights at zero; "
    "one default retraining learning rate (1e-3) for finetune, distill and reconstruct",
}


def version_of(found: object) -> int:
    """The results version a stored row or cached model says it has: 1 when it records none (written before
    versions were recorded), or when what it records is not a version number."""
    return found if isinstance(found, int) and not isinstance(found, bool) else 1


def stale_reason(found: object, what: str) -> str | None:
    """Why ``what`` (e.g. ``"stored runs"``) recording version ``found`` is not reused; None when it is current."""
    version = version_of(found)
    if version == RESULTS_VERSION:
        return None
    unrecorded = " (none recorded)" if found is None else ""
    return f"{what} of results version {version}{unrecorded}; this workbench computes version {RESULTS_VERSION}"
