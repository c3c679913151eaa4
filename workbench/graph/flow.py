"""Channel flow through a traced network: which unit feeds which input column of which layer.

Every unit of every parametric layer (and every input unit) gets a global integer id. Walking the
``torch.fx`` graph in order, each tensor gets a *layout*: its channel dimension and, for every channel,
the id of the unit that channel carries (:data:`CONST` for constant channels such as zero padding,
:data:`UNKNOWN` where the mapping is lost). Parameter-free operations transform layouts (flatten repeats
a channel's id over its spatial block, ``cat`` concatenates, padding inserts constants, ``add`` ties the
ids of both operands together). Parametric layers *read* the layout of their input and allocate ids for
their own units; BatchNorm, per-channel PReLU and depthwise convolutions tie their units to the units
they read. Ties are pairs of ids; their connected components are the units that must be kept or removed
together. Nothing here is guessed: an operation that is not understood turns its output UNKNOWN and
pins (fixes) the units that flowed into it, with a warning.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from workbench.adapters import adapter_for
from workbench.graph import kinds as K

CONST = -1
UNKNOWN = -2
#: A constant channel whose count is written in the code (a padding or a tensor of literal size): the units
#: it is added to or tied with cannot be removed, since the constant's width would not follow.
FIXED = -3


@dataclass
class Layout:
    """Channel layout of one tensor: ``ids[c]`` is the unit id carried by channel ``c`` of dimension ``dim``.

    ``ids`` may have extra trailing axes (one id per element) for network inputs that are flattened
    into a fully connected layer: then every input element is a unit.
    """

    dim: int
    ids: np.ndarray

    @property
    def channels(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class Read:
    """A parametric layer reading units: ``ids[j]`` is the unit id of its input column/channel ``j``."""

    layer: str
    ids: np.ndarray
    coupled: bool


@dataclass
class Layer:
    """One traced layer or operation.

    Attributes
    ----------
    name
        Qualified module name (``features.0``), or the fx node name for functions (``add_1``, ``cat``).
    kind
        See :mod:`workbench.graph.kinds`.
    module_type
        Class name of the module, or the function / method name.
    op
        The fx op (``call_module``, ``call_function``, ``call_method``, ``placeholder``).
    parametric
        True for layers that own units (and for opaque layers with parameters).
    weight_shape
        Shape of ``module.weight`` (None without one).
    n_units
        Units the layer produces (output features / channels; input units for the input).
    output_shape
        Output shape on the example input (batch first).
    inputs
        Names of the layers / operations it reads.
    node
        Name of its fx node.
    group
        The prunable group its units belong to (units-owning layers only).
    unit_dim
        For a parameter used directly in forward (kind ``parameter``): the dimension its units run along.
    """

    name: str
    kind: str
    module_type: str
    op: str
    parametric: bool
    weight_shape: tuple[int, ...] | None
    n_units: int | None
    output_shape: tuple[int, ...] | None
    inputs: tuple[str, ...]
    node: str
    group: str | None = None
    unit_dim: int | None = None


@dataclass
class FlowResult:
    """Outcome of :func:`analyse`."""

    layers: dict[str, Layer]
    unit_ranges: dict[str, tuple[int, int]]
    n_ids: int
    pairs: tuple[np.ndarray, np.ndarray]
    fixed: dict[int, str]
    reads: list[Read]
    output_ids: np.ndarray
    node_layouts: dict[str, Any]
    node_layer: dict[str, str]
    opaque: list[str]
    warnings: list[str] = field(default_factory=list)
    blocks: list[tuple[np.ndarray, np.ndarray, str]] = field(default_factory=list)
    size_checks: list[tuple[np.ndarray, np.ndarray, str]] = field(default_factory=list)


def _shape_of(node: fx.Node) -> Any:
    meta = node.meta.get("tensor_meta")
    if meta is None:
        return None
    if hasattr(meta, "shape"):
        return tuple(meta.shape)
    if isinstance(meta, (tuple, list)):
        return tuple(tuple(m.shape) if hasattr(m, "shape") else None for m in meta)
    return None


def _is_tensor_shape(shape: Any) -> bool:
    return isinstance(shape, tuple) and all(isinstance(s, int) for s in shape)


class _Walker:
    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.layouts: dict[fx.Node, Any] = {}
        self.layers: dict[str, Layer] = {}
        self.node_layer: dict[str, str] = {}
        self.unit_ranges: dict[str, tuple[int, int]] = {}
        self.n_ids = 0
        self.pair_a: list[np.ndarray] = []
        self.pair_b: list[np.ndarray] = []
        self.fixed: dict[int, str] = {}
        self.reads: list[Read] = []
        self.opaque: list[str] = []
        self.warnings: list[str] = []
        self.output_ids = np.zeros(0, dtype=np.int64)
        self.module_uses: dict[str, int] = {}
        self.blocks: list[tuple[np.ndarray, np.ndarray, str]] = []
        self.sizes: dict[fx.Node, np.ndarray] = {}  # size values -> the units they count
        self.size_checks: list[tuple[np.ndarray, np.ndarray, str]] = []  # (counted, carried, why)
        self.size_parts: dict[fx.Node, tuple[int, int, np.ndarray]] = {}  # torch.Size -> (ndim, unit dim, units)

    # -- utilities -----------------------------------------------------------------------------------
    def alloc(self, layer: str, n: int) -> np.ndarray:
        if layer in self.unit_ranges:  # a module called twice shares its units
            start, stop = self.unit_ranges[layer]
            return np.arange(start, stop, dtype=np.int64)
        start = self.n_ids
        self.n_ids += n
        self.unit_ranges[layer] = (start, self.n_ids)
        return np.arange(start, self.n_ids, dtype=np.int64)

    def tie(self, a: np.ndarray, b: np.ndarray, why: str) -> None:
        a = np.asarray(a).reshape(-1)
        b = np.asarray(b).reshape(-1)
        both = (a >= 0) & (b >= 0)
        self.pair_a.append(a[both])
        self.pair_b.append(b[both])
        self.pin(a[(a >= 0) & (b == UNKNOWN)], why)
        self.pin(b[(b >= 0) & (a == UNKNOWN)], why)
        fixed = "combined with constant channels of a width written in the code (a literal padding or size)"
        self.pin(a[(a >= 0) & (b == FIXED)], fixed)
        self.pin(b[(b >= 0) & (a == FIXED)], fixed)

    def pin(self, ids: np.ndarray, reason: str) -> None:
        for i in np.unique(np.asarray(ids).reshape(-1)):
            if i >= 0:
                self.fixed.setdefault(int(i), reason)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def layout_of(self, arg: Any) -> Any:
        return self.layouts.get(arg) if isinstance(arg, fx.Node) else None

    def value_of(self, arg: Any) -> Any:
        """Concrete value of a non-tensor argument (ints computed from sizes are recorded at shape time)."""
        if isinstance(arg, fx.Node):
            return arg.meta.get("wb_value")
        if isinstance(arg, (list, tuple)):
            return type(arg)(self.value_of(a) for a in arg)
        if isinstance(arg, slice):
            return slice(self.value_of(arg.start), self.value_of(arg.stop), self.value_of(arg.step))
        return arg

    def unknown_like(self, node: fx.Node) -> Any:
        shape = _shape_of(node)
        if _is_tensor_shape(shape):
            dim = 1 if len(shape) >= 2 else 0
            return Layout(dim, np.full(shape[dim] if shape else 1, UNKNOWN, dtype=np.int64))
        if isinstance(shape, tuple):
            return tuple(
                Layout(
                    1 if len(s) >= 2 else 0, np.full(s[1 if len(s) >= 2 else 0] if s else 1, UNKNOWN, dtype=np.int64)
                )
                if _is_tensor_shape(s)
                else None
                for s in shape
            )
        return None

    def give_up(self, node: fx.Node, what: str) -> Any:
        """Unknown operation: pin everything flowing in, output UNKNOWN."""
        for arg in node.all_input_nodes:
            lay = self.layouts.get(arg)
            for sub in lay if isinstance(lay, tuple) else (lay,):
                if isinstance(sub, Layout):
                    self.pin(sub.ids, f"feeds {what}, which the graph does not understand")
        self.warn(f"{what}: not understood; the units feeding it are fixed (not prunable) and its output is untracked.")
        return self.unknown_like(node)

    # -- the walk -------------------------------------------------------------------------------------
    def record(self, node: fx.Node, name: str, kind: str, module_type: str, module: nn.Module | None = None) -> None:
        weight = getattr(module, "weight", None) if module is not None else None
        parametric = kind in K.UNIT_KINDS or kind == "opaque"
        shape = _shape_of(node)
        self.layers[name] = Layer(
            name=name,
            kind=kind,
            module_type=module_type,
            op=node.op,
            parametric=parametric,
            weight_shape=tuple(weight.shape) if isinstance(weight, torch.Tensor) else None,
            n_units=None,
            output_shape=shape if _is_tensor_shape(shape) else None,
            inputs=tuple(self.node_layer.get(a.name, a.name) for a in node.all_input_nodes),
            node=node.name,
        )
        self.node_layer[node.name] = name

    def layer_name(self, node: fx.Node) -> str:
        if node.op == "call_module":
            target = str(node.target)
            uses = self.module_uses.get(target, 0)
            self.module_uses[target] = uses + 1
            module = self.modules[target]
            parametric = any(True for _ in module.parameters(recurse=False))
            return target if uses == 0 or parametric else f"{target}:{uses}"
        return node.name

    def run(self, pixel_input: bool) -> None:
        first_input = True
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                shape = _shape_of(node)
                if not _is_tensor_shape(shape):
                    continue
                name = "input" if first_input else node.name
                first_input = False
                self.record(node, name, "input", "input")
                dim = _input_unit_dim(self.modules, node, len(shape))
                if len(shape) >= 3 and pixel_input:
                    ids = self.alloc(name, math.prod(shape[1:])).reshape(shape[1:])
                else:
                    ids = self.alloc(name, shape[dim] if shape else 1)
                self.layers[name].n_units = int(ids.size)
                self.layouts[node] = Layout(dim, ids)
            elif node.op == "get_attr":
                self.layouts[node] = self.get_attr(node)
            elif node.op == "call_module":
                self.layouts[node] = self.call_module(node)
            elif node.op in ("call_function", "call_method"):
                self.layouts[node] = self.call_function(node)
            elif node.op == "output":
                ids = []
                for arg in node.all_input_nodes:
                    lay = self.layouts.get(arg)
                    for sub in lay if isinstance(lay, tuple) else (lay,):
                        if isinstance(sub, Layout):
                            ids.append(sub.ids.reshape(-1))
                self.output_ids = np.unique(np.concatenate(ids)) if ids else np.zeros(0, dtype=np.int64)
                self.pin(self.output_ids, "reaches the network output")

    def get_attr(self, node: fx.Node) -> Any:
        value = self.gm
        for part in str(node.target).split("."):
            value = getattr(value, part)
        if isinstance(value, nn.Parameter) and value.requires_grad:
            return self.parameter(node, value)
        if isinstance(value, torch.Tensor):  # a buffer or constant: its size does not follow any units
            shape = tuple(value.shape)
            dim = 1 if len(shape) >= 2 else 0
            return Layout(
                dim, np.full(shape[dim] if shape else 1, FIXED if value.numel() > 1 else CONST, dtype=np.int64)
            )
        return None

    def parameter(self, node: fx.Node, value: nn.Parameter) -> Any:
        """A parameter used directly in forward (a class token, a position embedding, a per-channel scale):
        its units run along its last dimension longer than 1 and are tied to whatever they combine with; a
        parameter of one element (a learned scalar) carries none."""
        name, shape = str(node.target), tuple(value.shape)
        long = [d for d, size in enumerate(shape) if size > 1]
        if not long:
            return Layout(max(0, len(shape) - 1), np.full(1, CONST, dtype=np.int64))
        dim = long[-1]
        self.record(node, name, "parameter", "Parameter")
        layer = self.layers[name]
        layer.weight_shape, layer.output_shape, layer.unit_dim = shape, None, dim
        layer.n_units = shape[dim]
        return Layout(dim, self.alloc(name, shape[dim]))

    # -- modules --------------------------------------------------------------------------------------
    def call_module(self, node: fx.Node) -> Any:
        module = self.modules[str(node.target)]
        kind = K.module_kind(module)
        name = self.layer_name(node)
        self.record(node, name, kind, type(module).__name__, module)
        arg = node.args[0] if node.args else None
        lay = self.layout_of(arg)
        if kind in K.UNIT_KINDS:
            return self.unit_layer(node, name, module, lay)
        if kind == "opaque":
            self.opaque.append(name)
            return self.give_up(node, f"layer {name!r} ({type(module).__name__}, with parameters)")
        if kind == "flatten":
            return self.reshape(node, lay, self.flatten_dims(node, module))
        if kind == "pad":
            return self.pad(
                node, lay, list(module.padding) if isinstance(module.padding, (tuple, list)) else [module.padding] * 2
            )
        if kind == "unpool":
            return self.unpool(node, lay, node.args[1] if len(node.args) > 1 else node.kwargs.get("indices"))
        if kind in ("act", "dropout", "identity", "pool", "upsample"):
            return self.passthrough(node, lay)
        return self.give_up(node, f"module {name!r} ({type(module).__name__})")

    def unit_layer(self, node: fx.Node, name: str, module: nn.Module, lay: Any) -> Any:
        """A layer that owns units, as its adapter connects them to its input's (see :mod:`workbench.adapters`)."""
        adapter = adapter_for(module)
        arg = node.args[0] if node.args else None
        in_shape, shape = _shape_of(arg) if isinstance(arg, fx.Node) else None, _shape_of(node)
        several = isinstance(shape, tuple) and shape and not _is_tensor_shape(shape)
        out_shape = shape[0] if several else shape  # attention returns (output, weights)
        if not _is_tensor_shape(in_shape) or not _is_tensor_shape(out_shape):
            self.opaque.append(name)
            return self.give_up(node, f"layer {name!r} ({type(module).__name__}) on an untracked input")
        self.layers[name].output_shape = out_shape
        if any(isinstance(a, fx.Node) and a is not arg for a in node.args[1:3]):  # attention on other keys
            self.opaque.append(name)
            return self.give_up(node, f"layer {name!r} ({type(module).__name__}) reading several different inputs")
        read_dim = adapter.unit_dim(module, len(in_shape))
        n_in = 0
        if read_dim is not None:
            if not isinstance(lay, Layout) or lay.ids.ndim != 1:
                self.opaque.append(name)
                return self.give_up(node, f"layer {name!r} ({type(module).__name__}) on an untracked input")
            if lay.dim != read_dim:
                self.opaque.append(name)
                return self.give_up(
                    node, f"layer {name!r} reading dimension {read_dim} of a tensor whose units run along {lay.dim}"
                )
            n_in = lay.channels
        out_dim = adapter.out_dim(module, len(out_shape))
        link = adapter.connect(module, n_in)
        if link is None or link.n_out != int(out_shape[out_dim]):
            self.opaque.append(name)
            return self.give_up(node, f"layer {name!r} ({type(module).__name__}) on {n_in} input channels")
        first = next((r for r in self.reads if r.layer == name), None)  # a module called again: same weights
        if first is not None and read_dim is not None:
            if len(first.ids) != n_in:
                self.opaque.append(name)
                return self.give_up(node, f"layer {name!r} called again on {n_in} instead of {len(first.ids)} channels")
            self.tie(first.ids, lay.ids, f"read by {name!r} again, together with an untracked input")
        own = self.alloc(name, link.n_out)
        self.layers[name].n_units = link.n_out
        if link.tie is not None:
            self.reads.append(Read(name, lay.ids.copy(), coupled=True))
            self.tie(own, lay.ids[link.tie], f"coupled through {name!r} to an untracked input")
        elif link.reads:
            self.reads.append(Read(name, lay.ids.copy(), coupled=False))
        if link.whole > 1:
            self.tie(own, own[(np.arange(link.n_out) // link.whole) * link.whole], "")
        if link.in_blocks > 1:
            self.blocks.append((lay.ids.copy(), np.arange(n_in) // (n_in // link.in_blocks), name))
        if link.out_blocks > 1:
            self.blocks.append((own, np.arange(link.n_out) // (link.n_out // link.out_blocks), name))
        out = Layout(out_dim, own)
        return (out, self.unknown_like(node)[1]) if several else out

    # -- functions and methods ------------------------------------------------------------------------
    def call_function(self, node: fx.Node) -> Any:
        kind = K.function_kind(node.op, node.target)
        shape = _shape_of(node)
        if kind == "value" or shape is None:
            if kind == "other":  # a tensor leaving torch (numpy(), tolist()): what it carries cannot change
                for arg in node.all_input_nodes:
                    lay = self.layouts.get(arg)
                    for sub in lay if isinstance(lay, tuple) else (lay,):
                        if isinstance(sub, Layout):
                            self.pin(sub.ids, f"leaves torch in {node.name!r} ({node.target})")
            self.track_size(node)
            return None
        name = self.layer_name(node)
        label = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
        self.record(node, name, kind, str(label))
        args = node.args
        lay = self.layout_of(args[0]) if args else None
        if kind == "unpool":
            return self.unpool(node, lay, args[1] if len(args) > 1 else node.kwargs.get("indices"))
        if kind in ("act", "pool"):
            return self.passthrough(node, lay)
        if kind == "constant":
            return self.constant(node)
        if kind in ("add", "mul"):
            return self.binary(node, args[0] if args else None, args[1] if len(args) > 1 else node.kwargs.get("other"))
        if kind == "cat":
            tensors = args[0] if args else node.kwargs.get("tensors")
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
            return self.cat(node, list(tensors), self.value_of(dim))
        if kind == "flatten":
            return self.reshape(node, lay, self.flatten_dims(node))
        if kind == "pad":
            pad = args[1] if len(args) > 1 else node.kwargs.get("pad")
            literal = not any(isinstance(p, fx.Node) for p in (pad if isinstance(pad, (list, tuple)) else [pad]))
            return self.pad(node, lay, list(self.value_of(pad)), literal)
        if kind == "getitem":
            return self.getitem(node, lay, self.value_of(args[1]))
        if kind == "permute":
            return self.permute(node, lay)
        if kind == "reduce":
            return self.reduce(node, lay)
        if kind == "split":
            return self.split(node, lay)
        return self.give_up(node, f"operation {name!r} ({label})")

    def passthrough(self, node: fx.Node, lay: Any) -> Any:
        shape = _shape_of(node)
        if isinstance(lay, Layout):
            if isinstance(shape, tuple) and shape and not _is_tensor_shape(shape):  # (values, indices)
                return tuple(lay for _ in shape)
            if _is_tensor_shape(shape) and len(shape) > lay.dim and shape[lay.dim] == lay.channels:
                if lay.ids.ndim > 1 and tuple(shape[lay.dim :]) != lay.ids.shape:
                    return self.give_up(node, f"operation {node.name!r} changing the shape of per-element input units")
                return lay
        return self.give_up(node, f"operation {node.name!r}")

    def unpool(self, node: fx.Node, lay: Any, indices: Any) -> Any:
        """Max-unpooling places each channel by the indices of a pooled channel: the two are one unit."""
        lay_i = self.layout_of(indices) if indices is not None else None
        if isinstance(lay, Layout) and isinstance(lay_i, Layout) and lay.ids.shape == lay_i.ids.shape:
            self.tie(lay.ids, lay_i.ids, f"max-unpooled in {node.name!r} with the indices of an untracked tensor")
        elif isinstance(lay, Layout):
            self.pin(lay.ids, f"max-unpooled in {node.name!r} with indices whose channels are not tracked")
        return self.passthrough(node, lay)

    def constant(self, node: fx.Node) -> Any:
        """A tensor made in forward: of a size computed from other tensors (``zeros_like``, sizes read with
        ``size()``), or written in the code (its channels :data:`FIXED`)."""
        shape = _shape_of(node)
        if not _is_tensor_shape(shape):
            return None
        dim = 1 if len(shape) >= 2 else 0
        literal = not node.all_input_nodes
        return Layout(dim, np.full(shape[dim] if shape else 1, FIXED if literal else CONST, dtype=np.int64))

    def binary(self, node: fx.Node, a: Any, b: Any) -> Any:
        la, lb = self.layout_of(a), self.layout_of(b)
        shape = _shape_of(node)
        kind = K.function_kind(node.op, node.target)
        if kind == "mul" and node.target in (operator.mul, operator.imul, torch.mul, "mul", "mul_"):
            for lay_t, other in ((la, b), (lb, a)):
                if isinstance(lay_t, Layout) and isinstance(other, (int, float)) and other == 0:
                    return Layout(lay_t.dim, np.full(lay_t.ids.shape, CONST, dtype=np.int64))  # x * 0 is a constant
        if isinstance(la, Layout) and not isinstance(b, fx.Node):
            return self.passthrough(node, la)
        if isinstance(lb, Layout) and not isinstance(a, fx.Node):
            return self.passthrough(node, lb)
        if not (isinstance(la, Layout) and isinstance(lb, Layout)) or not _is_tensor_shape(shape):
            return self.give_up(node, f"operation {node.name!r}")
        sa, sb = _shape_of(a), _shape_of(b)
        # align the channel dimension of both operands to the output (broadcasting aligns from the right)
        da, db = la.dim + len(shape) - len(sa), lb.dim + len(shape) - len(sb)
        if da != db:
            return self.give_up(
                node, f"operation {node.name!r} combining tensors whose units run along different dimensions"
            )
        if la.channels == lb.channels and la.ids.shape == lb.ids.shape:
            self.tie(la.ids, lb.ids, f"combined in {node.name!r} with an untracked tensor")
            out = np.where(la.ids >= 0, la.ids, np.where(lb.ids >= 0, lb.ids, np.minimum(la.ids, lb.ids)))
            return Layout(da, out)
        for small, big in ((la, lb), (lb, la)):  # broadcasting a single channel over all of them
            if small.channels == 1 and small.ids.ndim == 1 and big.ids.ndim == 1:
                self.pin(small.ids, f"broadcast over all channels in {node.name!r}")
                return Layout(da, big.ids)
        return self.give_up(node, f"operation {node.name!r} on tensors of different channel layouts")

    def cat(self, node: fx.Node, tensors: list[Any], dim: Any) -> Any:
        shape = _shape_of(node)
        lays = [self.layout_of(t) for t in tensors]
        if (
            not _is_tensor_shape(shape)
            or not all(isinstance(lay, Layout) and lay.ids.ndim == 1 for lay in lays)
            or not isinstance(dim, int)
        ):
            return self.give_up(node, f"concatenation {node.name!r}")
        dim = dim % len(shape)
        cdims = {lay.dim + len(shape) - len(_shape_of(t)) for lay, t in zip(lays, tensors)}
        if len(cdims) != 1:
            return self.give_up(
                node, f"concatenation {node.name!r} of tensors whose units run along different dimensions"
            )
        cdim = cdims.pop()
        if dim == cdim:
            return Layout(cdim, np.concatenate([lay.ids for lay in lays]))
        first = lays[0]
        for other in lays[1:]:  # concatenated along space or batch: channel c of every part is one channel
            if other.channels != first.channels:
                return self.give_up(node, f"concatenation {node.name!r}")
            self.tie(first.ids, other.ids, f"concatenated in {node.name!r} with an untracked tensor")
        return Layout(cdim, first.ids)

    def track_size(self, node: fx.Node) -> None:
        """Remember which units a size value counts (``x.size(1)``, ``c`` of ``b, c, h, w = x.shape``, and
        arithmetic on them), so that a reshape it sizes can be checked (:meth:`check_reshape`)."""
        args = node.args
        source = args[0] if args else None
        lay = self.layout_of(source)
        if node.target in ("size",) or (node.target is getattr and len(args) > 1 and args[1] == "shape"):
            if not isinstance(lay, Layout) or lay.ids.ndim != 1 or not _is_tensor_shape(_shape_of(source)):
                return
            ndim = len(_shape_of(source))
            dim = self.value_of(args[1]) if node.target == "size" and len(args) > 1 else node.kwargs.get("dim")
            if isinstance(dim, int):
                if dim % ndim == lay.dim:
                    self.sizes[node] = lay.ids
            else:
                self.size_parts[node] = (ndim, lay.dim, lay.ids)
        elif node.target is operator.getitem and source in self.size_parts:
            ndim, dim, ids = self.size_parts[source]
            index = self.value_of(args[1])
            if isinstance(index, int) and index % ndim == dim:
                self.sizes[node] = ids
        else:
            found = [self.sizes[a] for a in node.all_input_nodes if a in self.sizes]
            if found:
                self.sizes[node] = np.concatenate(found)

    def check_reshape(self, node: fx.Node, lay: Any, out: Any) -> None:
        """Units whose count a ``view`` / ``reshape`` would keep fixed: the unit dimension's size written in
        the code (pinned), or a size read from units (``size_checks``: the graph fixes both sides unless they
        end up tied, so that the size follows the tensor it shapes)."""
        args = list(node.args[1:]) if node.op == "call_method" else list(node.args[1:2])
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = list(args[0])
        carried = lay.ids.reshape(-1) if isinstance(lay, Layout) else np.full(1, UNKNOWN, dtype=np.int64)
        for position, arg in enumerate(args):
            counted = self.sizes.get(arg) if isinstance(arg, fx.Node) else None
            if counted is not None:  # resolved once every tie is known (a gate is tied after its view)
                self.size_checks.append((counted, carried, f"their count sizes the reshape {node.name!r}"))
            unit_here = isinstance(out, Layout) and position == out.dim
            if unit_here and isinstance(arg, int) and arg != -1 and (carried >= 0).any():
                self.pin(lay.ids, f"reshaped by {node.name!r} to a size written in the code")

    def reshape(self, node: fx.Node, lay: Any, flatten_dims: tuple[Any, Any] | None = None) -> Any:
        """Any reshape (flatten, view, squeeze, ...): find where the unit dimension went; a ``view`` or
        ``reshape`` with explicit sizes is checked by :meth:`check_reshape`."""
        out = self._reshape(node, lay, flatten_dims)
        if node.target in ("view", "reshape", torch.reshape):
            self.check_reshape(node, lay, out)
        return out

    def _reshape(self, node: fx.Node, lay: Any, flatten_dims: tuple[Any, Any] | None = None) -> Any:
        """Where the unit dimension of ``lay`` goes in a reshape.

        ``flatten_dims`` (start, end) gives a flatten's exact semantics; other reshapes are read from the
        input and output shapes (the batch dimension never becomes the unit dimension).
        """
        arg = node.args[0] if node.args else None
        sin, sout = _shape_of(arg) if isinstance(arg, fx.Node) else None, _shape_of(node)
        if not isinstance(lay, Layout) or not _is_tensor_shape(sin) or not _is_tensor_shape(sout):
            return self.give_up(node, f"reshape {node.name!r}")
        d, c = lay.dim, lay.channels
        if flatten_dims is not None and all(isinstance(v, int) for v in flatten_dims) and sin:
            start, end = (v % len(sin) for v in flatten_dims)
            if d < start:
                return Layout(d, lay.ids)
            if d > end:
                return Layout(d - (end - start), lay.ids)
            inner, outer = math.prod(sin[d + 1 : end + 1]), math.prod(sin[start:d])
            if lay.ids.ndim > 1:
                if end != len(sin) - 1:
                    return self.give_up(node, f"reshape {node.name!r} of per-element input units")
                return Layout(start, np.tile(lay.ids.reshape(-1), outer))
            return Layout(start, np.tile(np.repeat(lay.ids, inner), outer))
        before, after = math.prod(sin[:d]), math.prod(sin[d + 1 :])
        prefix = 1
        for k, size in enumerate(sout):
            if prefix == before and (k > 0 or d == 0):
                rest = math.prod(sout[k + 1 :])
                if size == c and rest == after and (lay.ids.ndim == 1 or tuple(sout[k:]) == lay.ids.shape):
                    return Layout(k, lay.ids)
                if size == c * after and rest == 1:  # the unit dimension merged with everything after it
                    if lay.ids.ndim > 1:
                        return Layout(k, lay.ids.reshape(-1))
                    return Layout(k, np.repeat(lay.ids, after))
            if prefix > before:
                break
            prefix *= size
        return self.give_up(node, f"reshape {node.name!r} from {sin} to {sout}")

    def flatten_dims(self, node: fx.Node, module: nn.Module | None = None) -> tuple[Any, Any] | None:
        """(start, end) of a flatten (module, ``torch.flatten`` or ``Tensor.flatten``), None for other reshapes."""
        if module is not None:
            return (module.start_dim, module.end_dim) if isinstance(module, nn.Flatten) else None
        if node.target in (torch.flatten, "flatten"):
            args = [self.value_of(a) for a in node.args[1:]]
            start = args[0] if args else self.value_of(node.kwargs.get("start_dim", 0))
            end = args[1] if len(args) > 1 else self.value_of(node.kwargs.get("end_dim", -1))
            return (start, end)
        return None

    def pad(self, node: fx.Node, lay: Any, pad: list[Any], literal: bool = True) -> Any:
        """Padding: constant channels around the units (:data:`FIXED` when the width is ``literal``, written
        in the code, and :data:`CONST` when it is computed from tensor sizes at run time)."""
        shape = _shape_of(node)
        if (
            not isinstance(lay, Layout)
            or lay.ids.ndim != 1
            or not all(isinstance(p, int) for p in pad)
            or not _is_tensor_shape(shape)
        ):
            return self.give_up(node, f"padding {node.name!r}")
        ndim = len(shape)
        ids = lay.ids
        for k in range(len(pad) // 2):
            if ndim - 1 - k == lay.dim:
                lo, hi = pad[2 * k], pad[2 * k + 1]
                ids = ids[max(0, -lo) : len(ids) - max(0, -hi)]
                fill = FIXED if literal else CONST
                ids = np.concatenate([np.full(max(lo, 0), fill), ids, np.full(max(hi, 0), fill)]).astype(np.int64)
        return Layout(lay.dim, ids)

    def getitem(self, node: fx.Node, lay: Any, index: Any) -> Any:
        if isinstance(lay, tuple):
            return lay[index] if isinstance(index, int) and -len(lay) <= index < len(lay) else None
        if not isinstance(lay, Layout) or lay.ids.ndim != 1:
            return self.give_up(node, f"indexing {node.name!r}")
        items = index if isinstance(index, tuple) else (index,)
        if Ellipsis in items or any(i is None for i in items):
            return self.give_up(node, f"indexing {node.name!r}")
        if not all(isinstance(i, (int, slice)) for i in items[: lay.dim]):
            return self.give_up(node, f"indexing {node.name!r}")
        dims_dropped = sum(1 for i in items[: lay.dim] if isinstance(i, int))
        if len(items) <= lay.dim:  # x[:, 0]: the token dimension goes, the units stay
            shape = _shape_of(node)
            new = lay.dim - dims_dropped
            if _is_tensor_shape(shape) and len(shape) > new and shape[new] == lay.channels:
                return Layout(new, lay.ids)
            return self.give_up(node, f"indexing {node.name!r}")
        sel = items[lay.dim]
        if isinstance(sel, slice) and all(v is None or isinstance(v, int) for v in (sel.start, sel.stop, sel.step)):
            if sel != slice(None):  # positions shift when units go: the slice would take other channels
                self.pin(lay.ids, f"sliced by position in {node.name!r}")
            return Layout(lay.dim - dims_dropped, lay.ids[sel])
        return self.give_up(node, f"indexing {node.name!r}")

    def permute(self, node: fx.Node, lay: Any) -> Any:
        arg = node.args[0]
        sin, sout = _shape_of(arg), _shape_of(node)
        if not isinstance(lay, Layout) or lay.ids.ndim != 1 or not _is_tensor_shape(sin) or not _is_tensor_shape(sout):
            return self.give_up(node, f"permutation {node.name!r}")
        rest = [self.value_of(a) for a in node.args[1:]]
        n = len(sin)
        if node.target in ("permute", torch.permute):
            order = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
            order = [o % n for o in order]
            new = order.index(lay.dim)
        elif node.target in ("t",):
            new = 1 - lay.dim
        else:  # transpose / swapaxes / movedim with two dims
            a, b = (r % n for r in rest[:2])
            if node.target in ("movedim", torch.movedim):
                perm = list(range(n))
                perm.insert(b, perm.pop(a))
                new = perm.index(lay.dim)
            else:
                new = b if lay.dim == a else a if lay.dim == b else lay.dim
        if sout[new] != lay.channels:
            return self.give_up(node, f"permutation {node.name!r}")
        return Layout(new, lay.ids)

    def reduce(self, node: fx.Node, lay: Any) -> Any:
        """A reduction over dimensions other than the unit dimension (``mean``, ``sum``, ``amax``, and
        ``max`` / ``min`` with a dimension, whose (values, indices) both keep the units)."""
        arg = node.args[0]
        other = node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
        if isinstance(other, fx.Node) and _is_tensor_shape(_shape_of(other)):  # torch.max(a, b): element-wise
            return self.binary(node, arg, other)
        sin, sout = _shape_of(arg), _shape_of(node)
        pair = isinstance(sout, tuple) and len(sout) == 2 and all(_is_tensor_shape(s) for s in sout)
        sout = sout[0] if pair else sout
        dims = self.value_of(node.args[1]) if len(node.args) > 1 else self.value_of(node.kwargs.get("dim"))
        if not isinstance(lay, Layout) or lay.ids.ndim != 1 or dims is None or not _is_tensor_shape(sout):
            return self.give_up(node, f"reduction {node.name!r}")
        dims = [d % len(sin) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        if lay.dim in dims:
            return self.give_up(node, f"reduction {node.name!r} over the unit dimension")
        new = lay.dim if len(sout) == len(sin) else lay.dim - sum(1 for d in dims if d < lay.dim)
        return (Layout(new, lay.ids), Layout(new, lay.ids)) if pair else Layout(new, lay.ids)

    def split(self, node: fx.Node, lay: Any) -> Any:
        shapes = _shape_of(node)
        dim = self.value_of(node.args[2]) if len(node.args) > 2 else self.value_of(node.kwargs.get("dim", 0))
        if (
            not isinstance(lay, Layout)
            or lay.ids.ndim != 1
            or not isinstance(shapes, tuple)
            or not isinstance(dim, int)
        ):
            return self.give_up(node, f"split {node.name!r}")
        dim %= len(shapes[0])
        if dim != lay.dim:
            return tuple(lay for _ in shapes)
        sizes = [s[dim] for s in shapes]
        bounds = np.cumsum([0] + sizes)
        size_arg = node.args[1] if len(node.args) > 1 else node.kwargs.get("split_size_or_sections")
        even = len(set(sizes)) == 1 and (node.target in (torch.chunk, "chunk") or isinstance(size_arg, fx.Node))
        if even and len(sizes) > 1:  # equal parts recut from the width: every part keeps as many units
            self.blocks.append((lay.ids.copy(), np.repeat(np.arange(len(sizes)), sizes), node.name))
        elif len(sizes) > 1:
            self.pin(lay.ids, f"split into parts of sizes written in the code in {node.name!r}")
        return tuple(Layout(lay.dim, lay.ids[bounds[i] : bounds[i + 1]]) for i in range(len(shapes)))


def _input_unit_dim(modules: dict[str, nn.Module], node: fx.Node, ndim: int) -> int:
    """Unit dimension of a network input: the channels (dimension 1), or the last dimension of a sequence
    of feature vectors when the first layer it reaches reads features along the last dimension (tokens)."""
    if ndim < 3:
        return 1 if ndim >= 2 else 0
    frontier, seen = list(node.users), set()
    while frontier:
        user = frontier.pop()
        if user in seen:
            continue
        seen.add(user)
        module = modules.get(str(user.target)) if user.op == "call_module" else None
        adapter = adapter_for(module) if module is not None else None
        if adapter is not None and user.args and user.args[0] in seen | {node}:
            read = adapter.unit_dim(module, ndim)
            if read is not None:
                return read
        kind = K.module_kind(module) if module is not None else K.function_kind(user.op, user.target)
        if kind in ("act", "dropout", "identity"):
            frontier.extend(user.users)
    return 1


def _pixel_input(gm: fx.GraphModule) -> bool:
    """Whether the network input reaches a fully connected layer only through element-wise ops and reshapes.

    Then every input element is a unit (an MLP's pixels); otherwise input units are channels.
    """
    modules = dict(gm.named_modules())
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if not inputs:
        return False
    shape = _shape_of(inputs[0])
    if not _is_tensor_shape(shape) or len(shape) < 3:
        return False
    frontier, seen, found = list(inputs[0].users), set(), False
    while frontier:
        node = frontier.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.op == "call_module":
            kind = K.module_kind(modules[str(node.target)])
        elif node.op in ("call_function", "call_method"):
            kind = K.function_kind(node.op, node.target)
        else:
            return False
        if kind == "flatten":
            found = True
            continue
        if kind in ("act", "dropout", "identity", "value"):
            if kind != "value":
                frontier.extend(node.users)
            continue
        return False
    return found


def analyse(gm: fx.GraphModule) -> FlowResult:
    """Walk the shape-propagated graph module ``gm``; see the module docstring."""
    walker = _Walker(gm)
    walker.run(_pixel_input(gm))
    pairs = (
        np.concatenate(walker.pair_a) if walker.pair_a else np.zeros(0, dtype=np.int64),
        np.concatenate(walker.pair_b) if walker.pair_b else np.zeros(0, dtype=np.int64),
    )
    return FlowResult(
        layers=walker.layers,
        unit_ranges=walker.unit_ranges,
        n_ids=walker.n_ids,
        pairs=pairs,
        fixed=walker.fixed,
        reads=walker.reads,
        output_ids=walker.output_ids,
        node_layouts={n.name: lay for n, lay in walker.layouts.items()},
        node_layer=walker.node_layer,
        opaque=walker.opaque,
        warnings=walker.warnings,
        blocks=walker.blocks,
        size_checks=walker.size_checks,
    )


__all__ = ["CONST", "UNKNOWN", "FIXED", "Layout", "Read", "Layer", "FlowResult", "analyse"]
