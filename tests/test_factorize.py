"""Low-rank and tensor factorization: exact at full rank, optimal SVD truncation, budgets, checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.errors import CompressionError, ConfigError
from workbench.metrics import count_params
from workbench.surgery import cp_conv, factorize, reconstruct, svd_linear, tucker2_conv
from workbench.zoo import create_model, example_input


def out_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def test_svd_truncation_is_the_eckart_young_optimum():
    torch.manual_seed(0)
    layer = nn.Linear(20, 12)
    s = torch.linalg.svdvals(layer.weight.detach().double())
    for rank in (12, 5, 1):
        two = svd_linear(layer, rank)
        product = (two[1].weight @ two[0].weight).detach().double()
        error = torch.linalg.norm(product - layer.weight.detach().double())
        assert float(error) == pytest.approx(float(torch.sqrt((s[rank:] ** 2).sum())), abs=1e-5)
    x = torch.randn(7, 20)
    assert out_diff(svd_linear(layer, 12), layer, x) < 1e-5


def test_svd_rank_by_energy_and_budget():
    torch.manual_seed(1)
    layer = nn.Linear(30, 30, bias=False)
    s2 = torch.linalg.svdvals(layer.weight.detach().double()) ** 2
    two = svd_linear(layer, energy=0.8)
    r = two[0].out_features
    kept = float(s2[:r].sum() / s2.sum())
    assert kept >= 0.8 and float(s2[: r - 1].sum() / s2.sum()) < 0.8
    assert count_params(svd_linear(layer, budget=0.25)) <= 0.25 * 900


def test_tucker2_is_exact_at_full_rank_and_smaller_on_budget():
    torch.manual_seed(2)
    conv = nn.Conv2d(6, 10, 3, stride=2, padding=1)
    x = torch.randn(3, 6, 9, 9)
    assert out_diff(tucker2_conv(conv, (10, 6)), conv, x) < 1e-4
    small = tucker2_conv(conv, budget=0.3)
    assert count_params(small) - 10 <= 0.3 * conv.weight.numel() + 1
    assert small(x).shape == conv(x).shape


def test_cp_recovers_a_low_rank_kernel():
    torch.manual_seed(3)
    rank = 3
    a, b, c, d = torch.randn(8, rank), torch.randn(5, rank), torch.randn(3, rank), torch.randn(3, rank)
    conv = nn.Conv2d(5, 8, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.einsum("or,cr,hr,wr->ochw", a, b, c, d))
    x = torch.randn(2, 5, 7, 7)
    cp = cp_conv(conv, rank, n_iter_max=500)
    assert [m.groups for m in cp] == [1, rank, rank, 1]
    assert out_diff(cp, conv, x) < 1e-3 * float(conv(x).detach().abs().max())


def test_factorize_model_and_checkpoint(tmp_path):
    torch.manual_seed(4)
    model = create_model("lenet5", input_size=28)
    x = example_input(model, 2)
    for method in ("svd", "tucker2", "cp"):
        small = factorize(model, method, budget=0.5)
        assert small(x).shape == model(x).shape
        assert count_params(small) < count_params(model)
        loaded, _ = load_checkpoint(save_checkpoint(tmp_path / f"{method}.pt", small))
        assert out_diff(loaded, small, x) == 0.0
    assert count_params(model) == 431_080  # the original is untouched


def test_global_error_reconstruction_reduces_the_output_error():
    from workbench.datasets import load_dataset
    from workbench.train import fit

    train = load_dataset("digits", split="train")
    torch.manual_seed(5)
    model = create_model("mlp", widths=[64, 128, 64, 10])
    fit(model, train, epochs=5, quiet=True)
    small = factorize(model, "svd", budget=0.15)

    def mse() -> float:
        with torch.no_grad():
            return float(((small(train.inputs) - model(train.inputs)) ** 2).mean())

    before = mse()
    reconstruct(small, model, train, epochs=20, lr=1e-2, quiet=True)
    assert mse() < 0.7 * before


def test_bad_factorization_requests():
    conv = nn.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(CompressionError, match="groups=2"):
        tucker2_conv(conv, (2, 2))
    with pytest.raises(CompressionError, match="nn.Linear"):
        svd_linear(conv, 2)
    with pytest.raises(ConfigError, match="rank must be an integer"):
        svd_linear(nn.Linear(4, 3), 5)
    with pytest.raises(ConfigError, match="exactly one"):
        svd_linear(nn.Linear(4, 3))
    with pytest.raises(ConfigError, match="unknown factorization"):
        factorize(nn.Sequential(nn.Linear(3, 3)), "qr")
    with pytest.raises(CompressionError, match="is a Linear"):
        factorize(nn.Sequential(nn.Linear(3, 3)), "cp", layers=["0"])
    with pytest.raises(ConfigError, match="budget"):
        factorize(nn.Sequential(nn.Linear(3, 3)), "svd", budget=1.5)
