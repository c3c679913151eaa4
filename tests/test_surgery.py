"""Surgery: physically smaller models, exact merging of redundant units, lsq fusion, plans and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.errors import ConfigError, SurgeryError
from workbench.metrics import count_params
from workbench.select import Selection
from workbench.surgery import Plan, apply
from workbench.zoo import create_model


def selection(group: str, n: int, keep: list[int], assign: dict[int, int] | None = None) -> Selection:
    """A hand-made selection: dropped units go to ``assign[unit]`` (default: the first kept unit)."""
    assign = assign or {}
    mapping = np.array([u if u in keep else assign.get(u, keep[0]) for u in range(n)])
    return Selection(group=group, n_units=n, keep=np.array(keep), assign=mapping, scores=np.zeros(n), method="test")


@pytest.fixture()
def redundant_mlp() -> nn.Module:
    """An MLP whose hidden units 4 and 5 copy units 1 (times 2.5) and 2 (exactly); unit 6 is all zero."""
    torch.manual_seed(0)
    model = create_model("mlp", widths=[8, 7, 5, 3])
    first = model.layers[1]
    with torch.no_grad():
        first.weight[4], first.bias[4] = 2.5 * first.weight[1], 2.5 * first.bias[1]
        first.weight[5], first.bias[5] = first.weight[2], first.bias[2]
        first.weight[6], first.bias[6] = 0.0, 0.0
    return model.eval()


def redundant_mlp_plan() -> Plan:
    return Plan({"layers.1": selection("layers.1", 7, [0, 1, 2, 3], {4: 1, 5: 2, 6: 0})})


def max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def test_merge_of_duplicates_and_positive_multiples_is_exact(redundant_mlp):
    x = torch.randn(64, 8)
    merged = apply(redundant_mlp, redundant_mlp_plan(), fuse="merge", example_input=x)
    assert merged.layers[1].out_features == 4 and merged.layers[3].in_features == 4
    assert max_diff(merged, redundant_mlp, x) <= 1e-5
    dropped = apply(redundant_mlp, redundant_mlp_plan(), fuse="drop", example_input=x)
    assert max_diff(dropped, redundant_mlp, x) > 1e-2  # dropping the copies loses their contribution


def test_input_model_is_not_modified(redundant_mlp):
    before = {k: v.clone() for k, v in redundant_mlp.state_dict().items()}
    apply(redundant_mlp, redundant_mlp_plan(), fuse="merge", example_input=torch.randn(4, 8))
    after = redundant_mlp.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert redundant_mlp.layers[1].out_features == 7


def test_dropping_zero_units_changes_nothing():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 3),
    ).eval()
    with torch.no_grad():
        model[0].weight[[1, 4]], model[0].bias[[1, 4]] = 0.0, 0.0  # filters that output zero
        model[2].weight[2], model[2].bias[2] = 0.0, 0.0  # a filter whose flattened outputs are zero
    x = torch.randn(8, 3, 5, 5)
    plan = Plan({"0": selection("0", 6, [0, 2, 3, 5]), "2": selection("2", 4, [0, 1, 3])})
    rebuilt = apply(model, plan, fuse="drop", example_input=x)
    assert rebuilt[0].out_channels == 4 and rebuilt[2].in_channels == 4 and rebuilt[5].in_features == 3 * 25
    assert max_diff(rebuilt, model, x) <= 1e-6
    assert count_params(rebuilt) < count_params(model)


def test_merge_folds_batchnorm_exactly():
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 36, 3),
    ).eval()
    with torch.no_grad():
        bn = model[1]
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
        # filter 7 = 3 x filter 2 before BN, with BN statistics scaled alike: the BN outputs coincide
        model[0].weight[7], model[0].bias[7] = 3 * model[0].weight[2], 3 * model[0].bias[2]
        bn.running_mean[7], bn.running_var[7] = 3 * bn.running_mean[2], 9 * bn.running_var[2] + 8 * bn.eps
        bn.weight[7], bn.bias[7] = bn.weight[2], bn.bias[2]
    x = torch.randn(6, 3, 6, 6)
    plan = Plan({"0": selection("0", 8, [0, 1, 2, 3, 4, 5, 6], {7: 2})})
    merged = apply(model, plan, fuse="merge", example_input=x)
    assert merged[1].num_features == 7
    assert max_diff(merged, model, x) <= 1e-5


def test_lsq_reconstructs_redundant_units_from_data(redundant_mlp):
    x = torch.randn(300, 8)
    fused = apply(redundant_mlp, redundant_mlp_plan(), fuse="lsq", example_input=x[:4], data=x, ridge=1e-9)
    assert max_diff(fused, redundant_mlp, torch.randn(50, 8)) <= 1e-4


def test_lsq_beats_drop_on_a_trained_network():
    from workbench.datasets import load_dataset
    from workbench.train import evaluate, fit

    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    torch.manual_seed(0)
    model = create_model("mlp", widths=[64, 64, 10])
    fit(model, train, epochs=8, quiet=True, random_state=0)
    plan = Plan({"layers.1": selection("layers.1", 64, list(range(0, 64, 4)))})
    dropped = apply(model, plan, fuse="drop")
    fused = apply(model, plan, fuse="lsq", data=train)
    assert evaluate(fused, test)["accuracy"] > evaluate(dropped, test)["accuracy"] + 0.05


def test_pruned_checkpoint_round_trip(tmp_path, redundant_mlp):
    merged = apply(redundant_mlp, redundant_mlp_plan(), fuse="merge", example_input=torch.randn(2, 8))
    assert [e["op"] for e in merged.workbench_spec["edits"]] == ["plan"] and merged.workbench_spec["edits"][0][
        "fuse"
    ] == "merge"
    path = save_checkpoint(tmp_path / "pruned.pt", merged)
    loaded, _ = load_checkpoint(path)
    x = torch.randn(16, 8)
    assert loaded.layers[1].out_features == 4
    assert max_diff(loaded, merged, x) == 0.0


def test_plan_json_round_trip(tmp_path):
    plan = redundant_mlp_plan()
    again = Plan.load(plan.save(tmp_path / "plan.json"))
    assert list(again) == ["layers.1"]
    assert np.array_equal(again["layers.1"].keep, plan["layers.1"].keep)
    assert np.array_equal(again["layers.1"].assign, plan["layers.1"].assign)
    assert again.kept_fraction == pytest.approx(4 / 7)


@pytest.mark.parametrize(
    "path, message",
    [
        (None, "the plan path must be a str or os.PathLike"),
        ("p" * 5000, "more than the"),
        ("", "the plan path is empty"),
    ],
)
def test_a_plan_path_that_cannot_name_a_file_is_refused_as_such(path, message):
    with pytest.raises(SurgeryError, match=message):
        Plan.load(path)


def test_plans_that_do_not_match_the_model_are_refused(redundant_mlp):
    x = torch.randn(2, 8)
    with pytest.raises(SurgeryError, match="'layers.7' is not a layer.*Did you mean"):
        apply(redundant_mlp, Plan({"layers.7": selection("layers.7", 7, [0])}), example_input=x)
    with pytest.raises(SurgeryError, match="selects among 9 units, but the group has 7"):
        apply(redundant_mlp, Plan({"layers.1": selection("layers.1", 9, [0, 8])}), example_input=x)
    with pytest.raises(SurgeryError, match="'layers.2' is not a prunable group"):
        apply(redundant_mlp, Plan({"layers.2": selection("layers.2", 7, [0])}), example_input=x)
    with pytest.raises(SurgeryError, match="'layers.5' is not a prunable group"):  # the output layer
        apply(redundant_mlp, Plan({"layers.5": selection("layers.5", 3, [0, 1])}), example_input=x)
    with pytest.raises(ConfigError, match="unknown fuse mode"):
        apply(redundant_mlp, redundant_mlp_plan(), fuse="average", example_input=x)
    with pytest.raises(ConfigError, match="pass data="):
        apply(redundant_mlp, redundant_mlp_plan(), fuse="lsq", example_input=x)
    with pytest.raises(SurgeryError, match="not a workbench plan"):
        Plan.from_json('{"selections": {}}')


def random_plan(graph, supported, rng) -> Plan:
    """Keep a random half of the free units of every group surgery can rebuild (fixed units stay)."""
    selections = {}
    for group in graph.prunable_groups():
        if supported[group.name]:
            continue
        fixed = np.flatnonzero(group.fixed)
        free = np.flatnonzero(~np.asarray(group.fixed))
        chosen = rng.choice(free, max(1, len(free) // 2), replace=False) if len(free) else []
        keep = sorted(set(fixed.tolist()) | set(np.asarray(chosen).tolist()))
        selections[group.name] = selection(group.name, group.n_units, keep)
    return Plan(selections)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("resnet", {"depth": 20}),
        ("mobilenet_v1", {"resolution": 64, "classes": 10}),
        ("enet", {"input_size": 64, "classes": 5}),
    ],
)
def test_random_plans_give_the_predicted_counts(name, kwargs):
    from workbench.graph import from_model
    from workbench.metrics import count_macs
    from workbench.surgery import supported_groups
    from workbench.surgery.sizes import predict_sizes
    from workbench.zoo import example_input

    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    x = example_input(model, 1)
    graph = from_model(model, x)
    supported = supported_groups(model, graph, x)
    plan = random_plan(graph, supported, np.random.default_rng(0))
    assert len(plan) >= len(graph.prunable_groups()) - 1
    rebuilt = apply(model, plan, example_input=x, graph=graph)
    expected = predict_sizes(graph, plan)
    assert count_params(rebuilt) == expected.params < 0.6 * count_params(model)
    assert count_macs(rebuilt, x) == expected.macs < 0.6 * count_macs(model, x)
    assert rebuilt(x).shape == model(x).shape


def test_enet_trunk_is_reported_and_rebuilt_by_graph_slicing():
    from workbench.graph import from_model
    from workbench.surgery import rebuild_methods, supported_groups
    from workbench.surgery.sizes import predict_sizes
    from workbench.zoo import example_input

    model = create_model("enet", input_size=32, classes=3).eval()
    x = example_input(model, 1)
    graph = from_model(model, x)
    methods = rebuild_methods(model, graph, x)
    assert "down2.expand" in methods  # the trunk tied by zero-padding and unpooling indices
    assert set(methods.values()) == {"graph slicing"}
    assert not any(supported_groups(model, graph, x).values())
    trunk = graph.group("down2.expand")
    keep = [u for u in range(trunk.n_units) if trunk.fixed[u] or u % 2 == 0]
    plan = Plan({"down2.expand": selection("down2.expand", trunk.n_units, keep)})
    rebuilt = apply(model, plan, example_input=x, graph=graph)
    assert rebuilt.down2.expand.out_channels == len(keep) and rebuilt(x).shape == model(x).shape
    assert count_params(rebuilt) == predict_sizes(graph, plan).params
