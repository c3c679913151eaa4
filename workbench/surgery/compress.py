"""One call from a trained model to a smaller one: graph, selection, rebuild, optional fine-tuning, profile."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass
class CompressionResult:
    """The rebuilt model with its plan, the before / after figures and notes (groups left out)."""

    model: nn.Module
    plan: Any
    before: dict[str, Any]
    after: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _figures(model: nn.Module, example: Any, test: Any, latency: bool) -> dict[str, Any]:
    from workbench.metrics import profile
    from workbench.train import evaluate

    row = profile(model, example, latency=latency).as_dict()
    if test is not None:
        scores = evaluate(model, test)
        row.update({key: value for key, value in scores.items() if key in ("accuracy", "miou")})
    return row


def compress(
    model: nn.Module,
    *,
    method: str = "magnitude",
    keep: float = 0.5,
    fuse: str = "drop",
    train: Any = None,
    test: Any = None,
    finetune: int = 0,
    source: str = "weights",
    selector_params: dict[str, Any] | None = None,
    latency: bool = True,
    random_state: int = 0,
    quiet: bool = True,
) -> CompressionResult:
    """Select units with selector ``method`` in every group surgery can rebuild, rebuild, fine-tune, profile.

    Parameters
    ----------
    model
        A trained network (not modified).
    method, selector_params
        Selector name and its parameters (``workbench.select.get_selector``).
    keep
        Fraction of each group's units kept.
    fuse
        ``"drop"``, ``"merge"`` or ``"lsq"`` (``lsq`` fits on ``train``).
    train, test
        Data sets: ``train`` for activations, lsq and fine-tuning; ``test`` for the accuracy columns.
    finetune
        Epochs of fine-tuning after the rebuild (0: none).
    """
    import warnings

    from workbench.graph import from_model
    from workbench.select import get_selector
    from workbench.surgery.apply import apply
    from workbench.surgery.planning import plan_from
    from workbench.train import finetune as run_finetune
    from workbench.zoo import example_input

    example = example_input(model, 1)
    graph = from_model(model, example_input(model, 2))
    selector = get_selector(method, budget=keep, random_state=random_state, **(selector_params or {}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plan = plan_from(graph, selector, keep=keep, source=source,
                         data=train if source == "activations" else None)
    notes = [str(w.message) for w in caught if "left out of the plan" in str(w.message)]
    before = _figures(model, example, test, latency)
    smaller = apply(model, plan, fuse=fuse, graph=graph, data=train, random_state=random_state)
    if finetune:
        run_finetune(smaller, train, epochs=finetune, random_state=random_state, quiet=quiet)
    after = _figures(smaller, example, test, latency)
    return CompressionResult(model=smaller, plan=plan, before=before, after=after, notes=notes)
