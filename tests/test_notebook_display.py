"""Notebook figures carry an HTML copy; plotly.js is inlined once per session (exports work offline)."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

from workbench.viz import notebook_display
from workbench.viz.notebook_display import figure_bundle, use_notebook_figures


def test_bundle_has_plotly_json_and_html_with_plotlyjs_once():
    previous = pio.renderers.default
    try:
        use_notebook_figures()
        fig = go.Figure(go.Scatter(y=[1, 3, 2], name="trace-a"))
        first = pio.renderers[notebook_display.RENDERER].to_mimebundle(fig.to_dict())
        second = figure_bundle(fig)
    finally:
        pio.renderers.default = previous
    assert first["application/vnd.plotly.v1+json"]["data"][0]["name"] == "trace-a"
    assert "trace-a" in first["text/html"] and "trace-a" in second["text/html"]
    marker = "window.Plotly"  # the plotly.js bundle defines it
    assert len(first["text/html"]) > 1_000_000 and marker in first["text/html"]
    assert len(second["text/html"]) < 100_000  # later figures reuse the first one's plotly.js
    assert "https://" not in second["text/html"].split("<script", 1)[0]
