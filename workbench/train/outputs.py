"""What a model returns, as the logits the workbench scores and trains on, and the checks that a model (and its
teacher) can be run at all: weights that hold values, one tensor out, a teacher whose outputs match the student's.

Every place that runs a model for scores or training (:func:`~workbench.train.evaluate`, ``predict``,
:func:`~workbench.train.fit`, :func:`~workbench.train.distill`, :func:`~workbench.train.reconstruct`, the loss
landscape) calls :func:`forward_logits`; :func:`workbench.compression.compress` calls :func:`check_model` once,
before it selects anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

import torch
from torch import nn

from workbench.errors import ConfigError, ModelError
from workbench.metrics.forward import checked_forward, evaluation_mode, model_device, model_dtype


def logits_of(output: Any, model: nn.Module) -> torch.Tensor:
    """``output`` of ``model`` when it is one tensor; a :class:`ModelError` saying how to wrap the model otherwise.

    The workbench scores, trains and rebuilds models whose forward returns their logits (or segmentation maps) as
    one tensor; a dict (``{"logits": ...}``, a Hugging Face ``ModelOutput``), a tuple or anything else is refused
    rather than guessed at, since a key chosen silently could be the wrong head.
    """
    if isinstance(output, torch.Tensor):
        return output
    what, pick = _described(output)
    raise ModelError(
        f"{type(model).__name__}'s forward returns {what}, not a tensor: the workbench scores, trains and rebuilds "
        "models whose forward returns their logits as one tensor. Wrap the model in a module whose forward returns "
        f"that tensor (forward(self, x): return self.model(x){pick})."
    )


def _described(output: Any) -> tuple[str, str]:
    """What ``output`` is, in words, and how to index the tensor out of it (``"['logits']"``)."""
    if isinstance(output, Mapping):
        keys = [str(key) for key in output]
        shown = ", ".join(map(repr, keys[:8])) + (", ..." if len(keys) > 8 else "")
        return f"a {type(output).__name__} with keys {shown or 'none'}", f"[{keys[0]!r}]" if keys else "[key]"
    if isinstance(output, (tuple, list)):
        return f"a {type(output).__name__} of {len(output)} items", "[0]"
    return f"a {type(output).__name__}", " converted to the logits tensor"


def forward_logits(model: nn.Module, inputs: Any) -> torch.Tensor:
    """``model(inputs)`` as one tensor: :func:`~workbench.metrics.forward.checked_forward`, then :func:`logits_of`."""
    return logits_of(checked_forward(model, inputs), model)


def check_materialized(model: nn.Module, role: str = "model") -> None:
    """A :class:`ModelError` when a parameter or buffer of ``model`` is on the meta device (it holds no values)."""
    for name, tensor in chain(model.named_parameters(), model.named_buffers()):
        if tensor.is_meta:
            raise ModelError(
                f"the {role} {type(model).__name__} cannot run: its parameters are on the meta device ({name!r} "
                "holds a shape but no values, as in a model built under torch.device('meta')); load its weights "
                "first: model.to_empty(device='cpu'), then model.load_state_dict(...)."
            )


def check_teacher_outputs(
    student: nn.Module, teacher: nn.Module, student_output: torch.Tensor, teacher_output: torch.Tensor
) -> None:
    """A :class:`ConfigError` naming both models when the teacher's outputs for a batch are not of the shape of the
    student's (a teacher of another number of classes)."""
    mine, theirs = tuple(student_output.shape[1:]), tuple(teacher_output.shape[1:])
    if mine != theirs:
        raise ConfigError(
            f"the teacher {type(teacher).__name__} gives outputs of shape {theirs} per sample but the student "
            f"{type(student).__name__} gives {mine}: distillation and reconstruction match the student's outputs "
            "to the teacher's one for one. Give a teacher with the student's outputs (the uncompressed model, or "
            "one trained on the same classes)."
        )


def outputs_on(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """:func:`forward_logits` of ``model`` on ``inputs`` (moved to its device and floating dtype), in eval mode
    and without gradients: the model's modes and statistics are left as they were."""
    inputs = inputs.to(model_device(model))
    dtype = model_dtype(model)
    if dtype is not None and inputs.is_floating_point():
        inputs = inputs.to(dtype)
    with evaluation_mode(model), torch.no_grad():
        return forward_logits(model, inputs)


def check_model(model: nn.Module, example_input: torch.Tensor, *, teacher: nn.Module | None = None) -> None:
    """Refuse, before any work, a ``model`` that cannot be compressed and retrained: parameters on the meta
    device, a forward that does not return one tensor on ``example_input``, or a ``teacher`` whose outputs are not
    of the model's shape (each a :class:`~workbench.errors.WorkbenchError` naming the model and the fix)."""
    check_materialized(model)
    output = outputs_on(model, example_input)
    if teacher is not None and teacher is not model:
        check_materialized(teacher, "teacher")
        check_teacher_outputs(model, teacher, output, outputs_on(teacher, example_input))
