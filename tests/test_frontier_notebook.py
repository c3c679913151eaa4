"""The research-frontier notebook runs top to bottom."""

from __future__ import annotations

import re

from notebook_runner import execute_notebook


def test_research_frontier_notebook_runs():
    # measured 38-40 s on a busy 2-core machine: a budget against hangs, no speed target
    _, text, figures = execute_notebook("05_research_frontier.ipynb", timeout=150)
    assert "one seed" in text and "diversity-networks" in text
    # summarization of a network of duplicates keeps its function; dropping the copies does not
    gaps = dict(re.findall(r"spectral / (\S+)\s.*largest change of a logit (\S+)", text))
    assert float(gaps["summarize"]) < 1e-4 and float(gaps["summarize-medoid"]) < 1e-4 and float(gaps["drop"]) > 1e-2, (
        gaps
    )
    assert "reconstruct" in text and "barrier on the line" in text and "Hessian eigenvalues" in text
    assert "closed-form least-squares optimum" in text and "redund." in text
    assert len(figures) == 3
