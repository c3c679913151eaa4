"""Execute a notebook of ``notebooks/`` top to bottom and collect what it printed and drew."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"


def run_kernel(nb: Any, folder: Path = FOLDER, timeout: int = 600) -> Any:
    """Execute notebook node ``nb`` in place, in ``folder``, with this checkout's workbench importable."""
    nbclient = pytest.importorskip("nbclient")
    # "python3" is ipykernel's own kernel; jupyter_client starts it with this interpreter (sys.executable).
    # The kernel runs in ``folder``, so it is told where this checkout's workbench is (not an installed copy).
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FOLDER.parent), previous]))
    try:
        nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
    return nb


def execute_notebook(name: str) -> tuple[Any, str, list[dict]]:
    """``(executed notebook, printed text, plotly figure outputs)``; fails the test on any error output."""
    nbformat = pytest.importorskip("nbformat")
    nb = run_kernel(nbformat.read(FOLDER / name, as_version=4))
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    without_html = [o for o in figures if "text/html" not in o["data"]]
    assert not without_html, "a figure has no HTML copy: call workbench.viz.use_notebook_figures() first"
    stray = [t for t in [text] + [str(o.get("data", {}).get("text/plain", "")) for o in outputs] if "Generator" in t]
    assert "TqdmWarning" not in text and not stray, "stray warning or repr in the outputs"
    return nb, text, figures
