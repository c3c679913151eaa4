"""The whole tree passes ruff's lint rules and is formatted by ruff (both configured in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREES = ["workbench", "tests", "analyses"]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None,
    reason="ruff is not installed; it comes with the dev extras (pip install -e '.[dev]', as make test does)",
)


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *TREES], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_finds_nothing_to_fix():
    result = _ruff("check", "--no-cache", "--output-format", "concise")
    assert result.returncode == 0, f"ruff check found problems (ruff check --fix mends most):\n{result.stdout}"


def test_the_tree_is_formatted():
    result = _ruff("format", "--check", "--no-cache")
    assert result.returncode == 0, f"files to reformat (run ruff format):\n{result.stdout}"
