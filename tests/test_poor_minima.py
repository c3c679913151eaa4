"""The poor-minima probe (analyses/poor_minima.py): deep linear starts all reach the closed-form optimum."""

from __future__ import annotations

import numpy as np
from analysis_scripts import load_analysis


def _load():
    return load_analysis("poor_minima")


def test_linear_starts_reach_the_least_squares_optimum_and_relu_starts_spread(capsys):
    probe = _load()
    finals = probe.main(["--inits", "3", "--steps", "600"])
    optimum = probe.least_squares_loss(probe.make_problem())
    assert np.abs(finals["linear"] - optimum).max() < 1e-6 * optimum
    assert np.ptp(finals["relu"]) > 100 * np.ptp(finals["linear"])
    out = capsys.readouterr().out
    assert "closed-form least-squares optimum" in out and "Hessian" in out
