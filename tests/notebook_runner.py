"""Execute a notebook of ``notebooks/`` top to bottom and collect what it printed and drew.

Each notebook test gives its notebook a time budget of about 3-4 times what it was measured to take (kernel
start included) on a 2-core machine shared with other work: a budget to catch a hang or a many-fold slowdown,
not a speed target.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import pytest

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"


def run_kernel(nb: Any, folder: Path = FOLDER, timeout: float = 600) -> Any:
    """Execute notebook node ``nb`` in place, in ``folder``, with this checkout's workbench importable, within
    ``timeout`` seconds in all (each cell may take what is left of them)."""
    nbclient = pytest.importorskip("nbclient")
    deadline = time.monotonic() + timeout

    def left(cell: Any) -> int:
        return max(1, math.ceil(deadline - time.monotonic()))  # 0 would mean no limit to nbclient

    # "python3" is ipykernel's own kernel; jupyter_client starts it with this interpreter (sys.executable).
    # The kernel runs in ``folder``, so it is told where this checkout's workbench is (not an installed copy).
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FOLDER.parent), previous]))
    try:
        nbclient.NotebookClient(
            nb,
            timeout=math.ceil(timeout),
            timeout_func=left,
            startup_timeout=max(1, math.ceil(timeout)),
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        ).execute()
    except nbclient.exceptions.CellTimeoutError as exc:
        pytest.fail(f"the notebook ran past its budget of {timeout:g} s (a hang, or many times slower): {exc}")
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
    return nb


def execute_notebook(name: str, timeout: float) -> tuple[Any, str, list[dict]]:
    """``(executed notebook, printed text, plotly figure outputs)``; fails the test on any error output, or
    when the notebook runs longer than ``timeout`` seconds."""
    nbformat = pytest.importorskip("nbformat")
    nb = run_kernel(nbformat.read(FOLDER / name, as_version=4), timeout=timeout)
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
