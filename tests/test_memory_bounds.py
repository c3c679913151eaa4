"""Selectors and unit views bound their memory: Gram-matrix input change, caps, refusal, peak RSS."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.linalg import solve
from torch import nn

from workbench.errors import GraphError
from workbench.graph import from_model
from workbench.select import get_selector
from workbench.select.submodular import InputChange, greedy_maximize
from workbench.unitview import UnitView, gram_similarity, similarity_matrix

ROOT = Path(__file__).resolve().parents[1]


class BruteForceInputChange:
    """The reference: forms Y = A W and projects A and Y column by column (memory: rows x d_out)."""

    def __init__(self, A: np.ndarray, W: np.ndarray, reg: float) -> None:
        self.A, self.n = A, A.shape[1]
        self.A_res, self.Y = A.copy(), A @ W
        self.Y_res = self.Y.copy()
        self.norm0 = (A * A).sum(axis=0)
        self.norms = self.norm0.copy()
        self.reg = reg * max(float(self.norm0.mean()), 1e-300)

    def gains(self, items: np.ndarray) -> np.ndarray:
        alive = self.norms[items] > 1e-10 * self.norm0[items]
        values = ((self.A_res[:, items].T @ self.Y_res) ** 2).sum(axis=1) / (self.norms[items] + self.reg)
        return np.where(alive, values, 0.0)

    def add(self, j: int) -> None:
        if self.norms[j] <= 1e-10 * self.norm0[j]:
            return
        q = self.A_res[:, j] / np.sqrt(self.norms[j])
        self.A_res -= np.outer(q, q @ self.A_res)
        self.Y_res -= np.outer(q, q @ self.Y_res)
        self.norms = (self.A_res * self.A_res).sum(axis=0)

    def value(self) -> float:
        return float((self.Y**2).sum() - (self.Y_res**2).sum())

    def refit(self, keep: np.ndarray) -> np.ndarray:
        A_s = self.A[:, keep]
        return solve(A_s.T @ A_s + self.reg * np.eye(keep.size), A_s.T @ self.Y, assume_a="pos")


@pytest.mark.parametrize("seed", range(4))
def test_input_change_from_the_gram_matrix_matches_the_brute_force_objective(seed):
    rng = np.random.default_rng(seed)
    A = np.abs(rng.normal(size=(200, 10)))
    A[:, 4] = 2.0 * A[:, 1] + A[:, 7]  # a unit in the span of two others: its gain must vanish
    W = rng.normal(size=(10, 30))
    reference, gram = BruteForceInputChange(A, W, 1e-8), InputChange(A.T @ A, W, 1e-8)
    expected_order, expected_gains = greedy_maximize(reference, 10, lazy=False)
    order, gains = greedy_maximize(gram, 10, lazy=False)
    np.testing.assert_array_equal(order[:9], expected_order[:9])
    np.testing.assert_allclose(gains, expected_gains, rtol=1e-7, atol=1e-9 * expected_gains.max())
    assert gains[-1] < 1e-6 * gains[0]  # the dependent unit adds nothing
    np.testing.assert_allclose(gram.value(), reference.value(), rtol=1e-10)
    keep = np.sort(expected_order[:6])
    np.testing.assert_allclose(gram.refit(keep), reference.refit(keep), rtol=1e-7, atol=1e-9)


def test_the_input_change_selector_keeps_what_the_brute_force_keeps():
    rng = np.random.default_rng(5)
    A, W = np.abs(rng.normal(size=(300, 16))), rng.normal(size=(16, 24))
    view = UnitView("g", features=A.T, activations=A, out_weights=W)
    selector = get_selector("submodular", budget=6, objective="input_change").fit(view)
    reference = BruteForceInputChange(A, W, 1e-8)
    order, _ = greedy_maximize(reference, 6, lazy=False)
    np.testing.assert_array_equal(selector.keep_, np.sort(order))
    np.testing.assert_allclose(selector.input_change_, (reference.Y**2).sum() - reference.value(), rtol=1e-8)
    np.testing.assert_allclose(selector.new_out_weights_, reference.refit(np.sort(order)), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("metric", ["cosine", "correlation", "rbf", "linear"])
def test_similarity_from_the_gram_matrix_equals_the_similarity_of_the_features(metric):
    x = np.random.default_rng(0).normal(size=(12, 400)) + 0.5
    x[3] = 0.0  # a dead unit
    got = gram_similarity(x @ x.T, metric, sums=x.sum(axis=1), count=x.shape[1])
    np.testing.assert_allclose(got, similarity_matrix(x, metric), rtol=1e-9, atol=1e-12)


def _conv_graph():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    return from_model(model.eval(), torch.zeros(2, 1, 12, 12))


def test_an_activation_view_states_its_caps_and_streams_its_kernel():
    graph, data = _conv_graph(), torch.rand(30, 1, 12, 12)
    view = graph.unit_view("0", source="activations", data=data, max_samples=20, max_positions=7, batch_size=8)
    assert view.activations.shape == (20 * 7, 8)
    assert view.meta["samples"] == 20 and view.meta["positions_per_sample"] == 7
    assert view.meta["positions_in_tensor"] == 100 and view.meta["max_positions"] == 7
    assert view.meta["memory_estimate"] == 8 * (140 * 8 + view.out_weights.size + view.in_weights.size + 6 * 64)
    np.testing.assert_allclose(view.kernel, similarity_matrix(view.features, "cosine"), rtol=1e-9, atol=1e-12)
    selection = get_selector("activation").fit(view).selection_
    assert selection.params["data"] == {"samples": 20, "positions_per_sample": 7, "max_samples": 20, "max_positions": 7}


def test_a_view_that_cannot_fit_is_refused_with_the_estimate_and_a_cap_that_fits():
    graph, data = _conv_graph(), torch.rand(500, 1, 12, 12)
    limit = 2_000_000
    with pytest.raises(
        GraphError, match=r"about \d\.\d MiB \(500 samples x 64 positions x 8 units\).*max_samples="
    ) as err:
        graph.unit_view("0", source="activations", data=data, max_positions=64, max_memory=limit)
    fits = int(str(err.value).split("max_samples=")[1].split()[0])
    view = graph.unit_view("0", source="activations", data=data, max_samples=fits, max_positions=64, max_memory=limit)
    assert view.meta["memory_estimate"] <= limit < view.meta["memory_estimate"] + 8 * 64 * 8 + 1
    with pytest.raises(GraphError, match="max_memory must be"):
        graph.unit_view("0", source="activations", data=data, max_memory=0)


PEAK = textwrap.dedent(
    """
    import json, resource, sys, warnings
    resource.setrlimit(resource.RLIMIT_AS, (12 * 2**30, 12 * 2**30))  # the old code dies here, not the machine
    warnings.simplefilter("ignore")
    import torch
    from workbench.graph import from_model
    from workbench.select import get_selector, list_selectors
    from workbench.zoo import create_model

    selectors = [get_selector(s, budget=0.5) for s in list_selectors()]
    selectors += [get_selector("submodular", budget=0.5, objective=o) for o in ("logdet", "input_change")]
    rows = {}
    for name, kwargs, shape in json.loads(sys.argv[1]):
        torch.manual_seed(0)
        graph = from_model(create_model(name, **kwargs).eval(), torch.zeros(2, *shape))
        data = torch.rand(8000, *shape)
        for group in graph.prunable_groups():
            view = graph.unit_view(group.name, source="activations", data=data, batch_size=1024)
            rows[name] = max(rows.get(name, 0), view.activations.shape[0])
            for selector in selectors:
                selector.fit(view)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak": peak, "rows": rows, "selectors": len(selectors)}))
    """
)


#: LeNet-5, and ResNet-8 on 8 x 8 inputs: the smallest ResNet with ResNet-20's group shapes (16, 32 and
#: 64 filters, 3 x 3 consumers), where the old input change needed ~7 GB; ResNet-20 takes twice as long.
MODELS = [("lenet5", {}, [1, 28, 28]), ("resnet", {"depth": 8, "input_size": 8}, [3, 8, 8])]


@pytest.mark.slow
def test_selecting_filters_on_8000_samples_with_every_selector_stays_under_2_gb():
    result = subprocess.run(
        [sys.executable, "-c", PEAK, json.dumps(MODELS)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert min(report["rows"].values()) >= 2048 * 4  # the default caps were reached: 2048 samples, several positions
    assert report["peak"] < 2 * 2**30, f"peak RSS {report['peak'] / 2**30:.2f} GiB"
