"""Low-rank and tensor factorization of layers.

- :func:`svd_linear` -- a Linear layer as two (Linear(in, r) then Linear(r, out)), from its truncated SVD;
  the rank is given, or set by retained energy (sum of squared singular values) or by a parameter budget.
- :func:`tucker2_conv` -- a Conv2d as 1x1 (C -> R_in), k x k (R_in -> R_out), 1x1 (R_out -> O), from a
  Tucker-2 decomposition of its kernel over the output and input channel modes (Kim et al. 2016).
- :func:`cp_conv` -- a Conv2d as 1x1 (C -> R), depthwise k x 1, depthwise 1 x k, 1x1 (R -> O), from a CP
  decomposition of its kernel (Lebedev et al. 2015).
- :func:`factorize` -- replace every (or the named) Linear / Conv2d layers of a copy of a model.
- :func:`reconstruct` -- global error reconstruction (Lin et al. 2016): fine-tune the factorized network so
  that its outputs reproduce the original's (L2 on the outputs).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.edits import record_edit
from workbench.errors import CompressionError, ConfigError

METHODS = ("svd", "tucker2", "cp")


def _check_budget(budget: float | None, name: str = "budget") -> float | None:
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0.0 < budget <= 1.0:
        raise ConfigError(f"{name} must be a fraction in (0, 1], got {budget!r}.")
    return float(budget)


def svd_rank(
    singular: np.ndarray,
    shape: tuple[int, int],
    rank: int | None = None,
    energy: float | None = None,
    budget: float | None = None,
) -> int:
    """The rank for a (out, in) matrix: given, by retained ``energy`` fraction, or by parameter ``budget``."""
    given = sum(x is not None for x in (rank, energy, budget))
    if given != 1:
        raise ConfigError(
            "give exactly one of rank=, energy= (retained fraction of sum(s^2)) or budget= (fraction of parameters)."
        )
    full = len(singular)
    if rank is not None:
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 1 <= rank <= full:
            raise ConfigError(f"rank must be an integer in [1, {full}], got {rank!r}.")
        return int(rank)
    if energy is not None:
        energy = _check_budget(energy, "energy")
        cumulative = np.cumsum(singular**2) / max(float(np.sum(singular**2)), 1e-300)
        return int(min(full, np.searchsorted(cumulative, energy - 1e-12) + 1))
    budget = _check_budget(budget)
    out_features, in_features = shape
    return int(max(1, min(full, math.floor(budget * out_features * in_features / (out_features + in_features)))))


def svd_linear(
    layer: nn.Linear, rank: int | None = None, *, energy: float | None = None, budget: float | None = None
) -> nn.Sequential:
    """``layer`` as Linear(in, r, bias=False) followed by Linear(r, out) from its rank-r truncated SVD."""
    if not isinstance(layer, nn.Linear):
        raise CompressionError(f"svd_linear factorizes nn.Linear layers, got {type(layer).__name__}.")
    weight = layer.weight.detach().double()
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    r = svd_rank(s.numpy(), tuple(weight.shape), rank, energy, budget)
    root = s[:r].sqrt()
    first = nn.Linear(layer.in_features, r, bias=False)
    second = nn.Linear(r, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        first.weight.copy_((root[:, None] * vh[:r]).to(layer.weight.dtype))
        second.weight.copy_((u[:, :r] * root[None, :]).to(layer.weight.dtype))
        if layer.bias is not None:
            second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


def _check_conv(layer: nn.Module, what: str) -> nn.Conv2d:
    if not isinstance(layer, nn.Conv2d) or layer.groups != 1:
        kind = type(layer).__name__ + (f" with groups={layer.groups}" if isinstance(layer, nn.Conv2d) else "")
        raise CompressionError(f"{what} factorizes ungrouped nn.Conv2d layers, got {kind}.")
    return layer


def tucker2_ranks(layer: nn.Conv2d, budget: float) -> tuple[int, int]:
    """(R_out, R_in) keeping the channel ratio so the three convolutions hold ``budget`` of the parameters."""
    out_c, in_c, kh, kw = layer.weight.shape
    k2 = kh * kw
    # params(f) = f*C*C + f^2*C*O*k2 + f*O*O with R_in = f*C, R_out = f*O; solve params = budget * O*C*k2
    a, b, c = in_c * out_c * k2, in_c * in_c + out_c * out_c, -budget * out_c * in_c * k2
    f = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    return max(1, min(out_c, int(f * out_c))), max(1, min(in_c, int(f * in_c)))


def _conv(
    in_c: int,
    out_c: int,
    kernel: tuple[int, int],
    layer: nn.Conv2d,
    *,
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    groups: int = 1,
    bias: bool = False,
) -> nn.Conv2d:
    return nn.Conv2d(
        in_c,
        out_c,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=bias,
        padding_mode=layer.padding_mode,
    )


def tucker2_conv(
    layer: nn.Conv2d, ranks: tuple[int, int] | None = None, *, budget: float | None = None, random_state: int = 0
) -> nn.Sequential:
    """``layer`` as 1x1 -> k x k -> 1x1 convolutions from a Tucker-2 decomposition of its kernel.

    Parameters
    ----------
    ranks
        (R_out, R_in): ranks of the output- and input-channel modes.
    budget
        Instead of ``ranks``: the fraction of the layer's weights the three convolutions may hold.
    """
    from tensorly.decomposition import partial_tucker

    layer = _check_conv(layer, "tucker2_conv")
    out_c, in_c, kh, kw = layer.weight.shape
    if (ranks is None) == (budget is None):
        raise ConfigError("give exactly one of ranks=(R_out, R_in) or budget= (fraction of the layer's weights).")
    if ranks is None:
        ranks = tucker2_ranks(layer, _check_budget(budget))
    r_out, r_in = (int(r) for r in ranks)
    if not (1 <= r_out <= out_c and 1 <= r_in <= in_c):
        raise ConfigError(f"Tucker-2 ranks must lie in [1, {out_c}] x [1, {in_c}], got {ranks!r}.")
    weight = layer.weight.detach().double().numpy()
    (core, (u_out, u_in)), _ = partial_tucker(weight, rank=[r_out, r_in], modes=[0, 1], random_state=random_state)
    dtype = layer.weight.dtype
    first = _conv(in_c, r_in, (1, 1), layer)
    middle = _conv(r_in, r_out, (kh, kw), layer, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    last = _conv(r_out, out_c, (1, 1), layer, bias=layer.bias is not None)
    with torch.no_grad():
        first.weight.copy_(torch.as_tensor(np.ascontiguousarray(u_in.T)).reshape(r_in, in_c, 1, 1).to(dtype))
        middle.weight.copy_(torch.as_tensor(np.ascontiguousarray(core)).to(dtype))
        last.weight.copy_(torch.as_tensor(np.ascontiguousarray(u_out)).reshape(out_c, r_out, 1, 1).to(dtype))
        if layer.bias is not None:
            last.bias.copy_(layer.bias)
    return nn.Sequential(first, middle, last)


def cp_conv(
    layer: nn.Conv2d,
    rank: int | None = None,
    *,
    budget: float | None = None,
    random_state: int = 0,
    n_iter_max: int = 200,
) -> nn.Sequential:
    """``layer`` as 1x1 (C -> R), depthwise (kh x 1), depthwise (1 x kw), 1x1 (R -> O) from a rank-R CP decomposition."""
    from tensorly.decomposition import parafac

    layer = _check_conv(layer, "cp_conv")
    out_c, in_c, kh, kw = layer.weight.shape
    if (rank is None) == (budget is None):
        raise ConfigError("give exactly one of rank= or budget= (fraction of the layer's weights).")
    if rank is None:
        rank = max(1, int(_check_budget(budget) * out_c * in_c * kh * kw / (in_c + kh + kw + out_c)))
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ConfigError(f"CP rank must be a positive integer, got {rank!r}.")
    rank = int(rank)
    weight = layer.weight.detach().double().numpy()
    cp = parafac(
        weight, rank=rank, init="random", random_state=random_state, n_iter_max=n_iter_max, normalize_factors=False
    )
    a, b, c, d = cp.factors  # (O, R), (C, R), (kh, R), (kw, R); weights are all one without normalization
    a = a * np.asarray(cp.weights)[None, :]
    dtype = layer.weight.dtype
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    pointwise_in = _conv(in_c, rank, (1, 1), layer)
    vertical = _conv(rank, rank, (kh, 1), layer, stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1), groups=rank)
    horizontal = _conv(rank, rank, (1, kw), layer, stride=(1, sw), padding=(0, pw), dilation=(1, dw), groups=rank)
    pointwise_out = _conv(rank, out_c, (1, 1), layer, bias=layer.bias is not None)
    with torch.no_grad():
        pointwise_in.weight.copy_(torch.as_tensor(np.ascontiguousarray(b.T)).reshape(rank, in_c, 1, 1).to(dtype))
        vertical.weight.copy_(torch.as_tensor(np.ascontiguousarray(c.T)).reshape(rank, 1, kh, 1).to(dtype))
        horizontal.weight.copy_(torch.as_tensor(np.ascontiguousarray(d.T)).reshape(rank, 1, 1, kw).to(dtype))
        pointwise_out.weight.copy_(torch.as_tensor(np.ascontiguousarray(a)).reshape(out_c, rank, 1, 1).to(dtype))
        if layer.bias is not None:
            pointwise_out.bias.copy_(layer.bias)
    return nn.Sequential(pointwise_in, vertical, horizontal, pointwise_out)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def factorize(
    model: nn.Module,
    method: str = "svd",
    *,
    layers: Sequence[str] | None = None,
    budget: float | None = 0.5,
    energy: float | None = None,
    random_state: int = 0,
) -> nn.Module:
    """A copy of ``model`` whose Linear (``"svd"``) or Conv2d (``"tucker2"``, ``"cp"``) layers are factorized.

    Parameters
    ----------
    layers
        Names of the layers to factorize (default: every layer of the method's kind where the factorization
        holds fewer parameters than the layer).
    budget
        Fraction of each layer's weights its factors may hold.
    energy
        For ``"svd"``: choose each rank by retained energy instead of ``budget``.

    Factorized layers are replaced, so they lose any mask or quantizer they had; other layers keep theirs.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown factorization {method!r}; use one of {', '.join(METHODS)}.")
    kind = nn.Linear if method == "svd" else nn.Conv2d
    modules = dict(model.named_modules())
    if layers is None:
        names = [n for n, m in modules.items() if isinstance(m, kind) and (kind is nn.Linear or m.groups == 1)]
        if not names:
            raise CompressionError(
                f"{type(model).__name__} has no {kind.__name__} layer for method {method!r} "
                f"(it factorizes {kind.__name__} layers); use {'svd' if method != 'svd' else 'tucker2'} "
                "or name the layers."
            )
    else:
        names = list(layers)
        for name in names:
            if name not in modules:
                raise CompressionError(
                    f"layer {name!r} is not in the model; layers: {', '.join(n for n in modules if n)}."
                )
            if not isinstance(modules[name], kind):
                raise CompressionError(
                    f"layer {name!r} is a {type(modules[name]).__name__}; method {method!r} "
                    f"factorizes {kind.__name__} layers."
                )
    result = copy.deepcopy(model)
    ranks: dict[str, Any] = {}
    for name in names:
        layer = result.get_submodule(name)
        if method == "svd":
            new = svd_linear(layer, energy=energy) if energy is not None else svd_linear(layer, budget=budget)
        elif method == "tucker2":
            new = tucker2_conv(layer, budget=budget, random_state=random_state)
        else:
            new = cp_conv(layer, budget=budget, random_state=random_state)
        if layers is None and sum(p.numel() for p in new.parameters()) >= sum(p.numel() for p in layer.parameters()):
            continue
        _replace(result, name, new)
        ranks[name] = _ranks_of(method, new)
    return record_edit(result, "factorize", method=method, ranks=ranks)  # checkpoints rebuild it


def _ranks_of(method: str, new: nn.Sequential) -> Any:
    if method == "svd":
        return new[0].out_features
    if method == "tucker2":
        return [new[1].out_channels, new[1].in_channels]
    return new[0].out_channels


def refactorize(model: nn.Module, step: dict[str, Any]) -> nn.Module:
    """Replay a recorded ``"factorize"`` edit (method and per-layer ranks) on ``model``, in place.

    Used to rebuild a factorized architecture from its edit history; the weights are then loaded from a
    checkpoint.
    """
    method = step.get("method", step.get("factorize"))  # "factorize" in specs written before edit histories
    for name, rank in step["ranks"].items():
        layer = model.get_submodule(name)
        if method == "svd":
            new = svd_linear(layer, int(rank))
        elif method == "tucker2":
            new = tucker2_conv(layer, (int(rank[0]), int(rank[1])))
        else:
            new = cp_conv(layer, int(rank), n_iter_max=1)
        _replace(model, name, new)
    return model


def reconstruct(factorized: nn.Module, original: nn.Module, data: Any, *, epochs: int = 5, **kwargs: Any):
    """Global error reconstruction (Lin et al. 2016): fine-tune ``factorized`` to reproduce ``original``'s outputs.

    A thin use of :func:`workbench.train.distill` with the L2 loss on outputs (``loss="logits"``, ``alpha=1``).
    """
    from workbench.train import distill

    kwargs.setdefault("lr", 1e-4)
    return distill(factorized, original, data, epochs=epochs, loss="logits", alpha=1.0, **kwargs)
