"""The convolutional layer-structure notebook runs top to bottom and draws its figures with HTML copies."""

from __future__ import annotations

from notebook_runner import execute_notebook


def test_conv_layer_structure_notebook_runs():
    # measured 22-26 s on a busy 2-core machine: a budget against hangs, no speed target
    _, text, figures = execute_notebook("04_conv_layer_structure.ipynb", timeout=100)
    assert "test accuracy" in text and "layer3.0.conv2" in text and "blocks.0.pw" in text
    assert len(figures) == 7
    assert all("text/html" in f["data"] for f in figures)
