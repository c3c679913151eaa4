"""Bad data and numerics get a clear error or warning: IDX labels and image sizes, indefinite k-DPP kernels,
NaN model outputs and features that are not numbers."""

from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.datasets import load_dataset
from workbench.errors import DataError, NumericsWarning, SelectionError
from workbench.select import KDPP, get_selector, k_dpp_marginals, sample_k_dpp, sample_k_dpp_dppy
from workbench.train import evaluate
from workbench.unitview import UnitView

# ------------------------------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(folder: Path, train_labels=None, test_size=(5, 4), gz: bool = False) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (100, 5, 4), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(100, dtype=np.uint8) % 10 if train_labels is None else train_labels,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, *test_size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(20, dtype=np.uint8) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array.astype(np.uint8))
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)


def test_idx_a_stray_label_does_not_make_a_201_class_model(tmp_path):
    labels = np.arange(100, dtype=np.uint8) % 10
    labels[17] = 200
    write_idx(tmp_path, train_labels=labels)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: label 200 would make a 201-class model, but 190 "):
        load_dataset("idx", root=tmp_path, split="train")
    with pytest.raises(DataError, match="Pass num_classes=N"):
        load_dataset("idx", root=tmp_path, split="test")
    with pytest.raises(DataError, match=r"labels range over 0\.\.200, expected 0\.\.9"):
        load_dataset("idx", root=tmp_path, split="train", num_classes=10)
    assert load_dataset("idx", root=tmp_path, split="train", num_classes=201).num_classes == 201  # declared


def test_idx_classes_without_training_samples_need_a_declared_count(tmp_path):
    write_idx(tmp_path, train_labels=np.arange(100, dtype=np.uint8) % 10 + 1)  # labels 1..10, no class 0
    with pytest.raises(DataError, match=r"label 10 would make a 11-class model, but 1 of those classes .*\(0\)"):
        load_dataset("idx", root=tmp_path, split="train")
    assert load_dataset("idx", root=tmp_path, split="train", num_classes=11).num_classes == 11
    write_idx(tmp_path)
    assert load_dataset("idx", root=tmp_path, split="train").num_classes == 10


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_test_images_of_another_size_are_found_at_load_time(tmp_path, gz, split):
    write_idx(tmp_path, test_size=(6, 4), gz=gz)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte(\.gz)?: images of 6 x 4 pixels, but train-images"):
        load_dataset("idx", root=tmp_path, split=split)


# ---------------------------------------------------------------------------------------------- k-DPP


def spectrum_kernel(values) -> np.ndarray:
    vectors, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((len(values), len(values))))
    kernel = (vectors * np.asarray(values, dtype=float)) @ vectors.T
    return (kernel + kernel.T) / 2


@pytest.mark.parametrize(
    "values, match",
    [
        ([5.0, 3.0, 2.0, 1.0, -2.0, 0.5], r"1 of its 6 eigenvalues are negative.*smallest -2 against a largest of 5"),
        ([-1.0, -2.0, -3.0, -0.5, -1.5, -4.0], r"6 of its 6 eigenvalues are negative.*largest of -0.5"),
    ],
)
def test_sample_k_dpp_refuses_an_indefinite_or_negative_kernel(values, match):
    kernel = spectrum_kernel(values)
    for sampler in (sample_k_dpp, sample_k_dpp_dppy, k_dpp_marginals):
        with pytest.raises(SelectionError, match=rf"k-DPP kernel L is not positive semi-definite: {match}"):
            sampler(kernel, 2)
    with pytest.raises(SelectionError, match="such as a cosine, linear or rbf similarity"):
        KDPP(kernel)


def test_sample_k_dpp_clips_negative_rounding():
    values = np.array([5.0, 3.0, 2.0, 1.0, 0.0, -1e-13])
    kernel = spectrum_kernel(values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samples = sample_k_dpp(kernel, 3, random_state=0, n_samples=50)
        marginals = k_dpp_marginals(kernel, 3)
        assert sample_k_dpp_dppy(kernel, 3, random_state=0).shape == (3,)
    assert samples.shape == (50, 3) and np.isclose(marginals.sum(), 3.0)
    with pytest.warns(UserWarning, match="small negative eigenvalues .* clipped to 0"):
        sample_k_dpp(spectrum_kernel([5.0, 3.0, 2.0, 1.0, 0.5, -1e-5]), 3, random_state=0)


# ------------------------------------------------------------------------------------------- evaluate


class Poisoned(nn.Module):
    """A classifier whose outputs are NaN for the samples whose last input is 99 (as a diverged layer would)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x[:, :4])
        return torch.where(x[:, 4:] == 99, torch.full_like(out, float("nan")), out)


def test_evaluate_reports_nan_and_warns_for_nan_outputs():
    torch.manual_seed(0)
    inputs, targets = torch.randn(40, 5), torch.randint(0, 3, (40,))
    model = Poisoned()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = evaluate(model, (inputs, targets), batch_size=16)
    with torch.no_grad():  # the known answer, computed on all 40 samples at once
        logits = model(inputs)
    assert clean["accuracy"] == int((logits.argmax(1) == targets).sum()) / 40
    assert clean["loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, targets)), rel=1e-5)
    inputs[[3, 37], 4] = 99
    with pytest.warns(NumericsWarning, match="NaN or infinite for 2 of 40 samples"):
        result = evaluate(Poisoned(), (inputs, targets), batch_size=16)
    assert np.isnan(result["accuracy"]) and np.isnan(result["loss"]) and result["n"] == 40


# ---------------------------------------------------------------------------------------- features


@pytest.mark.parametrize("selector", ["random", "dpp", "submodular", "spectral"])
def test_string_features_are_refused_naming_the_dtype(selector):
    strings = np.array([[f"u{i}", "x"] for i in range(8)])
    with pytest.raises(SelectionError, match=r"features has dtype <U2, but selectors need real numbers"):
        get_selector(selector, budget=3).fit(strings)
    with pytest.raises(SelectionError, match=r"group 'g': features has dtype <U2"):
        get_selector(selector, budget=3).fit(UnitView("g", strings))
    numbers = np.random.default_rng(0).standard_normal((8, 2))
    with pytest.raises(SelectionError, match=r"group 'g': bias has dtype object"):
        UnitView("g", numbers, bias=np.array([None, "a", 1, 2, 3, 4, 5, 6], dtype=object))
    assert get_selector(selector, budget=3, random_state=0).fit(numbers.tolist()).keep_.size == 3


def test_k_dpp_refuses_an_asymmetric_kernel():
    L = np.array([[2.0, 0.5, 0.0], [-0.5, 2.0, 0.1], [0.0, 0.1, 1.0]])
    for sampler in (lambda: sample_k_dpp(L, 2, random_state=0), lambda: k_dpp_marginals(L, 2), lambda: KDPP(L)):
        with pytest.raises(SelectionError, match=r"not symmetric \(largest \|L - L.T\| = 1\)"):
            sampler()
    sample_k_dpp((L + L.T) / 2, 2, random_state=0)  # symmetrized, it samples
