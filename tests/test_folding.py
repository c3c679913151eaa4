"""Model Folding (Wang et al. 2025): k-means clusters folded into one unit each (fuse="fold"), and its data-free
variance repair (repair="data-free")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.adapters import adapter_for
from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.errors import ConfigError
from workbench.graph import from_model
from workbench.select import Selection, get_selector
from workbench.sparse import prune
from workbench.sparse.masks import weight_mask
from workbench.surgery import FUSE_MODES, Plan, apply, plan_from
from workbench.surgery.folding import fold_plan, kmeans
from workbench.surgery.slicing import graph_producers
from workbench.zoo import create_model


def duplicate_pairs(model: nn.Module, graph) -> None:
    """In every prunable group, unit ``i + n/2`` becomes a copy of unit ``i`` in every producing layer, and the
    last pair's weight rows and biases are zero (two zero units): each group is n/2 distinct pairs."""
    with torch.no_grad():
        for group in graph.prunable_groups():
            half = group.n_units // 2
            for module, channels in graph_producers(model, group):
                adapter = adapter_for(module)
                zeroed = adapter.normalizer(module) is None and adapter.weight(module) is not None
                for attr, dim in adapter.unit_parameters(module):
                    tensor = getattr(module, attr, None)
                    if not isinstance(tensor, torch.Tensor):
                        continue
                    for i in range(half):
                        a, b = int(channels[i]), int(channels[i + half])
                        if zeroed and i == half - 1:
                            tensor.select(dim, a).zero_()
                        tensor.select(dim, b).copy_(tensor.select(dim, a))


def randomize_batchnorms(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial scales, shifts and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=g))
                module.bias.copy_(torch.rand(n, generator=g) - 0.5)
                module.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                module.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model.eval()


def convnet(batch_norm: bool) -> nn.Module:
    torch.manual_seed(2)
    norm = nn.BatchNorm2d if batch_norm else (lambda n: nn.Identity())
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), norm(8), nn.ReLU(),
        nn.Conv2d(8, 10, 3, padding=1), norm(10), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(10, 4),
    )  # fmt: skip
    return randomize_batchnorms(model, 2)


def max_gap(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def kept_widths(model: nn.Module) -> list[int]:
    return [m.out_features if isinstance(m, nn.Linear) else m.out_channels for m in model.modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))]  # fmt: skip


def test_fold_is_a_fuse_mode():
    assert "fold" in FUSE_MODES


CASES = {
    "mlp": (lambda: create_model("mlp", widths=[6, 10, 8, 3]).eval(), (6,)),
    "conv": (lambda: convnet(batch_norm=False), (3, 6, 6)),
    "conv+bn": (lambda: convnet(batch_norm=True), (3, 6, 6)),
    "resnet": (lambda: randomize_batchnorms(create_model("resnet", depth=8, width=0.5, input_size=8), 5), (3, 8, 8)),
}


@pytest.mark.parametrize("repair", [None, "data-free"])
@pytest.mark.parametrize("method", ["magnitude", "random"])
@pytest.mark.parametrize("case", list(CASES))
def test_duplicate_pairs_fold_to_half_exactly(case, method, repair):
    torch.manual_seed(0)
    build, shape = CASES[case]
    model = build()
    x = torch.randn(16, *shape)
    graph = from_model(model, x[:2])
    duplicate_pairs(model, graph)
    plan = plan_from(graph, get_selector(method, random_state=3), keep=0.5)
    if case == "resnet":
        assert "conv1" in plan and len(graph.group("conv1").layers) == 4  # the residual stream is one shared group
    small = apply(model, plan, "fold", example_input=x[:2], graph=graph, repair=repair)
    assert sum(kept_widths(small)) < sum(kept_widths(model))
    recorded = small.workbench_spec["edits"][-1]["plan"]["selections"]
    for name, selection in plan.items():
        assert len(recorded[name]["keep"]) == selection.k  # the selection's counts are the k of the k-means
        assign = np.asarray(recorded[name]["assign"])
        half = selection.n_units // 2
        assert np.array_equal(assign[:half], assign[half:])  # the pairs, found whatever the start
    with torch.no_grad():
        scale = 1 + float(model(x).abs().max())
    assert max_gap(small, model, x) <= 1e-4 * scale
    dropped = apply(model, plan, "drop", example_input=x[:2], graph=graph)
    assert max_gap(dropped, model, x) > 1e-2  # not exact by accident


def test_residual_block_folds_its_shared_group_alone_exactly():
    torch.manual_seed(0)
    model = randomize_batchnorms(create_model("resnet", depth=8, width=0.5, input_size=8), 5)
    x = torch.randn(8, 3, 8, 8)
    graph = from_model(model, x[:2])
    duplicate_pairs(model, graph)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5, groups=["conv1"])
    small = apply(model, plan, "fold", example_input=x[:2], graph=graph)
    assert small.conv1.out_channels == 4 and small.layer1[0].conv2.out_channels == 4
    assert small.layer1[0].conv1.in_channels == 4 and small.layer1[0].conv1.out_channels == 8
    assert max_gap(small, model, x) <= 1e-4


def test_kmeans_is_deterministic_and_converged():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(c, 0.3, size=(10, 3)) for c in (-2.0, 0.0, 2.0)])
    seeds = np.array([0, 1, 2])  # all three starts in the first cloud
    labels = kmeans(points, seeds)
    assert np.array_equal(labels, kmeans(points, seeds)) and len(np.unique(labels)) == 3
    centroids = np.stack([points[labels == j].mean(axis=0) for j in range(3)])
    nearest = ((points[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(axis=1)
    assert np.array_equal(nearest, labels)  # a fixed point of Lloyd's iterations
    allowed = np.ones((30, 3), dtype=bool)
    allowed[:, 2] = False
    allowed[2, 2] = True
    pinned = np.array([False, False, True])
    labels = kmeans(points, seeds, allowed=allowed, pinned=pinned)
    assert np.flatnonzero(labels == 2).tolist() == [2]  # a pinned seed keeps its cluster, no one else may join


def test_fold_finds_the_clusters_from_a_poor_selection():
    rng = np.random.default_rng(0)
    clouds = np.concatenate([rng.normal(c, 0.1, size=(6, 5)) for c in (-3.0, 0.0, 3.0)])
    order = rng.permutation(18)
    model = create_model("mlp", widths=[4, 18, 2]).eval()
    with torch.no_grad():
        model.layers[1].weight.copy_(torch.as_tensor(clouds[order, :4]))
        model.layers[1].bias.copy_(torch.as_tensor(clouds[order, 4]))
    cloud = order // 6  # the cloud of every unit
    poor = np.flatnonzero(cloud == 0)[:3]  # all three kept units in one cloud
    assign = np.where(np.isin(np.arange(18), poor), np.arange(18), poor[0])
    plan = Plan({"layers.1": Selection("layers.1", 18, poor, assign, np.zeros(18), method="test")})
    graph = from_model(model, torch.randn(2, 4))
    folded = fold_plan(model, plan, graph, random_state=0)["layers.1"]
    parts = {frozenset(np.flatnonzero(folded.assign == k).tolist()) for k in folded.keep}
    assert parts == {frozenset(np.flatnonzero(cloud == c).tolist()) for c in range(3)}
    assert folded.info["fold"]["start"] == "k-means++"  # the seeded starts beat the selection's


def test_folding_is_a_function_of_the_plan_and_its_seed():
    torch.manual_seed(1)
    model = create_model("mlp", widths=[6, 12, 3]).eval()
    x = torch.randn(8, 6)
    graph = from_model(model, x[:2])

    def folded(seed: int) -> tuple[list[int], nn.Module]:
        plan = plan_from(graph, get_selector("random", random_state=seed), keep=0.5)
        small = apply(model, plan, "fold", example_input=x[:2], graph=graph)
        return small.workbench_spec["edits"][-1]["plan"]["selections"]["layers.1"]["assign"], small

    (first, a), (again, b) = folded(0), folded(0)
    assert first == again and all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert any(folded(seed)[0] != first for seed in range(1, 6))  # the seeded start decides the clusters
    plan = plan_from(graph, get_selector("random", random_state=0), keep=0.5)
    once = fold_plan(model, plan, graph)
    assert once.to_dict() == fold_plan(model, once, graph).to_dict()  # folding a folded plan keeps it


def white_layer(batch_norm: bool) -> tuple[nn.Module, torch.Tensor]:
    """16 -> 2 -> 3 with white inputs: two hidden units at 90 degrees, their running statistics exact."""
    torch.manual_seed(0)
    hidden = nn.Linear(16, 2)
    with torch.no_grad():
        hidden.weight.zero_()
        hidden.weight[0, :8], hidden.weight[1, 8:] = 1.0, 3.0  # orthogonal rows, norms 2.83 and 8.49
        hidden.bias.copy_(torch.tensor([0.5, -0.5]))
    layers = [hidden]
    if batch_norm:
        bn = nn.BatchNorm1d(2)
        with torch.no_grad():
            bn.running_mean.copy_(hidden.bias)  # of white inputs: w . x + b has mean b, variance |w|^2
            bn.running_var.copy_(hidden.weight.pow(2).sum(1))
            bn.weight.fill_(1.5)
        layers.append(bn)
    model = nn.Sequential(*layers, nn.ReLU(), nn.Linear(2, 3)).eval()
    return model, torch.randn(20000, 16, generator=torch.Generator().manual_seed(1))


def merged(model: nn.Module, repair: str | None) -> nn.Module:
    selection = Selection("0", 2, np.array([0]), np.array([0, 0]), np.zeros(2), method="test")
    return apply(model, Plan({"0": selection}), "fold", example_input=torch.randn(2, 16), repair=repair)


def test_data_free_repair_restores_the_variance_of_a_merged_batchnorm_channel():
    model, x = white_layer(batch_norm=True)
    rows = model[0].weight.detach()
    known = float(rows.mean(0).pow(2).sum())  # variance of the averaged unit on white inputs: |mean w|^2
    plain, repaired = merged(model, None), merged(model, "data-free")
    assert float(plain[1].running_var[0]) == pytest.approx(float(rows.pow(2).sum(1).mean()))  # the mean: wrong
    assert float(repaired[1].running_var[0]) == pytest.approx(known, rel=1e-6)
    with torch.no_grad():
        std_plain, std_repaired = (float(m[1](m[0](x)).std()) for m in (plain, repaired))
    assert std_repaired == pytest.approx(1.5, rel=0.03)  # the BatchNorm's scale, as in each original channel
    assert std_plain < 0.8 * 1.5  # without the repair the merged channel collapses


def test_data_free_repair_rescales_a_merged_unit_without_batchnorm():
    model, x = white_layer(batch_norm=False)
    norms = model[0].weight.detach().norm(dim=1)
    plain, repaired = merged(model, None), merged(model, "data-free")
    assert float(repaired[0].weight.detach().norm()) == pytest.approx(float(norms.mean()), rel=1e-6)
    assert torch.equal(repaired[0].bias, plain[0].bias)  # the mean of the members' means, left as it is
    with torch.no_grad():
        std, std_plain = float(repaired[0](x).std()), float(plain[0](x).std())
    assert std == pytest.approx(float(norms.mean()), rel=0.03)  # the members' mean standard deviation
    assert std_plain < 0.8 * std


def test_data_free_repair_runs_without_data_and_only_with_fold():
    model = randomize_batchnorms(create_model("resnet", depth=8, width=0.5, input_size=8), 1)
    x = torch.randn(4, 3, 8, 8)
    graph = from_model(model, x[:2])
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    plain = apply(model, plan, "fold", example_input=x[:2], graph=graph)
    repaired = apply(model, plan, "fold", example_input=x[:2], graph=graph, repair="data-free", data=None)
    assert not torch.equal(plain.bn1.running_var, repaired.bn1.running_var)
    assert torch.equal(plain.conv1.weight, repaired.conv1.weight)  # convolutions with a BatchNorm: untouched
    with pytest.raises(ConfigError, match="fuse='fold'"):
        apply(model, plan, "merge", example_input=x[:2], graph=graph, repair="data-free")


@pytest.mark.parametrize("repair", [None, "data-free"])
@pytest.mark.parametrize("train_mode", [True, False])
def test_fold_leaves_the_input_model_as_it_was(train_mode, repair):
    model = convnet(batch_norm=True).train(train_mode)
    x = torch.randn(4, 3, 6, 6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = from_model(model, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    small = apply(model, plan, "fold", example_input=x, graph=graph, repair=repair)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights or BatchNorm statistics changed"
    assert all(m.training == train_mode for m in model.modules())
    assert not small.training and small[0].out_channels == 4


def test_pruning_masks_survive_folding():
    torch.manual_seed(1)
    model = create_model("mlp", widths=[20, 40, 30, 5]).eval()
    pruned = prune(model, rate=0.9)
    x = torch.randn(64, 20)
    graph = from_model(pruned, x)
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    small = apply(pruned, plan, "fold", example_input=x, graph=graph, repair="data-free")
    keep = {k: v["keep"] for k, v in small.workbench_spec["edits"][-1]["plan"]["selections"].items()}
    rows = {"layers.1": keep["layers.1"], "layers.3": keep["layers.3"], "layers.5": np.arange(5)}
    inputs = {"layers.1": np.arange(20), "layers.3": keep["layers.1"], "layers.5": keep["layers.3"]}
    for name in rows:
        layer, original = small.get_submodule(name), pruned.get_submodule(name)
        alive = (original.weight.detach() != 0)[rows[name]][:, inputs[name]]
        assert weight_mask(layer) is not None, name
        assert not ((layer.weight.detach() != 0) & ~alive).any(), name  # no pruned weight revived


def test_folded_checkpoints_replay(tmp_path):
    model = convnet(batch_norm=True)
    x = torch.randn(4, 3, 6, 6)
    graph = from_model(model, x[:2])
    plan = plan_from(graph, get_selector("magnitude"), keep=0.5)
    small = apply(model, plan, "fold", example_input=x[:2], graph=graph, repair="data-free")
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "folded.pt", small), base=convnet(batch_norm=True))
    assert max_gap(loaded, small, x) == 0.0


def test_compress_folds():
    from workbench.compression import compress

    torch.manual_seed(0)
    model = create_model("mlp", widths=[8, 16, 3]).eval()
    result = compress(model, keep=0.5, fuse="fold", fuse_options={"repair": "data-free"}, latency=False)
    assert result.model.layers[1].out_features == 8
    recorded = result.model.workbench_spec["edits"][-1]
    assert recorded["fuse"] == "fold" and "fold" in recorded["plan"]["selections"]["layers.1"]["info"]
