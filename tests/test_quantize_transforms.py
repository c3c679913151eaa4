"""Fixed point, binary / ternary / power-of-two weights, DCT and hashed DCT, soft weight-sharing."""

import math

import numpy as np
import pytest
import scipy.fft
import torch
from torch import nn
from toy import STEADY
from toy import tiny_mlp as _mlp
from toy import toy_data as _data

from workbench.edits import note
from workbench.errors import CompressionError
from workbench.quantize import (
    ActivationQuantizer,
    ClipHook,
    GaussianMixturePrior,
    QuantizedBackprop,
    SignActivation,
    binarize_network,
    binary_connect,
    choose_frac_bits,
    dct_compress,
    dct_kernels,
    fixed_point,
    hashed_dct,
    idct_kernels,
    pow2_quantize,
    power_of_two,
    quantize_fixed,
    quantize_to_prior,
    quantized_backprop,
    soft_weight_sharing,
    ternary_connect,
)
from workbench.train import fit


def test_fixed_point_values_on_grid_and_range():
    x = torch.randn(1000) * 3
    n = choose_frac_bits(x, 8)
    q = quantize_fixed(x, 8, n)
    k = q * 2**n
    assert torch.allclose(k, k.round())
    assert k.min() >= -128 and k.max() <= 127
    assert (q - x).abs().max() <= 2 ** (-n - 1) + 1e-6  # no saturation when frac bits come from the range
    assert choose_frac_bits(torch.tensor([0.3]), 8) == 8  # 0.3 * 2**8 = 76.8 fits in 127


def test_stochastic_rounding_is_unbiased():
    x = torch.full((200_000,), 0.3)
    g = torch.Generator().manual_seed(0)
    q = quantize_fixed(x, 8, 2, "stochastic", g)  # grid step 0.25: values 0.25 or 0.5
    assert set(torch.unique(q).tolist()) == {0.25, 0.5}
    assert q.mean().item() == pytest.approx(0.3, abs=2e-3)
    assert quantize_fixed(x, 8, 2).mean().item() == pytest.approx(0.25)


def test_fixed_point_model_weights_and_activations():
    model = fixed_point(_mlp(), weight_bits=4, act_bits=6)
    w = model[0].weight.detach()
    n = model[0].parametrizations.weight[0].frac_bits
    assert torch.unique(w).numel() <= 16 and torch.allclose(w * 2**n, (w * 2**n).round())
    assert isinstance(model[1][1], ActivationQuantizer)
    x, y = _data()
    h = model[1](model[0](x))
    m = model[1][1].frac_bits
    assert torch.allclose(h * 2**m, (h * 2**m).round())
    nn.functional.cross_entropy(model(x), y).backward()
    assert model[0].parametrizations.weight.original.grad.abs().sum() > 0  # straight through
    with pytest.raises(CompressionError, match="weight_bits for layer '0'"):
        fixed_point(_mlp(), weight_bits=1)
    with pytest.raises(CompressionError, match="no activation modules"):
        fixed_point(nn.Sequential(nn.Linear(2, 2)), weight_bits=8, act_bits=8)


def test_binary_connect_forward_is_sign_and_real_weights_learn():
    model = binary_connect(_mlp())
    real = model[0].parametrizations.weight.original
    assert set(torch.unique(model[0].weight).tolist()) <= {-1.0, 1.0}
    before = real.detach().clone()
    fit(model, _data(), epochs=5, lr=0.05, optimizer="sgd", momentum=0.0, hooks=[ClipHook()], **STEADY)
    assert not torch.equal(before, real.detach())
    assert real.abs().max() <= 1.0
    scaled = binary_connect(_mlp(), scale="mean")
    vals = torch.unique(scaled[0].weight.detach().abs())
    assert vals.numel() == 1 and vals.item() == pytest.approx(
        float(scaled[0].parametrizations.weight.original.detach().abs().mean())
    )


def test_stochastic_binarization_follows_hard_sigmoid():
    layer = nn.Linear(1, 20000, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.4)  # P(+1) = 0.7
    binary_connect(nn.Sequential(layer), mode="stoch", inplace=True)
    layer.train()
    w = layer.weight.detach()
    assert (w == 1).float().mean().item() == pytest.approx(0.7, abs=0.02)
    layer.eval()
    assert torch.all(layer.weight == 1)


def test_bnn_sign_activation_gates_gradient():
    model = binarize_network(_mlp())
    assert isinstance(model[1], SignActivation)
    x = torch.tensor([-2.0, -0.5, 0.5, 2.0], requires_grad=True)
    SignActivation()(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    out = model[1](model[0](_data()[0]))
    assert set(torch.unique(out).tolist()) <= {-1.0, 1.0}


def test_ternary_and_power_of_two_values():
    t = ternary_connect(_mlp(), mode="det")
    assert set(torch.unique(t[0].weight).tolist()) <= {-1.0, 0.0, 1.0}
    layer = nn.Linear(1, 20000, bias=False)
    with torch.no_grad():
        layer.weight.fill_(-0.3)
    ternary_connect(nn.Sequential(layer), mode="stoch", inplace=True)
    layer.train()
    assert layer.weight.detach().mean().item() == pytest.approx(-0.3, abs=0.02)  # unbiased
    p = power_of_two(_mlp(), min_exp=-6, max_exp=0)
    w = p[0].weight.detach()
    nz = w[w != 0].abs()
    e = torch.log2(nz)
    assert torch.allclose(e, e.round()) and e.min() >= -6 and e.max() <= 0
    q = pow2_quantize(torch.tensor([0.3, -0.7, 5.0, 1e-5]), -8, 1)
    assert q.tolist() == [0.25, -0.5, 2.0, 0.0]
    with pytest.raises(CompressionError, match="min_exp"):
        power_of_two(_mlp(), min_exp=2, max_exp=0)


def test_quantized_backprop_uses_pow2_inputs_for_weight_gradient():
    torch.manual_seed(0)
    layer = nn.Linear(5, 2)
    wrapped = quantized_backprop(nn.Sequential(layer))
    assert isinstance(wrapped[0], QuantizedBackprop)
    x = torch.randn(4, 5, requires_grad=True)
    out = wrapped(x)
    assert torch.allclose(out, wrapped[0].layer(x))
    out.sum().backward()
    expected = torch.ones(4, 2).T @ pow2_quantize(x.detach(), -8, 3)
    assert torch.allclose(wrapped[0].layer.weight.grad, expected)
    assert torch.allclose(x.grad, torch.ones(4, 2) @ wrapped[0].layer.weight.detach())


def test_dct_round_trip_and_matches_scipy():
    w = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    c = dct_kernels(w)
    assert np.allclose(c.numpy(), scipy.fft.dctn(w.numpy(), axes=(2, 3), norm="ortho"))
    assert torch.allclose(idct_kernels(c), w)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3))
    full = dct_compress(conv, keep=1.0, bits=16)
    assert torch.allclose(full[0].weight, conv[0].weight, atol=1e-3)
    sparse = dct_compress(conv, keep=0.25, bits=3)
    p = sparse[0].parametrizations.weight[0]
    coef = dct_kernels(sparse[0].weight.detach().double())
    assert (coef.abs() > 1e-6).float().mean() <= 0.26
    assert torch.unique(coef[p.mask].float().round(decimals=5)).numel() <= 7
    with pytest.raises(CompressionError, match="keep for layer '0'"):
        dct_compress(conv, keep=0.0)
    with pytest.raises(CompressionError, match=r"compression for layer '0' must be in \(0, 1\]"):
        hashed_dct(conv, compression=1.5)
    with pytest.raises(CompressionError, match="'0'.*Linear"):
        dct_compress(nn.Sequential(nn.Linear(3, 3)), layers=["0"])


def test_freshnets_fewer_parameters_and_weights_follow_buckets():
    conv = nn.Sequential(nn.Conv2d(4, 8, 3))
    hashed = hashed_dct(conv, compression=0.25)
    layer = hashed[0]
    p = layer.parametrizations.weight[0]
    n_params = sum(t.numel() for t in layer.parameters())
    assert n_params < conv[0].weight.numel() + conv[0].bias.numel()
    budgets = p.band_budget  # low bands get more buckets per coefficient
    counts = [1, 2, 3, 2, 1]
    per_coef = [b / c for b, c in zip(budgets, counts)]
    assert per_coef[0] > per_coef[-1]
    buckets = layer.parametrizations.weight.original
    with torch.no_grad():
        buckets.zero_()
        buckets[0] = 1.0
    expected = idct_kernels((p.bucket_index == 0).float() * p.sign)
    assert torch.allclose(layer.weight, expected, atol=1e-6)
    x = torch.randn(2, 4, 6, 6)
    layer(x).sum().backward()
    assert buckets.grad is not None and buckets.grad.abs().sum() > 0
    again = hashed_dct(conv, compression=0.25)
    assert torch.equal(again[0].parametrizations.weight[0].bucket_index, p.bucket_index)  # deterministic hash


def test_soft_weight_sharing_prior_and_quantization():
    prior = GaussianMixturePrior(components=5, init_range=0.5, init_std=0.05)
    assert prior.mixing().sum().item() == pytest.approx(1.0)
    assert prior.mixing()[0].item() == pytest.approx(0.99)
    model = _mlp()
    nlp = prior(model)
    nlp.backward()
    assert prior.means.grad is not None and prior.log_precisions.grad is not None
    with torch.no_grad():  # weights near 0 or +-0.5
        model[0].weight.copy_(torch.tensor([0.0, 0.5, -0.5, 0.01])[torch.randint(0, 4, model[0].weight.shape)])
    quantize_to_prior(model, prior)
    values = set(torch.unique(model[0].weight).round(decimals=4).tolist())
    assert 0.0 in values and len(values) <= 5
    trained = soft_weight_sharing(_mlp(), _data(), components=5, epochs=2, batch_size=32, tau=1e-2)
    w = torch.cat([trained[0].weight.flatten(), trained[2].weight.flatten()])
    assert torch.unique(w).numel() <= 5
    means = set(note(trained, "prior").all_means().detach().float().tolist())  # the prior it was shared by
    assert set(torch.unique(w).tolist()) <= means | {0.0}
    with pytest.raises(CompressionError, match="pi_zero"):
        GaussianMixturePrior(pi_zero=1.0)


def test_prior_merges_close_components():
    prior = GaussianMixturePrior(components=5, init_range=0.5, init_std=0.05)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([-0.5, 0.3, 0.3001, 0.5]))
    assert prior.merge(1e-2) >= 1
    alive = (prior.mixing()[1:] > 1e-12).sum().item()
    assert alive == 3


def test_iterative_fixed_point_freezes_quantized_layers_bottom_up():
    from workbench.quantize import iterative_fixed_point

    model = _mlp()
    first_before = model[0].weight.detach().clone()
    out = iterative_fixed_point(model, _data(), weight_bits=6, act_bits=8, epochs_per_layer=1, quiet=True, lr=1e-2)
    q = out[0].parametrizations.weight[0]
    # layer 0 was quantized first and then frozen: its weight is the quantized original
    assert torch.equal(out[0].weight.detach(), quantize_fixed(first_before, 6, q.frac_bits))
    # layer 2 was fine-tuned before being quantized
    assert not torch.equal(out[2].parametrizations.weight.original.detach(), model[2].weight.detach())
    assert all(p.requires_grad for p in out.parameters())


def test_fixed_zero_std_stays_fixed_while_training():
    model = soft_weight_sharing(_mlp(), _data(), components=5, epochs=2, batch_size=32, zero_std=0.01)
    prior = note(model, "prior")
    assert math.exp(-0.5 * float(prior.precisions_log()[0].detach())) == pytest.approx(0.01)
    assert prior.precisions_log()[1:].requires_grad
    with pytest.raises(CompressionError, match="zero_std"):
        GaussianMixturePrior(zero_std=0.0)
