"""The study report in a real browser (headless Chromium): no console errors, every figure drew, the table of
contents resolves. Screenshots go to tests/artifacts/ to be looked at.

Skipped, with the reason, where Chromium is not installed (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_study import tiny_study

ARTIFACTS = Path(__file__).parent / "artifacts"

# Runs first in <head>: records uncaught errors and console errors; after load, writes what it saw into the page.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('uncaught: ' + e.message));
(function(){ const error = console.error; console.error = function(...a){ window.__errors.push(a.join(' ')); error.apply(console, a); }; })();
window.addEventListener('load', () => setTimeout(() => {
  const anchors = [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1));
  const probe = document.createElement('pre'); probe.id = '__probe';
  probe.textContent = JSON.stringify({
    errors: window.__errors,
    figures: document.querySelectorAll('[data-figure]').length,
    drawn: [...document.querySelectorAll('[data-figure]')]
      .filter(d => d.querySelector('.js-plotly-plot .main-svg') && d.querySelector('g.trace, g.hm')).length,
    anchors: anchors.length,
    unresolved: anchors.filter(id => !document.getElementById(id)),
  });
  document.body.appendChild(probe);
}, 500));
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.skip(
            "headless Chromium is not installed (Debian: apt-get install -y chromium); the browser checks need it"
        )
    return found


def _run(browser: str, *args: str) -> subprocess.CompletedProcess:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def render(page: Path, screenshot: Path | None = None) -> dict:
    """What the browser saw on ``page`` (a copy with the probe inserted): errors, figures, drawn plots, anchors."""
    browser = chromium()
    probed = page.with_name(f"probed-{page.name}")
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    result = _run(browser, "--dump-dom", probed.as_uri())
    found = re.search(r"<pre id=\"__probe\">(.*?)</pre>", result.stdout, re.S)
    assert found, f"the page never finished loading in Chromium: {result.stderr[-2000:]}"
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    seen["console"] = [line for line in result.stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        _run(browser, f"--screenshot={screenshot}", "--window-size=1400,5000", "--hide-scrollbars", page.as_uri())
    return seen


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from workbench.study import write_report

    return write_report(tiny_study(), out=tmp_path_factory.mktemp("report") / "tiny-report.html")


def test_the_report_draws_every_figure_without_errors_and_its_contents_resolve(report):
    seen = render(report, ARTIFACTS / "report-tiny.png")
    assert seen["errors"] == [] and seen["console"] == []
    page = report.read_text()
    # cost comparison and overlap; every selector kept half of the one layer, so no kept-per-layer chart
    assert seen["figures"] == page.count("Plotly.newPlot") == 2
    assert "kept units shared by two selectors" in page
    assert seen["drawn"] == seen["figures"]
    assert seen["anchors"] >= 8 and seen["unresolved"] == []
    assert (ARTIFACTS / "report-tiny.png").stat().st_size > 10_000


def test_a_report_with_plotlyjs_beside_it_draws_in_the_browser(tmp_path):
    from workbench.study import write_report

    page = write_report(tiny_study(), out=tmp_path / "r.html", plotlyjs="file")
    assert (tmp_path / "plotly.min.js").is_file() and "<script src='plotly.min.js'>" in page.read_text()
    seen = render(page)
    assert seen["errors"] == [] and seen["drawn"] == seen["figures"] == 2


def test_the_probe_sees_errors_and_figures_that_did_not_draw(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head></head><body><a href='#nowhere'>x</a>"
        "<div data-figure='0'></div><script>undefined_function();</script></body></html>"
    )
    seen = render(broken)
    assert seen["errors"] and seen["figures"] == 1 and seen["drawn"] == 0 and seen["unresolved"] == ["nowhere"]
