"""A tiny study for the report tests: two seeds, two selectors x two fusion modes, a pipeline and a baseline.

:func:`tiny_study` runs it once per test session (a few seconds) and returns the study file; its store is
beside it. Report tests write their pages elsewhere and never change the store.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

TINY = """
[study]
name = "tiny"
seeds = [0, 1]

[[models]]
label = "tiny MLP"
name = "mlp"
args = { widths = [64, 16, 10] }
data = "digits"
training = { epochs = 2 }

[selectors]
random = {}
magnitude = {}

[compression]
budgets = [0.5]
fuse = ["drop", "lsq"]

[finetune]
epochs = 1

[pipelines]
w8 = [{ do = "fixed-point", weight_bits = 8, act_bits = 8 }]

[baselines]
models = [{ name = "lenet300", label = "LeNet-300-100", data = "digits", training = { epochs = 1, max_batches = 2 } }]
"""


@functools.cache
def tiny_study() -> Path:
    """The tiny study's file, its runs done and stored beside it (run once per session)."""
    from workbench.study import run_study

    folder = Path(tempfile.mkdtemp(prefix="workbench-report-study-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "tiny.toml"
    path.write_text(TINY)
    outcome = run_study(path, quiet=True)
    assert outcome.failed == 0, outcome
    return path
