"""Workbench: which neurons and filters of a trained network are redundant, and what merging or dropping them costs.

Subpackages are imported lazily so that ``import workbench`` and ``workbench --help`` stay fast:

- :mod:`workbench.zoo` -- model registry (``create_model``, ``list_models``)
- :mod:`workbench.datasets` -- embedded and on-disk data sets (``load_dataset``)
- :mod:`workbench.train` -- fit, finetune, distill, evaluate
- :mod:`workbench.checkpoints` -- save and load any edited model (architecture, edit history, weights)
- :mod:`workbench.edits` -- a model's spec and ordered edit history
- :mod:`workbench.metrics` -- parameters, multiply-adds, storage, latency
- :mod:`workbench.graph`, :mod:`workbench.select`, :mod:`workbench.surgery` -- networks as graphs, unit
  selection, physically smaller rebuilds
- :mod:`workbench.sparse`, :mod:`workbench.quantize`, :mod:`workbench.pipeline` -- classic compression
- :mod:`workbench.compression` -- one call from a trained model to a compressed, profiled one
- :mod:`workbench.viz`, :mod:`workbench.study` -- figures, studies
"""

from __future__ import annotations

import importlib
from typing import Any

from workbench.errors import PlanWarning, WorkbenchError

__version__ = "0.1.0"
__all__ = ["PlanWarning", "WorkbenchError", "__version__"]

_SUBMODULES = {
    "zoo",
    "datasets",
    "train",
    "checkpoints",
    "edits",
    "metrics",
    "graph",
    "select",
    "surgery",
    "sparse",
    "quantize",
    "pipeline",
    "viz",
    "compression",
    "selection",
    "study",
    "cli",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"workbench.{name}")
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
