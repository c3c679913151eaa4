"""The `workbench` command: fast start, argument parsing, JSON output and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from workbench.checkpoints import load_checkpoint
from workbench.cli import main, parse_model_args
from workbench.errors import ConfigError


def test_start_up_imports_nothing_heavy():
    code = (
        "import sys, workbench, workbench.cli; "
        "heavy = [m for m in ('torch', 'graspologic', 'plotly', 'dppy', 'dask', 'sklearn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("models", "datasets", "profile", "train", "demo"):
        assert command in out.stdout


def test_parse_model_args_reads_json_values():
    assert parse_model_args(["--width", "0.5", "--resolution=160", "--cfg", "vgg16", "--widths", "[4, 3]"]) == {
        "width": 0.5,
        "resolution": 160,
        "cfg": "vgg16",
        "widths": [4, 3],
    }
    with pytest.raises(ConfigError, match="needs a value"):
        parse_model_args(["--width"])
    with pytest.raises(ConfigError, match="unexpected argument"):
        parse_model_args(["width"])


def test_profile_json(capsys):
    assert main(["profile", "--model", "mlp", "--widths", "[8, 4, 2]", "--json", "--no-latency"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["params"] == 8 * 4 + 4 + 4 * 2 + 2
    assert row["macs"] == 8 * 4 + 4 * 2


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["profile", "--model", "mobilenet_v2", "--no-latency"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'mobilenet_v2'" in err and "mobilenet_v1" in err


def test_models_and_datasets_list(capsys):
    assert main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert {"lenet300", "mobilenet_v1", "enet", "resnet"} <= set(models)
    assert main(["datasets", "--json"]) == 0
    sets = json.loads(capsys.readouterr().out)
    assert {"digits", "mnist1d", "shapes", "shapes-seg", "idx", "cifar10"} <= set(sets)
    assert main(["transforms", "--json"]) == 0
    steps = json.loads(capsys.readouterr().out)
    assert {"prune", "deep-compression", "group-lasso", "retrain"} <= set(steps) and "bits" in steps["share"]


def test_train_writes_a_checkpoint_that_profiles(tmp_path, capsys):
    ckpt = tmp_path / "m.pt"
    assert (
        main(["train", "--model", "mlp", "--data", "digits", "--epochs", "2", "--quiet", "--json", "--out", str(ckpt)])
        == 0
    )
    row = json.loads(capsys.readouterr().out)
    assert ckpt.exists() and row["test_accuracy"] > 0.25  # 2 epochs: 0.33 measured, chance is 0.10
    assert main(["profile", "--checkpoint", str(ckpt), "--json", "--no-latency"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == row["params"]


def test_compress_writes_a_smaller_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / "m.pt"
    assert (
        main(["train", "--model", "lenet300", "--data", "digits", "--epochs", "3", "--quiet", "--out", str(ckpt)]) == 0
    )
    capsys.readouterr()
    out = tmp_path / "small.pt"
    assert (
        main(
            [
                "compress",
                str(ckpt),
                "--method",
                "dpp",
                "--mode",
                "map",
                "--keep",
                "0.5",
                "--fuse",
                "lsq",
                "--finetune",
                "1",
                "--json",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["after"]["params"] < 0.5 * report["before"]["params"]
    assert report["after"]["macs"] < 0.5 * report["before"]["macs"]
    # half the units, lsq fusion and one epoch keep the accuracy (0.897 -> 0.894 measured; one image is 0.0028)
    assert report["after"]["accuracy"] > 0.85 and report["after"]["accuracy"] >= report["before"]["accuracy"] - 0.03
    assert main(["profile", "--checkpoint", str(out), "--json", "--no-latency"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == report["after"]["params"]
    rounded = tmp_path / "rounded.pt"
    args = ["compress", str(ckpt), "--keep", "0.3", "--round-to", "64", "--quiet", "--json", "--out", str(rounded)]
    assert main(args) == 0
    capsys.readouterr()
    small, meta = load_checkpoint(rounded)
    widths = [m.out_features for m in small.modules() if isinstance(m, torch.nn.Linear)][:-1]
    assert widths == [64, 64] and meta["compressed"]["round_to"] == 64  # 90 and 30 units, rounded to multiples


def test_atomic_writes_leave_no_temporary_files_and_usual_permissions(tmp_path):
    import os
    import stat

    from workbench.utils import atomic_write_text

    path = atomic_write_text(tmp_path / "sub" / "out.json", "{}")
    assert path.read_text() == "{}" and os.listdir(path.parent) == ["out.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
