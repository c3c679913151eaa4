"""The classic-compression notebook runs top to bottom."""

from __future__ import annotations

from notebook_runner import execute_notebook

from workbench.pipeline import list_transforms


def test_classic_compression_notebook_runs():
    # measured 22-30 s on a busy 2-core machine: a budget against hangs, no speed target
    _, text, figures = execute_notebook("03_classic_compression.ipynb", timeout=100)
    pruned_part, pipelines_part = text.split(", ".join(list_transforms()))  # the notebook lists the transforms
    assert "csr" in pruned_part and "shared+huffman" not in pruned_part  # the pruned model is stored sparse
    assert "Deep Compression" in pipelines_part and "hidden widths" in pipelines_part
    assert len(figures) == 1
