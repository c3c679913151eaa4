"""workbench.checkpoints: round trips, refusals of files that are not checkpoints, and edited models
(pruned, factorized, quantized in any order) saved, loaded and retrained with their masks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.checkpoints import build_from_spec, load_checkpoint, save_checkpoint
from workbench.errors import CheckpointError, ConfigError
from workbench.zoo import MODELS, create_model, register_model


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))


# ---------------------------------------------------------------- checkpoints


class Tiny(nn.Module):
    def __init__(self, width: int = 4, depth: int = 1) -> None:
        super().__init__()
        self.input_shape = (3,)
        self.task = "classification"
        self.num_classes = 2
        layers: list[nn.Module] = [nn.Linear(3, width), nn.BatchNorm1d(width), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Linear(width, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


if "_test_tiny" not in MODELS:
    register_model("_test_tiny", description="a tiny test model")(Tiny)


def trained_tiny(**kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("_test_tiny", **kwargs)
    model.train()
    model(torch.randn(16, 3))  # moves the batch-norm statistics away from their defaults
    return model.eval()


def test_checkpoint_round_trip(tmp_path):
    model = trained_tiny(width=5, depth=2)
    path = save_checkpoint(
        tmp_path / "sub" / "tiny.pt", model, metadata={"accuracy": torch.tensor(0.75), "epochs": 3, "tags": ("a", "b")}
    )
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == ["tiny.pt"]  # no temp files left
    loaded, metadata = load_checkpoint(path)
    x = torch.randn(7, 3)
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert metadata == {"accuracy": 0.75, "epochs": 3, "tags": ["a", "b"]}
    assert loaded.workbench_spec == {"name": "_test_tiny", "kwargs": {"width": 5, "depth": 2}}
    assert isinstance(build_from_spec({"name": "_test_tiny", "kwargs": {"width": 5}}), Tiny)


def test_checkpoint_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointError, match="not a readable torch file"):
        load_checkpoint(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(save_checkpoint(tmp_path / "whole.pt", trained_tiny()).read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)


def test_checkpoint_refuses_pickled_modules_and_bare_state_dicts(tmp_path):
    model = trained_tiny()
    pickled = tmp_path / "module.pt"
    torch.save(model, pickled)
    with pytest.raises(CheckpointError, match="pickled module, not a workbench checkpoint.*save_checkpoint"):
        load_checkpoint(pickled)
    bare = tmp_path / "state.pt"
    torch.save(model.state_dict(), bare)
    with pytest.raises(CheckpointError, match="bare state_dict"):
        load_checkpoint(bare)
    other = tmp_path / "other.pt"
    torch.save({"weights": [1, 2], "note": "x"}, other)
    with pytest.raises(CheckpointError, match="format marker"):
        load_checkpoint(other)


def test_checkpoint_unknown_model_and_mismatched_weights(tmp_path):
    model = trained_tiny(width=4)
    unknown = save_checkpoint(tmp_path / "unknown.pt", model, spec={"name": "_no_such_model", "kwargs": {}})
    with pytest.raises(CheckpointError, match="_no_such_model.*register_model"):
        load_checkpoint(unknown)
    wider = save_checkpoint(tmp_path / "wider.pt", model, spec={"name": "_test_tiny", "kwargs": {"width": 6}})
    with pytest.raises(CheckpointError, match=r"shape mismatches body.0.weight: checkpoint \(4, 3\) vs model \(6, 3\)"):
        load_checkpoint(wider)
    deeper = save_checkpoint(tmp_path / "deeper.pt", model, spec={"name": "_test_tiny", "kwargs": {"depth": 2}})
    with pytest.raises(CheckpointError, match="missing keys body.5.weight"):
        load_checkpoint(deeper)


class UserNet(nn.Module):
    """A user's network, as published: a keyword in forward, BatchNorm, a residual add."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x, return_features=False):
        h = torch.relu(self.bn(self.conv(x)))
        h = torch.relu(h + self.conv2(h))
        features = h.mean(dim=(2, 3))
        return (self.fc(features), features) if return_features else self.fc(features)


def test_a_users_model_is_compressed_saved_and_reloaded_on_its_own_architecture(tmp_path):
    from workbench.compression import compress

    model, x = UserNet().eval(), torch.randn(2, 3, 8, 8)
    small = compress(model, method="magnitude", keep=0.5, example_input=x, latency=False).model
    assert small.conv.out_channels == 4 and small.workbench_spec["user"].endswith(":UserNet")
    path = save_checkpoint(tmp_path / "small.pt", small, metadata={"note": "mine"})
    loaded, metadata = load_checkpoint(path, base=UserNet)
    assert metadata == {"note": "mine"} and loaded.conv.out_channels == 4
    with torch.no_grad():
        assert torch.equal(loaded(x), small(x))
    assert torch.equal(load_checkpoint(path, base=UserNet())[0].fc.weight, small.fc.weight)
    with pytest.raises(CheckpointError, match="base="):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="saved from .*UserNet"):
        load_checkpoint(path, base=small_net())
    with pytest.raises(CheckpointError, match="base must be an nn.Module"):
        load_checkpoint(path, base=3)
    with pytest.raises(CheckpointError, match="base\\(\\) failed: ZeroDivisionError"):
        load_checkpoint(path, base=lambda: 1 / 0)
    plain = save_checkpoint(tmp_path / "plain.pt", small_net())  # never edited: its class and weights
    assert isinstance(load_checkpoint(plain, base=small_net)[0], nn.Sequential)


def test_save_checkpoint_needs_a_spec_and_json_metadata(tmp_path):
    with pytest.raises(ConfigError, match="JSON"):
        save_checkpoint(tmp_path / "x.pt", trained_tiny(), metadata={"model": nn.Linear(1, 1)})
    with pytest.raises(ConfigError, match="spec"):
        save_checkpoint(tmp_path / "x.pt", small_net(), spec={"kwargs": {}})
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------- edited models: one ordered history


def _mlp():
    torch.manual_seed(0)
    return create_model("mlp", widths=[16, 12, 10, 4])


def _lenet5():
    torch.manual_seed(0)
    return create_model("lenet5", in_channels=1, input_size=16, classes=4)


def _data(model, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *model.input_shape, generator=g)
    return x, torch.randint(0, 4, (n,), generator=g)


def _half_plan(model):
    from workbench.graph import from_model
    from workbench.select import get_selector
    from workbench.surgery import plan_from
    from workbench.zoo import example_input

    graph = from_model(model, example_input(model, 2))
    return plan_from(graph, get_selector("magnitude", budget=0.5), keep=0.5)


def _round_trip(tmp_path, model, name="m.pt"):
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / name, model))
    x, _ = _data(model, 8, seed=1)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6), "the loaded model computes another function"
    assert set(loaded.state_dict()) == set(model.state_dict())
    return loaded


def test_a_model_factorized_then_pruned_by_surgery_loads(tmp_path):
    """Plans and factorizations are one history replayed in order (they were two lists, plans first)."""
    from workbench.edits import edits_of
    from workbench.surgery import apply, factorize

    low_rank = factorize(_mlp(), "svd", budget=0.9)
    smaller = apply(low_rank, _half_plan(low_rank))
    assert [e["op"] for e in edits_of(smaller)] == ["factorize", "plan"]
    _round_trip(tmp_path, smaller)
    # and the other order
    reverse = factorize(apply(_mlp(), _half_plan(_mlp())), "svd", budget=0.9)
    assert [e["op"] for e in edits_of(reverse)] == ["plan", "factorize"]
    _round_trip(tmp_path, reverse, "reverse.pt")


def test_pruning_masks_are_saved_and_hold_after_loading(tmp_path):
    from workbench.sparse import get_masks, prune
    from workbench.train import fit

    model = prune(_mlp(), rate=0.8)
    loaded = _round_trip(tmp_path, model)
    masks = get_masks(loaded)
    assert masks is not None and masks.density() == pytest.approx(get_masks(model).density())
    fit(loaded, _data(loaded), epochs=2, lr=1e-2, quiet=True)
    for name, mask in masks.items():
        weight = loaded.get_submodule(name).weight
        assert torch.all(weight[~mask] == 0) and torch.any(weight[mask] != 0)


@pytest.mark.parametrize(
    "order",
    [
        ("prune", "factorize", "surgery", "fixed-point"),
        ("surgery", "prune", "share"),
        ("factorize", "prune", "binary"),
        ("prune", "ternary", "factorize"),
        ("surgery", "power-of-two", "prune"),
    ],
)
def test_edits_in_any_order_are_saved_loaded_and_retrained_with_masks(tmp_path, order):
    from workbench.quantize import binary_connect, fixed_point, power_of_two, share_weights, ternary_connect
    from workbench.sparse import get_masks, prune
    from workbench.surgery import apply, factorize
    from workbench.train import fit

    edits = {
        "prune": lambda m: prune(m, rate=0.6),
        "factorize": lambda m: factorize(m, "svd", layers=["layers.3"], budget=0.9),  # the middle layer
        "surgery": lambda m: apply(m, _half_plan(m)),
        "fixed-point": lambda m: fixed_point(m, weight_bits=6),
        "share": lambda m: share_weights(m, bits=3),
        "binary": lambda m: binary_connect(m, scale="mean"),
        "ternary": lambda m: ternary_connect(m, mode="det", scale="mean"),
        "power-of-two": lambda m: power_of_two(m),
    }
    model = _mlp()
    for name in order:
        model = edits[name](model)
    loaded = _round_trip(tmp_path, model)
    assert loaded.workbench_spec["edits"] == model.workbench_spec["edits"]
    masks, saved = get_masks(loaded), get_masks(model)
    assert masks is not None and set(masks) == set(saved) and all(torch.equal(masks[k], saved[k]) for k in saved)
    assert masks.density() < 0.5  # the pruning's zeros, not masks of ones
    fit(loaded, _data(loaded), epochs=1, lr=1e-2, quiet=True)
    for name, mask in masks.items():
        assert torch.all(loaded.get_submodule(name).weight[~mask] == 0)
    _round_trip(tmp_path, loaded, "again.pt")  # a retrained, loaded model saves again


def test_structural_quantizers_and_frequency_transforms_round_trip(tmp_path):
    from workbench.quantize import binarize_network, dct_compress, fixed_point, hashed_dct, quantized_backprop
    from workbench.sparse import dynamic_surgery

    _round_trip(tmp_path, fixed_point(_mlp(), weight_bits=8, act_bits=8), "act.pt")  # inserted activation quantizers
    _round_trip(tmp_path, binarize_network(_mlp()), "bnn.pt")  # replaced activations
    _round_trip(tmp_path, quantized_backprop(_mlp()), "qbp.pt")  # wrapped layers
    _round_trip(tmp_path, dynamic_surgery(_mlp(), c_rate=0.5), "dns.pt")  # surgery masks mid-training
    _round_trip(tmp_path, dct_compress(_lenet5(), keep=0.5, bits=4), "dct.pt")
    _round_trip(tmp_path, hashed_dct(_lenet5(), compression=0.25), "hashed.pt")


def test_unknown_parametrizations_and_unreplayable_histories_get_short_clear_errors(tmp_path):
    from torch.nn.utils import parametrize

    class Doubled(nn.Module):
        def forward(self, weight):
            return 2 * weight

    model = _mlp()
    parametrize.register_parametrization(model.get_submodule("layers.1"), "weight", Doubled())
    with pytest.raises(CheckpointError, match=r"'layers.1' has a Doubled parametrization.*restorable.*bake"):
        save_checkpoint(tmp_path / "doubled.pt", model)
    assert not (tmp_path / "doubled.pt").exists()

    from workbench.surgery import apply

    smaller = apply(_mlp(), _half_plan(_mlp()))
    spec = smaller.workbench_spec
    spec["kwargs"]["widths"] = [16, 6, 10, 4]  # the plan no longer fits the architecture
    path = save_checkpoint(tmp_path / "bad.pt", smaller, spec=spec)
    with pytest.raises(CheckpointError, match=r"cannot replay edit 'plan' \(number 0 of the history\)") as info:
        load_checkpoint(path)
    assert len(str(info.value)) < 800  # the message names the problem; it does not print the whole spec


def test_specs_written_before_edit_histories_still_load(tmp_path):
    from workbench.surgery import apply, factorize

    smaller = apply(_mlp(), _half_plan(_mlp()))
    low_rank = factorize(smaller, "svd", budget=0.9)
    old = {
        "name": "mlp",
        "kwargs": low_rank.workbench_spec["kwargs"],
        "plans": [low_rank.workbench_spec["edits"][0]["plan"]],
        "steps": [{"factorize": "svd", "ranks": low_rank.workbench_spec["edits"][1]["ranks"]}],
    }
    model = build_from_spec(old)
    model.load_state_dict(low_rank.state_dict())
    x, _ = _data(low_rank, 8)
    assert torch.allclose(model(x), low_rank.eval()(x), atol=1e-6)
