"""The loss surface around a trained (or compressed) network.

- :func:`interpolate_loss` -- the loss and accuracy along the straight line between the weights of two
  networks of the same architecture (a base and its pruned-with-masks copy, or two seeds), and the barrier
  on that line (Goodfellow et al. 2015's linear path; a barrier near zero means one basin).
- :func:`hessian_eigenvalues` -- the largest-magnitude eigenvalues of the Hessian of the loss with respect
  to the trainable parameters, by block power (subspace) iteration on Hessian-vector products
  (``torch.autograd`` double back-propagation); the Hessian itself is never formed.

Both run the model in eval mode (batch normalization on its running statistics, no dropout) on a fixed
set of samples, and read weights through their parametrizations (a masked weight counts as the zeros it
computes with).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from workbench.datasets.batches import Batches, Data, check_positive_int
from workbench.errors import ConfigError, ModelError
from workbench.metrics.forward import evaluation_mode, model_dtype
from workbench.train.devices import resolve_device, to_device
from workbench.train.outputs import forward_logits
from workbench.train.tasks import check_task, declared_task, default_loss, task_from_shapes
from workbench.utils import own_class, seed_from

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Interpolation:
    """Loss (and accuracy where the task has one) at ``alphas`` on the line ``(1 - a) A + a B``."""

    alphas: np.ndarray
    losses: np.ndarray
    accuracies: np.ndarray | None = None

    @property
    def barrier(self) -> float:
        """Largest excess of the loss over the straight line between the end points' losses (0 if none)."""
        chord = (1 - self.alphas) * self.losses[0] + self.alphas * self.losses[-1]
        return float(max(0.0, np.max(self.losses - chord)))

    def table(self) -> str:
        """One line per alpha."""
        lines = [f"{'alpha':>6} {'loss':>10}" + (f" {'accuracy':>9}" if self.accuracies is not None else "")]
        for i, (a, loss) in enumerate(zip(self.alphas, self.losses)):
            acc = f" {self.accuracies[i]:>9.4f}" if self.accuracies is not None else ""
            lines.append(f"{a:>6.2f} {loss:>10.4f}{acc}")
        return "\n".join(lines)


def effective_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state_dict with every parametrized tensor replaced by the value it computes with
    (masked, quantized, shared weights), under the plain name (``layer.weight``)."""
    return {key: value.detach() for key, value in _plain_copy(model).state_dict().items()}


def _plain_copy(model: nn.Module) -> nn.Module:
    plain = copy.deepcopy(model)
    for module in plain.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(own_class(module), name, leave_parametrized=True)
    return plain


def _check_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    problems = [k for k in a if k not in b] + [k for k in b if k not in a]
    problems += [f"{k} {tuple(a[k].shape)} vs {tuple(b[k].shape)}" for k in a if k in b and a[k].shape != b[k].shape]
    if problems:
        raise ModelError(
            "interpolation needs two networks of the same architecture (same tensors and shapes); these differ at "
            f"{', '.join(problems[:5])}. Compare a base with its masked copy (pruning, not surgery), or two seeds."
        )


def _alphas(alphas: int | Sequence[float]) -> np.ndarray:
    if isinstance(alphas, (int, np.integer)) and not isinstance(alphas, bool):
        if alphas < 2:
            raise ConfigError(f"alphas must be at least 2 points (the two ends), got {alphas}.")
        return np.linspace(0.0, 1.0, int(alphas))
    values = np.asarray(alphas, dtype=np.float64)
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
        raise ConfigError(f"alphas must be a count or a list of at least 2 finite numbers, got {alphas!r}.")
    return values


def interpolate_loss(
    model_a: nn.Module, model_b: nn.Module, data: Data, *, alphas: int | Sequence[float] = 11, batch_size: int = 256
) -> Interpolation:
    """Loss of the networks ``(1 - a) A + a B`` on ``data`` for each ``a`` of ``alphas`` (a count of evenly
    spaced points in [0, 1], or the values; outside [0, 1] extrapolates).

    Every floating-point tensor of the state (weights, biases, batch-norm statistics) is interpolated;
    integer buffers come from ``A``. Scored by :func:`workbench.train.evaluate` (mean loss, and accuracy
    for classification).

    Raises
    ------
    ModelError
        The two networks do not have the same tensors (e.g. one was rebuilt smaller by surgery).
    """
    from workbench.train.evaluation import evaluate

    grid = _alphas(alphas)
    state_a, state_b = effective_state(model_a), effective_state(model_b)
    _check_same(state_a, state_b)
    work = _plain_copy(model_a)
    losses, accuracies = [], []
    for a in grid:
        mixed = {
            k: (1 - a) * v + a * state_b[k].to(v.device) if v.is_floating_point() else v for k, v in state_a.items()
        }
        work.load_state_dict(mixed)
        scores = evaluate(work, data, batch_size=batch_size)
        losses.append(float(scores["loss"]))
        accuracies.append(scores.get("accuracy", scores.get("miou")))
    acc = None if any(x is None for x in accuracies) else np.asarray(accuracies, dtype=np.float64)
    return Interpolation(grid, np.asarray(losses), acc)


@dataclass
class HessianSpectrum:
    """The ``k`` largest-magnitude Hessian eigenvalues (descending by magnitude) and the iterations used."""

    values: np.ndarray
    iterations: int
    converged: bool
    vectors: list[torch.Tensor] = field(default_factory=list, repr=False)  # flattened, one per value


def _fixed_batches(model: nn.Module, data: Data, max_samples: int, batch_size: int) -> list[tuple[Any, Any]]:
    device, dtype = resolve_device(model, None), model_dtype(model)
    batches, seen = [], 0
    for inputs, targets in Batches(data, batch_size, name="data"):
        if targets is None:
            raise ConfigError("the Hessian of the loss needs labelled data: (inputs, targets) pairs.")
        inputs, targets = inputs[: max_samples - seen], targets[: max_samples - seen]
        batches.append(to_device(inputs, targets, device, dtype))
        seen += len(inputs)
        if seen >= max_samples:
            break
    return batches


def _loss_function(model: nn.Module, data: Data, loss_fn: LossFn | None, task: str | None) -> LossFn:
    if loss_fn is not None:
        return loss_fn
    task = check_task(task) or declared_task(data, model)

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return default_loss(logits, targets, task or task_from_shapes(logits, targets))

    return loss


def hessian_eigenvalues(
    model: nn.Module,
    data: Data,
    k: int = 1,
    *,
    iters: int = 100,
    tol: float = 1e-4,
    max_samples: int = 512,
    batch_size: int = 256,
    loss_fn: LossFn | None = None,
    task: str | None = None,
    random_state: int = 0,
) -> HessianSpectrum:
    """The ``k`` largest-magnitude eigenvalues of the Hessian of the mean loss on the first ``max_samples``
    samples of ``data``, with respect to ``model``'s trainable parameters.

    Block power iteration: a block of ``k + 2`` orthonormal directions is multiplied by the Hessian
    (one Hessian-vector product per direction and batch, by double back-propagation), re-orthonormalized,
    and the eigenvalues read from the block's Rayleigh quotient (Rayleigh-Ritz), until they change by less
    than ``tol`` (relative) or after ``iters`` rounds. At a minimum the largest ones are the sharpest
    curvatures; negative values mean a saddle.

    Parameters
    ----------
    loss_fn
        ``loss(logits, targets) -> scalar``; default cross-entropy for the data's task.
    random_state
        Seed of the starting block.
    """
    k = check_positive_int("k", k)
    iters = check_positive_int("iters", iters)
    max_samples = check_positive_int("max_samples", max_samples)
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    if n == 0:
        raise ConfigError("the model has no trainable parameters; the Hessian is with respect to them.")
    if k > n:
        raise ConfigError(f"k={k} exceeds the {n} trainable parameters.")
    batches = _fixed_batches(model, data, max_samples, batch_size)
    total = sum(len(t) for _, t in batches)
    loss = _loss_function(model, data, loss_fn, task)

    def hvp(block: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(block)
        for inputs, targets in batches:
            value = loss(forward_logits(model, inputs), targets) * (len(targets) / total)
            grads = torch.autograd.grad(value, params, create_graph=True)
            flat = torch.cat([g.reshape(-1) for g in grads])
            for j in range(block.shape[1]):
                products = torch.autograd.grad(flat @ block[:, j], params, retain_graph=True, allow_unused=True)
                out[:, j] += torch.cat(
                    [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(products, params)]
                )
        return out

    size = min(n, k + 2)
    generator = torch.Generator().manual_seed(seed_from(random_state))
    dtype = params[0].dtype
    block = torch.linalg.qr(torch.randn(n, size, generator=generator, dtype=torch.float64))[0]
    previous, values, converged, done = None, None, False, 0
    with evaluation_mode(model):
        while done < iters:
            done += 1
            product = hvp(block.to(params[0].device, dtype)).detach().to(torch.float64).cpu()
            small = block.T @ product
            small = (small + small.T) / 2
            ritz, rotation = torch.linalg.eigh(small)
            order = torch.argsort(ritz.abs(), descending=True)
            values, rotation = ritz[order], rotation[:, order]
            if previous is not None and torch.all(
                (values[:k] - previous[:k]).abs() <= tol * values[:k].abs().clamp_min(1e-12)
            ):
                converged = True
                block = block @ rotation
                break
            previous = values
            block = torch.linalg.qr(product @ rotation)[0]
    vectors = [block[:, j].clone() for j in range(k)]
    return HessianSpectrum(values[:k].numpy(), done, converged, vectors)
