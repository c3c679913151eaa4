"""Soft weight-sharing (Ullrich, Meeds & Welling, ICLR 2017).

A Gaussian-mixture prior over all layer weights is learned jointly with the network during retraining:
one component is pinned at zero with a fixed, high mixing proportion ``pi_zero``; the other components
have learned means, learned log-precisions (with Gamma hyper-priors) and learned mixing proportions.
Retraining minimises ``cross-entropy (batch mean) + tau * (-log prior(w) - log hyper-prior) / n_train``.
Afterwards components that became too similar are merged and every weight is set to the mean of its
most responsible component (zero for the zero component), giving a weight-shared, sparse model.

Design: :class:`GaussianMixturePrior` is an ``nn.Module`` that owns its parameters; since the prior
needs its own learning rates, :func:`soft_weight_sharing` trains model and prior with
:func:`workbench.train.fit` and parameter groups. The prior can also be used as a ``penalty`` of any
trainer that optimizes its parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.datasets.batches import sample_count
from workbench.edits import record_edit, set_note
from workbench.errors import CompressionError
from workbench.quantize.sharing import DEFAULT_INDEX_BITS, SharedWeight
from workbench.sparse.layers import attach, layer_kind, maybe_copy, weight_layers
from workbench.train import fit
from workbench.utils import RandomState


class GaussianMixturePrior(nn.Module):
    """Mixture prior ``sum_j pi_j N(w | mu_j, 1/lambda_j)`` with ``mu_0 = 0`` and ``pi_0 = pi_zero`` fixed.

    Parameters
    ----------
    components
        Number of components ``J`` including the zero component (the paper uses 17 = 16 + zero).
    init_range
        Non-zero means start evenly spaced in ``[-init_range, init_range]`` (zero excluded).
    init_std
        Initial standard deviation of every component.
    zero_gamma, other_gamma
        ``(alpha, beta)`` of the Gamma hyper-priors on the precisions of the zero and the other components.
    zero_std
        If given, the zero component's standard deviation is fixed at this value (a simple constraint
        instead of its hyper-prior): with few retraining epochs a learned zero component tends to widen
        until it swallows most weights.
    """

    def __init__(
        self,
        components: int = 17,
        init_range: float = 0.5,
        init_std: float = 0.05,
        pi_zero: float = 0.99,
        zero_gamma: tuple[float, float] = (5000.0, 2.0),
        other_gamma: tuple[float, float] = (250.0, 0.1),
        layers: Iterable[str] | None = None,
        zero_std: float | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(components, int) or components < 2:
            raise CompressionError(f"components must be an int >= 2 (zero plus at least one), got {components!r}.")
        if not 0.0 < pi_zero < 1.0:
            raise CompressionError(f"pi_zero must be in (0, 1), got {pi_zero}.")
        if init_range <= 0 or init_std <= 0:
            raise CompressionError("init_range and init_std must be > 0.")
        k = components - 1
        half = np.linspace(-init_range, init_range, k + 1 if k % 2 else k)
        means = [m for m in half if abs(m) > 1e-12][:k]
        self.means = nn.Parameter(torch.tensor(means, dtype=torch.float32))
        self.log_precisions = nn.Parameter(torch.full((components,), -2.0 * math.log(init_std)))
        self.mixing_logits = nn.Parameter(torch.zeros(k))
        self.pi_zero = float(pi_zero)
        self.register_buffer("gamma_alpha", torch.tensor([zero_gamma[0]] + [other_gamma[0]] * k))
        self.register_buffer("gamma_beta", torch.tensor([zero_gamma[1]] + [other_gamma[1]] * k))
        self.layers = None if layers is None else list(layers)
        if zero_std is not None and zero_std <= 0:
            raise CompressionError(f"zero_std must be > 0 or None, got {zero_std}.")
        self.zero_std = zero_std

    def precisions_log(self) -> torch.Tensor:
        """Log-precisions in use: the zero component's is fixed at ``zero_std`` when that is given."""
        if self.zero_std is None:
            return self.log_precisions
        fixed = torch.full((1,), -2.0 * math.log(self.zero_std), device=self.log_precisions.device)
        return torch.cat([fixed, self.log_precisions[1:]])

    def all_means(self) -> torch.Tensor:
        return torch.cat([torch.zeros(1, device=self.means.device), self.means])

    def mixing(self) -> torch.Tensor:
        rest = torch.softmax(self.mixing_logits, 0) * (1.0 - self.pi_zero)
        return torch.cat([torch.full((1,), self.pi_zero, device=rest.device), rest])

    def log_component_densities(self, w: torch.Tensor) -> torch.Tensor:
        """``log pi_j + log N(w | mu_j, 1/lambda_j)`` for each weight (rows) and component (columns)."""
        log_lam = self.precisions_log()
        diff = w.reshape(-1, 1) - self.all_means()[None, :]
        log_norm = 0.5 * (log_lam - math.log(2 * math.pi)) - 0.5 * log_lam.exp() * diff**2
        return torch.log(self.mixing())[None, :] + log_norm

    def weights_of(self, model: nn.Module) -> torch.Tensor:
        """All weights the prior covers, flattened."""
        return torch.cat(
            [m.weight.reshape(-1) for _, m in weight_layers(model, self.layers, what="soft weight-sharing")]
        )

    def negative_log_prior(self, model: nn.Module) -> torch.Tensor:
        """``-log p(w) - log p(lambda)`` (Gamma hyper-priors, up to constants)."""
        w = self.weights_of(model)
        nll = -torch.logsumexp(self.log_component_densities(w), dim=1).sum()
        log_lam = self.precisions_log()
        hyper = (self.gamma_alpha - 1) * log_lam - self.gamma_beta * log_lam.exp()
        if self.zero_std is not None:
            hyper = hyper[1:]
        hyper = hyper.sum()
        return nll - hyper

    def forward(self, model: nn.Module) -> torch.Tensor:
        return self.negative_log_prior(model)

    @torch.no_grad()
    def merge(self, kl_threshold: float = 1e-2) -> int:
        """Merge pairs of non-zero components whose symmetric KL divergence is below ``kl_threshold``.

        The merged component takes the mixing-weighted mean and precision; the other gets a vanishing
        mixing proportion. A component close to the zero one merges into it (its weights become zero).
        Returns the number of merges.
        """
        merged = 0
        while True:
            mu = self.all_means()
            var = (-self.precisions_log()).exp()
            pi = self.mixing()
            alive = [j for j in range(len(mu)) if j == 0 or pi[j] > 1e-12]
            best = None
            for a_i, a in enumerate(alive):
                for b in alive[a_i + 1 :]:
                    kl = 0.5 * (
                        (var[a] / var[b] + var[b] / var[a]) - 2 + (mu[a] - mu[b]) ** 2 * (1 / var[a] + 1 / var[b])
                    )
                    if kl < kl_threshold and (best is None or kl < best[0]):
                        best = (float(kl), a, b)
            if best is None:
                return merged
            _, a, b = best
            if a == 0:  # b joins the zero component: it simply disappears
                self.mixing_logits[b - 1] = -1e4
            else:
                wa, wb = pi[a], pi[b]
                self.means[a - 1] = (wa * mu[a] + wb * mu[b]) / (wa + wb)
                self.log_precisions[a] = torch.log(
                    (wa * self.log_precisions[a].exp() + wb * self.log_precisions[b].exp()) / (wa + wb)
                )
                logits = self.mixing_logits.clone()
                logits[a - 1] = torch.logsumexp(torch.stack([logits[a - 1], logits[b - 1]]), 0)
                logits[b - 1] = -1e4
                self.mixing_logits.copy_(logits)
            merged += 1

    @torch.no_grad()
    def assign(self, w: torch.Tensor) -> torch.Tensor:
        """Index of the most responsible component for each weight."""
        return self.log_component_densities(w).argmax(dim=1).reshape(w.shape)


@torch.no_grad()
def quantize_to_prior(model: nn.Module, prior: GaussianMixturePrior, *, kl_threshold: float = 1e-2) -> nn.Module:
    """Merge similar components, then set each weight to its most responsible component's mean (in place).

    Each layer becomes a weight-shared layer (:class:`SharedWeight`) over the component means it uses,
    so storage is counted as for Deep Compression (relative indices + Huffman).
    """
    prior.merge(kl_threshold)
    means = prior.all_means().detach()
    for _, module in weight_layers(model, prior.layers, what="soft weight-sharing"):
        w = module.weight.detach()
        comp = prior.assign(w)
        mask = comp != 0
        used = torch.unique(comp[mask])
        if used.numel() == 0:
            used = torch.tensor([1])
        lookup = torch.full((len(means),), 0, dtype=torch.long)
        lookup[used] = torch.arange(used.numel())
        index = lookup[comp]
        bits = max(1, math.ceil(math.log2(used.numel() + 1)))
        sparse = bool((~mask).any())
        shared = SharedWeight(
            index,
            means[used].float(),
            bits,
            mask=mask if sparse else None,
            index_bits=DEFAULT_INDEX_BITS[layer_kind(module)] if sparse else None,
        )
        attach(module, shared)
    return model


def soft_weight_sharing(
    model: nn.Module,
    train_data: Any,
    *,
    components: int = 17,
    pi_zero: float = 0.99,
    tau: float = 5e-3,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 5e-4,
    means_lr: float = 1e-4,
    prior_lr: float = 3e-3,
    init_std: float | None = None,
    kl_threshold: float = 1e-2,
    init_means: str = "kmeans",
    zero_std: float | None = None,
    layers: Iterable[str] | None = None,
    inplace: bool = False,
    random_state: RandomState = 0,
    prior: GaussianMixturePrior | None = None,
) -> nn.Module:
    """Retrain ``model`` under a learned Gaussian-mixture prior, then merge and quantize to it.

    The loss is ``cross_entropy + tau * negative_log_prior / n_train``. The prior (after merging) is kept
    as the note ``"prior"`` (``workbench.edits.note(model, "prior")``). Non-zero means start at k-means centroids of the pretrained weights
    (``init_means="kmeans"``; the one nearest zero is dropped for the zero component) or evenly spaced over
    the weights' range (``"linear"``, as in the paper); variances at ``init_std`` (default: a quarter of
    the weights' standard deviation).
    """
    model = maybe_copy(model, inplace)
    n_train = sample_count(train_data, "train_data")
    if tau < 0:
        raise CompressionError(f"tau must be >= 0, got {tau}.")
    if prior is None:
        w = torch.cat(
            [m.weight.detach().reshape(-1) for _, m in weight_layers(model, layers, what="soft weight-sharing")]
        )
        prior = GaussianMixturePrior(
            components,
            init_range=float(w.abs().max()),
            init_std=init_std or float(w.std()) / 4,
            pi_zero=pi_zero,
            layers=layers,
            zero_std=zero_std,
        )
        if init_means == "kmeans":
            from workbench.quantize.sharing import kmeans_1d

            centroids, _ = kmeans_1d(w.numpy(), components, init="density", random_state=random_state)
            order = np.argsort(np.abs(centroids))  # the one nearest zero is the zero component
            nonzero = np.sort(centroids[order[1:]])
            if nonzero.size == components - 1:
                with torch.no_grad():
                    prior.means.copy_(torch.from_numpy(nonzero.astype(np.float32)))
        elif init_means != "linear":
            raise CompressionError(f"init_means must be 'kmeans' or 'linear', got {init_means!r}.")
    groups = [
        {"params": [p for p in model.parameters() if p.requires_grad], "lr": lr},
        {"params": [prior.means], "lr": means_lr},
        {"params": [prior.log_precisions, prior.mixing_logits], "lr": prior_lr},
    ]
    fit(
        model,
        train_data,
        epochs=epochs,
        batch_size=batch_size,
        param_groups=groups,
        lr=lr,
        schedule="constant",
        penalty=lambda m: tau * prior(m) / n_train,
        random_state=random_state,
        quiet=True,
    )
    quantize_to_prior(model, prior, kl_threshold=kl_threshold)
    record_edit(model, "soft-sharing", components=components, pi_zero=pi_zero, tau=tau, epochs=epochs)
    return set_note(model, "prior", prior)
