"""Structured sparsity learning (Wen et al., NIPS 2016): group-lasso penalties and zeroed-group reports.

Groups of a weight ``W`` of shape ``(out, in, *kernel)`` (a Linear weight is ``(out, in)``):

- ``"filters"``: one group per output channel / neuron, ``W[o]``;
- ``"channels"``: one group per input channel / input feature, ``W[:, i]``;
- ``"shapes"``: one group per (input channel, kernel position) across all filters, ``W[:, i, k...]``;
- ``"depth"``: the whole layer (for layers on a residual branch that may vanish entirely).

The penalty is ``strength * sum_groups ||W_g||_2``; use it as ``fit(..., penalty=GroupLasso(...))``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from workbench.errors import CompressionError
from workbench.sparse.layers import weight_layers

GROUP_KINDS = ("filters", "channels", "shapes", "depth")


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    for kind in kinds:
        if kind not in GROUP_KINDS:
            raise CompressionError(f"unknown group kind {kind!r}; choose from {', '.join(GROUP_KINDS)}.")
    if not kinds:
        raise CompressionError("give at least one group kind: " + ", ".join(GROUP_KINDS))
    return kinds


def group_norms(weight: torch.Tensor, kind: str) -> torch.Tensor:
    """L2 norms of the groups of ``kind`` in ``weight`` (a 1-D tensor, differentiable)."""
    if kind == "filters":
        return weight.flatten(1).norm(dim=1)
    if kind == "channels":
        return weight.transpose(0, 1).flatten(1).norm(dim=1)
    if kind == "shapes":
        return weight.flatten(1).norm(dim=0)
    if kind == "depth":
        return weight.norm().reshape(1)
    raise CompressionError(f"unknown group kind {kind!r}; choose from {', '.join(GROUP_KINDS)}.")


def group_masks(weight: torch.Tensor, kind: str, zeroed: torch.Tensor) -> torch.Tensor:
    """Boolean mask over ``weight`` of the entries belonging to the groups flagged in ``zeroed``."""
    if kind == "filters":
        return zeroed.view(-1, *([1] * (weight.dim() - 1))).expand_as(weight)
    if kind == "channels":
        return zeroed.view(1, -1, *([1] * (weight.dim() - 2))).expand_as(weight)
    if kind == "shapes":
        return zeroed.view(1, *weight.shape[1:]).expand_as(weight)
    return zeroed.view(*([1] * weight.dim())).expand_as(weight)


class GroupLasso:
    """Group-lasso penalty callable ``model -> scalar``.

    Parameters
    ----------
    strength
        Coefficient of the penalty (lambda); one number, or a dict by kind.
    kinds
        Group kinds to penalize (see the module docstring).
    layers
        Layers to penalize (all Linear / Conv layers when None).
    depth_layers
        Layers for ``"depth"`` groups (required when ``"depth"`` is among ``kinds``: whole layers can only
        vanish where a skip connection carries the signal).
    """

    def __init__(
        self,
        strength: float | dict[str, float] = 1e-3,
        kinds: Sequence[str] = ("filters", "channels"),
        layers: Iterable[str] | None = None,
        depth_layers: Iterable[str] | None = None,
    ) -> None:
        self.kinds = _check_kinds(kinds)
        self.layers = None if layers is None else list(layers)
        self.depth_layers = None if depth_layers is None else list(depth_layers)
        if "depth" in self.kinds and not self.depth_layers:
            raise CompressionError(
                "group kind 'depth' needs depth_layers=[...]: the layers (on residual branches) allowed to vanish."
            )
        self.strength = strength
        for kind in self.kinds:
            s = strength.get(kind, 0.0) if isinstance(strength, dict) else strength
            if float(s) < 0:
                raise CompressionError(f"group-lasso strength for {kind!r} must be >= 0, got {s}.")

    def _strength(self, kind: str) -> float:
        return float(self.strength.get(kind, 0.0)) if isinstance(self.strength, dict) else float(self.strength)

    def __call__(self, model: nn.Module) -> torch.Tensor:
        total = None
        for kind in self.kinds:
            lam = self._strength(kind)
            if lam == 0:
                continue
            names = self.depth_layers if kind == "depth" else self.layers
            for _, module in weight_layers(model, names, what="group lasso"):
                term = lam * group_norms(module.weight, kind).sum()
                total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return total

    def prox_hook(self, lr: float) -> GroupLassoProx:
        """A training hook applying the group soft-threshold (proximal step) after every optimizer step.

        With plain SGD at learning rate ``lr`` and this hook *instead of* the penalty, groups reach exact
        zeros rather than oscillating around them.
        """
        return GroupLassoProx(self, lr)


class GroupLassoProx:
    """After each step, shrink every group: ``W_g *= max(0, 1 - lr * lambda / ||W_g||)`` (exact zeros)."""

    def __init__(self, penalty: GroupLasso, lr: float) -> None:
        if lr <= 0:
            raise CompressionError(f"prox_hook learning rate must be > 0, got {lr}.")
        self.penalty = penalty
        self.lr = float(lr)

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        for kind in self.penalty.kinds:
            lam = self.penalty._strength(kind)
            if lam == 0:
                continue
            names = self.penalty.depth_layers if kind == "depth" else self.penalty.layers
            for _, module in weight_layers(model, names, what="group lasso"):
                w = module.weight
                norms = group_norms(w, kind)
                scale = torch.clamp(1.0 - self.lr * lam / norms.clamp_min(1e-12), min=0.0)
                if kind == "filters":
                    w.mul_(scale.view(-1, *([1] * (w.dim() - 1))))
                elif kind == "channels":
                    w.mul_(scale.view(1, -1, *([1] * (w.dim() - 2))))
                elif kind == "shapes":
                    w.mul_(scale.view(1, *w.shape[1:]))
                else:
                    w.mul_(scale.view(*([1] * w.dim())))


@dataclass
class LayerGroups:
    """Zeroed groups of one layer."""

    name: str
    weights: int
    zeroed: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    removable: int = 0


@dataclass
class StructuredReport:
    """Per-layer zeroed groups and the parameters that surgery could physically remove."""

    layers: list[LayerGroups]
    tol: float

    @property
    def removable(self) -> int:
        """Weights belonging to at least one zeroed group (plus biases of zeroed filters), over all layers."""
        return sum(layer.removable for layer in self.layers)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    def to_dict(self) -> dict:
        return {
            "tol": self.tol,
            "weights": self.weights,
            "removable": self.removable,
            "layers": [vars(layer) for layer in self.layers],
        }


@torch.no_grad()
def structured_report(
    model: nn.Module,
    tol: float = 1e-3,
    kinds: Sequence[str] = ("filters", "channels", "shapes"),
    layers: Iterable[str] | None = None,
) -> StructuredReport:
    """Count the groups whose L2 norm is below ``tol`` and the parameters their removal would save.

    A weight is removable if it lies in any zeroed group (so overlapping groups are not counted twice);
    a zeroed filter also removes its bias entry. ``workbench.surgery.shrink_zeroed`` does the removal
    (a physically smaller model) for the filters and channels; zeroed filter shapes stay as sparse weights.
    """
    kinds = _check_kinds(kinds)
    if tol < 0:
        raise CompressionError(f"tol must be >= 0, got {tol}.")
    rows = []
    for name, module in weight_layers(model, layers, what="structured_report"):
        w = module.weight.detach()
        removable = torch.zeros_like(w, dtype=torch.bool)
        row = LayerGroups(name=name, weights=w.numel())
        zero_filters = None
        for kind in kinds:
            zeroed = group_norms(w, kind) < tol
            row.zeroed[kind] = int(zeroed.sum())
            row.groups[kind] = int(zeroed.numel())
            removable |= group_masks(w, kind, zeroed)
            if kind == "filters":
                zero_filters = zeroed
        row.removable = int(removable.sum())
        if zero_filters is not None and getattr(module, "bias", None) is not None:
            row.removable += int(zero_filters.sum())
        rows.append(row)
    return StructuredReport(layers=rows, tol=float(tol))
