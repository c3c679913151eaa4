"""Load a script of ``analyses/`` as a module, so that tests can call its functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ANALYSES = Path(__file__).resolve().parents[1] / "analyses"


def load_analysis(name: str) -> ModuleType:
    """``analyses/<name>.py`` executed as module ``name`` (registered in ``sys.modules`` while it runs, so that its
    dataclasses can resolve their annotations, and left there for later lookups)."""
    spec = importlib.util.spec_from_file_location(name, ANALYSES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
