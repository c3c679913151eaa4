"""Tracing a model with ``torch.fx`` and propagating shapes, with errors that say what and where."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from workbench.errors import GraphError


class _NamingTracer(fx.Tracer):
    """A tracer that remembers which submodule it is inside, to name the culprit when tracing fails."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        self.stack.append(self.path_of_module(m))
        result = super().call_module(m, forward, args, kwargs)  # on failure the culprit stays on the stack
        self.stack.pop()
        return result


def check_finite_parameters(model: nn.Module) -> None:
    """Raise :class:`GraphError` naming the first parameter or buffer holding NaN or infinite values."""
    for kind, items in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, tensor in items:
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


def symbolic_trace(model: nn.Module) -> fx.GraphModule:
    """``torch.fx`` trace of ``model``; :class:`GraphError` naming the module being traced on failure."""
    tracer = _NamingTracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, RuntimeError, ... depending on the construct
        where = tracer.stack[-1] if tracer.stack else ""
        where_text = f"in submodule {where!r} of " if where else "in the forward of "
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GraphError(
            f"cannot trace {type(model).__name__} with torch.fx: it failed {where_text}{type(model).__name__} "
            f"({type(exc).__name__}: {first}). Data-dependent control flow (if/for on tensor values) cannot be "
            "traced; rewrite that forward without it, or mark the submodule as a leaf."
        ) from exc
    name = model.__class__.__name__
    return fx.GraphModule(tracer.root, graph, name)


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
    was_training = model.training
    model.eval()
    try:
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
    finally:
        model.train(was_training)


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
