"""Per-layer compressibility measures: effective rank, modularity and redundancy on planted structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.errors import GraphError
from workbench.graph.compressibility import (
    compressibility,
    effective_rank,
    modularity,
    partition_modularity,
    redundancy,
)


def test_effective_rank_counts_equal_directions():
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.normal(size=(20, 20)))[0]
    assert effective_rank(q[:, :5] @ np.diag([3.0] * 5) @ q[:5, :]) == pytest.approx(5.0)
    assert effective_rank(np.eye(7)) == pytest.approx(7.0)
    skewed = effective_rank(np.diag([10.0, 1.0, 0.1]))
    assert 1.0 < skewed < 2.0
    assert effective_rank(np.zeros((3, 4))) == 0.0
    with pytest.raises(GraphError, match="2-d"):
        effective_rank(np.ones(3))


def test_modularity_of_two_disjoint_blocks_is_one_half():
    blocks = np.kron(np.eye(2), np.ones((5, 5)))
    np.fill_diagonal(blocks, 0.0)
    assert partition_modularity(blocks, np.repeat([0, 1], 5)) == pytest.approx(0.5)
    assert modularity(blocks) == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    noise = np.abs(rng.normal(size=(40, 40)))
    assert modularity((noise + noise.T) / 2) < 0.2


def test_redundancy_sees_copied_and_constant_units():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 6))
    assert redundancy(x) < 0.3
    copied = np.concatenate([x, 2 * x], axis=1)
    assert redundancy(copied) == pytest.approx(1.0)
    constant = np.concatenate([x, np.ones((500, 2))], axis=1)
    assert redundancy(constant) > redundancy(x)


def test_table_per_group_flags_a_network_of_duplicated_units():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    plain = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    dup = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        dup[0].weight.copy_(plain[0].weight[:4].repeat(4, 1))  # 4 distinct units, each four times
        dup[0].bias.copy_(plain[0].bias[:4].repeat(4))
    rows = {name: compressibility(model, x).rows for name, model in (("plain", plain), ("dup", dup))}
    (p,), (d,) = rows["plain"], rows["dup"]
    assert p.group == d.group and p.units == d.units == 16
    assert d.redundancy == pytest.approx(1.0) and p.redundancy < 0.95
    assert d.activation_erank <= 4.0 + 1e-6 < p.activation_erank
    assert d.modularity > p.modularity
    weights_only = compressibility(plain, example_input=x[:2]).rows[0]
    assert np.isnan(weights_only.redundancy) and weights_only.weight_erank > 0
    assert "redund." in compressibility(plain, x).table()
