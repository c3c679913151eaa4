"""Figures drawn by a real browser: headless Chromium loads a figure page and an exported notebook offline,
logs no console error, and draws every figure. Screenshots go to tests/artifacts/ to be looked at."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from notebook_runner import run_kernel

from workbench.graph import from_model

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium on this machine: install Debian's package (apt-get install -y chromium)"
)


def render(page: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """(DOM after scripts ran, console messages) of ``page``; optionally a screenshot."""
    common = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    run = subprocess.run(
        [*common, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot is not None:
        screenshot.parent.mkdir(exist_ok=True)
        subprocess.run(
            [*common, f"--screenshot={screenshot}", "--window-size=1400,1000", page.as_uri()],
            capture_output=True,
            timeout=120,
        )
    return run.stdout, console


def drawn(dom: str) -> int:
    """Number of Plotly figures that drew (one plot container each)."""
    return len(re.findall(r'class="plot-container plotly"', dom))


def test_figure_page_draws_every_figure(tmp_path):
    from workbench.viz import layered_block_diagram, unit_drilldown
    from workbench.viz.graph_figures import adjacency_heatmap
    from workbench.zoo import create_model

    torch.manual_seed(0)
    graph = from_model(create_model("resnet", depth=20))
    labels = {g.name: np.arange(g.n_units) % 4 for g in graph.prunable_groups()}
    plan = {g.name: np.arange(0, g.n_units, 3) for g in graph.prunable_groups()}
    figures = [
        layered_block_diagram(graph, labels, plan=plan, plan_name="every third"),
        unit_drilldown(graph, "layer1.0.conv1", block=1, partition=labels),
        adjacency_heatmap(np.corrcoef(np.random.default_rng(0).standard_normal((40, 8))), np.arange(40) % 12),
    ]
    parts = [fig.to_html(full_html=False, include_plotlyjs=i == 0) for i, fig in enumerate(figures)]
    page = tmp_path / "figures.html"
    page.write_text("<html><head><meta charset='utf-8'></head><body>" + "".join(parts) + "</body></html>")
    dom, console = render(page, ARTIFACTS / "figures_resnet20.png")
    assert not console, console
    assert drawn(dom) == len(figures)


def test_exported_notebook_shows_its_figures(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip(
        "nbconvert", reason="nbconvert is needed to export notebooks (pip install nbconvert)"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import numpy as np\nfrom workbench.viz import use_notebook_figures\nfrom workbench.viz.graph_figures import adjacency_heatmap\n"
            "use_notebook_figures()\nadjacency_heatmap(np.eye(20), np.arange(20) % 3)"
        ),
        nbformat.v4.new_code_cell("adjacency_heatmap(np.ones((10, 10)), title='second figure')"),
    ]
    run_kernel(nb, folder=Path(__file__).resolve().parents[1], timeout=300)
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    page = tmp_path / "notebook.html"
    page.write_text(body)
    dom, console = render(page, ARTIFACTS / "exported_notebook.png")
    assert not console, console
    assert drawn(dom) == 2  # both figures drew from the HTML copies, offline
