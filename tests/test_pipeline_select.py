"""Selection and rebuild as a pipeline step: the same engine as ``compress``, composable with the classic steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from toy import STEADY, tiny_mlp, toy_data

from workbench.compression import compress
from workbench.errors import ConfigError
from workbench.metrics import storage_report
from workbench.pipeline import check_steps, planned_epochs, run_pipeline, with_budget
from workbench.rebuild import example_from, select_and_rebuild
from workbench.train import fit


class Declared(nn.Sequential):
    """The tiny MLP with the ``input_shape`` the workbench's own models declare."""

    input_shape = (8,)


def _trained(seed: int = 0) -> nn.Module:
    model = tiny_mlp(seed)
    fit(model, toy_data(256), epochs=3, lr=1e-2, random_state=seed, **STEADY)
    return model


def _half_zero() -> nn.Module:
    """An 8-16-3 MLP whose hidden units 8-15 are dead (zero weights and bias): dropping them is exact."""
    model = tiny_mlp(1)
    with torch.no_grad():
        model[0].weight[8:] = 0.0
        model[0].bias[8:] = 0.0
        model[2].weight[:, 8:] = torch.randn(3, 8)  # what they would feed is irrelevant: they output 0
    return model


def test_select_step_is_the_engine_of_compress():
    model = _trained()
    x, _ = toy_data(64, seed=3)
    steps = [{"do": "select", "method": "magnitude", "keep": 0.5, "fuse": "lsq"}]
    piped = run_pipeline(model, steps, toy_data(256), random_state=4)
    direct = compress(
        model,
        method="magnitude",
        keep=0.5,
        fuse="lsq",
        train=toy_data(256),
        random_state=4,
        example_input=x[:2],
        latency=False,
    ).model
    assert piped[0].out_features == direct[0].out_features == 8
    for a, b in zip(piped.state_dict().values(), direct.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(piped(x), model(x))  # lsq really refitted a smaller network


def test_dropping_dead_units_in_a_pipeline_is_exact():
    model = _half_zero()
    x = torch.randn(32, 8)
    small = run_pipeline(model, [{"do": "select", "method": "magnitude", "keep": 0.5}], toy_data(64))
    assert small[0].out_features == 8 and small[2].in_features == 8
    torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-6)


def test_select_then_share_then_huffman_stores_fewer_bytes():
    model = _trained()
    steps = [
        {"do": "select", "method": "magnitude", "keep": 0.5, "fuse": "lsq"},
        {"do": "retrain", "epochs": 1, "lr": 1e-3},
        {"do": "share", "bits": 3},
        {"do": "huffman"},
    ]
    small = run_pipeline(model, steps, toy_data(256), random_state=0)
    assert small[0].out_features == 8  # physically smaller, not masked
    assert len(torch.unique(small[0].weight.detach())) <= 2**3  # shared to 3-bit codebooks
    base, after = storage_report(model).stored_bytes, storage_report(small).stored_bytes
    assert after < base / 3
    assert planned_epochs(steps, model) == 1
    assert with_budget(steps, 2, model)[1]["epochs"] == 2  # the study's retraining budget reaches the retrain step


def test_cost_budget_in_a_step():
    model = Declared(*_trained())
    small = run_pipeline(model, [{"do": "select", "budget": {"params": 0.5}}], random_state=0)
    kept = sum(p.numel() for p in small.parameters()) / sum(p.numel() for p in model.parameters())
    assert abs(kept - 0.5) <= 0.1


def test_user_model_without_input_shape_is_traced_on_the_data():
    model = _trained()
    assert getattr(model, "input_shape", None) is None
    data = toy_data(16)
    example = example_from(model, data)
    assert torch.equal(example, data[0][:2])
    small = run_pipeline(model, [{"do": "select", "keep": 0.25}], data)
    assert small[0].out_features == 4
    with pytest.raises(Exception, match="input_shape"):
        run_pipeline(model, [{"do": "select", "keep": 0.25}])  # nothing to trace it with: says what to pass


def test_bad_select_steps_are_named():
    with pytest.raises(ConfigError, match="step 0 \\(select\\): unknown parameter 'kep'"):
        check_steps([{"do": "select", "kep": 0.5}])
    with pytest.raises(ConfigError, match="keep"):
        select_and_rebuild(Declared(*tiny_mlp()), keep=1.5)
    with pytest.raises(ConfigError, match="not both"):
        select_and_rebuild(Declared(*tiny_mlp()), keep=0.5, budget={"macs": 0.5})
