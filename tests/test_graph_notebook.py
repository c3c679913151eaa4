"""The layer-structure notebook runs top to bottom."""

from __future__ import annotations

from notebook_runner import execute_notebook


def test_layer_structure_notebook_runs():
    # measured 11-21 s on a busy 2-core machine: a budget against hangs, no speed target
    _, text, figures = execute_notebook("01_layer_structure.ipynb", timeout=60)
    assert "accuracy" in text and "blocks; sizes" in text and "total |w|" in text
    assert len(figures) == 3
