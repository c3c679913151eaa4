"""Layer adapters: what each layer type means for the graph and for surgery, in one registry.

Typical use, for a layer type of your own::

    from workbench.adapters import Connection, LayerAdapter, register_adapter

    class ScaleAdapter(LayerAdapter):        # y = x * self.scale, one scale per channel
        kind_name = "norm"
        def connect(self, module, n_in):
            return Connection(n_in, reads=False, tie=np.arange(n_in))
        def out_count(self, module):
            return module.scale.numel()
        def unit_parameters(self, module):
            return [("scale", 0)]

    register_adapter(Scale, ScaleAdapter())

Tracing keeps registered types as leaves, and graph, slicing, fusion and size prediction consult them.
"""

from __future__ import annotations

from workbench.adapters import builtin as _builtin  # noqa: F401  (registers the torch.nn adapters)
from workbench.adapters.base import (
    Connection,
    LayerAdapter,
    adapter_for,
    register_adapter,
    registered_types,
    set_param,
    unregister_adapter,
)

__all__ = [
    "Connection",
    "LayerAdapter",
    "adapter_for",
    "register_adapter",
    "registered_types",
    "set_param",
    "unregister_adapter",
]
