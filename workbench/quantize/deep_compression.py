"""Deep Compression (Han, Mao & Dally, ICLR 2016) as a list of model transforms.

prune (magnitude, per layer) -> retrain with masks -> k-means weight sharing -> (optionally fixed-point
biases) -> trained quantization (retrain the centroids) -> Huffman coding of the codebook indices and relative sparse indices.
The final step encodes every layer into real bit streams and checks that decoding gives the weights
back; ``workbench.metrics.storage.storage_report`` counts the same streams.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.edits import set_note
from workbench.errors import CompressionError
from workbench.quantize.coding import EncodedLayer, decode_layer
from workbench.quantize.sharing import SharedWeight, share_weights
from workbench.quantize.fixed_point import fixed_point_biases
from workbench.sparse.layers import maybe_copy, resolve_teacher, weight_parametrization
from workbench.sparse.magnitude import prune


def encode_model(model: nn.Module, verify: bool = True) -> dict[str, EncodedLayer]:
    """Encode every weight-shared layer of ``model``; with ``verify`` decode and compare to its weights."""
    encoded = {}
    for name, module in model.named_modules():
        p = weight_parametrization(module)
        if isinstance(p, SharedWeight) and p.domain == "spatial":
            enc = p.encode(module)
            if verify:
                back = decode_layer(enc)
                if not np.array_equal(back, module.weight.detach().cpu().numpy().astype(np.float32)):
                    raise CompressionError(f"layer {name!r}: decoding the Huffman streams did not give the weights back.")
            encoded[name] = enc
    return encoded


@dataclass
class DeepCompression:
    """The Deep Compression pipeline; ``steps`` lists ``(name, transform)`` pairs run in order.

    Parameters
    ----------
    rate, quality
        Pruning: a fraction per layer (number or dict by layer / kind) or Han's ``quality x std`` rule.
    prune_rounds
        Cumulative pruning schedule; overrides ``rate`` (e.g. ``[0.5, 0.8, 0.92]``).
    bits
        Codebook index bits per layer (paper: 8 for conv, 5 for fully connected).
    index_bits
        Relative-index gap bits per layer (paper: 8 for conv, 5 for fully connected).
    retrain_epochs, quant_epochs
        Epochs of retraining after each pruning round, and of centroid fine-tuning.
    bias_bits
        Store biases as fixed point with this many bits (quantized before the centroid fine-tuning, which
        then adapts to them); None keeps them fp32, as the paper, whose ratios count weights only.
    teacher, distill_options
        Retrain by distillation (``workbench.train.distill``) from this network, or from a frozen copy of
        the model given to :meth:`run` with ``"input"``; None fits the labels alone, as the paper.
    fit_kwargs
        Passed to ``workbench.train.fit`` (lr, optimizer, batch_size, ...).
    """

    rate: float | dict | None = 0.9
    quality: float | dict | None = None
    prune_rounds: list | None = None
    bits: int | dict = field(default_factory=lambda: {"conv": 8, "linear": 5})
    index_bits: int | dict = field(default_factory=lambda: {"conv": 8, "linear": 5})
    init: str = "linear"
    retrain_epochs: int = 3
    quant_epochs: int = 2
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    quant_fit_kwargs: dict[str, Any] | None = None
    bias_bits: int | dict | None = None
    teacher: nn.Module | list | str | None = None
    distill_options: dict[str, Any] | None = None
    random_state: int = 0
    log: list[dict[str, Any]] = field(default_factory=list, init=False)
    _teacher: Any = field(default=None, init=False, repr=False)

    @property
    def steps(self) -> list[tuple[str, Callable[..., nn.Module]]]:
        """The pipeline as ``(name, transform(model, train_data, val_data) -> model)`` pairs."""
        rounds = self.prune_rounds or [self.rate if self.quality is None else None]
        steps: list[tuple[str, Callable[..., nn.Module]]] = []
        for i, r in enumerate(rounds):
            steps.append((f"prune[{i}]", lambda m, d, v, r=r: self._prune(m, r)))
            if self.retrain_epochs > 0:
                steps.append((f"retrain[{i}]", self._retrain))
        steps.append(("share", lambda m, d, v: share_weights(
            m, self.bits, init=self.init, index_bits=self.index_bits, inplace=True, random_state=self.random_state)))
        if self.bias_bits is not None:
            steps.append(("bias-fixed-point", lambda m, d, v: fixed_point_biases(m, self.bias_bits, inplace=True)))
        if self.quant_epochs > 0:
            steps.append(("quantized-retrain", self._quant_retrain))
        steps.append(("huffman", self._huffman))
        return steps

    def _prune(self, model: nn.Module, rate) -> nn.Module:
        if self.quality is not None and self.prune_rounds is None:
            return prune(model, quality=self.quality, inplace=True)
        return prune(model, rate=rate, inplace=True)

    def _fit(self, model: nn.Module, data, val, epochs: int, kwargs: dict[str, Any]) -> None:
        from workbench.train import retrain

        kwargs = dict(kwargs)
        retrain(model, data, val_data=val, epochs=epochs, teacher=self._teacher, distill_options=self.distill_options,
                random_state=kwargs.pop("random_state", self.random_state), **kwargs)

    def _retrain(self, model: nn.Module, data, val) -> nn.Module:
        self._fit(model, data, val, self.retrain_epochs, self.fit_kwargs)  # the pruning masks hold in training
        return model

    def _quant_retrain(self, model: nn.Module, data, val) -> nn.Module:
        kwargs = self.fit_kwargs if self.quant_fit_kwargs is None else self.quant_fit_kwargs
        self._fit(model, data, val, self.quant_epochs, kwargs)
        return model

    def _huffman(self, model: nn.Module, data, val) -> nn.Module:
        encoded = encode_model(model, verify=True)
        return set_note(model, "encoded", encoded)

    def run(self, model: nn.Module, train_data: Any, val_data: Any = None, inplace: bool = False) -> nn.Module:
        """Run every step; ``self.log`` records each step's name (and validation accuracy when given)."""
        self._teacher = resolve_teacher(self.teacher, model)
        model = maybe_copy(model, inplace)
        self.log = []
        for name, step in self.steps:
            model = step(model, train_data, val_data)
            entry: dict[str, Any] = {"step": name}
            if val_data is not None:
                from workbench.train import evaluate

                entry["val_accuracy"] = evaluate(model, val_data)["accuracy"]
            self.log.append(entry)
        return model


def deep_compress(model: nn.Module, train_data: Any, val_data: Any = None, **options: Any) -> nn.Module:
    """Run :class:`DeepCompression` with ``options`` on a copy of ``model``; the encoded layers are its note
    ``"encoded"`` and the step log its note ``"log"`` (``workbench.edits.note``)."""
    pipeline = DeepCompression(**options)
    out = pipeline.run(model, train_data, val_data)
    return set_note(out, "log", pipeline.log)


@torch.no_grad()
def distinct_values(module: nn.Module) -> int:
    """Number of distinct weight values of a layer (nonzero ones plus zero if present)."""
    return int(torch.unique(module.weight.detach()).numel())
