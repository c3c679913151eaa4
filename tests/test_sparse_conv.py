"""Sparse CNNs (Liu et al. 2015): exact when nothing is dropped, sparse where thresholded, counted, restored."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.checkpoints import load_checkpoint, save_checkpoint
from workbench.errors import CompressionError, ConfigError
from workbench.metrics import count_macs, count_sparse_macs, layer_macs, storage_report
from workbench.pipeline import check_steps, list_transforms, run_pipeline
from workbench.surgery import SparseDecomposedConv, sparse_decompose
from workbench.surgery.sparse_conv import decompose_conv
from workbench.train import fit
from workbench.zoo import create_model, example_input


def out_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_decomposition_without_sparsification_is_exact(padding_mode):
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, 3, stride=2, padding=1, padding_mode=padding_mode)
    x = torch.randn(2, 5, 9, 9)
    new = decompose_conv(conv)
    assert new.ranks == [5, 7]  # q = min(n, kh kw) = 7
    assert out_diff(new, conv, x) < 1e-5 * float(conv(x).detach().abs().max())


def test_truncated_basis_keeps_the_leading_directions():
    torch.manual_seed(1)
    conv = nn.Conv2d(6, 8, 3, padding=1)
    x = torch.randn(4, 6, 8, 8)
    errors = [out_diff(decompose_conv(conv, channels=r), conv, x) for r in (6, 4, 2)]
    assert errors[0] < 1e-5 < errors[1] < errors[2]
    assert decompose_conv(conv, channels=0.5, kernels=3).ranks == [3, 3]


def test_model_transform_is_exact_and_records_its_edit():
    model = create_model("lenet5", input_size=28)
    x = example_input(model, batch_size=3)
    dec = sparse_decompose(model)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert all(isinstance(dec.get_submodule(n), SparseDecomposedConv) for n in convs)
    assert out_diff(dec, model, x) < 1e-4
    assert dec.workbench_spec["edits"][-1]["op"] == "sparse-decompose"
    assert not hasattr(model.get_submodule(convs[0]), "basis")  # the input is left alone


def test_thresholding_makes_the_mixing_sparse_and_keeps_it_sparse_in_training():
    model = create_model("lenet5", input_size=28)
    x = example_input(model, batch_size=2)
    dec = sparse_decompose(model, density=0.25)
    mixes = [m.mix for m in dec.modules() if isinstance(m, SparseDecomposedConv)]
    for mix in mixes:
        assert int((mix.weight != 0).sum()) == round(0.25 * mix.weight.numel())
    inputs = torch.randn(32, *x.shape[1:])
    fit(dec, (inputs, torch.randint(0, 10, (32,))), epochs=1, lr=0.1, quiet=True)
    for mix in mixes:
        assert int((mix.weight != 0).sum()) == round(0.25 * mix.weight.numel())
    by_threshold = sparse_decompose(model, threshold=0.05)
    kept = [float((m.mix.weight != 0).float().mean()) for m in by_threshold.modules() if hasattr(m, "mix")]
    assert all(0.0 < k < 1.0 for k in kept)


def test_sparse_macs_count_nonzero_weights_only():
    layer = nn.Linear(8, 4, bias=False)
    with torch.no_grad():
        layer.weight.view(-1)[:10] = 0.0
    x = torch.randn(3, 8)
    assert count_macs(layer, x) == 3 * 32
    assert count_sparse_macs(layer, x) == 3 * 22
    conv = nn.Conv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        conv.weight[0] = 0.0  # one of three filters gone: a third of the multiply-adds
    (row,) = layer_macs(conv, torch.randn(1, 2, 5, 5))
    assert row.dense == 25 * 54 and row.sparse == 25 * 36


def test_decomposed_costs_follow_the_papers_formula():
    model = create_model("lenet5", input_size=28)
    x = example_input(model, batch_size=1)
    dense = sparse_decompose(model)
    sparse = sparse_decompose(model, density=0.1)
    saved = sum(
        row.dense - row.sparse for row in layer_macs(sparse, x) if row.name.endswith(".mix") or row.name == "mix"
    )
    assert saved > 0
    assert count_sparse_macs(sparse, x) == count_macs(sparse, x) - saved
    assert count_sparse_macs(dense, x) == count_macs(dense, x)  # nothing zero, nothing saved
    report = {row.name: row for row in storage_report(sparse).layers}
    mixes = [name for name in report if name.endswith("mix")]
    assert mixes and all(report[name].scheme == "csr" for name in mixes)
    assert storage_report(sparse).stored_bits < storage_report(dense).stored_bits


def test_checkpoint_restores_the_decomposed_sparse_model(tmp_path):
    model = create_model("lenet5", input_size=28)
    x = example_input(model, batch_size=2)
    dec = sparse_decompose(model, channels=0.5, density=0.3)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "sparse.pt", dec))
    dec.eval()
    assert out_diff(loaded, dec, x) == 0.0
    mix = next(m.mix for m in loaded.modules() if isinstance(m, SparseDecomposedConv))
    assert hasattr(mix, "parametrizations")  # the mask came back: fine-tuning keeps the zeros


def test_pipeline_step():
    assert "sparse-decompose" in list_transforms()
    check_steps([{"do": "sparse-decompose", "density": 0.5, "channels": 0.5}])
    with pytest.raises(ConfigError, match="unknown parameter"):
        check_steps([{"do": "sparse-decompose", "sparsity": 0.5}])
    model = create_model("lenet5", input_size=28)
    out = run_pipeline(model, [{"do": "sparse-decompose", "density": 0.5}])
    assert any(isinstance(m, SparseDecomposedConv) for m in out.modules())


def test_bad_inputs_are_named():
    with pytest.raises(CompressionError, match="no ungrouped Conv2d"):
        sparse_decompose(create_model("mlp", widths=[8, 4, 2]))
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(CompressionError, match="groups=2"):
        sparse_decompose(model, layers=["0"])
    with pytest.raises(CompressionError, match="not in the model"):
        sparse_decompose(model, layers=["1"])
    conv = nn.Conv2d(4, 4, 3)
    with pytest.raises(ConfigError, match="not both"):
        decompose_conv(conv, density=0.5, threshold=0.1)
    with pytest.raises(ConfigError, match="channels"):
        decompose_conv(conv, channels=0)
    with pytest.raises(ConfigError, match="density"):
        decompose_conv(conv, density=1.5)
