"""The layer-adapter contract and its registry.

A :class:`LayerAdapter` says what one layer type means for the graph and for surgery: how its channels
couple to its input's (:class:`Connection`), how it is sliced, how its weights read as (out, in) for
fusion and views, and how it is counted. Tracing, adjacency, unit views, slicing, fusion and size
prediction ask :func:`adapter_for` instead of testing layer types themselves; a user registers an adapter
for a layer type of their own with :func:`register_adapter`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.errors import ConfigError, SurgeryError


@dataclass(frozen=True)
class Connection:
    """How one call of a layer relates its output channels to its input channels.

    Attributes
    ----------
    n_out
        Output channels (units) along the output's unit dimension.
    reads
        True when the layer reads its input's channels through weights (it consumes them: its input
        columns are sliced when an input unit goes).
    tie
        (n_out,) input channel each output channel is tied to (kept or removed with it: BatchNorm,
        depthwise convolutions); None when the output channels are new units.
    in_blocks, out_blocks
        The input (output) channels fall into this many equal consecutive blocks that must keep equal
        counts (grouped convolutions, attention heads).
    whole
        Output channels are tied in consecutive runs of this many (GroupNorm removes whole groups).
    """

    n_out: int
    reads: bool
    tie: np.ndarray | None = None
    in_blocks: int = 1
    out_blocks: int = 1
    whole: int = 1


class LayerAdapter:
    """What a layer type means for the graph and for surgery. Subclass it for a layer of your own.

    The defaults describe a layer that owns no units; override what applies. ``unit_parameters`` lists
    the per-output-unit tensors (attribute name, dimension); the default :meth:`slice_out` cuts them and
    calls :meth:`set_out_count`.
    """

    #: Graph kind of the layer (see :mod:`workbench.graph.kinds`), e.g. "linear", "conv", "bn".
    kind_name = "opaque"

    def kind(self, module: nn.Module) -> str:
        """Graph kind of this module."""
        return self.kind_name

    def unit_dim(self, module: nn.Module, ndim: int) -> int | None:
        """Dimension of the channels in an input (and output) of ``ndim`` dimensions; None when the input
        carries no units (token ids)."""
        return min(1, ndim - 1)

    def out_dim(self, module: nn.Module, ndim: int) -> int:
        """Dimension of the units in an output of ``ndim`` dimensions."""
        found = self.unit_dim(module, ndim)
        return ndim - 1 if found is None else found

    def connect(self, module: nn.Module, n_in: int) -> Connection | None:
        """How the module's outputs relate to its ``n_in`` input channels; None when it cannot read that
        many (the graph then leaves the layer untracked and fixes its inputs)."""
        return None

    # -- sizes of the two sides ---------------------------------------------------------------------
    def out_count(self, module: nn.Module) -> int | None:
        """Output channels (None when the module owns none)."""
        return None

    def in_count(self, module: nn.Module) -> int | None:
        """Input channels it reads through weights (None when it reads none)."""
        return None

    # -- weights as (out, in_per_group, *kernel) for views, fusion and adjacency ----------------------
    def weight(self, module: nn.Module) -> torch.Tensor | None:
        """The weight as (out, in_per_group, *kernel), a view of the parameter where possible."""
        return None

    def groups(self, module: nn.Module) -> int:
        """Number of channel groups of the weight (1 for dense layers)."""
        return 1

    def bias(self, module: nn.Module) -> torch.Tensor | None:
        """Per-output-unit bias added after the weights (None without one)."""
        return getattr(module, "bias", None) if isinstance(getattr(module, "bias", None), torch.Tensor) else None

    def normalizer(self, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(scale, shift) per unit that the module applies in eval mode (BatchNorm), None otherwise."""
        return None

    def kernel_span(self, module: nn.Module) -> int:
        """Weight entries per (out, in) pair (the kernel's size; 1 for Linear)."""
        return 1

    # -- least-squares refits (``fuse="lsq"``) ---------------------------------------------------------
    def refittable(self, module: nn.Module) -> bool:
        """Whether ``fuse="lsq"`` can refit the module's weights (it needs :meth:`design_rows`)."""
        return False

    def design_rows(self, module: nn.Module, inputs: torch.Tensor, target: torch.Tensor, max_positions: int, rng: Any):
        """(design rows, target rows) of a least-squares refit of :meth:`fit_weight` on one batch: ``inputs`` of
        the module, ``target`` its desired outputs less the bias; at most ``max_positions`` positions a sample,
        drawn with the numpy Generator ``rng``."""
        raise NotImplementedError

    def fit_weight(self, module: nn.Module) -> torch.Tensor:
        """The weight as the columns of :meth:`design_rows` see it, (out, in, *kernel)."""
        return module.weight.data

    def set_fit_weight(self, module: nn.Module, weight: torch.Tensor) -> None:
        """Store a refitted :meth:`fit_weight`."""
        module.weight.data = weight.contiguous()

    # -- slicing ----------------------------------------------------------------------------------------
    def unit_parameters(self, module: nn.Module) -> list[tuple[str, int]]:
        """(attribute, dimension) of every tensor with one slice per output unit."""
        return []

    def set_out_count(self, module: nn.Module, n: int) -> None:
        """Update the module's size attributes after its outputs were cut to ``n``."""

    def slice_out(self, module: nn.Module, keep: np.ndarray) -> None:
        """Keep output channels ``keep`` (positions, sorted)."""
        for attr, dim in self.unit_parameters(module):
            set_param(module, attr, dim, keep)
        self.set_out_count(module, len(keep))

    def slice_in(self, module: nn.Module, keep: np.ndarray) -> None:
        """Keep input channels ``keep`` (positions, sorted)."""
        raise SurgeryError(
            f"{type(module).__name__} reads its input's units in a way surgery cannot edit; leave its group out "
            "of the plan, or register a LayerAdapter with slice_in for it (workbench.adapters.register_adapter)."
        )

    def slice_problem(self, module: nn.Module, side: str) -> str | None:
        """Why this module cannot be sliced on ``side`` ("out" or "in"), None when it can."""
        return None

    # -- counting ---------------------------------------------------------------------------------------
    def count(self, module: nn.Module, output_shape: tuple[int, ...] | None, n_out: int, n_in: int) -> tuple[int, int]:
        """(parameters, multiply-adds per sample) with ``n_out`` outputs and ``n_in`` inputs kept."""
        params = 0
        full = self.out_count(module) or 1
        for parameter in module.parameters(recurse=False):
            per_unit = parameter.numel() // max(1, full)
            params += parameter.numel() if parameter.numel() == 1 else n_out * per_unit
        return params, 0


def set_param(module: nn.Module, name: str, dim: int, keep: np.ndarray) -> None:
    """Replace parameter or buffer ``name`` of ``module`` by its slices ``keep`` along ``dim``."""
    old = getattr(module, name, None)
    if old is None:
        return
    index = torch.as_tensor(np.asarray(keep), dtype=torch.long, device=old.device)
    new = old.detach().index_select(dim, index).clone()
    if isinstance(old, nn.Parameter):
        setattr(module, name, nn.Parameter(new, requires_grad=old.requires_grad))
    else:
        setattr(module, name, new)


def spatial_size(output_shape: tuple[int, ...] | None, start: int = 2) -> int:
    """Product of an output shape's dimensions from ``start`` (1 without them)."""
    return math.prod(output_shape[start:]) if output_shape and len(output_shape) > start else 1


_ADAPTERS: dict[type, LayerAdapter] = {}


def register_adapter(layer_type: type, adapter: LayerAdapter, *, replace: bool = False) -> None:
    """Register ``adapter`` for modules of ``layer_type`` (and its subclasses without an adapter of their own).

    Raises
    ------
    ConfigError
        ``layer_type`` is not an ``nn.Module`` class, ``adapter`` is not a :class:`LayerAdapter`, or the type
        already has one and ``replace`` is False.
    """
    if not (isinstance(layer_type, type) and issubclass(layer_type, nn.Module)):
        raise ConfigError(f"register_adapter needs an nn.Module subclass, got {layer_type!r}.")
    if not isinstance(adapter, LayerAdapter):
        raise ConfigError(f"register_adapter needs a LayerAdapter instance, got {type(adapter).__name__}.")
    if layer_type in _ADAPTERS and not replace:
        raise ConfigError(
            f"{layer_type.__name__} already has an adapter ({type(_ADAPTERS[layer_type]).__name__}); "
            "pass replace=True to override it."
        )
    _ADAPTERS[layer_type] = adapter


def unregister_adapter(layer_type: type) -> None:
    """Remove the adapter registered for exactly ``layer_type`` (nothing happens if there is none)."""
    _ADAPTERS.pop(layer_type, None)


def adapter_for(module: nn.Module) -> LayerAdapter | None:
    """The adapter of ``module``'s type, or of its nearest base class with one; None when no adapter applies."""
    for cls in type(module).__mro__:
        adapter = _ADAPTERS.get(cls)
        if adapter is not None:
            return adapter
    return None


def registered_types() -> dict[type, LayerAdapter]:
    """Layer type -> adapter, as registered."""
    return dict(_ADAPTERS)


def check_out_count(name: str, module: nn.Module, expected: int, adapter: LayerAdapter) -> None:
    """SurgeryError when ``module`` no longer has the ``expected`` output channels."""
    count = adapter.out_count(module)
    if count is not None and count != expected:
        raise SurgeryError(
            f"layer {name!r} has {count} output units, but the graph expects {expected}; "
            "the graph was built from another model or the layer was already pruned."
        )


def module_has_parameters(module: nn.Module) -> bool:
    """Whether ``module`` owns parameters directly (not through children)."""
    return any(True for _ in module.parameters(recurse=False))


def blocks_of(n: int, blocks: int) -> np.ndarray:
    """Block label of each of ``n`` channels split into ``blocks`` equal consecutive blocks."""
    return np.arange(n) // max(1, n // max(1, blocks))


def as_tuple(value: Any) -> tuple[int, ...]:
    """An int or sequence of ints as a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),)
