"""Export: networks rebuilt smaller leave the workbench as .pt2, ONNX or a torch-only module + state_dict,
and load back in plain torch (a process that never imports the workbench) with the same outputs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from workbench.checkpoints import save_checkpoint
from workbench.cli import main
from workbench.errors import ExportError
from workbench.export import export_model
from workbench.graph import from_model
from workbench.select import get_selector
from workbench.surgery import apply, plan_from
from workbench.zoo import create_model, example_input


class SmallNet(nn.Module):
    """BatchNorm, grouped convolution, a residual add, a concatenation, and leaf layers with non-default
    constructor arguments (PReLU, MaxPool, BatchNorm without affine, Upsample, Dropout, Linear without bias)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16, eps=1e-3, momentum=0.05)
        self.act = nn.PReLU(16)
        self.group = nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.branch = nn.Conv2d(16, 8, 1)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.down = nn.Conv2d(24, 16, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(16, affine=False)
        self.up = nn.Upsample(scale_factor=2)
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.drop = nn.Dropout(0.25)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.stem(x)))
        x = x + torch.relu(self.bn1(self.group(x)))
        x = torch.cat([x, self.branch(x)], 1)
        x = self.up(self.norm(self.down(self.pool(x))))
        return self.fc(self.drop(self.flat(self.gap(x))))


class Loop(nn.Module):
    """A forward that torch.fx cannot trace (a Python loop over the batch size), but torch.export can."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.fc(x[i]) for i in range(x.shape[0])])


def _shrunk(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """``model`` rebuilt with half the units of every prunable group, with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.eval()
    plan = plan_from(from_model(model, x), get_selector("magnitude"), keep=0.5)
    return apply(model, plan, example_input=x)


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    lenet = create_model("lenet300")
    cnn_input = torch.randn(2, 3, 12, 12)
    return {
        "lenet300": (_shrunk(lenet, example_input(lenet, 2)), example_input(lenet, 2)),
        "cnn": (_shrunk(SmallNet(), cnn_input), cnn_input),
    }


def _expected(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


_PLAIN_TORCH = textwrap.dedent(
    """
    import importlib, json, sys, torch
    results = {}
    for name, (folder, pt2, x_file) in json.loads(sys.argv[1]).items():
        sys.path.insert(0, folder)
        module = importlib.import_module("module")
        x = torch.load(x_file, weights_only=True)
        (cls,) = [c for c in vars(module).values() if isinstance(c, type) and c.__module__ == "module"]
        model = cls()
        model.load_state_dict(torch.load(folder + "/state_dict.pt", weights_only=True))
        program = torch.export.load(pt2).module()
        with torch.no_grad():
            torch.save({"module": model(x), "pt2": program(x)}, x_file + ".out")
        results[name] = {n: repr(m) for n, m in model.named_modules() if not list(m.children())}
        sys.path.remove(folder)
        del sys.modules["module"]
    assert not [m for m in sys.modules if m.split(".")[0] == "workbench"]
    print(json.dumps(results))
    """
)


def test_module_and_pt2_load_in_plain_torch(models, tmp_path):
    cases = {}
    for name, (model, x) in models.items():
        folder = export_model(model, tmp_path / name, format="module", example_input=x)
        assert sorted(p.name for p in folder.iterdir()) == ["module.py", "state_dict.pt"]
        pt2 = export_model(model, tmp_path / f"{name}.pt2", example_input=x)
        torch.save(x, tmp_path / f"{name}-x.pt")
        cases[name] = (str(folder), str(pt2), str(tmp_path / f"{name}-x.pt"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", _PLAIN_TORCH, json.dumps(cases)], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    leaves = json.loads(run.stdout)
    for name, (model, x) in models.items():
        for output in torch.load(tmp_path / f"{name}-x.pt.out", weights_only=True).values():
            torch.testing.assert_close(output, _expected(model, x), rtol=1e-5, atol=1e-6)
        expected = {n: repr(m) for n, m in model.named_modules() if not list(m.children())}
        assert leaves[name] == expected  # every layer rebuilt with its own arguments


def test_generated_module_spells_out_non_default_arguments(models, tmp_path):
    model, x = models["cnn"]
    source = (export_model(model, tmp_path / "m", format="module", example_input=x) / "module.py").read_text()
    for text in ("groups=4", "bias=False", "eps=0.001", "momentum=0.05", "affine=False", "ceil_mode=True", "p=0.25"):
        assert text in source
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import torch"]
    assert "pickle" not in source and "weights_only=False" not in source


@pytest.mark.parametrize(
    ("layers", "shape"),
    [
        (
            [
                nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, bias=False),
                nn.GroupNorm(3, 6),
            ],
            (1, 4, 5, 5),
        ),
        ([nn.Conv1d(3, 4, 3, dilation=2, padding="same"), nn.BatchNorm1d(4, track_running_stats=False)], (2, 3, 9)),
        ([nn.ZeroPad2d((1, 0, 2, 1)), nn.Upsample(size=(7, 7), mode="bilinear", align_corners=True)], (2, 3, 5, 5)),
        ([nn.Unflatten(1, (2, 6)), nn.LayerNorm(6, elementwise_affine=False), nn.Linear(6, 3).half()], (2, 12)),
    ],
    ids=["transposed", "conv1d", "resize", "half"],
)
def test_module_export_rebuilds_torch_layers(layers, shape, tmp_path):
    model = nn.Sequential(*layers)
    source = (
        export_model(model, tmp_path / "m", format="module", example_input=torch.randn(shape)) / "module.py"
    ).read_text()
    assert all(f"torch.nn.{type(layer).__name__}(" in source for layer in layers)


def test_module_export_keeps_extra_tensors_and_dtype(tmp_path):
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect").double()
            self.scale = nn.Parameter(torch.rand(1, 4, 1, 1, dtype=torch.float64))
            self.register_buffer("shift", torch.rand(4, 1, 1, dtype=torch.float64), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.gelu(self.conv(x) * self.scale + self.shift)

    model, x = Scaled(), torch.randn(1, 2, 5, 5, dtype=torch.float64)
    folder = export_model(model, tmp_path / "m", format="module", example_input=x)
    state = torch.load(folder / "state_dict.pt", weights_only=True)
    assert {"conv.weight", "conv.bias", "scale", "shift"} == set(state) and state["scale"].dtype == torch.float64


def test_onnx_runs_in_onnxruntime(models, tmp_path):
    for package in ("onnx", "onnxscript", "onnxruntime"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install onnx onnxscript onnxruntime)")
    import onnxruntime

    for name, (model, x) in models.items():
        path = export_model(model, tmp_path / f"{name}.onnx", format="onnx", example_input=x)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(output), _expected(model, x), rtol=1e-4, atol=1e-5)


def test_onnx_without_its_packages_says_what_to_install(models, tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else find_spec(name))
    model, x = models["lenet300"]
    with pytest.raises(ExportError, match="pip install onnxscript"):
        export_model(model, tmp_path / "m.onnx", format="onnx", example_input=x)


def test_export_leaves_the_model_as_it_was(tmp_path):
    from torch.nn.utils import parametrize

    from workbench.sparse import prune

    model = prune(create_model("mlp", widths=[6, 5, 3]), rate=0.5)
    model.train()
    x = torch.randn(3, 6)
    folder = export_model(model, tmp_path / "m", format="module", example_input=x)
    assert model.training and parametrize.is_parametrized(model.layers[1])
    state = torch.load(folder / "state_dict.pt", weights_only=True)
    assert all("parametrizations" not in key for key in state)  # masks baked into plain weights
    assert (state["layers.1.weight"] == 0).float().mean() >= 0.4


def test_default_example_input_and_replacing_an_earlier_export(tmp_path):
    model = create_model("mlp", widths=[6, 5, 3])  # zoo models know their input_shape
    export_model(model, tmp_path / "m", format="module")
    export_model(model, tmp_path / "m", format="module")  # a folder of ours is replaced
    (tmp_path / "m.pt2").write_bytes(b"old")
    assert export_model(model, tmp_path / "m.pt2").stat().st_size > 3


def test_bad_inputs_are_clear_errors(models, tmp_path):
    model, x = models["lenet300"]
    with pytest.raises(ExportError, match="unknown export format 'onx'.*Did you mean 'onnx'"):
        export_model(model, tmp_path / "m", format="onx", example_input=x)
    with pytest.raises(ExportError, match="no `input_shape`.*example_input="):
        export_model(SmallNet(), tmp_path / "m.pt2")
    with pytest.raises(ExportError, match="torch.fx cannot trace Loop.*pt2"):
        export_model(Loop(), tmp_path / "loop", format="module", example_input=torch.randn(2, 4))
    assert not (tmp_path / "loop").exists()
    export_model(Loop(), tmp_path / "loop.pt2", example_input=torch.randn(2, 4))  # what the message suggests
    with pytest.raises(ExportError, match="not a regular file"):
        export_model(model, "/dev/null", example_input=x)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("")
    with pytest.raises(ExportError, match="other files \\(thesis.tex\\)"):
        export_model(model, tmp_path / "notes", format="module", example_input=x)
    with pytest.raises(ExportError, match="is a folder"):
        export_model(model, tmp_path / "notes", format="pt2", example_input=x)
    with pytest.raises(ExportError, match="fails on the example input of shape \\(2, 5\\)"):
        export_model(model, tmp_path / "m.pt2", example_input=torch.randn(2, 5))


def test_an_export_that_does_not_reproduce_the_model_is_refused(models, tmp_path, monkeypatch):
    import workbench.export as export

    module_files = export._module_files

    def corrupted(*args):
        source, state = module_files(*args)
        return source, {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}

    monkeypatch.setattr(export, "_module_files", corrupted)
    model, x = models["cnn"]
    with pytest.raises(ExportError, match="differs from the model's"):
        export_model(model, tmp_path / "m", format="module", example_input=x)
    assert os.listdir(tmp_path) == []  # nothing half-written is left


def test_cli_exports_a_checkpoint(tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "mlp.pt", create_model("mlp", widths=[6, 5, 3]))
    assert main(["export", str(checkpoint), "--format", "module", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["path"] == str(tmp_path / "mlp-module") and payload["verified"]
    assert (Path(payload["path"]) / "state_dict.pt").exists()
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "m.pt2"), "--batch-size", "4"]) == 0
    assert "written:" in capsys.readouterr().out
    assert torch.export.load(tmp_path / "m.pt2").module()(torch.randn(4, 6)).shape == (4, 3)
    assert main(["export", str(checkpoint), "--out", "/dev/null", "--quiet"]) == 2
    assert "not a regular file" in capsys.readouterr().err
