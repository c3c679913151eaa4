"""Graph summarization as compression: each block of a partition becomes one unit (fuse="summarize...")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.errors import ConfigError, SurgeryError
from workbench.selection import Selection
from workbench.surgery import FUSE_MODES, Plan, apply
from workbench.zoo import create_model

SUMMARIZE = ("summarize", "summarize-medoid", "summarize-lsq")


def partition(group: str, blocks: list[list[int]], method: str = "spectral") -> Selection:
    """A Selection whose parts are ``blocks`` (the first member of each is kept)."""
    n = sum(len(b) for b in blocks)
    assign = np.zeros(n, dtype=int)
    for block in blocks:
        assign[block] = block[0]
    keep = sorted(b[0] for b in blocks)
    return Selection(group=group, n_units=n, keep=keep, assign=assign, scores=np.zeros(n), method=method)


def copy_units(tensors: list[torch.Tensor], blocks: list[list[int]]) -> None:
    """Make every member of each block an exact copy of its first member, in every tensor (unit dim 0)."""
    with torch.no_grad():
        for tensor in tensors:
            for block in blocks:
                tensor[block[1:]] = tensor[block[0]].clone()


MLP_BLOCKS = {"layers.1": [[0, 3, 6], [1, 4], [2], [5, 7, 8]], "layers.3": [[0, 2], [1], [3, 4]]}
CONV_BLOCKS = {"0": [[0, 5], [1], [2, 3, 7], [4], [6]], "3": [[0, 1, 2], [3, 5], [4]]}


@pytest.fixture()
def duplicate_mlp() -> nn.Module:
    """An 8-9-5-3 MLP whose hidden units repeat in the blocks of MLP_BLOCKS."""
    torch.manual_seed(0)
    model = create_model("mlp", widths=[8, 9, 5, 3])
    for name, blocks in MLP_BLOCKS.items():
        layer = model.get_submodule(name)
        copy_units([layer.weight, layer.bias], blocks)
    return model.eval()


@pytest.fixture()
def duplicate_convnet() -> nn.Module:
    """Conv-BN-ReLU twice, then a Linear head; the filters (and their BatchNorm) repeat in CONV_BLOCKS."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 25, 4),
    ).eval()
    for conv, bn in ((model[0], model[1]), (model[3], model[4])):
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        blocks = CONV_BLOCKS["0" if conv is model[0] else "3"]
        copy_units([conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var], blocks)
    model.input_shape = (3, 5, 5)
    return model


def plan_of(blocks: dict[str, list[list[int]]], method: str = "spectral") -> Plan:
    return Plan({name: partition(name, b, method) for name, b in blocks.items()})


def max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def test_fuse_modes_list_summarization():
    assert set(SUMMARIZE) <= set(FUSE_MODES)


@pytest.mark.parametrize("fuse", SUMMARIZE)
def test_blocks_of_duplicates_summarize_exactly_in_an_mlp(duplicate_mlp, fuse):
    x = torch.randn(256, 8)
    small = apply(duplicate_mlp, plan_of(MLP_BLOCKS), fuse=fuse, example_input=x[:2], data=x, ridge=1e-9)
    assert small.layers[1].out_features == 4 and small.layers[3].out_features == 3
    assert max_diff(small, duplicate_mlp, torch.randn(64, 8)) <= 1e-5
    dropped = apply(duplicate_mlp, plan_of(MLP_BLOCKS), fuse="drop", example_input=x[:2])
    assert max_diff(dropped, duplicate_mlp, x) > 1e-2  # the blocks' other members carried signal


@pytest.mark.parametrize("fuse", SUMMARIZE)
def test_blocks_of_duplicate_filters_summarize_exactly_with_batchnorm(duplicate_convnet, fuse):
    x = torch.randn(128, 3, 5, 5)
    small = apply(duplicate_convnet, plan_of(CONV_BLOCKS), fuse=fuse, example_input=x[:2], data=x, ridge=1e-9)
    assert small[0].out_channels == 5 and small[1].num_features == 5 and small[3].out_channels == 3
    assert max_diff(small, duplicate_convnet, torch.randn(16, 3, 5, 5)) <= 1e-5


def test_mean_of_positive_multiples_is_exact_without_batchnorm():
    torch.manual_seed(1)
    model = create_model("mlp", widths=[6, 5, 2]).eval()
    layer = model.layers[1]
    with torch.no_grad():  # units 1 and 3 are 2x and 0.5x unit 0: one direction, three norms
        layer.weight[1], layer.bias[1] = 2 * layer.weight[0], 2 * layer.bias[0]
        layer.weight[3], layer.bias[3] = 0.5 * layer.weight[0], 0.5 * layer.bias[0]
    x = torch.randn(64, 6)
    plan = Plan({"layers.1": partition("layers.1", [[0, 1, 3], [2], [4]])})
    small = apply(model, plan, fuse="summarize", example_input=x[:2])
    assert max_diff(small, model, x) <= 1e-5
    # the mean really replaced the kept unit's incoming weights (1.1667 x unit 0)
    assert torch.allclose(small.layers[1].weight[0], model.layers[1].weight[0] * 3.5 / 3, atol=1e-6)


def test_mean_differs_from_merge_on_units_that_are_not_copies():
    torch.manual_seed(2)
    model = create_model("mlp", widths=[6, 8, 2]).eval()
    plan = Plan({"layers.1": partition("layers.1", [[0, 1, 2, 3], [4, 5, 6, 7]])})
    x = torch.randn(32, 6)
    summarized = apply(model, plan, fuse="summarize", example_input=x[:2])
    merged = apply(model, plan, fuse="merge", example_input=x[:2])
    assert max_diff(summarized, merged, x) > 1e-3


def test_medoid_becomes_the_kept_unit_and_the_plan_replays(tmp_path):
    torch.manual_seed(4)
    model = create_model("mlp", widths=[6, 7, 2]).eval()
    layer = model.layers[1]
    with torch.no_grad():  # unit 2 sits between units 0 and 4 (in angle): it is the medoid of {0, 2, 4}
        layer.weight[0] = torch.tensor([1.0, 0, 0, 0, 0, 0])
        layer.weight[2] = torch.tensor([1.0, 1.0, 0, 0, 0, 0])
        layer.weight[4] = torch.tensor([0.0, 1.0, 0, 0, 0, 0])
        layer.bias[[0, 2, 4]] = 0.0
    plan = Plan({"layers.1": partition("layers.1", [[0, 2, 4], [1], [3], [5, 6]])})
    x = torch.randn(16, 6)
    small = apply(model, plan, fuse="summarize-medoid", example_input=x[:2])
    recorded = small.workbench_spec["edits"][-1]["plan"]["selections"]["layers.1"]
    assert recorded["keep"] == [1, 2, 3, 5] and recorded["assign"][:5] == [2, 1, 2, 3, 2]
    assert torch.equal(small.layers[1].weight[1], layer.weight[2])  # the medoid's incoming weights, unchanged
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "summarized.pt", small))
    assert max_diff(loaded, small, x) == 0.0


@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_selectors_without_a_partition_are_refused(duplicate_mlp, method):
    with pytest.raises(SurgeryError, match="sbm, spectral, leiden") as caught:
        apply(duplicate_mlp, plan_of(MLP_BLOCKS, method), fuse="summarize", example_input=torch.randn(2, 8))
    assert method in str(caught.value)


def test_summarize_lsq_needs_data(duplicate_mlp):
    with pytest.raises(ConfigError, match="data="):
        apply(duplicate_mlp, plan_of(MLP_BLOCKS), fuse="summarize-lsq", example_input=torch.randn(2, 8))
