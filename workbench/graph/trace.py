"""Tracing a model (``torch.fx``, or the graph it executes) and propagating shapes, with errors that say what and where."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
from typing import Any, NamedTuple

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from workbench.errors import GraphError
from workbench.graph.dynamic_trace import DynamicTraceError, LeafRule, dynamic_trace, first_line
from workbench.metrics.forward import evaluation_mode


class _NamingTracer(fx.Tracer):
    """A tracer that remembers which submodule it is inside, to name the culprit when tracing fails."""

    def __init__(self, is_leaf: LeafRule | None = None) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.leaf_rule = is_leaf

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if self.leaf_rule is None:
            return super().is_leaf_module(m, module_qualified_name)
        return self.leaf_rule(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        self.stack.append(self.path_of_module(m))
        result = super().call_module(m, forward, args, kwargs)  # on failure the culprit stays on the stack
        self.stack.pop()
        return result


class _Failure(NamedTuple):
    """How one tracer failed: where (innermost submodule, ``""`` for the model's forward) and why."""

    how: str
    where: str
    error: str
    model_failed: bool = False  # the model itself raised on the example input


def _fx_trace(
    model: nn.Module, is_leaf: LeafRule | None, concrete_args: dict[str, Any] | None, how: str
) -> fx.GraphModule | _Failure:
    """``torch.fx`` trace of ``model``, or the :class:`_Failure` saying where and why it failed."""
    tracer = _NamingTracer(is_leaf)
    try:
        graph = tracer.trace(model, concrete_args=concrete_args)
    except Exception as exc:  # fx raises TraceError, TypeError, RuntimeError, ... depending on the construct
        return _Failure(how, tracer.stack[-1] if tracer.stack else "", first_line(exc))
    return fx.GraphModule(tracer.root, graph, model.__class__.__name__)


def _where_text(model: nn.Module, where: str) -> str:
    return f"in submodule {where!r} of {type(model).__name__}" if where else f"in the forward of {type(model).__name__}"


def check_finite_parameters(model: nn.Module) -> None:
    """Raise :class:`GraphError` naming the first parameter or buffer holding NaN or infinite values, or having no
    values at all (on the meta device)."""
    for kind, items in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, tensor in items:
            if tensor.is_meta:
                raise GraphError(
                    f"{kind} {name!r} of shape {tuple(tensor.shape)} is on the meta device: it has a shape but no "
                    "values, and the graph is weighted by the weights. Materialize the model first, e.g. "
                    "model.to_empty(device='cpu') then model.load_state_dict(...) with its trained weights."
                )
            # a sum is NaN/inf when any entry is (one pass, no temporary); confirm exactly before complaining
            if (
                tensor.is_floating_point()
                and not bool(torch.isfinite(tensor.sum()))
                and not bool(torch.isfinite(tensor).all())
            ):
                bad = int((~torch.isfinite(tensor)).sum())
                raise GraphError(
                    f"{kind} {name!r} of shape {tuple(tensor.shape)} holds {bad} NaN or infinite value(s); "
                    "the graph of a network with non-finite weights is meaningless. Retrain or reload the model."
                )


def symbolic_trace(model: nn.Module, *, is_leaf: LeafRule | None = None) -> fx.GraphModule:
    """``torch.fx`` trace of ``model``; :class:`GraphError` naming the module being traced on failure.

    ``is_leaf(module, qualified_name)`` overrides fx's rule of which modules are traced through.
    """
    traced = _fx_trace(model, is_leaf, None, "fx")
    if isinstance(traced, _Failure):
        raise GraphError(
            f"cannot trace {type(model).__name__} with torch.fx: it failed {_where_text(model, traced.where)} "
            f"({traced.error}). Data-dependent control flow (if/for on tensor values) cannot be "
            "traced; rewrite that forward without it, or mark the submodule as a leaf."
        )
    return traced


def default_arguments(model: nn.Module) -> dict[str, Any]:
    """Forward parameters after the first that have a default (not ``*args`` / ``**kwargs``), with it."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())[1:]
    except (TypeError, ValueError):  # builtins and C extensions without a signature
        return {}
    return {
        p.name: p.default
        for p in params
        if p.default is not inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def trace_model(model: nn.Module, example_input: torch.Tensor, *, is_leaf: LeafRule | None = None) -> fx.GraphModule:
    """Trace ``model`` into a GraphModule by the first of its tracers that succeeds.

    1. ``torch.fx`` with every defaulted forward argument after the first bound to its default, as the workbench
       calls a model with its input alone (``forward(self, x, return_features=False)`` branching on the keyword,
       ``forward(self, x, mask=None)`` testing ``mask is not None``); where a default cannot be bound, again with
       only the ``None`` defaults bound (the others become inputs of the graph). ``"fx-concrete"`` when it
       bound any argument, ``"fx"`` otherwise.
    2. ``"dynamic"``: the graph the model executes on ``example_input``, recorded by running it once (see
       :mod:`workbench.graph.dynamic_trace`); Python control flow on shapes and values is resolved for this
       input, so the graph holds for inputs of its shape that take the same branches.

    Parameters
    ----------
    model
        Any ``nn.Module`` taking one tensor.
    example_input
        A batch of the model's input (only the dynamic tracer runs it).
    is_leaf
        ``is_leaf(module, qualified_name)``: modules kept whole as ``call_module`` nodes. Default: fx's rule
        (modules of ``torch.nn`` except containers).

    Returns
    -------
    fx.GraphModule
        ``gm.meta["tracer"]`` names the tracer used; ``gm.meta["concrete_args"]`` holds the bound arguments
        for ``"fx-concrete"``; ``gm.meta["input_shape"]`` the traced input shape for ``"dynamic"``.

    Raises
    ------
    GraphError
        Every tracer failed; the message names the submodule and the error of each.
    """
    if not isinstance(example_input, torch.Tensor):
        raise GraphError(
            f"example_input must be a torch.Tensor batch, got {type(example_input).__name__}; "
            "use workbench.zoo.example_input(model) for zoo models."
        )
    failures = []
    for bound in _fx_routes(model):
        how = f"torch.fx with {_format_args(bound)}" if bound else "torch.fx"
        traced = _fx_trace(model, is_leaf, bound or None, how)
        if isinstance(traced, fx.GraphModule):
            return _mark(traced, "fx-concrete", concrete_args=bound) if bound else _mark(traced, "fx")
        failures.append(traced)
    try:
        gm = dynamic_trace(model, example_input, is_leaf)
    except DynamicTraceError as exc:
        how = f"running it on an input of shape {tuple(example_input.shape)}"
        failures.append(_Failure(how, exc.where, exc.pattern, exc.model_failed))
    else:
        return _mark(gm, "dynamic", input_shape=tuple(example_input.shape))
    raise GraphError(_all_failed(model, failures))


def _fx_routes(model: nn.Module) -> list[dict[str, Any]]:
    """The arguments ``torch.fx`` binds on each try: every defaulted one (the workbench calls a model with its
    input alone), then, if some default cannot be bound, only those whose default is ``None`` (a traced ``mask``
    would not be ``None``: ``if mask is not None`` would take the branch of a given mask)."""
    bound = default_arguments(model)
    nones = {name: None for name, value in bound.items() if value is None}
    return [bound, nones] if len(nones) < len(bound) else [bound]


def _format_args(bound: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in bound.items())


def _mark(gm: fx.GraphModule, tracer: str, **extra: Any) -> fx.GraphModule:
    meta = getattr(gm, "meta", None)
    if isinstance(meta, dict):
        meta["tracer"] = tracer
        meta.update(extra)
    else:  # older torch without GraphModule.meta
        gm.wb_tracer = tracer
    return gm


def _all_failed(model: nn.Module, failures: list[_Failure]) -> str:
    name = type(model).__name__
    tries = "; ".join(f"{f.how} failed {_where_text(model, f.where)} ({f.error})" for f in failures)
    recorded = failures[-1]
    blame = failures[0] if recorded.model_failed else recorded  # a model that does not run: fx's culprit
    target = f"submodule {blame.where!r}" if blame.where else name
    check = "pass an example input the model runs on, or " if recorded.model_failed else ""
    return (
        f"cannot trace {name}: {tries}. torch.fx cannot trace Python control flow on tensors, and recording a run "
        f"needs the model to run on the example input through torch operations only; {check}rewrite the forward "
        f"of {target} without what failed there, or mark it as a leaf (trace_model(..., is_leaf=...))."
    )


class _RecordingShapeProp(ShapeProp):
    """ShapeProp that also keeps small non-tensor results (sizes, ints) and remembers the failing node."""

    current: fx.Node | None = None

    def run_node(self, n: fx.Node) -> Any:
        self.current = n
        result = super().run_node(n)
        if isinstance(result, (int, float, bool, torch.Size)) or (
            isinstance(result, (tuple, list)) and all(isinstance(v, (int, float, bool)) for v in result)
        ):
            n.meta["wb_value"] = result
        return result


def propagate_shapes(gm: fx.GraphModule, model: nn.Module, example_input: torch.Tensor) -> None:
    """Run ``gm`` once on ``example_input`` in eval mode (fake tensors first), filling ``node.meta["tensor_meta"]``."""
    if not isinstance(example_input, torch.Tensor):
        raise GraphError(
            f"example_input must be a torch.Tensor batch, got {type(example_input).__name__}; "
            "use workbench.zoo.example_input(model) for zoo models."
        )
    expected = getattr(model, "input_shape", None)
    with evaluation_mode(model):  # every submodule's own mode comes back afterwards
        try:  # shapes only: fake tensors make this nearly free even for large networks
            from torch._subclasses.fake_tensor import FakeTensorMode

            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()), _quiet("torch._subclasses.fake_tensor"):
                _RecordingShapeProp(gm, fake_mode=FakeTensorMode()).propagate(example_input)
            return
        except Exception:  # an op without fake support, or a real error: rerun for real to find out
            pass
        prop = _RecordingShapeProp(gm)
        try:
            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
                prop.propagate(example_input)
        except Exception as exc:
            raise _run_error(model, prop.current, exc, example_input, expected) from exc


@contextlib.contextmanager
def _quiet(logger_name: str) -> Any:
    """Silence a logger (fake-tensor failures are retried for real, with a proper error)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run_error(
    model: nn.Module, node: fx.Node | None, exc: Exception, example_input: torch.Tensor, expected: Any
) -> GraphError:
    cause = exc.__cause__ or exc
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    if node is None:
        where = "the forward"
    elif node.op == "call_module":
        where = f"layer {node.target!r}"
    else:
        where = f"operation {node.name!r}"
    hint = f"; the model expects input of shape (batch, {', '.join(map(str, expected))})" if expected else ""
    return GraphError(
        f"running {type(model).__name__} on the example input of shape {tuple(example_input.shape)} failed at "
        f"{where}: {first}{hint}. Pass an example input of the shape the model takes."
    )
