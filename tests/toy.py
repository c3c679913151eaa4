"""A tiny MLP, a toy 3-class problem and the training settings shared by the compression tests."""

from __future__ import annotations

import torch
from torch import nn

# workbench.train.fit at a constant learning rate, without a progress bar (plain mini-batch steps).
STEADY = {"schedule": "constant", "quiet": True}


def tiny_mlp(seed: int = 0) -> nn.Sequential:
    """An 8-16-3 ReLU MLP with seeded weights."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def toy_data(n: int = 128, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs of width 8 labelled by two thresholds (three classes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
