"""The workbench's exceptions.

Every error a user can cause is a :class:`WorkbenchError` subclass whose message says what was wrong
and what to do about it. The subclasses also derive from the matching built-in exception
(``ValueError``, ``KeyError``, ...) so that generic handlers keep working. Warnings that code reacts to
have their own class (:class:`PlanWarning`), so that they are filtered by class, not by message text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose."""


class ConfigError(WorkbenchError, ValueError):
    """A parameter or configuration value is invalid."""


class UnknownNameError(WorkbenchError, KeyError):
    """A name (model, data set, selector, transform) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(WorkbenchError):
    """A data set is missing, truncated, corrupt or of the wrong layout."""


class ModelError(WorkbenchError):
    """A model cannot be built, traced or run as asked."""


class CheckpointError(WorkbenchError):
    """A checkpoint file is missing, not a workbench checkpoint, or does not match its architecture."""


class GraphError(WorkbenchError):
    """A network cannot be converted to a graph, or a graph query is invalid."""


class SelectionError(WorkbenchError, ValueError):
    """A selector got input it cannot work with (budget, kernel, features)."""


class SurgeryError(WorkbenchError):
    """A plan does not match the model, or a layer cannot be rebuilt."""


class CompressionError(WorkbenchError, ValueError):
    """A compression transform got an unsupported layer or parameter."""


class StudyError(WorkbenchError):
    """A study file, store or cluster cannot be used."""


class SelectionWarning(UserWarning):
    """A selector fell back from what was asked (e.g. fewer blocks than ``n_blocks``, or one block when no block
    model could be fitted); the message names the group, what was used instead and why, and the Selection's
    ``info`` records it."""


class PlanWarning(UserWarning):
    """A plan leaves out part of what was asked (e.g. prunable groups surgery cannot rebuild); the message names
    what and why. Callers that report these (the study runner, ``workbench compress``) filter by this class."""


class NumericsWarning(RuntimeWarning):
    """A result is reported as NaN because what it is computed from is not finite (e.g. a model whose outputs
    are NaN); the message says how much of the input was affected."""


def closest(name: str, choices: Iterable[str]) -> str:
    """Return a " Did you mean 'x'?" hint for ``name`` among ``choices`` (empty when nothing is close)."""
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f" Did you mean {match[0]!r}?" if match else ""


class ExportError(WorkbenchError):
    """A model cannot be exported in the format asked, or the exported file does not reproduce its outputs."""
