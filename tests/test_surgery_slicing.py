"""Graph slicing: groups torch-pruning cannot couple (zero-padding residuals, max-unpooling) rebuilt exactly."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from workbench.graph import from_model
from workbench.metrics import count_macs, count_params
from workbench.select import Selection
from workbench.surgery import Plan, apply
from workbench.surgery.apply import rebuild_methods
from workbench.surgery.sizes import predict_sizes
from workbench.zoo import create_model, example_input


def make_selection(group, keep) -> Selection:
    keep = sorted({int(k) for k in keep})
    assign = np.array([u if u in keep else keep[0] for u in range(group.n_units)])
    return Selection(
        group=group.name,
        n_units=group.n_units,
        keep=np.array(keep),
        assign=assign,
        scores=np.zeros(group.n_units),
        method="test",
    )


def random_plan(graph, rng) -> Plan:
    """A random half of the free units of every prunable group, fixed units kept."""
    selections = {}
    for group in graph.prunable_groups():
        free = np.flatnonzero(~np.asarray(group.fixed))
        chosen = rng.choice(free, max(1, len(free) // 2), replace=False)
        selections[group.name] = make_selection(group, [*np.flatnonzero(group.fixed), *chosen])
    return Plan(selections)


def kill_units(model: nn.Module, graph, group, units) -> None:
    """Zero every consumer column reading ``units``: their contribution to the output becomes exactly zero."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for consumer in group.consumers:
            cols = torch.as_tensor(np.flatnonzero(np.isin(consumer.index, units)))
            module = modules[consumer.layer]
            if len(cols):
                if isinstance(module, nn.modules.conv._ConvNd) and module.transposed:
                    module.weight[cols] = 0.0  # a transposed convolution's inputs are its weight's dim 0
                else:
                    module.weight[:, cols] = 0.0


def randomize_bn(model: nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)


class PadUnpoolNet(nn.Module):
    """A zero-padding residual (option-A / ENet downsampling) whose pooling indices a max-unpool reuses."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (3, 8, 8)
        self.conv1, self.bn1, self.act1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.PReLU(4)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.conv2, self.bn2, self.act2 = nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.PReLU(8)
        self.mid = nn.Conv2d(8, 4, 1)
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        pooled, indices = self.pool(x)
        ext = self.bn2(self.conv2(x))
        zeros = pooled.new_zeros((pooled.shape[0], ext.shape[1] - pooled.shape[1], pooled.shape[2], pooled.shape[3]))
        y = self.act2(torch.cat([pooled, zeros], dim=1) + ext)
        return self.head(self.unpool(self.mid(y), indices))


@pytest.fixture(scope="module")
def enet():
    torch.manual_seed(0)
    model = create_model("enet", input_size=32, classes=3).eval()
    randomize_bn(model)
    x = example_input(model, 1)
    return model, x, from_model(model, x)


def test_random_plan_over_all_enet_groups_matches_prediction(enet):
    model, x, graph = enet
    plan = random_plan(graph, np.random.default_rng(0))
    assert "down2.expand" in plan and len(plan) == len(graph.prunable_groups())
    rebuilt = apply(model, plan, example_input=x, graph=graph)
    expected = predict_sizes(graph, plan)
    assert count_params(rebuilt) == expected.params < 0.5 * count_params(model)
    assert count_macs(rebuilt, x) == expected.macs < 0.5 * count_macs(model, x)
    assert rebuilt(x).shape == model(x).shape
    assert rebuilt.down2.expand.out_channels == int(np.sum(np.isin(np.arange(128), plan["down2.expand"].keep)))


def test_dropping_dead_trunk_units_changes_nothing(enet):
    model, x, graph = enet
    trunk = graph.group("down2.expand")
    dead = [5, 20, 40, 63, 64, 90, 127]  # in every stage of the trunk (units < 16 reach the decoder's end)
    model = copy.deepcopy(model)
    kill_units(model, graph, trunk, dead)
    keep = [u for u in range(trunk.n_units) if u not in dead]
    alive = apply(enet[0], Plan({"down2.expand": make_selection(trunk, keep)}), example_input=x, graph=graph)
    rebuilt = apply(model, Plan({"down2.expand": make_selection(trunk, keep)}), example_input=x, graph=graph)
    assert rebuilt.initial.bn.num_features == 15 and rebuilt.stage1[0].project.in_channels == 60
    assert rebuilt.up4.main_conv.out_channels == 60 and rebuilt.fullconv.in_channels == 15
    xs = torch.randn(3, *x.shape[1:])
    with torch.no_grad():
        reference, output = model(xs), rebuilt(xs)
    assert float((reference - output).abs().max()) <= 1e-5 * max(1.0, float(reference.abs().max()))
    with torch.no_grad():  # the same units matter when they are alive
        assert float((enet[0](xs) - alive(xs)).abs().max()) > 1e-2
    assert count_params(rebuilt) == predict_sizes(graph, Plan({"down2.expand": make_selection(trunk, keep)})).params


def test_hand_made_padding_and_unpooling_model():
    torch.manual_seed(3)
    model = PadUnpoolNet().eval()
    randomize_bn(model)
    x = torch.randn(4, 3, 8, 8)
    graph = from_model(model, x)
    trunk = graph.group("conv2")
    methods = rebuild_methods(model, graph, x)
    assert methods["conv2"].startswith("graph slicing")
    assert set(trunk.unit_maps) >= {"conv1", "bn1", "act1", "conv2", "mid"}
    dead = [1, 2, 5]
    kill_units(model, graph, trunk, dead)
    plan = Plan({"conv2": make_selection(trunk, [0, 3, 4, 6, 7])})
    rebuilt = apply(model, plan, example_input=x, graph=graph)
    assert (rebuilt.conv1.out_channels, rebuilt.act1.num_parameters, rebuilt.conv2.in_channels) == (2, 2, 2)
    assert (rebuilt.conv2.out_channels, rebuilt.bn2.num_features, rebuilt.mid.in_channels) == (5, 5, 5)
    assert (rebuilt.mid.out_channels, rebuilt.head.in_channels) == (2, 2)
    with torch.no_grad():
        assert float((rebuilt(x) - model(x)).abs().max()) <= 1e-5
    expected = predict_sizes(graph, plan)
    assert count_params(rebuilt) == expected.params and count_macs(rebuilt, x[:1]) == expected.macs


def test_merge_and_lsq_work_on_sliced_groups():
    """Unit 1 copies unit 0 in every layer of the padded / unpooled group: merging it is exact, dropping is not."""
    torch.manual_seed(4)
    model = PadUnpoolNet().eval()
    randomize_bn(model)
    with torch.no_grad():
        for layer in (model.conv1, model.bn1, model.act1, model.conv2, model.bn2, model.act2, model.mid):
            for name, tensor in [*layer.named_parameters(), *layer.named_buffers()]:
                if tensor.dim() and name != "num_batches_tracked":
                    tensor[1] = tensor[0]
    x = torch.randn(64, 3, 8, 8)
    graph = from_model(model, x[:2])
    trunk = graph.group("conv2")
    plan = Plan({"conv2": make_selection(trunk, [0, 2, 3, 4, 5, 6, 7])})
    merged = apply(model, plan, fuse="merge", example_input=x[:2], graph=graph)
    dropped = apply(model, plan, fuse="drop", example_input=x[:2], graph=graph)
    fitted = apply(model, plan, fuse="lsq", example_input=x[:2], graph=graph, data=x, ridge=1e-9)
    with torch.no_grad():
        reference = model(x)
        assert float((merged(x) - reference).abs().max()) <= 1e-5
        assert float((dropped(x) - reference).abs().max()) > 1e-2
        assert float((fitted(x) - reference).abs().max()) <= 1e-4
    assert (merged.conv1.out_channels, merged.mid.in_channels, fitted.head.in_channels) == (3, 7, 3)


def test_plan_from_includes_the_enet_trunk(enet):
    from workbench.select import get_selector
    from workbench.surgery import plan_from, supported_groups

    model, x, graph = enet
    assert not any(supported_groups(model, graph, x).values())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is left out any more
        plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    assert "down2.expand" in plan and len(plan) == len(graph.prunable_groups())
    trunk = graph.group("down2.expand")
    assert np.isin(np.flatnonzero(trunk.fixed), plan["down2.expand"].keep).all()
    rebuilt = apply(model, plan, example_input=x, graph=graph)
    assert count_params(rebuilt) == predict_sizes(graph, plan).params


def test_slice_group_checks_widths_and_checkpoints_rebuild_sliced_plans(enet, tmp_path):
    from workbench.checkpoints import load_checkpoint, save_checkpoint
    from workbench.errors import SurgeryError
    from workbench.surgery.slicing import slice_group

    model, x, graph = enet
    trunk = graph.group("down2.expand")
    copy_ = copy.deepcopy(model)
    slice_group(copy_, graph, trunk, [20, 100])
    assert copy_.down2.expand_bn.running_mean.shape == (126,) and copy_.stage1[0].act.num_parameters == 63
    with pytest.raises(SurgeryError, match="layer 'down1.expand' has 63 output units, but the graph expects 64"):
        slice_group(copy_, graph, trunk, [5])  # the graph no longer describes the sliced model
    plan = Plan({"down2.expand": make_selection(trunk, [u for u in range(128) if u % 3 or trunk.fixed[u]])})
    rebuilt = apply(model, plan, example_input=x, graph=graph)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "enet.pt", rebuilt))
    with torch.no_grad():
        assert torch.equal(loaded(x), rebuilt(x))
