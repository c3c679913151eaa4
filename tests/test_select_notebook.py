"""The neuron-selection notebook runs top to bottom."""

from __future__ import annotations

from notebook_runner import execute_notebook


def test_neuron_selection_notebook_executes():
    # measured 15-25 s on a busy 2-core machine: a budget against hangs, no speed target
    _, text, figures = execute_notebook("02_neuron_selection.ipynb", timeout=80)
    assert "submodular (input change) + re-fitted weights" in text
    assert "test accuracy" in text
    assert len(figures) == 3
