"""Checkpoint contents are not trusted blindly: the format version, storage records, replayed edit records and
non-finite weights are checked at load; a model is saved only if its checkpoint can be loaded back as it is
(dtype kept, weights with values, a spec that rebuilds its parameters)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import torch
from torch import nn

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.edits import edit_problem, record_edit, user_spec
from workbench.errors import CheckpointError, NumericsWarning
from workbench.surgery.apply import FUSE_MODES
from workbench.zoo import create_model


def _mlp(widths=(64, 8, 10)) -> nn.Module:
    return create_model("mlp", random_state=0, widths=list(widths))


def _crafted(tmp_path, change, model=None, name="crafted.pt"):
    """A checkpoint of ``model`` (default the MLP 64-8-10) whose payload ``change`` edited in place."""
    path = save_checkpoint(tmp_path / "saved.pt", _mlp() if model is None else model)
    payload = torch.load(path, weights_only=True)
    change(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    crafted = tmp_path / name
    crafted.write_bytes(buffer.getvalue())
    return crafted


def _with_edits(*edits):
    def change(payload):
        spec = json.loads(payload["spec"])
        spec["edits"] = list(edits)
        payload["spec"] = json.dumps(spec)

    return change


def _plan_edit(**fields):
    selection = {"group": "layers.1", "n_units": 8, "keep": list(range(8)), "assign": list(range(8))}
    selection |= {"scores": [1.0] * 8, "method": "magnitude", "params": {}, "info": {}}
    plan = {"format": "workbench-plan", "meta": {}, "selections": {"layers.1": selection}}
    return {"op": "plan", "fuse": "drop", "input": {"dtype": "float32", "shape": [64]}, "plan": plan, **fields}


# ------------------------------------------------------------------------------------------------- version


@pytest.mark.parametrize("version", [0, -1, True, 2.0, "2", None])
def test_a_version_this_workbench_does_not_read_is_refused_naming_those_it_reads(tmp_path, version):
    path = _crafted(tmp_path, lambda payload: payload.update(version=version))
    with pytest.raises(CheckpointError, match="reads versions 1 and 2") as caught:
        load_checkpoint(path)
    assert "damaged or edited" in str(caught.value)


def test_a_newer_version_asks_for_an_upgrade_and_version_1_still_loads(tmp_path):
    with pytest.raises(CheckpointError, match="Upgrade the workbench"):
        load_checkpoint(_crafted(tmp_path, lambda payload: payload.update(version=3)))
    model, _ = load_checkpoint(_crafted(tmp_path, lambda payload: payload.update(version=1), name="v1.pt"))
    assert torch.equal(model.layers[1].weight, _mlp().layers[1].weight)


# ------------------------------------------------------------------------------------------ what is read


def test_non_finite_weights_load_with_a_warning_naming_the_tensors_and_counts(tmp_path):
    def change(payload):
        weight = payload["state_dict"]["layers.1.weight"].clone()
        weight[0, :3] = float("nan")
        weight[1, 0] = float("inf")
        payload["state_dict"]["layers.1.weight"] = weight

    with pytest.warns(NumericsWarning) as caught:
        model, _ = load_checkpoint(_crafted(tmp_path, change))
    message = " ".join(str(w.message) for w in caught if issubclass(w.category, NumericsWarning))
    assert "layers.1.weight (4 of 512)" in message and "layers.3" not in message
    assert int(torch.isnan(model.layers[1].weight).sum()) == 3  # loaded as it is, for inspection


def test_finite_weights_load_without_a_warning(tmp_path, recwarn):
    load_checkpoint(save_checkpoint(tmp_path / "m.pt", _mlp()))
    assert not [w for w in recwarn if issubclass(w.category, NumericsWarning)]


def test_a_checkpoint_in_the_legacy_torch_format_loads(tmp_path):
    model = _mlp()
    payload = torch.load(save_checkpoint(tmp_path / "m.pt", model), weights_only=True)
    legacy = tmp_path / "legacy.pt"
    torch.save(payload, legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:4] != b"PK\x03\x04"
    loaded, _ = load_checkpoint(legacy)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def _rewritten(source, target, edit):
    """``source`` (a torch zip archive) copied to ``target`` with ``edit(name, data, info)`` -> (data, info)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data, info = edit(info.filename, old.read(info.filename), info)
            new.writestr(info, data)
    return target


def test_a_storage_record_cut_short_is_refused_naming_the_weights(tmp_path):
    source = save_checkpoint(tmp_path / "m.pt", _mlp())
    with zipfile.ZipFile(source) as archive:  # the record of layers.1.weight is the largest one
        largest = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)

    def cut(name, data, info):
        return (data[: len(data) // 2] if name == largest.filename else data), info

    with pytest.raises(CheckpointError, match="cut short") as caught:
        load_checkpoint(_rewritten(source, tmp_path / "torn.pt", cut))
    assert "'layers.1.weight'" in str(caught.value) and "1024 bytes where 2048 are needed" in str(caught.value)


def test_a_compressed_storage_record_is_refused(tmp_path):
    source = save_checkpoint(tmp_path / "m.pt", _mlp())

    def deflate(name, data, info):
        if "/data/" in name:
            info.compress_type = zipfile.ZIP_DEFLATED
        return data, info

    with pytest.raises(CheckpointError, match="compressed"):
        load_checkpoint(_rewritten(source, tmp_path / "deflated.pt", deflate))


# ---------------------------------------------------------------------------------------- replayed edits


def test_edit_records_are_checked_by_one_validator():
    assert edit_problem(_plan_edit()) is None
    assert "fuse 'melt'" in edit_problem(_plan_edit(fuse="melt")) and "'lsq'" in edit_problem(_plan_edit(fuse="melt"))
    assert "op 'frobnicate'" in edit_problem({"op": "frobnicate"})
    assert "not an edit record" in edit_problem(["plan"])
    assert edit_problem(_plan_edit(fuse=["drop"])) is not None  # a value of another type is not a fuse mode
    assert all(edit_problem(_plan_edit(fuse=fuse)) is None for fuse in FUSE_MODES)
    with pytest.raises(ValueError, match="fuse 'melt'"):  # what is recorded is what a load accepts
        record_edit(nn.Linear(2, 2), "plan", fuse="melt", plan={})


def test_a_plan_edit_with_an_unknown_fuse_mode_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="edit number 0 of the history has fuse 'melt'") as caught:
        load_checkpoint(_crafted(tmp_path, _with_edits(_plan_edit(fuse="melt"))))
    assert "'drop'" in str(caught.value)


def test_a_plan_edit_input_the_architecture_does_not_take_is_refused_before_allocating(tmp_path, monkeypatch):
    allocated = []
    real_zeros = torch.zeros

    def zeros(*args, **kwargs):  # the example input must not be allocated
        allocated.append(args)
        return real_zeros(*args, **kwargs)

    monkeypatch.setattr(torch, "zeros", zeros)
    edit = _plan_edit(input={"dtype": "float32", "shape": [10**9]})
    with pytest.raises(CheckpointError, match=r"input of shape \[1000000000\] \(float32\), which the architecture"):
        load_checkpoint(_crafted(tmp_path, _with_edits(edit)))
    assert not any(10**9 in args for args in allocated)


def test_a_plan_edit_input_too_large_to_trace_is_refused_with_the_memory_it_needs(tmp_path):
    def net():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))

    edit = {**_plan_edit(), "input": {"dtype": "float32", "shape": [3, 10**6, 10**6]}}
    path = _crafted(tmp_path, _with_edits(edit), model=net())
    with pytest.raises(CheckpointError, match="GB available"):
        load_checkpoint(path, base=net)


@pytest.mark.parametrize("shape", [[-1], [64.0], [True], "64", [0]])
def test_a_plan_edit_input_shape_is_a_list_of_positive_whole_numbers(tmp_path, shape):
    path = _crafted(tmp_path, _with_edits(_plan_edit(input={"dtype": "float32", "shape": shape})))
    with pytest.raises(CheckpointError, match="a shape is a list of positive whole numbers"):
        load_checkpoint(path)


def test_a_recorded_plan_still_replays(tmp_path):
    from workbench.compression import compress

    model = compress(_mlp((64, 16, 10)), keep=0.5, latency=False).model
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "c.pt", model))
    x = torch.randn(3, 64)
    assert loaded.layers[1].out_features == 8 and torch.equal(loaded(x), model.eval()(x))


# ---------------------------------------------------------------------------------------------- saving


def test_a_model_on_the_meta_device_is_refused_and_nothing_is_written(tmp_path):
    with torch.device("meta"):
        model = _mlp()
    with pytest.raises(CheckpointError, match="meta device.*layers.1.weight"):
        save_checkpoint(tmp_path / "meta.pt", model)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_model_comes_back_in_the_dtype_it_was_saved_in(tmp_path, dtype):
    model = _mlp().to(dtype)
    path = save_checkpoint(tmp_path / "m.pt", model)
    assert json.loads(torch.load(path, weights_only=True)["spec"])["dtype"] == str(dtype).removeprefix("torch.")
    loaded, _ = load_checkpoint(path)
    assert {v.dtype for v in loaded.state_dict().values()} == {dtype}
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert "dtype" not in loaded.workbench_spec  # a later save records the dtype the model has then
    again, _ = load_checkpoint(save_checkpoint(tmp_path / "again.pt", loaded.float()))
    assert next(again.parameters()).dtype == torch.float32


def test_a_pruned_float16_model_keeps_its_dtype_and_masks(tmp_path):
    from workbench.sparse import prune

    model = prune(_mlp(), rate=0.5).half()
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    x = torch.randn(2, 64, dtype=torch.float16)
    assert next(loaded.parameters()).dtype == torch.float16
    assert torch.equal(loaded.eval()(x), model.eval()(x))


def test_mixed_floating_dtypes_are_said_and_a_spec_naming_another_dtype_is_refused(tmp_path):
    model = _mlp()
    model.layers[3].half()
    with pytest.warns(UserWarning, match="float16, float32"):
        save_checkpoint(tmp_path / "mixed.pt", model)

    def int_dtype(payload):
        payload["spec"] = json.dumps({**json.loads(payload["spec"]), "dtype": "int8"})

    with pytest.raises(CheckpointError, match="dtype is one of float16"):
        load_checkpoint(_crafted(tmp_path, int_dtype))


def test_a_zoo_model_whose_layers_were_replaced_is_refused_naming_the_user_spec_route(tmp_path):
    model = _mlp()
    model.layers[1] = nn.Linear(64, 4)
    model.layers[3] = nn.Linear(4, 10)
    with pytest.raises(CheckpointError) as caught:
        save_checkpoint(tmp_path / "hand.pt", model)
    message = str(caught.value)
    assert "layers.1.weight: the model (4, 64) vs the spec (8, 64)" in message
    assert "user_spec(model)" in message and "base=" in message
    assert list(tmp_path.iterdir()) == []
    path = save_checkpoint(tmp_path / "hand.pt", model, spec=user_spec(model))  # the route the message names

    def edited():
        net = _mlp()
        net.layers[1], net.layers[3] = nn.Linear(64, 4), nn.Linear(4, 10)
        return net

    loaded, _ = load_checkpoint(path, base=edited)
    x = torch.randn(2, 64)
    assert torch.equal(loaded(x), model.eval()(x))


def test_a_spec_given_to_save_that_does_not_rebuild_the_weights_is_warned_about_and_not_changed(tmp_path):
    spec = {"name": "mlp", "kwargs": {"widths": [64, 16, 10]}}
    with pytest.warns(UserWarning, match="does not rebuild.*layers.1.weight: the model \\(8, 64\\) vs the spec"):
        save_checkpoint(tmp_path / "m.pt", _mlp(), spec=spec)
    assert spec == {"name": "mlp", "kwargs": {"widths": [64, 16, 10]}}
