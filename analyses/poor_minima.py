"""Deep Learning without Poor Local Minima (Kawaguchi, NIPS 2016): a probe.

Kawaguchi proves that the squared loss of a deep *linear* network has no poor local minima: every local
minimum is global, so gradient descent from any random initialization that converges reaches the
least-squares optimum of the end-to-end linear map, ``min_W |X W - Y|^2``, whose value has a closed form.
A network of the same shape with ReLU units carries no such guarantee.

The probe fits both on the same regression data (inputs ``X``, targets ``Y`` from a random ReLU teacher
plus noise) from ``--inits`` random initializations each, by full-batch Adam for ``--steps`` steps, and
prints the spread of the final training losses: for the linear networks, next to the closed-form optimum
(their gap to it should be about zero for every start); for the ReLU networks, their spread (the starts end
in different places). At the first linear and ReLU solutions it also prints the largest Hessian eigenvalues
(:func:`workbench.train.landscape.hessian_eigenvalues`), the sharpness of where the runs ended.

Usage::

    python analyses/poor_minima.py                # 20 starts each, about a minute on one core
    python analyses/poor_minima.py --inits 5 --steps 1500
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from workbench.train.landscape import hessian_eigenvalues


@dataclass
class Problem:
    """Regression data: inputs (n, d_in) and targets (n, d_out), in float64."""

    inputs: torch.Tensor
    targets: torch.Tensor


def make_problem(n: int = 256, d_in: int = 10, d_out: int = 5, noise: float = 0.1, seed: int = 0) -> Problem:
    """Targets of a random one-hidden-layer ReLU teacher (width 32) plus Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    w1 = torch.randn(d_in, 32, generator=g, dtype=torch.float64) / d_in**0.5
    w2 = torch.randn(32, d_out, generator=g, dtype=torch.float64) / 32**0.5
    y = torch.relu(x @ w1) @ w2 + noise * torch.randn(n, d_out, generator=g, dtype=torch.float64)
    return Problem(x, y)


def least_squares_loss(problem: Problem) -> float:
    """The global optimum of any deep linear network (without biases): mean squared error of the
    least-squares linear map."""
    solution = torch.linalg.lstsq(problem.inputs, problem.targets).solution
    return float(nn.functional.mse_loss(problem.inputs @ solution, problem.targets))


def network(d_in: int, d_out: int, width: int, depth: int, linear: bool, seed: int) -> nn.Sequential:
    """``depth`` bias-free Linear layers of ``width`` units, with ReLU between them unless ``linear``."""
    torch.manual_seed(seed)
    sizes = [d_in] + [width] * (depth - 1) + [d_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b, bias=False))
        if not linear and i < depth - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double()


def train(model: nn.Module, problem: Problem, steps: int, lr: float) -> float:
    """Full-batch Adam on the mean squared error; returns the final loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(problem.inputs), problem.targets)
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(problem.inputs), problem.targets))


def spread(values: np.ndarray) -> str:
    """min / median / max / standard deviation of ``values``."""
    return (
        f"min {values.min():.6f}  median {np.median(values):.6f}  max {values.max():.6f}  "
        f"std {values.std(ddof=1) if len(values) > 1 else 0.0:.2e}"
    )


def main(argv: list[str] | None = None) -> dict[str, np.ndarray]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inits", type=int, default=20, help="random initializations per network kind")
    parser.add_argument("--steps", type=int, default=2000, help="full-batch Adam steps per run")
    parser.add_argument("--depth", type=int, default=3, help="number of weight layers")
    parser.add_argument("--width", type=int, default=16, help="hidden width")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the data")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    problem = make_problem(seed=args.seed)
    d_in, d_out = problem.inputs.shape[1], problem.targets.shape[1]
    optimum = least_squares_loss(problem)
    print(
        f"data: n={len(problem.inputs)}, {d_in} -> {d_out}, targets from a random ReLU teacher plus noise; "
        f"networks: {args.depth} bias-free layers of width {args.width}; {args.inits} starts each, "
        f"{args.steps} full-batch Adam steps"
    )
    print(f"closed-form least-squares optimum (any deep linear network): {optimum:.6f}")
    finals: dict[str, np.ndarray] = {}
    first: dict[str, nn.Module] = {}
    for kind in ("linear", "relu"):
        losses = []
        for start in range(args.inits):
            model = network(d_in, d_out, args.width, args.depth, kind == "linear", seed=1000 + start)
            losses.append(train(model, problem, args.steps, args.lr))
            first.setdefault(kind, model)
        finals[kind] = np.asarray(losses)
    gaps = finals["linear"] - optimum
    print(f"\nfinal training loss over {args.inits} starts")
    print(f"  linear: {spread(finals['linear'])}")
    print(
        f"          gap to the closed form: largest {np.abs(gaps).max():.2e} (relative {np.abs(gaps).max() / optimum:.1e})"
    )
    print(f"  relu:   {spread(finals['relu'])}")
    relative = (finals["relu"].max() - finals["relu"].min()) / np.median(finals["relu"])
    print(f"  relu (max - min) / median: {relative:.1%}; linear: {np.ptp(finals['linear']) / optimum:.1e}")
    print("\nlargest Hessian eigenvalues at the first start's solution (power iteration, 3 of them)")
    data = (problem.inputs, problem.targets)
    for kind, model in first.items():
        values = hessian_eigenvalues(model, data, k=3, iters=300, tol=1e-8, loss_fn=nn.functional.mse_loss).values
        print(f"  {kind}: {', '.join(f'{v:.4f}' for v in values)}")
    verdict = (
        "every linear start reached the global optimum"
        if np.abs(gaps).max() <= 1e-4 * optimum
        else "some linear starts stopped short of the optimum: train longer (--steps)"
    )
    print(f"\n{verdict}; the ReLU starts spread over {finals['relu'].max() - finals['relu'].min():.4f} in loss.")
    return finals


if __name__ == "__main__":
    main()
