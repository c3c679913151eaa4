"""Sequential selection (group by group on the network rebuilt so far), and the new fuse and retraining names
in every place that lists them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.compression import compress
from workbench.train import fit
from workbench.zoo import create_model


@pytest.fixture(scope="module")
def digits_mlp():
    from workbench.datasets import load_dataset

    train = load_dataset("digits", split="train")
    torch.manual_seed(0)
    model = create_model("mlp", widths=[64, 48, 32, 10])
    fit(model, train, epochs=6, quiet=True, random_state=0)
    return model.eval(), train


def test_sequential_selects_later_groups_on_the_rebuilt_network_and_replays(digits_mlp, tmp_path):
    model, train = digits_mlp
    settings = {"method": "magnitude", "keep": 0.25, "fuse": "lsq", "train": train, "latency": False}
    at_once = compress(model, **settings)
    sequential = compress(model, sequential=True, **settings)
    first, second = "layers.1", "layers.3"
    assert np.array_equal(sequential.plan[first].keep, at_once.plan[first].keep)  # the first group sees the same net
    assert not np.array_equal(sequential.plan[second].keep, at_once.plan[second].keep)  # the second does not
    assert sequential.plan.meta["sequential"] and sequential.plan.kept_fraction == at_once.plan.kept_fraction
    edits = sequential.model.workbench_spec["edits"]
    assert [e["op"] for e in edits] == ["plan", "plan"]
    assert [list(e["plan"]["selections"]) for e in edits] == [[first], [second]]
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "sequential.pt", sequential.model))
    x = train.inputs[:32]
    with torch.no_grad():
        assert torch.equal(loaded(x), sequential.model(x))
        assert not torch.allclose(sequential.model(x), at_once.model(x))


def test_summarize_runs_from_compress_with_a_partition_selector(digits_mlp):
    model, train = digits_mlp
    result = compress(model, method="spectral", keep=0.25, fuse="summarize-medoid", train=train, latency=False)
    assert result.model.layers[1].out_features == 12
    recorded = result.model.workbench_spec["edits"][-1]["plan"]["selections"]["layers.1"]["keep"]
    assert recorded == result.plan["layers.1"].keep.tolist()  # the plan returned is the one rebuilt (medoids)


def test_fuse_names_agree_everywhere():
    import argparse

    from workbench.cli import build_parser
    from workbench.study.schema import FUSE_MODES as STUDY_FUSE_MODES
    from workbench.surgery import FUSE_MODES

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    fuse = next(a for a in commands.choices["compress"]._actions if "--fuse" in a.option_strings)
    assert tuple(fuse.choices) == FUSE_MODES == STUDY_FUSE_MODES


def test_study_files_take_summarize_sequential_and_reconstruct(tmp_path):
    from workbench.study.grid import expand
    from workbench.study.schema import load_study

    path = tmp_path / "study.toml"
    path.write_text(
        """
[study]
name = "frontier"
reference = "spectral/summarize-lsq"

[[models]]
name = "lenet300"
data = "digits"

[selectors.spectral]

[compression]
budgets = [0.1]
fuse = ["summarize", "summarize-medoid", "summarize-lsq", "lsq"]
sequential = true

[finetune]
method = "reconstruct"
epochs = 1
""",
        encoding="utf-8",
    )
    study = load_study(path)
    assert study.compression.sequential and study.finetune.method == "reconstruct"
    runs = [r.config for r in expand(study) if r.config["kind"] == "compress"]
    assert sorted(r["fuse"] for r in runs) == ["lsq", "summarize", "summarize-lsq", "summarize-medoid"]
    assert all(r["sequential"] for r in runs)
