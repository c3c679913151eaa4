"""compress with a budget by cost (macs, params, latency), on the command line and in study files; per-layer
sensitivity and its figure."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.cli import main
from workbench.compression import compress, sensitivity
from workbench.datasets import load_dataset
from workbench.errors import ConfigError, StudyError
from workbench.study import Store, expand, load_study, run_study
from workbench.study.summary import collect, summary_table
from workbench.train import evaluate
from workbench.zoo import create_model


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    model = create_model("vgg_small").eval()
    return model, torch.randn(2, *model.input_shape)


@pytest.mark.parametrize("scope", ["uniform", "global"])
@pytest.mark.parametrize("cost, target", [("macs", 0.5), ("params", 0.33)])
def test_compress_meets_a_cost_budget(vgg, scope, cost, target):
    model, x = vgg
    result = compress(model, budget={cost: target, "scope": scope}, latency=False, example_input=x)
    reached = result.after[cost] / result.before[cost]
    assert result.budget[cost] == target and result.budget["scope"] == scope
    assert abs(result.budget["reached"] - reached) < 1e-12 and abs(reached - target) <= 0.02
    assert result.plan.meta["budget"]["reached"] == result.budget["reached"]
    fractions = [s.fraction for _, s in result.plan.items()]
    assert (max(fractions) - min(fractions) > 0.1) == (scope == "global")


def test_sequential_compression_meets_the_budget_chosen_on_the_base(vgg):
    model, x = vgg
    result = compress(model, budget={"macs": 0.5}, sequential=True, latency=False, example_input=x)
    assert result.plan.meta["sequential"] and abs(result.budget["reached"] - 0.5) <= 0.02


def test_a_latency_budget_is_timed_and_reported_with_its_spread(vgg):
    model, x = vgg
    result = compress(model, budget={"latency": 0.5, "batch": 16}, latency=False, example_input=x)
    budget = result.budget
    measured = budget["measured"]
    assert budget["tolerance"] == 0.05 and measured["batch"] == 16 and measured["threads"] == 1
    assert measured["low"] <= budget["reached"] == measured["ratio"] <= measured["high"]
    assert 1 <= len(budget["search"]) <= 8 and all(len(step) == 3 for step in budget["search"])  # the bisection
    # timing on a shared CPU is noisy (0.52-0.57 measured here alone, 0.34 while other jobs ran): no time is
    # asserted; a miss beyond the tolerance must be said in the notes
    missed = abs(budget["reached"] - 0.5) > budget["tolerance"]
    # the search's own timings may say it missed while the final measurement lands within: only a miss must be said
    assert not missed or any("latency" in note for note in result.notes), result.notes
    assert result.after["macs"] < result.before["macs"]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"keep": 0.5, "budget": {"macs": 0.5}}, "not both"),
        ({"per_layer": {"layers.1": 0.5}, "budget": {"macs": 0.5}}, "not both"),
        ({"budget": {"macs": 0.5, "params": 0.5}}, "exactly one"),
        ({"budget": {"flops": 0.5}}, "unknown budget key"),
        ({"budget": {"macs": float("nan")}}, "(0, 1]"),
        ({"budget": {"params": 1.5}}, "(0, 1]"),
        ({"budget": {"macs": 0.5, "batch": 8}}, "does not go with"),
        ({"budget": {"macs": 0.5, "scope": "layer"}}, "unknown scope"),
    ],
)
def test_bad_budgets_say_what_to_do(kwargs, words):
    model = create_model("mlp", widths=[16, 8, 4])
    with pytest.raises(ConfigError, match=None) as caught:
        compress(model, latency=False, **kwargs)
    assert words in str(caught.value)


def test_cli_compresses_to_a_share_of_the_multiply_adds(tmp_path, capsys):
    ckpt = save_checkpoint(tmp_path / "m.pt", create_model("mlp", widths=[64, 48, 32, 10]), metadata={"data": "digits"})
    out = tmp_path / "small.pt"
    args = ["compress", str(ckpt), "--macs", "0.5", "--scope", "global", "--min-keep", "0.1"]
    assert main([*args, "--json", "--quiet", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert abs(report["after"]["macs"] / report["before"]["macs"] - 0.5) <= 0.02
    assert report["budget"]["scope"] == "global" and report["budget"]["min_keep"] == 0.1
    _, meta = load_checkpoint(out)
    assert meta["compressed"]["budget"]["macs"] == 0.5 and "keep" not in meta["compressed"]
    assert main(["compress", str(ckpt), "--scope", "global", "--quiet", "--out", str(tmp_path / "x.pt")]) == 2
    assert "--scope goes with a budget by cost" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --keep and --macs are exclusive
        main(["compress", str(ckpt), "--keep", "0.5", "--macs", "0.5"])


STUDY = """
[study]
name = "costs"
seeds = [0]

[[models]]
name = "mlp"
args = { widths = [64, 32, 10] }
data = "digits"
training = { epochs = 1 }

[selectors]
magnitude = {}

[compression]
budgets = [0.5, { macs = 0.5 }, { params = 0.33, scope = "global" }, { latency = 0.5, batch = 64 },
           { keep = 0.5, per_layer = { "layers.1" = 0.25 } }]
fuse = ["drop"]
"""


def test_study_budgets_parse_and_old_forms_keep_their_configuration(tmp_path):
    path = tmp_path / "costs.toml"
    path.write_text(STUDY)
    budgets = [run.config["budget"] for run in expand(load_study(path)) if run.kind == "compress"]
    assert budgets == [
        {"keep": 0.5, "per_layer": {}, "label": "0.5"},  # as stored before budgets by cost: the same hashes
        {"macs": 0.5, "label": "macs 0.5"},
        {"params": 0.33, "scope": "global", "label": "params 0.33 global"},
        {"latency": 0.5, "batch": 64, "label": "latency 0.5 b64"},
        {"keep": 0.5, "per_layer": {"layers.1": 0.25}, "label": "0.5 +1 layers"},
    ]


@pytest.mark.parametrize(
    "budget, words",
    [
        ("{ macs = 0.5, params = 0.5 }", "exactly one of keep, macs, params, latency"),
        ("{ flops = 0.5 }", "flops"),
        ("{ macs = 1.5 }", "(0, 1]"),
        ("{ macs = nan }", "(0, 1]"),
        ("{ keep = 0.5, scope = 'global' }", "does not go with a keep budget"),
        ("{ macs = 0.5, batch = 8 }", "does not go with a macs budget"),
    ],
)
def test_study_budget_errors(tmp_path, budget, words):
    path = tmp_path / "bad.toml"
    path.write_text(STUDY.replace("budgets = [0.5,", f"budgets = [{budget},"))
    with pytest.raises(StudyError) as caught:
        load_study(path)
    assert "compression.budgets[0]" in str(caught.value) and words in str(caught.value)


def test_a_study_with_a_macs_budget_runs_and_labels_it(tmp_path):
    path = tmp_path / "costs.toml"
    path.write_text(STUDY.replace("budgets = [0.5,", "budgets = [{ macs = 0.5 }] #").replace("           {", "# {"))
    study = load_study(path)
    outcome = run_study(study, quiet=True)
    assert (outcome.done, outcome.failed) == (2, 0)
    with Store(tmp_path / "costs.sqlite", readonly=True) as store:
        rows = store.rows()
    run = next(row for row in rows if row["kind"] == "compress")
    assert abs(run["metrics"]["budget_reached"] - 0.5) <= 0.02
    assert math.isclose(run["metrics"]["budget_reached"], run["metrics"]["macs"] / run["metrics"]["base_macs"])
    (row,) = summary_table(collect(study, rows))
    assert "macs 0.5" in row and "keep macs 0.5" not in row


def test_sensitivity_has_one_curve_per_group_and_a_figure():
    from workbench.viz import sensitivity_figure

    torch.manual_seed(0)
    model = create_model("mlp", widths=[64, 32, 16, 10])
    val = load_dataset("digits", split="val")
    result = sensitivity(model, val, fractions=(0.75, 0.25))
    assert result.fractions == (0.25, 0.75) and set(result.curves) == {"layers.1", "layers.3"}
    assert all(len(c) == 2 for c in result.curves.values()) and result.n == len(val)
    assert result.base == evaluate(model, val)["accuracy"]  # the uncompressed network's score on val
    assert list(result.drops()) and set(result.drops()) == set(result.curves)
    fig = sensitivity_figure(result)
    names = [trace.name for trace in fig.data]
    assert names == ["layers.1", "layers.3", "uncompressed"] and fig.data[-1].line.dash == "dash"
    assert list(fig.data[-1].y) == [result.base, result.base] and list(fig.data[0].x) == [0.25, 0.75]
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "validation accuracy"
    assert "group layers.1" in fig.data[0].hovertemplate
    with pytest.raises(ConfigError):
        sensitivity(model, val, fractions=(0.0,))


@pytest.mark.parametrize("name", ["resnet56", "text_cnn", "groupnorm_net"])
def test_a_cost_budget_counts_what_the_plan_keeps_and_lands_on_the_nearer_side(name):
    """ResNet-56's option-A shortcuts pad channels with zeros: those units are fixed, kept by every plan. The
    prediction counted them as dropped (0.500 predicted, 0.601 reached); it must count what the plan keeps. Small
    groups move the cost in steps: the step just above the target is taken when it is nearer (text CNN 0.462 ->
    0.504, GroupNorm net 0.465 -> 0.506, both outside the tolerance before)."""
    from published_models import PUBLISHED, example_input

    torch.manual_seed(0)
    model, x = PUBLISHED[name](), example_input(name)
    result = compress(model, budget={"macs": 0.5, "scope": "global", "min_keep": 0.1}, example_input=x, latency=False)
    assert abs(result.budget["reached"] - 0.5) <= result.budget["tolerance"], result.budget["reached"]


@pytest.mark.parametrize("scope", ["global", "uniform"])
def test_a_budget_whose_steps_jump_past_the_target_is_closed_by_single_units_of_the_other_groups(scope):
    """ViT-tiny's embedding is kept in multiples of its 4 heads: the one threshold of the scope jumps from 0.458 of
    the multiply-adds past 0.5. Units of the MLPs are then moved one at a time; the embedding stays a multiple of
    the heads and the rebuilt network costs what was predicted."""
    from published_models import PUBLISHED, example_input

    torch.manual_seed(0)
    model, x = PUBLISHED["vit_tiny"](), example_input("vit_tiny")
    result = compress(model, budget={"macs": 0.5, "scope": scope, "min_keep": 0.1}, example_input=x, latency=False)
    assert abs(result.budget["reached"] - 0.5) < 0.005, result.budget["reached"]
    assert result.plan["patch_embed"].k % 4 == 0
    assert result.after["macs"] / result.before["macs"] == pytest.approx(result.budget["reached"])


def test_multiply_adds_of_attention_are_counted():
    """nn.MultiheadAttention's fused fast path (eval, no gradients) is invisible to the flop counter."""
    from workbench.metrics import count_macs

    attention = nn.MultiheadAttention(16, 2, batch_first=True).eval()

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = attention

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attention(x, x, x, need_weights=False)[0]

    tokens, width = 5, 16
    projections = 4 * tokens * width * width  # q, k, v and the output projection
    products = 2 * tokens * tokens * width  # scores and their weighted sum over the heads
    assert count_macs(Net(), torch.randn(1, tokens, width)) == projections + products
    assert torch.backends.mha.get_fastpath_enabled()  # switched back on
