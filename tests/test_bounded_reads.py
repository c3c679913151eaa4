"""Readers bound what they take in: nesting of JSON plans and specs, and files larger than memory."""

from __future__ import annotations

import io

import pytest
import torch

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.errors import CheckpointError, SurgeryError
from workbench.surgery import Plan
from workbench.utils import json_depth, physical_memory


def test_json_depth_counts_brackets_outside_strings():
    assert json_depth('{"a": [1, {"b": "[[[[{"}]}') == 3
    assert json_depth('"\\\\"') == 0 and json_depth("[]") == 1


def test_deeply_nested_plans_and_specs_are_refused_cleanly(tmp_path):
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(SurgeryError, match="nested deeper"):
        Plan.from_json(deep)
    path = save_checkpoint(tmp_path / "ok.pt", torch.nn.Linear(2, 2))
    payload = torch.load(path, weights_only=True)
    payload["spec"] = '{"user": "x:Y", "kwargs": ' + "[" * 3000 + "]" * 3000 + "}"
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    crafted = tmp_path / "deep.pt"
    crafted.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="nested deeper"):
        load_checkpoint(crafted, base=torch.nn.Linear(2, 2))


def test_a_file_larger_than_memory_is_refused_before_reading(tmp_path):
    memory = physical_memory()
    if not memory:
        pytest.skip("this system does not say how much memory it has")
    huge = tmp_path / "huge.pt"
    with open(huge, "wb") as handle:  # sparse: takes no disk space
        handle.truncate(memory + 2**30)
    with pytest.raises(CheckpointError, match="more than this machine's"):
        load_checkpoint(huge)
    sparse_but_small = tmp_path / "zeros.pt"
    with open(sparse_but_small, "wb") as handle:
        handle.truncate(2**30)
    with pytest.raises(CheckpointError, match="not a readable torch file"):
        load_checkpoint(sparse_but_small)  # mapped, not read: fails at once


def test_an_idx_header_larger_than_memory_is_refused_before_reading(tmp_path):
    import struct

    from workbench.datasets.idx import read_idx
    from workbench.errors import DataError

    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">I", 0x00000803) + struct.pack(">III", 2**31 - 1, 2**15, 2**15))
    with pytest.raises(DataError, match="more than this machine can hold"):
        read_idx(path)
