"""The notebook of a user's own network runs top to bottom: traced, compressed, reloaded and exported."""

from __future__ import annotations

import re

from notebook_runner import execute_notebook


def test_user_network_notebook_runs():
    # measured 38-39 s on a busy 2-core machine: a budget against hangs, no speed target
    _, text, figures = execute_notebook("06_your_own_network.ipynb", timeout=150)
    assert "tracer: fx-concrete" in text and "(one seed)" in text
    assert "all multiples of 4: True" in text
    assert "reloaded gives the same outputs: True" in text
    assert "plain-torch module gives the same outputs: True | .pt2 program: True" in text
    assert re.search(r"0: 8 units, layers \['0', '1'\]", text), text[-600:]
    assert len(figures) == 1
