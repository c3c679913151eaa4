"""Networks as graphs: tracing, coupled prunable groups, unit graphs, unit views and summaries.

Typical use::

    from workbench.graph import from_model, quotient_graph

    graph = from_model(model, example_input)        # torch.fx trace + shape propagation + groups
    graph.prunable_groups()                         # groups of units kept or removed together
    adjacency = graph.unit_adjacency(norm="l2")     # scipy.sparse CSR unit graph (float32, int32 indices)
    view = graph.unit_view(name, source="weights")  # workbench.unitview.UnitView for the selectors
    quotient = quotient_graph(adjacency, labels)    # block summary of the unit graph
"""

from __future__ import annotations

from workbench.graph.flow import Layer, Layout
from workbench.graph.network import Consumer, Group, NetworkGraph, from_model
from workbench.graph.quotient import Quotient, layer_graph, quotient_graph

__all__ = [
    "from_model",
    "NetworkGraph",
    "Layer",
    "Group",
    "Consumer",
    "Layout",
    "Quotient",
    "quotient_graph",
    "layer_graph",
]
