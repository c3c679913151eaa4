"""Plotly figures. Each function returns a ``plotly.graph_objects.Figure`` (shows in Jupyter, saves as HTML).

Plotly is imported inside the figure functions, so importing this package is cheap.
"""

from __future__ import annotations

from workbench.utils import lazy_exports

_FIGURES = {
    "layered_unit_graph": "workbench.viz.graph_figures",
    "block_graph": "workbench.viz.graph_figures",
    "unit_drilldown": "workbench.viz.graph_figures",
    "layered_block_diagram": "workbench.viz.block_diagram",
    "layer_partition": "workbench.viz.block_diagram",
    "kept_fraction_figure": "workbench.viz.plan_figures",
    "selection_overlap_figure": "workbench.viz.plan_figures",
    "use_notebook_figures": "workbench.viz.notebook_display",
    "figure_bundle": "workbench.viz.notebook_display",
    "adjacency_heatmap": "workbench.viz.graph_figures",
    "embedding_scatter": "workbench.viz.selection_figures",
    "kernel_heatmap": "workbench.viz.selection_figures",
    "size_accuracy_figure": "workbench.viz.compression_figures",
    "tradeoff_figure": "workbench.viz.tradeoff_figures",
    "kept_fraction_heatmap": "workbench.viz.kept_figures",
    "sensitivity_figure": "workbench.viz.sensitivity_figures",
}

__all__ = sorted(_FIGURES)

__getattr__ = lazy_exports(__name__, _FIGURES)
