"""Loss-surface tools: power-iteration Hessian eigenvalues against the exact Hessian, linear interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call
from toy import tiny_mlp, toy_data

from workbench.errors import ConfigError, ModelError
from workbench.sparse import prune
from workbench.train import evaluate
from workbench.train.landscape import hessian_eigenvalues, interpolate_loss


def exact_hessian(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for name, shape in zip(names, shapes):
            size = int(np.prod(shape))
            params[name] = vector[start : start + size].reshape(shape)
            start += size
        return nn.functional.cross_entropy(functional_call(model, params, (inputs,)), targets)

    return torch.autograd.functional.hessian(loss, flat)


def test_power_iteration_finds_the_exact_hessians_largest_eigenvalues():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    inputs = torch.randn(40, 4, dtype=torch.float64)
    targets = torch.randint(0, 3, (40,))
    exact = torch.linalg.eigvalsh(exact_hessian(model, inputs, targets))
    top = exact[torch.argsort(exact.abs(), descending=True)][:3].numpy()
    found = hessian_eigenvalues(model, (inputs, targets), k=3, iters=500, tol=1e-10, batch_size=16)
    assert found.converged
    np.testing.assert_allclose(found.values, top, rtol=1e-5)
    assert found.vectors[0].shape == (sum(p.numel() for p in model.parameters()),)


def test_quadratic_loss_hessian_is_twice_the_input_covariance():
    torch.manual_seed(1)
    x = torch.randn(64, 3, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.3], dtype=torch.float64)
    y = torch.randn(64, 1, dtype=torch.float64)
    model = nn.Linear(3, 1, bias=False).double()
    expected = torch.linalg.eigvalsh(2 * x.T @ x / 64).flip(0).numpy()
    found = hessian_eigenvalues(model, (x, y), k=3, tol=1e-12, iters=200, loss_fn=nn.functional.mse_loss)
    np.testing.assert_allclose(found.values, expected, rtol=1e-8)


def test_interpolation_ends_at_both_models_and_sees_a_barrier():
    data = toy_data(96)
    a, b = tiny_mlp(0), tiny_mlp(1)
    line = interpolate_loss(a, b, data, alphas=5)
    assert line.alphas.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert line.losses[0] == pytest.approx(evaluate(a, data)["loss"], rel=1e-6)
    assert line.losses[-1] == pytest.approx(evaluate(b, data)["loss"], rel=1e-6)
    assert line.accuracies is not None and len(line.accuracies) == 5
    same = interpolate_loss(a, a, data, alphas=3)
    assert np.ptp(same.losses) < 1e-6 and same.barrier == 0.0
    assert "alpha" in line.table()


def test_interpolation_reads_masked_weights_as_the_zeros_they_compute_with():
    data = toy_data(64)
    base = tiny_mlp(0)
    pruned = prune(base, rate=0.5)
    line = interpolate_loss(base, pruned, data, alphas=[0.0, 1.0])
    assert line.losses[-1] == pytest.approx(evaluate(pruned, data)["loss"], rel=1e-6)


def test_bad_inputs_are_named():
    data = toy_data(32)
    with pytest.raises(ModelError, match="same architecture"):
        interpolate_loss(tiny_mlp(0), nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3)), data)
    with pytest.raises(ConfigError, match="alphas"):
        interpolate_loss(tiny_mlp(0), tiny_mlp(1), data, alphas=1)
    with pytest.raises(ConfigError, match="exceeds"):
        hessian_eigenvalues(nn.Linear(2, 1), data, k=5)
