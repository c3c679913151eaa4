"""Surgery changes only what it should: the input model's state, its masks, per-group seeds, non-finite data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.errors import SurgeryError
from workbench.graph import from_model
from workbench.select import get_selector
from workbench.sparse import prune
from workbench.sparse.masks import weight_mask
from workbench.surgery import apply, plan_from
from workbench.zoo import create_model


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.bn(self.conv(x)))).mean(dim=(2, 3)))


@pytest.mark.parametrize("train_mode", [True, False])
@pytest.mark.parametrize("fuse", ["drop", "merge", "lsq"])
def test_apply_leaves_the_input_model_as_it_was(fuse, train_mode):
    model, x = Net().train(train_mode), torch.randn(4, 3, 6, 6)
    model.drop.eval()  # a mixed state is restored module by module
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = from_model(model, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    small = apply(model, plan, fuse=fuse, example_input=x, graph=graph, data=torch.randn(32, 3, 6, 6))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights or BatchNorm statistics changed"
    assert model.training == train_mode and model.bn.training == train_mode and not model.drop.training
    assert not small.training and small.conv.out_channels == 4


def test_lsq_targets_are_computed_without_dropout():
    """In train mode dropout would make the targets random: two rebuilds would differ."""
    model, x = Net().train(), torch.randn(4, 3, 6, 6)
    graph = from_model(model, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    data = torch.randn(32, 3, 6, 6)
    first, second = (apply(model, plan, fuse="lsq", example_input=x, graph=graph, data=data) for _ in range(2))
    assert torch.equal(first.fc.weight, second.fc.weight)


@pytest.mark.parametrize("fuse", ["drop", "merge", "lsq"])
def test_pruning_masks_survive_every_fusion(fuse):
    torch.manual_seed(1)
    model = create_model("mlp", widths=[20, 40, 30, 5]).eval()
    pruned = prune(model, rate=0.9)
    x = torch.randn(64, 20)
    graph = from_model(pruned, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    small = apply(pruned, plan, fuse=fuse, example_input=x, graph=graph, data=x)
    rows = {"layers.3": plan["layers.3"].keep, "layers.5": np.arange(5)}
    for name, inputs in (("layers.3", plan["layers.1"].keep), ("layers.5", plan["layers.3"].keep)):
        layer, original = dict(small.named_modules())[name], dict(pruned.named_modules())[name]
        alive = (original.weight.detach() != 0)[rows[name]][:, inputs]
        assert weight_mask(layer) is not None, name
        assert not ((layer.weight.detach() != 0) & ~alive).any(), (name, fuse)  # no pruned weight revived


def test_masked_lsq_fits_only_the_weights_left_by_pruning():
    torch.manual_seed(2)
    model = create_model("mlp", widths=[20, 40, 30, 5]).eval()
    pruned, x = prune(model, rate=0.5), torch.randn(256, 20)
    graph = from_model(pruned, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    fitted = apply(pruned, plan, fuse="lsq", example_input=x, graph=graph, data=x)
    dropped = apply(pruned, plan, fuse="drop", example_input=x, graph=graph)
    with torch.no_grad():
        target = pruned(x)
        assert float((fitted(x) - target).pow(2).mean()) < float((dropped(x) - target).pow(2).mean())


def test_lsq_on_non_finite_data_is_refused():
    model, x = Net().eval(), torch.randn(4, 3, 6, 6)
    graph = from_model(model, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    data = torch.randn(32, 3, 6, 6)
    data[3, 0, 0, 0] = float("nan")
    with pytest.raises(SurgeryError, match="NaN or infinite"):
        apply(model, plan, fuse="lsq", example_input=x, graph=graph, data=data)


def test_every_group_draws_its_own_random_selection():
    model = create_model("mlp", widths=[40, 100, 100, 10])
    graph = from_model(model, torch.randn(2, 40))
    plan = plan_from(graph, get_selector("random", random_state=0), keep=0.5)
    first, second = (plan[name].keep for name in ("layers.1", "layers.3"))
    assert not np.array_equal(first, second)
    again = plan_from(graph, get_selector("random", random_state=0), keep=0.5)
    assert np.array_equal(again["layers.1"].keep, first)  # the same seed gives the same plan


def test_numpy_scalars_are_budgets_and_tensors_leaving_torch_fix_their_units():
    model = create_model("mlp", widths=[8, 6, 3])
    graph = from_model(model, torch.randn(2, 8))
    plan = plan_from(graph, get_selector("magnitude"), keep=np.float32(0.5), round_to=np.int64(2))
    assert plan["layers.1"].k == 4

    class ToNumpy(nn.Module):
        def forward(self, x):
            return x.numpy()

    graph = from_model(nn.Sequential(nn.Linear(4, 4), ToNumpy()), torch.randn(3, 4))
    assert graph.prunable_groups() == [] and "leaves torch" in graph.group("0").reasons[0]
