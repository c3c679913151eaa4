"""The one safe writer replaces only regular files: device nodes, pipes and folders under an output's name are
refused, and stay what they were."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from workbench.checkpoints import save_checkpoint
from workbench.cli import main
from workbench.errors import ConfigError
from workbench.utils import atomic_write_bytes, atomic_write_text


def test_special_files_and_folders_are_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    for target in (fifo, folder):
        with pytest.raises(ConfigError, match="not a regular file"):
            atomic_write_bytes(target, b"x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and folder.is_dir()
    link = tmp_path / "link"
    link.symlink_to(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        atomic_write_text(link, "x")
    assert link.is_symlink()
    if os.path.exists("/dev/null"):
        with pytest.raises(ConfigError, match="device"):
            save_checkpoint("/dev/null", torch.nn.Linear(2, 2))
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    regular = tmp_path / "file.txt"
    atomic_write_text(regular, "old")
    atomic_write_text(regular, "new")  # a regular file of ours is replaced
    assert regular.read_text() == "new"


def test_the_cli_refuses_a_device_as_output(tmp_path, capsys):
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null on this system")
    args = ["train", "--model", "lenet300", "--data", "digits", "--epochs", "1", "--quiet", "--out", "/dev/null"]
    assert main(args) != 0
    assert "not a regular file" in capsys.readouterr().err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize(
    "args",
    [
        ["profile", "--model", "lenet300", "--batch_size", "3", "--no-latency"],
        ["train", "--model", "lenet300", "--data", "digits", "--epochs", "1", "--input_shape", "[3]"],
        ["train", "--model", "lenet300", "--data", "digits", "--epochs", "1", "--random-state", "5"],
    ],
)
def test_extra_options_cannot_collide_with_what_the_command_sets(args, capsys):
    assert main(args) == 2
    assert "is set by the command itself" in capsys.readouterr().err


def test_an_unknown_selector_is_named_before_an_output_name_is_built_from_it(tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "m.pt", torch.nn.Sequential(torch.nn.Linear(2, 2)))
    assert main(["compress", str(checkpoint), "--method", "a/b", "--data", "digits"]) == 2
    assert "unknown selector 'a/b'" in capsys.readouterr().err
