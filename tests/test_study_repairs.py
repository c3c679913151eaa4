"""Repairs after a fusion in study files ("drop+batches", "fold+data-free"), and folding's plan as rebuilt."""

from __future__ import annotations

import pytest

from tests.test_cost_budgets import STUDY
from workbench.compression import compress
from workbench.errors import StudyError
from workbench.study import Store, load_study, run_study
from workbench.surgery.folding import FOLDED
from workbench.zoo import create_model


def _study(tmp_path, fuse: str):
    path = tmp_path / "repairs.toml"
    text = STUDY.replace("budgets = [0.5,", "budgets = [0.5] #").replace("           {", "# {")
    text = text.replace("training = { epochs = 1 }", "training = { epochs = 6, lr = 3e-3 }")
    text = text.replace("widths = [64, 32, 10]", "widths = [64, 32, 32, 10]")  # REPAIR acts from the second layer
    path.write_text(text.replace('fuse = ["drop"]', f"fuse = {fuse}"))
    return path


def test_a_study_runs_each_fusion_with_its_repair(tmp_path):
    study = load_study(_study(tmp_path, '["drop", "drop+batches", "fold+data-free"]'))
    outcome = run_study(study, quiet=True)
    assert (outcome.done, outcome.failed) == (4, 0)
    with Store(tmp_path / "repairs.sqlite", readonly=True) as store:
        runs = {row["config"]["fuse"]: row for row in store.rows() if row["kind"] == "compress"}
    assert set(runs) == {"drop", "drop+batches", "fold+data-free"}
    # the same selection, so the repair is what differs: REPAIR changes the rebuilt network's scores
    plain, repaired = runs["drop"]["metrics"], runs["drop+batches"]["metrics"]
    assert plain["params"] == repaired["params"]
    assert plain["accuracy_rebuilt"] != repaired["accuracy_rebuilt"]


@pytest.mark.parametrize(
    "fuse, words",
    [('["drop+data-free"]', "follows folding only"), ('["fold+magic"]', "+batches or +data-free"), ("[3]", "string")],
)
def test_a_bad_repair_is_named(tmp_path, fuse, words):
    with pytest.raises(StudyError, match=None) as caught:
        load_study(_study(tmp_path, fuse))
    assert "compression.fuse[0]" in str(caught.value) and words in str(caught.value)


def test_compress_returns_the_folded_plan_it_rebuilt():
    model = create_model("mlp", widths=[16, 12, 4], random_state=0)
    result = compress(model, keep=0.5, fuse="fold", latency=False)
    for _, selection in result.plan.items():
        assert FOLDED in selection.info
    assert result.model.layers[1].out_features == 6


def test_lsq_without_ridge_gives_a_dead_kept_unit_zero_weight():
    import torch

    from workbench.selection import Selection
    from workbench.surgery import Plan, apply

    model = create_model("mlp", widths=[8, 6, 6, 3], random_state=0)
    with torch.no_grad():  # hidden unit 0 of the second layer never fires: a singular Gram matrix without ridge
        model.layers[3].weight[0] = 0.0
        model.layers[3].bias[0] = -1.0
    x = torch.randn(64, 8)
    selection = Selection("layers.3", 6, keep=[0, 1, 2], assign=[0, 1, 2, 0, 1, 2], scores=[1.0] * 6, method="hand")
    plan = Plan(selections={"layers.3": selection})
    small = apply(model, plan, fuse="lsq", data=(x, torch.zeros(64, dtype=torch.long)), ridge=0.0)
    assert torch.all(torch.isfinite(small.layers[5].weight))
    assert torch.all(small.layers[5].weight[:, 0] == 0)
