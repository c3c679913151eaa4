"""Least-squares fusion re-fits transposed-convolution consumers (ENet's decoder): duplicated channels
merged give the same output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.select import Selection
from workbench.surgery import Plan, apply


def _selection(group: str, n: int, keep: list[int], assign: dict[int, int]) -> Selection:
    mapping = np.array([u if u in keep else assign[u] for u in range(n)])
    return Selection(group=group, n_units=n, keep=np.array(keep), assign=mapping, scores=np.zeros(n), method="test")


def _decoder(kernel: int, stride: int, padding: int, output_padding: int, bias: bool) -> nn.Module:
    """Conv (6 filters, 4 and 5 copies of 1 and 3) -> ReLU -> transposed conv -> ReLU -> transposed conv."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.ConvTranspose2d(6, 5, kernel, stride=stride, padding=padding, output_padding=output_padding, bias=bias),
        nn.ReLU(),
        nn.ConvTranspose2d(5, 4, 2, stride=2),
    ).eval()
    with torch.no_grad():
        model[0].weight[4], model[0].bias[4] = model[0].weight[1], model[0].bias[1]
        model[0].weight[5], model[0].bias[5] = model[0].weight[3], model[0].bias[3]
    return model


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "output_padding", "bias"),
    [(3, 2, 1, 1, True), (3, 1, 1, 0, False), (2, 2, 0, 0, True), (3, 2, 0, 0, True)],
)
def test_lsq_refits_a_transposed_conv_consumer_exactly(kernel, stride, padding, output_padding, bias):
    model = _decoder(kernel, stride, padding, output_padding, bias)
    x = torch.randn(32, 3, 6, 6)
    plan = Plan({"0": _selection("0", 6, [0, 1, 2, 3], {4: 1, 5: 3})})
    dropped = apply(model, plan, fuse="drop", example_input=x[:2])
    fused = apply(model, plan, fuse="lsq", example_input=x[:2], data=x, ridge=1e-10)
    assert fused[2].in_channels == 4
    probe = torch.randn(8, 3, 6, 6)
    with torch.no_grad():
        reference = model(probe)
        lsq_error = float((fused(probe) - reference).abs().max())
        drop_error = float((dropped(probe) - reference).abs().max())
    assert lsq_error <= 1e-4 * float(reference.abs().max())
    assert drop_error > 100 * lsq_error  # dropping the copies loses their contribution


def test_lsq_refits_the_consumer_of_a_transposed_conv_group():
    """Units produced by a transposed convolution (decoder channels) are fused into its transposed consumer."""
    model = _decoder(3, 2, 1, 1, True)
    with torch.no_grad():
        up = model[2]
        up.weight[:, 4], up.bias[4] = up.weight[:, 0], up.bias[0]  # output channel 4 copies channel 0
    x = torch.randn(32, 3, 5, 5)
    plan = Plan({"2": _selection("2", 5, [0, 1, 2, 3], {4: 0})})
    fused = apply(model, plan, fuse="lsq", example_input=x[:2], data=x, ridge=1e-10)
    assert fused[2].out_channels == 4 and fused[4].in_channels == 4
    probe = torch.randn(4, 3, 5, 5)
    with torch.no_grad():
        assert float((fused(probe) - model(probe)).abs().max()) <= 1e-4
