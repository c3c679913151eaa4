"""Magnitude pruning with masks, dynamic network surgery and group lasso."""

import numpy as np
import pytest
import torch
from torch import nn
from toy import STEADY
from toy import tiny_mlp as _mlp
from toy import toy_data as _data

from workbench.edits import note
from workbench.errors import CompressionError
from workbench.sparse import (
    GroupLasso,
    SurgeryHook,
    dynamic_surgery,
    finish_surgery,
    get_masks,
    iterative_prune,
    magnitude_masks,
    prune,
    set_masks,
    structured_report,
)
from workbench.sparse.dynamic_surgery import SurgeryMask, surgery_layers
from workbench.train import fit


def test_prune_rate_per_layer_and_masks_stay_zero_while_retraining():
    model = prune(_mlp(), rate={"linear": 0.75})
    masks = get_masks(model)
    for name in ("0", "2"):
        layer = dict(model.named_modules())[name]
        assert (layer.weight == 0).float().mean().item() == pytest.approx(0.75, abs=0.02)
    # SGD with momentum and weight decay would revive zeros without the masks
    fit(model, _data(), epochs=3, lr=1e-2, optimizer="sgd", weight_decay=1e-3, quiet=True)
    for name, mask in masks.items():
        w = dict(model.named_modules())[name].weight
        assert torch.all(w[~mask] == 0)
        assert torch.any(w[mask] != 0)
    unmasked = set_masks(prune(_mlp(), rate=0.75), None)
    assert (unmasked[0].weight == 0).float().mean() == pytest.approx(0.75, abs=0.02)  # the zeros stay ...
    fit(unmasked, _data(), epochs=1, lr=1e-2, quiet=True)
    assert (unmasked[0].weight != 0).float().mean() > 0.9  # ... until training moves them


def test_quality_threshold_and_global_scope():
    model = _mlp()
    masks = magnitude_masks(model, quality=1.0)
    w = model[0].weight.detach()
    assert torch.equal(masks["0"], w.abs() >= w.std())
    glob = magnitude_masks(model, rate=0.5, scope="global")
    assert glob.density() == pytest.approx(0.5, abs=0.01)
    threshold = max(model[0].weight[~glob["0"]].abs().max(), model[2].weight[~glob["2"]].abs().max())
    assert model[0].weight[glob["0"]].abs().min() >= threshold


def test_repeated_pruning_keeps_earlier_zeros():
    model = prune(_mlp(), rate=0.5)
    first = get_masks(model)
    with torch.no_grad():
        model[0].weight.add_(0.01)  # perturb, then prune further
        first.apply(model)
    model = prune(model, rate=0.8)
    second = get_masks(model)
    assert torch.all(~second["0"][~first["0"]])
    assert second.density() == pytest.approx(0.2, abs=0.02)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_bad_rate_names_layer(rate):
    with pytest.raises(CompressionError, match="rate for layer '0'"):
        prune(_mlp(), rate=rate)


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with pytest.raises(CompressionError, match="'1'.*BatchNorm1d"):
        prune(model, rate=0.5, layers=["1"])
    with pytest.raises(CompressionError, match="no layer 'fc9'"):
        prune(model, rate=0.5, layers=["fc9"])


def test_dns_pruned_weight_is_spliced_back():
    model = dynamic_surgery(_mlp(), c_rate=0.5)
    (_, layer, p), _ = surgery_layers(model)
    dense = layer.parametrizations.weight.original
    pruned_before = (p.mask == 0).nonzero()[0]
    i, j = pruned_before.tolist()
    assert layer.weight[i, j] == 0  # forward uses W * T
    # the dense weight receives gradient even where the mask is 0 (straight through)
    x, y = _data()
    nn.functional.cross_entropy(model(x), y).backward()
    assert dense.grad[i, j] != 0
    with torch.no_grad():
        dense[i, j] = dense.abs().max() * 3  # training made it large
    hook = SurgeryHook(interval=1, gamma=0.0)
    hook.after_step(model)
    assert p.mask[i, j] == 1 and layer.weight[i, j] != 0
    assert hook.totals["spliced"] >= 1
    a, b = p.thresholds(dense)
    assert a < b


def test_dns_training_prunes_and_finishes_to_masks():
    model = dynamic_surgery(_mlp(), c_rate=1.0)
    hook = SurgeryHook(interval=2, gamma=1e-3, random_state=0)
    fit(model, _data(), epochs=20, lr=1e-2, hooks=[hook], **STEADY)
    assert hook.totals["pruned"] > 0
    density_before = float(surgery_layers(model)[0][2].mask.mean())
    finish_surgery(model)
    assert not any(isinstance(m, SurgeryMask) for m in model.modules())
    assert get_masks(model)["0"].float().mean().item() == pytest.approx(density_before)
    assert (model[0].weight == 0).float().mean().item() == pytest.approx(1 - density_before)


def test_group_lasso_drives_filters_to_zero_on_toy_problem():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()  # only input 0 matters
    model = nn.Sequential(nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 2))
    lasso = GroupLasso(strength=0.2, kinds=("channels",), layers=["0"])
    fit(model, (x, y), epochs=75, lr=0.05, optimizer="sgd", momentum=0.0, hooks=[lasso.prox_hook(0.05)], **STEADY)
    norms = model[0].weight.detach().norm(dim=0)
    assert norms[0] > 0.1
    assert torch.all(norms[1:] < 1e-6)
    report = structured_report(model, tol=1e-4, kinds=("channels", "filters"), layers=["0"])
    assert report.layers[0].zeroed["channels"] == 7
    assert report.removable >= 7 * 12
    penalty = lasso(model)
    assert penalty.item() == pytest.approx(0.2 * float(norms.sum()), rel=1e-4)


def test_group_lasso_penalty_groups_and_removable_counts():
    conv = nn.Sequential(nn.Conv2d(2, 3, 3))
    with torch.no_grad():
        conv[0].weight.fill_(1.0)
        conv[0].weight[1] = 0  # one filter
        conv[0].weight[:, 0, 0, 0] = 0  # one shape position across filters
    report = structured_report(conv, kinds=("filters", "channels", "shapes"))
    row = report.layers[0]
    assert row.zeroed == {"filters": 1, "channels": 0, "shapes": 1}
    assert row.removable == 18 + 2 + 1  # filter (18 weights) + shape entries outside it + bias
    pen = GroupLasso(strength=1.0, kinds=("filters",))(conv)
    assert pen.item() == pytest.approx(2 * 17**0.5, rel=1e-5)
    with pytest.raises(CompressionError, match="depth_layers"):
        GroupLasso(kinds=("depth",))
    with pytest.raises(CompressionError, match="unknown group kind"):
        GroupLasso(kinds=("rows",))


def test_iterative_prune_with_fit_keeps_schedule_and_zeros():
    x, y = _data(256)
    model = iterative_prune(_mlp(), (x, y), rates=[0.5, 0.8], retrain_epochs=1, quiet=True, lr=1e-2)
    masks = get_masks(model)
    assert [e["rate"] for e in note(model, "prune_log")] == [0.5, 0.8]
    assert masks.density() == pytest.approx(0.2, abs=0.02)
    for name, mask in masks.items():
        assert torch.all(dict(model.named_modules())[name].weight[~mask] == 0)
    with pytest.raises(CompressionError, match="at least one"):
        iterative_prune(_mlp(), (x, y), rates=[])


def test_iterative_prune_can_distil_from_the_input_model():
    x, y = _data(256)
    model = _mlp()
    before = [p.detach().clone() for p in model.parameters()]
    options = dict(rates=[0.5, 0.8], retrain_epochs=2, quiet=True, lr=1e-2)
    plain = iterative_prune(model, (x, y), **options)
    taught = iterative_prune(model, (x, y), teacher="input", **options)
    listed = iterative_prune(model, (x, y), teacher=[_mlp(1), _mlp(2)], **options)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not torch.equal(plain[0].weight, taught[0].weight)
    assert not torch.equal(taught[0].weight, listed[0].weight)
    for name, mask in get_masks(taught).items():
        assert torch.all(dict(taught.named_modules())[name].weight[~mask] == 0)
    with pytest.raises(CompressionError, match="teacher must be"):
        iterative_prune(model, (x, y), teacher="baseline", **options)


def _zeros_kept(model, masks) -> bool:
    modules = dict(model.named_modules())
    return all(torch.all(modules[name].weight[~mask] == 0) for name, mask in masks.items())


def test_fit_keeps_the_masks_a_pruned_model_carries_unless_they_are_removed():
    from workbench.train import retrain

    model = prune(_mlp(), rate=0.8)
    masks = get_masks(model)
    fit(model, _data(), epochs=3, lr=1e-2, quiet=True)
    assert _zeros_kept(model, masks) and torch.any(model[0].weight[masks["0"]] != 0)
    retrain(model, _data(), epochs=2, lr=1e-2, teacher=_mlp(1), quiet=True)
    assert _zeros_kept(model, masks)
    fit(set_masks(model, None), _data(), epochs=2, lr=1e-2, quiet=True)
    assert (model[0].weight != 0).float().mean() > 0.9  # pruned weights grew back


def test_masks_act_on_the_trained_tensor_of_a_fixed_point_weight():
    from workbench.quantize import fixed_point

    model = fixed_point(prune(_mlp(), rate=0.7), weight_bits=8)
    masks = get_masks(model)
    assert set(masks) == {"0", "2"} and masks.density() == pytest.approx(0.3, abs=0.01)  # kept by quantizing
    fit(model, _data(), epochs=3, lr=1e-2, quiet=True)
    original = model[0].parametrizations.weight.original
    assert torch.all(original[~masks["0"]] == 0) and torch.all(model[0].weight[~masks["0"]] == 0)


def test_surgery_and_factorization_carry_masks_that_match_and_stale_masks_are_named():
    from workbench.select import Selection
    from workbench.surgery import Plan, apply, factorize

    model = prune(_mlp(), rate={"0": 0.5, "2": 0.0})
    kept = [0, 2, 4, 6, 8, 10, 12, 14]
    keep = Selection(group="0", n_units=16, keep=np.array(kept), assign=np.arange(16) // 2 * 2, scores=np.zeros(16))
    small = apply(model, Plan({"0": keep}), example_input=torch.randn(2, 8))
    masks = get_masks(small)
    assert tuple(masks["0"].shape) == (8, 8) and torch.equal(masks["0"], get_masks(model)["0"][kept])
    fit(small, _data(), epochs=2, lr=1e-2, quiet=True)
    assert _zeros_kept(small, masks)
    low_rank = factorize(model, "svd", layers=["0"], budget=0.5)
    assert get_masks(low_rank) is not None and "0" not in get_masks(low_rank) and "2" in get_masks(low_rank)
    with pytest.raises(
        CompressionError, match=r"mask for layer '0' does not match.*\(8, 8\) but the weight has \(16, 8\)"
    ):
        set_masks(_mlp(), get_masks(small))


def test_dynamic_surgery_starts_from_the_weights_not_from_earlier_masks():
    model = dynamic_surgery(prune(_mlp(), rate=0.5))
    assert get_masks(model) is None
