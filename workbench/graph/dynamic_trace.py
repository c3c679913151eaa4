"""Dynamic tracing: run a model once and record the graph it executed as a ``torch.fx.GraphModule``.

``torch.fx`` traces with proxies, so Python control flow on tensor shapes or values (``if x.size(2) !=
y.size(2)``, ``if x.sum() > 0``) cannot be traced. Here the model runs for real on an example input while a
:class:`~torch.overrides.TorchFunctionMode` records every torch function and Tensor method it calls, and
forward hooks record one ``call_module`` node per leaf-module call (nothing is recorded inside a leaf).
Tensors are matched to graph nodes by identity. Non-tensor results (sizes, shapes, Python numbers) are
baked into the graph as constants, so the graph is the one the model executes *for inputs of this shape*
(and, where the forward branches on tensor values, for inputs that take the same branches).
"""

from __future__ import annotations

import inspect
import numbers
import operator
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

LeafRule = Callable[[nn.Module, str], bool]

#: Binary operators: Tensor dunder stem -> operator function, in-place operator function.
_BINARY = {
    "add": (operator.add, operator.iadd),
    "sub": (operator.sub, operator.isub),
    "mul": (operator.mul, operator.imul),
    "truediv": (operator.truediv, operator.itruediv),
    "div": (operator.truediv, operator.itruediv),
    "floordiv": (operator.floordiv, operator.ifloordiv),
    "mod": (operator.mod, operator.imod),
    "pow": (operator.pow, operator.ipow),
    "matmul": (operator.matmul, operator.imatmul),
    "and": (operator.and_, operator.iand),
    "or": (operator.or_, operator.ior),
    "xor": (operator.xor, operator.ixor),
    "lshift": (operator.lshift, operator.ilshift),
    "rshift": (operator.rshift, operator.irshift),
}
_UNARY = {"neg": operator.neg, "pos": operator.pos, "abs": operator.abs, "invert": operator.invert}
_COMPARE = {name: getattr(operator, name) for name in ("eq", "ne", "lt", "le", "gt", "ge")}

#: Tensor dunder method -> (operator function, whether its two operands are swapped).
DUNDERS: dict[str, tuple[Callable[..., Any], bool]] = {
    **{f"__{stem}__": (fn, False) for stem, (fn, _) in _BINARY.items()},
    **{f"__r{stem}__": (fn, True) for stem, (fn, _) in _BINARY.items()},
    **{f"__i{stem}__": (ifn, False) for stem, (_, ifn) in _BINARY.items()},
    **{f"__{stem}__": (fn, False) for stem, fn in {**_UNARY, **_COMPARE}.items()},
    "__getitem__": (operator.getitem, False),
    "__setitem__": (operator.setitem, False),
}
_INPLACE_OPERATORS = frozenset({ifn for _, ifn in _BINARY.values()} | {operator.setitem})
#: Non-tensor argument types a graph node can hold.
_ATOMS = (bool, int, float, complex, str, torch.dtype, torch.device, torch.layout, torch.memory_format)


class DynamicTraceError(Exception):
    """Recording failed.

    ``where`` is the innermost submodule running (``""`` for the model's own forward), ``pattern`` what failed,
    and ``model_failed`` is True when the model itself raised on the example input (not the recording).
    """

    def __init__(self, where: str, cause: BaseException, pattern: str, model_failed: bool = False) -> None:
        super().__init__(pattern)
        self.where = where
        self.cause = cause
        self.pattern = pattern
        self.model_failed = model_failed


class _Unrepresentable(Exception):
    """An object a graph node cannot hold (not a tensor, number, string, dtype, device, ...); ``where`` overrides
    the submodule to blame."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.where = where


def _map_arg(value: Any, on_tensor: Callable[[torch.Tensor], Any]) -> Any:
    """``value`` with tensors replaced by ``on_tensor(t)``; :class:`_Unrepresentable` for foreign objects."""
    if isinstance(value, torch.Tensor):
        return on_tensor(value)
    if isinstance(value, (list, tuple)):  # torch.Size and named tuples become plain tuples
        items = [_map_arg(v, on_tensor) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _map_arg(v, on_tensor) for k, v in value.items()}
    if isinstance(value, slice):
        return slice(*(_map_arg(v, on_tensor) for v in (value.start, value.stop, value.step)))
    if value is None or value is Ellipsis or isinstance(value, _ATOMS):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise _Unrepresentable(f"{type(value).__module__}.{type(value).__qualname__}")


def _label(func: Any, target: Any) -> str:
    return target if isinstance(target, str) else getattr(func, "__name__", repr(func))


def default_is_leaf(module: nn.Module, name: str) -> bool:
    """``torch.fx``'s rule: modules of ``torch.nn`` (and ``torch.ao.nn``) are leaves, except ``nn.Sequential``."""
    return fx.Tracer().is_leaf_module(module, name)


def describe_call(func: Callable[..., Any]) -> tuple[str, Any, bool]:
    """The fx ``(op, target, swap operands)`` replaying a call seen by a ``TorchFunctionMode``.

    Tensor dunders become operator functions (``__radd__`` -> ``operator.add`` with swapped operands,
    ``__iadd__`` -> ``operator.iadd``), other Tensor methods ``call_method`` nodes, tensor-valued properties
    (``x.T``) ``getattr`` calls, everything else a ``call_function`` of the function itself.
    """
    name = getattr(func, "__name__", "")
    owner = getattr(func, "__self__", None)
    if name == "__get__" and isinstance(owner, types.GetSetDescriptorType):
        return "call_function", getattr, False
    if name in DUNDERS and getattr(torch.Tensor, name, None) is func:
        fn, swap = DUNDERS[name]
        return "call_function", fn, swap
    qualname = getattr(func, "__qualname__", "")
    if qualname.split(".")[0] in ("Tensor", "TensorBase") and callable(getattr(torch.Tensor, name, None)):
        return "call_method", name, False  # e.g. ``x ** 2`` arrives as Tensor.__pow__, a function named ``pow``
    return "call_function", func, False


def mutates(op: str, target: Any, kwargs: dict[str, Any]) -> bool:
    """Whether a call changes a tensor in place (so that it must stay in the graph even when unused)."""
    if op == "call_module":
        return True
    if target in _INPLACE_OPERATORS or kwargs.get("inplace") is True or "out" in kwargs:
        return True
    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    return isinstance(name, str) and name.endswith("_") and not name.startswith("_")


def first_line(exc: BaseException) -> str:
    """``"TypeName: first line of the message"`` of an exception."""
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}".rstrip(": ")


def _has_tensor(value: Any) -> bool:
    return any(isinstance(leaf, torch.Tensor) for leaf in tree_leaves(value))


class _Recorder(TorchFunctionMode):
    """Records one forward pass as an ``fx.Graph`` (see the module docstring)."""

    def __init__(self, model: nn.Module, is_leaf: LeafRule) -> None:
        super().__init__()
        self.model = model
        self.is_leaf = is_leaf
        self.graph = fx.Graph()
        self.env: dict[int, fx.Node] = {}  # id(tensor) -> node producing it
        self.alive: list[Any] = []  # keeps every matched tensor alive, so that ids are not reused
        self.attrs = {id(t): name for name, t in model.named_buffers()} | {
            id(p): name for name, p in model.named_parameters()
        }
        self.attr_values: dict[str, torch.Tensor] = {}
        self.n_consts = 0
        self.depth = 0  # > 0 inside a leaf module: nothing is recorded there
        self.stack: list[str] = []  # submodules running now (the culprit stays on it when the forward fails)
        self.pending: list[tuple[Any, Any]] = []  # mapped (args, kwargs) of the leaf calls in progress
        self.escape: tuple[str, str, str] | None = None  # (operation, type, submodule) of data that left torch

    # -- tensors and arguments ------------------------------------------------------------------------
    def bind(self, value: Any, node: fx.Node) -> None:
        """Map the tensors of ``value`` (a call's result) to ``node`` or ``getitem`` nodes of it."""
        if isinstance(value, torch.Tensor):
            self.env[id(value)] = node
            self.alive.append(value)
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                if _has_tensor(item):
                    self.bind(item, self.graph.call_function(operator.getitem, (node, i)))
        elif isinstance(value, dict):
            for key, item in value.items():
                if _has_tensor(item):
                    self.bind(item, self.graph.call_function(operator.getitem, (node, key)))

    def node_of(self, tensor: torch.Tensor) -> fx.Node:
        """The node producing ``tensor``: a recorded call, a parameter / buffer, or a new constant buffer."""
        node = self.env.get(id(tensor))
        if node is None:
            name = self.attrs.get(id(tensor))
            if name is None and self.escape is not None:  # most likely computed from that escaped data
                label, kind, where = self.escape
                raise _Unrepresentable(
                    f"a tensor made outside torch after {label!r} returned a {kind}, which a graph cannot follow",
                    where,
                )
            if name is None:
                name = f"_wb_const_{self.n_consts}"
                self.n_consts += 1
                tensor_value = tensor.detach()
            else:
                tensor_value = tensor
            self.attr_values[name] = tensor_value
            node = self.graph.get_attr(name)
            self.env[id(tensor)] = node
            self.alive.append(tensor)
        return node

    def arg(self, value: Any) -> Any:
        """``value`` with its tensors replaced by nodes (see :func:`_map_arg`)."""
        return _map_arg(value, self.node_of)

    def call_args(self, what: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        """Mapped ``(args, kwargs)`` of a call; :class:`_Unrepresentable` saying what the call ``what`` takes."""
        try:
            return self.arg(tuple(args)), self.arg(kwargs)
        except _Unrepresentable as exc:
            why = str(exc) if exc.where is not None else f"a {exc} argument, which a graph cannot hold"
            raise _Unrepresentable(f"{what} takes {why}", exc.where) from None

    # -- torch functions and Tensor methods -----------------------------------------------------------
    def __torch_function__(self, func: Any, types_: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        outer = self.depth
        self.depth += 1  # modules that ``func`` itself calls are part of this one call
        try:
            result = func(*args, **kwargs)
        finally:
            self.depth -= 1
        if outer:
            return result
        op, target, swap = describe_call(func)
        if not (_has_tensor(result) or mutates(op, target, kwargs)):
            try:  # sizes, shapes, Python numbers and booleans: constants of this trace
                _map_arg(result, id)
            except _Unrepresentable as exc:  # e.g. x.numpy(): data leaves torch
                self.escape = self.escape or (_label(func, target), str(exc), self.where())
            return result
        node_args, node_kwargs = self.call_args(f"operation {_label(func, target)!r}", args, kwargs)
        if target is getattr:  # a tensor-valued property: x.T, x.data, ...
            node_args = (node_args[0], func.__self__.__name__)
        elif swap:
            node_args = (node_args[1], node_args[0], *node_args[2:])
        self.bind(result, self.graph.create_node(op, target, node_args, node_kwargs))
        return result

    # -- module hooks ---------------------------------------------------------------------------------
    def hooks(self) -> list[Any]:
        """Register forward pre / post hooks on every submodule; returns their handles."""
        handles = []
        for name, module in self.model.named_modules():
            leaf = bool(name) and self.is_leaf(module, name)
            handles.append(module.register_forward_pre_hook(self._pre_hook(name, leaf), with_kwargs=True))
            handles.append(module.register_forward_hook(self._post_hook(name, leaf)))
        return handles

    def _pre_hook(self, name: str, leaf: bool) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
            self.stack.append(name)
            if leaf:
                if not self.depth:
                    self.pending.append(self.call_args(f"layer {name!r}", args, kwargs))
                self.depth += 1

        return hook

    def _post_hook(self, name: str, leaf: bool) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self.stack.pop()
            if leaf:
                self.depth -= 1
                if not self.depth:
                    node_args, node_kwargs = self.pending.pop()
                    self.bind(output, self.graph.call_module(name, node_args, node_kwargs))

        return hook

    # -- the graph ------------------------------------------------------------------------------------
    def where(self) -> str:
        return next((name for name in reversed(self.stack) if name), "")

    def finish(self, output: Any) -> fx.GraphModule:
        """Close the graph with ``output``, drop unused pure calls, and build the GraphModule."""
        try:
            self.graph.output(self.arg(output))
        except _Unrepresentable as exc:
            raise _Unrepresentable(f"the model returns a {exc}, which a graph cannot hold") from None
        for node in reversed(list(self.graph.nodes)):
            if (
                node.op in ("call_function", "call_method", "get_attr")
                and not node.users
                and not mutates(node.op, node.target, dict(node.kwargs))
            ):
                self.graph.erase_node(node)
        self.graph.lint()
        used = {str(n.target) for n in self.graph.nodes if n.op in ("get_attr", "call_module")}
        root = {t: self.model.get_submodule(t) for t in used if t not in self.attr_values}
        root.update({t: v for t, v in self.attr_values.items() if t in used})
        return fx.GraphModule(root, self.graph, type(self.model).__name__)


def _input_name(model: nn.Module) -> str:
    try:
        params = [p for p in inspect.signature(model.forward).parameters.values() if p.kind != p.VAR_KEYWORD]
    except (TypeError, ValueError):
        params = []
    return params[0].name if params and params[0].kind != params[0].VAR_POSITIONAL else "x"


def dynamic_trace(model: nn.Module, example_input: torch.Tensor, is_leaf: LeafRule | None = None) -> fx.GraphModule:
    """Record the graph ``model`` executes on ``example_input`` (eval mode, no gradients) as a GraphModule.

    The GraphModule holds the model's own leaf modules, parameters and buffers (shared, not copied), plus
    ``_wb_const_<k>`` buffers for tensors the forward uses that no recorded operation produced. It is checked
    to reproduce the model's output on ``example_input``.

    Raises
    ------
    DynamicTraceError
        The forward failed on ``example_input``, passed a non-torch object (e.g. a NumPy array) into a torch
        operation, or the recorded graph does not reproduce the model's output (randomness, hidden state).
    """
    recorder = _Recorder(model, is_leaf or default_is_leaf)
    modes = {m: m.training for m in model.modules()}
    x = example_input.clone()
    recorder.bind(x, recorder.graph.placeholder(_input_name(model)))
    handles = recorder.hooks()
    model.eval()
    try:
        with torch.no_grad():
            try:
                with recorder:
                    output = model(x)
            except _Unrepresentable as exc:
                where = recorder.where() if exc.where is None else exc.where
                raise DynamicTraceError(where, exc, str(exc)) from exc
            except Exception as exc:
                raise DynamicTraceError(recorder.where(), exc, first_line(exc), model_failed=True) from exc
            for handle in handles:
                handle.remove()
            try:
                gm = recorder.finish(output)
            except _Unrepresentable as exc:
                raise DynamicTraceError("", exc, str(exc)) from exc
            try:
                replay = gm(example_input.clone())
            except Exception as exc:
                raise DynamicTraceError("", exc, f"the recorded graph does not run ({first_line(exc)})") from exc
            if not _same(output, replay):
                raise DynamicTraceError(
                    "",
                    RuntimeError("output mismatch"),
                    "the recorded graph does not reproduce the model's output (the forward draws random numbers, "
                    "reads Python-side state, or changes tensors the recording cannot see)",
                )
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    gm.training = model.training  # the attribute only: train() would also switch the model's own modules
    return gm


def _same(a: Any, b: Any) -> bool:
    leaves_a, leaves_b = tree_leaves(a), tree_leaves(b)
    if len(leaves_a) != len(leaves_b):
        return False
    for u, v in zip(leaves_a, leaves_b):
        if isinstance(u, torch.Tensor) != isinstance(v, torch.Tensor):
            return False
        if isinstance(u, torch.Tensor):
            if u.shape != v.shape or u.dtype != v.dtype:
                return False
            if u.is_floating_point() or u.is_complex():
                if not torch.allclose(u, v, rtol=1e-4, atol=1e-6, equal_nan=True):
                    return False
            elif not torch.equal(u, v):
                return False
        elif u != v:
            return False
    return True


__all__ = ["DUNDERS", "DynamicTraceError", "default_is_leaf", "describe_call", "dynamic_trace", "first_line", "mutates"]
