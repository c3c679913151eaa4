"""The training loop: :func:`fit`, :func:`finetune` and the :class:`TrainHook` protocol."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from workbench.datasets.batches import Batches, Data, check_positive_int, data_attribute
from workbench.errors import ConfigError, DataError
from workbench.metrics.forward import model_dtype
from workbench.numeric import as_float
from workbench.train.class_weights import class_weights as compute_class_weights
from workbench.train.devices import resolve_device, to_device
from workbench.train.evaluation import evaluate
from workbench.train.history import History, record_call, record_samples
from workbench.train.optim import OPTIMIZERS, SCHEDULES, check_choice, make_optimizer, make_schedule
from workbench.train.outputs import forward_logits
from workbench.train.tasks import declared_task, default_loss, label_range, task_from_shapes
from workbench.utils import RandomState, seed_from

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Penalty = Callable[[nn.Module], torch.Tensor]

_HOOK_METHODS = ("before_step", "after_step", "after_epoch")


@runtime_checkable
class TrainHook(Protocol):
    """What :func:`fit` calls on each of its ``hooks``; every method is optional.

    A hook is any object with one or more of these methods (it need not subclass this class):

    ``before_step(model)``
        After ``loss.backward()``, before ``optimizer.step()``: gradients are in ``p.grad`` and may be
        changed (e.g. masked so that pruned weights stay zero).
    ``after_step(model)``
        After ``optimizer.step()``: parameters may be changed in place (re-apply masks, clip, quantize).
    ``after_epoch(model, epoch, logs)``
        After each epoch (``epoch`` counts from 0) and its validation; ``logs`` holds ``train_loss``,
        ``penalty``, ``lr``, ``seconds`` and the validation metrics prefixed ``val_``.

    Hooks are called in the order given; return values are ignored.
    """

    def before_step(self, model: nn.Module) -> None: ...

    def after_step(self, model: nn.Module) -> None: ...

    def after_epoch(self, model: nn.Module, epoch: int, logs: dict[str, Any]) -> None: ...


def _check_hooks(hooks: Sequence[Any]) -> list[Any]:
    hooks = list(hooks)
    for hook in hooks:
        if not any(callable(getattr(hook, name, None)) for name in _HOOK_METHODS):
            raise ConfigError(
                f"hook {hook!r} has none of the methods {', '.join(_HOOK_METHODS)}; see workbench.train.TrainHook."
            )
    return hooks


def _call_hooks(hooks: list[Any], method: str, *args: Any) -> None:
    for hook in hooks:
        function = getattr(hook, method, None)
        if callable(function):
            function(*args)


def _check_number(
    name: str, value: Any, *, minimum: float, inclusive: bool = True, maximum: float | None = None
) -> float:
    """``value`` as a finite float ``>= minimum`` (``> minimum`` unless ``inclusive``) and ``< maximum``."""
    return as_float(value, name, low=minimum, high=maximum, low_open=not inclusive, high_open=True)


def _check_callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be a callable or None, got {type(value).__name__}.")
    return value


def _param_groups(model: nn.Module, param_groups: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Torch optimizer groups: ``param_groups`` checked, or one group of all the model's parameters."""
    if param_groups is None:
        return [{"params": list(model.parameters())}]
    usage = "param_groups must be a non-empty list of dicts such as {'params': [tensors], 'lr': 1e-3}"
    if not isinstance(param_groups, (list, tuple)) or not param_groups:
        raise ConfigError(f"{usage}, got {param_groups!r:.80}.")
    groups = []
    for i, group in enumerate(param_groups):
        params = group.get("params") if isinstance(group, Mapping) else None
        if isinstance(params, torch.Tensor):
            params = [params]
        params = list(params) if isinstance(params, Iterable) and not isinstance(params, (str, bytes)) else []
        if not params or not all(isinstance(p, torch.Tensor) for p in params):
            raise ConfigError(f"{usage}; item {i} is {group!r:.80}.")
        if "lr" in group:
            _check_number(f"param_groups[{i}]['lr']", group["lr"], minimum=0.0, inclusive=False)
        groups.append({**group, "params": params})
    return groups


def _penalty_value(penalty: Penalty, model: nn.Module) -> torch.Tensor:
    value = penalty(model)
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ConfigError(
            f"penalty must return a scalar tensor (model -> torch.Tensor), got {type(value).__name__}"
            f"{'' if not isinstance(value, torch.Tensor) else ' of shape ' + str(tuple(value.shape))}."
        )
    return value.reshape(())


def fit(
    model: nn.Module,
    train_data: Data,
    *,
    val_data: Data | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    param_groups: Sequence[dict[str, Any]] | None = None,
    schedule: str = "cosine",
    step_size: int | None = None,
    gamma: float = 0.1,
    loss_fn: LossFn | None = None,
    class_weights: str | torch.Tensor | None = None,
    penalty: Penalty | None = None,
    hooks: Sequence[Any] = (),
    random_state: RandomState = 0,
    quiet: bool = False,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
) -> History:
    """Train ``model`` in place on ``train_data`` and return its :class:`History`.

    Parameters
    ----------
    model
        Any module; it is moved to ``device``, in train mode while fitting and left in eval mode.
    train_data, val_data
        Map-style data sets of ``(input, target)`` items, DataLoaders (used as they are) or
        ``(inputs, targets)`` pairs. ``val_data`` is evaluated after every epoch.
    epochs, batch_size
        Passes over the data and samples per batch.
    optimizer
        ``"adam"``, ``"adamw"`` or ``"sgd"`` (with ``momentum``); ``lr`` and ``weight_decay`` apply to every
        parameter group that does not set its own.
    param_groups
        Torch optimizer parameter groups (dicts with ``"params"`` and options such as ``"lr"``) that replace
        ``model.parameters()``, e.g. to train the parameters of a ``penalty`` (a learned prior) with their
        own learning rates. Parameters outside ``model`` are not moved: keep them on ``device``. The
        schedule scales every group's rate alike.
    schedule
        Per-batch learning-rate schedule: ``"cosine"`` (to zero), ``"step"`` (times ``gamma`` every
        ``step_size`` epochs, default a third of them), ``"constant"`` or ``"onecycle"``.
    loss_fn
        ``loss_fn(logits, targets) -> scalar``; default cross-entropy, per pixel for segmentation
        (``(N, C, H, W)`` logits, ``(N, H, W)`` targets, label 255 ignored).
    class_weights
        Weights of the default loss per class: a tensor, or a scheme computed from the labels of
        ``train_data`` (:func:`~workbench.train.class_weights.class_weights`: ``"enet"``, Paszke et al. 2016's
        ``1 / ln(1.02 + p)``, for background-dominated segmentation; ``"balanced"``; ``"none"``).
    penalty
        ``penalty(model) -> scalar tensor`` added to the loss of every batch (e.g. group lasso).
    hooks
        Objects with any of ``before_step``, ``after_step``, ``after_epoch`` (see :class:`TrainHook`).
    random_state
        Seeds the shuffling (a :class:`torch.Generator`) and torch's global generator for dropout and
        other random layers, so the same seed and the same initial weights give the same trained weights.
        The caller's torch random state is restored afterwards.
    quiet
        No progress bar.
    device
        Where to train (``"cpu"``, ``"cuda"``); default the device the model is on.
    max_batches
        Stop each epoch after this many batches (quick trials).

    Raises
    ------
    ConfigError
        A bad argument (the message lists the allowed values), or a loss that became NaN or infinite.
    DataError
        Empty data, or targets that do not fit the model's outputs.
    ModelError
        Inputs of a shape the model cannot take.
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    max_batches = check_positive_int("max_batches", max_batches, allow_none=True)
    step_size = check_positive_int("step_size", step_size, allow_none=True)
    lr = _check_number("lr", lr, minimum=0.0, inclusive=False)
    weight_decay = _check_number("weight_decay", weight_decay, minimum=0.0)
    momentum = _check_number("momentum", momentum, minimum=0.0, maximum=1.0)
    gamma = _check_number("gamma", gamma, minimum=0.0, inclusive=False)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("schedule", schedule, SCHEDULES)
    _check_callable("loss_fn", loss_fn)
    _check_callable("penalty", penalty)
    if loss_fn is not None and not (
        class_weights is None or isinstance(class_weights, str) and class_weights == "none"
    ):
        raise ConfigError("class_weights weigh the default loss; with a loss_fn, put the weights in it.")
    hooks = _check_hooks(hooks)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    seed = seed_from(random_state)
    device = resolve_device(model, device)

    generator = torch.Generator().manual_seed(seed)
    batches = Batches(train_data, batch_size, shuffle=True, generator=generator, name="train_data")
    if val_data is not None:
        Batches(val_data, batch_size, name="val_data")  # fail early on empty validation data
    steps = len(batches) if max_batches is None else min(len(batches), max_batches)

    weight = class_weights if not isinstance(class_weights, str) else compute_class_weights(train_data, class_weights)
    groups = _param_groups(model, param_groups)
    model.to(device)
    faster = _channels_last_helps(model, device, hooks, penalty)
    if faster:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(groups, optimizer, lr, weight_decay, momentum)
    trainer = _Trainer(
        model=model,
        optimizer=opt,
        scheduler=make_schedule(opt, schedule, epochs=epochs, steps_per_epoch=steps, step_size=step_size, gamma=gamma),
        device=device,
        dtype=model_dtype(model),
        task=declared_task(train_data, model),
        loss_fn=loss_fn,
        penalty=penalty,
        hooks=hooks,
        weight=None if weight is None else torch.as_tensor(weight, dtype=torch.float32, device=device),
        class_names=data_attribute(train_data, "class_names"),
    )
    history = History()
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        try:
            _run_epochs(trainer, batches, steps, val_data, epochs, max(batch_size, 256), history, quiet)
        finally:
            model.eval()
            if faster:
                model.to(memory_format=torch.contiguous_format)
    return history


def _channels_last_helps(model: nn.Module, device: torch.device, hooks: Sequence[Any], penalty: Any) -> bool:
    """Whether to train ``model`` with channels-last weights (restored to contiguous afterwards): a workbench zoo
    network with 2-D convolutions on the CPU, where oneDNN's channels-last kernels step 1.2x (ResNet-8, the small VGG)
    to 1.5x (MobileNet v1) faster at the same results up to float rounding. Not for a user's network (its code may
    ``view`` its own weights), with hooks or a penalty that read the weights, or with max-unpooling (ENet: no gain)."""
    from workbench.edits import SPEC

    if device.type != "cpu" or hooks or penalty is not None or getattr(model, SPEC, None) is None:
        return False
    modules = list(model.modules())
    return any(isinstance(m, nn.Conv2d) for m in modules) and not any(isinstance(m, nn.MaxUnpool2d) for m in modules)


@dataclass
class _Trainer:
    """What one optimisation step needs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    dtype: torch.dtype | None
    task: str | None
    loss_fn: LossFn | None
    penalty: Penalty | None
    hooks: list[Any]
    weight: torch.Tensor | None = None
    class_names: Sequence[str] | None = None
    labels: tuple[int, int] | None = None  # the smallest and largest label seen while watching (first epoch)
    watching: bool = True

    def step(self, inputs: Any, targets: Any, where: str) -> tuple[float, float]:
        """One batch: forward, loss (+ penalty), backward, hooks, optimizer and schedule step.

        Returns the data loss and the penalty as floats.
        """
        if targets is None:
            raise DataError("fit needs labelled data: (input, target) items or an (inputs, targets) pair.")
        inputs, targets = to_device(inputs, targets, self.device, self.dtype)
        logits = forward_logits(self.model, inputs)
        if self.loss_fn is not None:
            loss = self.loss_fn(logits, targets)
        else:
            self.task = self.task or task_from_shapes(logits, targets)
            loss = default_loss(logits, targets, self.task, weight=self.weight)
            if self.watching and self.task == "classification":
                self._see(label_range(targets, self.task))
        extra = _penalty_value(self.penalty, self.model) if self.penalty is not None else None
        total = loss if extra is None else loss + extra
        if not torch.isfinite(total.detach()).all():
            raise ConfigError(
                f"the training loss became {float(total.detach())} at {where}; "
                "lower lr (or the penalty's strength) and check the data for NaN values."
            )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        _call_hooks(self.hooks, "before_step", self.model)
        self.optimizer.step()
        _call_hooks(self.hooks, "after_step", self.model)
        self.scheduler.step()
        return float(loss.detach()), 0.0 if extra is None else float(extra.detach())

    def _see(self, found: tuple[int, int] | None) -> None:
        if found is not None:
            self.labels = (
                found if self.labels is None else (min(self.labels[0], found[0]), max(self.labels[1], found[1]))
            )

    def warn_one_class(self, samples: int) -> None:
        """Warn when every label of the first epoch was one class (a classifier learns nothing from it); stop
        watching the labels."""
        if self.watching and self.labels is not None and self.labels[0] == self.labels[1]:
            label = self.labels[0]
            names = self.class_names or ()
            named = f", {names[label]!r}" if label < len(names) and names[label] != str(label) else ""
            warnings.warn(
                f"fit: all {samples} training samples of the first epoch are of one class (label {label}{named}): "
                "a classifier trained on a single class learns nothing but to predict it (with one output, its "
                "cross-entropy is 0 whatever the weights). Train on data of two or more classes.",
                UserWarning,
                stacklevel=4,
            )
        self.watching = False


def _run_epochs(
    trainer: _Trainer,
    batches: Batches,
    steps: int,
    val_data: Data | None,
    epochs: int,
    val_batch_size: int,
    history: History,
    quiet: bool,
) -> None:
    from tqdm.auto import tqdm

    model = trainer.model
    record_call()
    bar = tqdm(range(epochs), desc="fit", unit="epoch", disable=quiet)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        results, seen = [], 0
        for step, (inputs, targets) in enumerate(batches):
            if step >= steps:
                break
            results.append(trainer.step(inputs, targets, f"epoch {epoch}, batch {step}"))
            seen += len(targets)
        trainer.warn_one_class(seen)
        val = (
            {}
            if val_data is None
            else evaluate(model, val_data, batch_size=val_batch_size, task=trainer.task, device=trainer.device)
        )
        history.train_loss.append(sum(r[0] for r in results) / max(len(results), 1))
        history.penalty.append(sum(r[1] for r in results) / max(len(results), 1))
        history.lr.append(float(trainer.optimizer.param_groups[0]["lr"]))
        history.val.append(val)
        history.seconds.append(time.perf_counter() - start)
        history.samples.append(seen)
        record_samples(seen)
        logs = history.epoch(-1)
        logs.pop("epoch")
        bar.set_postfix(_postfix(logs), refresh=False)
        _call_hooks(trainer.hooks, "after_epoch", model, epoch, logs)
    bar.close()


def _postfix(logs: dict[str, Any]) -> dict[str, str]:
    shown = {"loss": f"{logs['train_loss']:.4g}"}
    for key in ("val_miou", "val_accuracy"):
        if key in logs:
            shown[key.replace("accuracy", "acc")] = f"{logs[key]:.4f}"
            break
    return shown


#: The default learning rate of every retraining method -- :func:`finetune`, :func:`~workbench.train.distill` and
#: :func:`~workbench.train.reconstruct`, with any optimizer -- so that methods compared at their defaults retrain
#: at one rate. It is :func:`fit`'s own default, the rate every shipped study's fine-tuning was measured with
#: (``workbench/studies/demo.toml``, ``analyses/filters.toml``: ``lr = 1e-3``).
RETRAIN_LR = 1e-3


def finetune(model: nn.Module, data: Data, epochs: int, **fit_kwargs: Any) -> History:
    """Retrain an already trained (e.g. compressed) ``model`` on the labels of ``data``: :func:`fit`.

    The default learning rate is :data:`RETRAIN_LR` (1e-3), as for the other retraining methods; every other
    keyword is passed to :func:`fit` unchanged.
    """
    fit_kwargs.setdefault("lr", RETRAIN_LR)
    return fit(model, data, epochs=epochs, **fit_kwargs)
