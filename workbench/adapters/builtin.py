"""Adapters of the ``torch.nn`` layers the workbench understands (registered on import).

Linear; convolutions of any dimension, stride and ``groups`` (dense, grouped: equal blocks, depthwise with
any channel multiplier: tied to their input), transposed convolutions; BatchNorm, affine InstanceNorm,
GroupNorm (whole groups), LayerNorm (over the last dimension); per-channel PReLU; Embedding (the embedding
dimension); MultiheadAttention (the embedding dimension, equal per head).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from workbench.adapters.base import Connection, LayerAdapter, register_adapter, set_param, spatial_size
from workbench.errors import SurgeryError

_CONV = nn.modules.conv._ConvNd
_BN = nn.modules.batchnorm._BatchNorm
_INSTANCE = nn.modules.instancenorm._InstanceNorm


def _tie_all(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


class LinearAdapter(LayerAdapter):
    """``nn.Linear``: units along the last dimension; reads every input feature."""

    kind_name = "linear"

    def unit_dim(self, module: nn.Module, ndim: int) -> int | None:
        return ndim - 1

    def connect(self, module: nn.Module, n_in: int) -> Connection | None:
        return Connection(module.out_features, reads=True) if n_in == module.in_features else None

    def out_count(self, module: nn.Module) -> int | None:
        return module.out_features

    def in_count(self, module: nn.Module) -> int | None:
        return module.in_features

    def weight(self, module: nn.Module) -> torch.Tensor | None:
        return module.weight

    def unit_parameters(self, module: nn.Module) -> list[tuple[str, int]]:
        return [("weight", 0), ("bias", 0)]

    def set_out_count(self, module: nn.Module, n: int) -> None:
        module.out_features = n

    def slice_in(self, module: nn.Module, keep: np.ndarray) -> None:
        set_param(module, "weight", 1, keep)
        module.in_features = len(keep)

    def count(self, module: nn.Module, output_shape, n_out: int, n_in: int) -> tuple[int, int]:
        rows = math.prod(output_shape[1:-1]) if output_shape and len(output_shape) > 2 else 1
        return n_out * n_in + (n_out if module.bias is not None else 0), n_out * n_in * rows

    def refittable(self, module: nn.Module) -> bool:
        return True

    def design_rows(self, module: nn.Module, inputs: torch.Tensor, target: torch.Tensor, max_positions, rng) -> tuple:
        return inputs.reshape(-1, inputs.shape[-1]), target.reshape(-1, target.shape[-1])


class ConvAdapter(LayerAdapter):
    """Convolutions (1-, 2-, 3-d, transposed) with any ``groups``.

    Dense (``groups == 1``): new units reading every input channel. Depthwise (one input channel per
    group, any channel multiplier): each output channel is tied to the input channel it filters. Grouped
    (several input channels per group): reads its input in ``groups`` equal blocks and writes ``groups``
    equal blocks, so both sides keep equal counts per block.
    """

    def kind(self, module: nn.Module) -> str:
        if module.transposed:
            return "depthwise_conv" if self._depthwise(module) else "convtranspose"
        if self._depthwise(module):
            return "depthwise_conv"
        return {1: "conv1d", 3: "conv3d"}.get(len(module.kernel_size), "conv")

    @staticmethod
    def _depthwise(module: nn.Module) -> bool:
        return module.groups > 1 and module.in_channels == module.groups

    def connect(self, module: nn.Module, n_in: int) -> Connection | None:
        if n_in != module.in_channels:
            return None
        groups, out = module.groups, module.out_channels
        if groups == 1:
            return Connection(out, reads=True)
        if self._depthwise(module):
            return Connection(out, reads=False, tie=np.arange(out, dtype=np.int64) // (out // groups))
        return Connection(out, reads=True, in_blocks=groups, out_blocks=groups)

    def out_count(self, module: nn.Module) -> int | None:
        return module.out_channels

    def in_count(self, module: nn.Module) -> int | None:
        return module.in_channels

    def groups(self, module: nn.Module) -> int:
        return module.groups

    def kernel_span(self, module: nn.Module) -> int:
        return math.prod(module.kernel_size)

    def weight(self, module: nn.Module) -> torch.Tensor | None:
        w = module.weight
        if not module.transposed:
            return w
        if module.groups == 1:
            return w.transpose(0, 1)
        # (in, out/g, *k) -> (out, in/g, *k), group by group (a copy)
        cin, opg, groups = w.shape[0], w.shape[1], module.groups
        ipg = cin // groups
        return w.reshape(groups, ipg, opg, *w.shape[2:]).transpose(1, 2).reshape(groups * opg, ipg, *w.shape[2:])

    def unit_parameters(self, module: nn.Module) -> list[tuple[str, int]]:
        return [("weight", 1 if module.transposed and module.groups == 1 else 0), ("bias", 0)]

    def set_out_count(self, module: nn.Module, n: int) -> None:
        module.out_channels = n

    def slice_problem(self, module: nn.Module, side: str) -> str | None:
        if module.transposed and module.groups > 1 and not (self._depthwise(module) and side == "out"):
            return "a grouped transposed convolution"
        return None

    def slice_out(self, module: nn.Module, keep: np.ndarray) -> None:
        """Keep output channels ``keep``. With ``groups > 1`` every group keeps the same number; a group left
        empty goes with its input channels (a depthwise channel whose input unit was removed)."""
        problem = self.slice_problem(module, "out")
        if problem:
            raise SurgeryError(f"cannot cut the outputs of {problem}; leave its group out of the plan.")
        groups, out, k = module.groups, module.out_channels, len(keep)
        if groups == 1:
            super().slice_out(module, keep)
            return
        per_group = out // groups
        present, counts = np.unique(np.asarray(keep) // per_group, return_counts=True)
        if len(set(counts.tolist())) != 1:
            raise SurgeryError(
                f"a grouped convolution with {groups} groups must keep the same number of output channels in each "
                f"group it keeps, got {sorted(set(counts.tolist()))}; make the plan with surgery.plan_from."
            )
        if module.transposed:  # depthwise transposed: (in, m, *k) viewed as (out, 1, *k)
            w = module.weight.detach()
            flat = w.reshape(out, 1, *w.shape[2:])[torch.as_tensor(keep, device=w.device)]
            shaped = flat.reshape(len(present), k // len(present), *w.shape[2:]).clone()
            module.weight = nn.Parameter(shaped, requires_grad=module.weight.requires_grad)
            set_param(module, "bias", 0, keep)
        else:
            super().slice_out(module, keep)
        in_per_group = module.in_channels // groups
        module.groups = len(present)
        module.in_channels = len(present) * in_per_group
        module.out_channels = k

    def slice_in(self, module: nn.Module, keep: np.ndarray) -> None:
        groups = module.groups
        if groups == 1:
            set_param(module, "weight", 0 if module.transposed else 1, keep)
            module.in_channels = len(keep)
            return
        problem = self.slice_problem(module, "in")
        if problem:
            raise SurgeryError(f"cannot cut the inputs of {problem} column by column; leave its group out of the plan.")
        ipg = module.in_channels // groups
        keep = np.asarray(keep)
        per_block = [keep[(keep >= g * ipg) & (keep < (g + 1) * ipg)] - g * ipg for g in range(groups)]
        if len({len(b) for b in per_block}) != 1 or not len(per_block[0]):
            raise SurgeryError(
                f"a grouped convolution with {groups} groups must keep the same number (at least one) of input "
                f"channels in each group, got {[len(b) for b in per_block]}; make the plan with surgery.plan_from."
            )
        w = module.weight.detach()
        opg = w.shape[0] // groups
        index = torch.as_tensor(np.stack(per_block), dtype=torch.long, device=w.device)  # (groups, kept per group)
        shaped = w.reshape(groups, opg, ipg, -1)
        gathered = torch.gather(shaped, 2, index[:, None, :, None].expand(groups, opg, index.shape[1], shaped.shape[3]))
        new = gathered.reshape(w.shape[0], index.shape[1], *w.shape[2:]).clone()
        module.weight = nn.Parameter(new, requires_grad=module.weight.requires_grad)
        module.in_channels = len(keep)

    def count(self, module: nn.Module, output_shape, n_out: int, n_in: int) -> tuple[int, int]:
        kernel = math.prod(module.kernel_size)
        in_per_group = 1 if self._depthwise(module) else n_in // module.groups
        params = n_out * in_per_group * kernel + (n_out if module.bias is not None else 0)
        spatial = spatial_size(output_shape)
        if module.transposed:  # every input position is scattered through the whole kernel
            spatial //= math.prod(module.stride)
        return params, n_out * in_per_group * kernel * spatial

    def design_rows(self, module: nn.Module, inputs: torch.Tensor, target: torch.Tensor, max_positions, rng) -> tuple:
        """Rows of ``max_positions`` random output positions per sample; a transposed convolution is fitted as
        the ordinary convolution it equals on its zero-upsampled input (:meth:`fit_weight`)."""
        positions = None
        n_pos = math.prod(target.shape[2:])
        if n_pos > max_positions:
            positions = torch.as_tensor(rng.choice(n_pos, max_positions, replace=False), device=target.device)
        if module.transposed:
            cols = F.unfold(_upsampled(module, inputs), module.kernel_size, dilation=module.dilation)
        else:
            if inputs.dim() == 3:  # Conv1d: treat as 2-d with height 1
                inputs, target = inputs.unsqueeze(2), target.unsqueeze(2)
                kernel, dilation, padding, stride = (
                    (1, module.kernel_size[0]),
                    (1, module.dilation[0]),
                    (0, module.padding[0]),
                    (1, module.stride[0]),
                )
            else:
                kernel, dilation, padding, stride = module.kernel_size, module.dilation, module.padding, module.stride
            cols = F.unfold(inputs, kernel, dilation=dilation, padding=padding, stride=stride)  # N, C*k, L
        target = target.flatten(2)  # N, O, L
        if positions is not None:
            cols, target = cols[:, :, positions], target[:, :, positions]
        return cols.transpose(1, 2).reshape(-1, cols.shape[1]), target.transpose(1, 2).reshape(-1, target.shape[1])

    def refittable(self, module: nn.Module) -> bool:
        return module.groups == 1 and (not module.transposed or module.weight.dim() == 4)

    def fit_weight(self, module: nn.Module) -> torch.Tensor:
        """(out, in, *kernel) weight of the ordinary convolution the design rows feed: for a transposed
        convolution its swapped and flipped kernel."""
        weight = module.weight.data
        if module.transposed:
            return weight.transpose(0, 1).flip(tuple(range(2, weight.dim())))
        return weight

    def set_fit_weight(self, module: nn.Module, weight: torch.Tensor) -> None:
        if module.transposed:
            weight = weight.flip(tuple(range(2, weight.dim()))).transpose(0, 1)
        module.weight.data = weight.contiguous()


def _upsampled(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The input of the ordinary stride-1 convolution that equals transposed convolution ``module``.

    ``conv_transpose(x, w)`` is ``conv(x_up, w')`` where ``x_up`` has ``stride - 1`` zeros between input
    pixels and is padded by ``dilation * (kernel - 1) - padding`` (plus ``output_padding`` at the end),
    and ``w'`` is ``w`` with input and output swapped and the kernel flipped.
    """
    n, c, *sides = inputs.shape
    stride, dilation, padding = module.stride, module.dilation, module.padding
    up = inputs.new_zeros(n, c, *[(side - 1) * s + 1 for side, s in zip(sides, stride)])
    up[(slice(None), slice(None), *[slice(None, None, s) for s in stride])] = inputs
    pads: list[int] = []
    for d, k, p, extra in reversed(list(zip(dilation, module.kernel_size, padding, module.output_padding))):
        pads += [d * (k - 1) - p, d * (k - 1) - p + extra]
    return F.pad(up, pads)


class CoupledAdapter(LayerAdapter):
    """Per-channel layers whose unit ``i`` is input channel ``i`` (norms, PReLU)."""

    kind_name = "norm"
    count_attr = "num_features"

    def connect(self, module: nn.Module, n_in: int) -> Connection | None:
        n = self.out_count(module)
        return Connection(n, reads=False, tie=_tie_all(n)) if n == n_in else None

    def out_count(self, module: nn.Module) -> int | None:
        return int(getattr(module, self.count_attr))

    def unit_parameters(self, module: nn.Module) -> list[tuple[str, int]]:
        return [("weight", 0), ("bias", 0), ("running_mean", 0), ("running_var", 0)]

    def set_out_count(self, module: nn.Module, n: int) -> None:
        setattr(module, self.count_attr, n)


class BatchNormAdapter(CoupledAdapter):
    """BatchNorm of any dimension: per-channel affine normalization."""

    kind_name = "bn"

    def normalizer(self, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
        if module.running_var is None:
            return None
        n = module.num_features
        ones = torch.ones(n, device=module.running_var.device)
        gamma = module.weight.detach() if module.weight is not None else ones
        beta = module.bias.detach() if module.bias is not None else 0 * ones
        std = torch.sqrt(module.running_var.detach() + module.eps)
        return gamma / std, beta - gamma * module.running_mean.detach() / std


class InstanceNormAdapter(CoupledAdapter):
    """InstanceNorm: per-channel; a unit-owning layer only when affine (otherwise an activation)."""

    def kind(self, module: nn.Module) -> str:
        return "norm" if module.affine else "act"


class GroupNormAdapter(CoupledAdapter):
    """GroupNorm: channels are normalized in groups, so whole groups are kept or removed."""

    count_attr = "num_channels"

    def connect(self, module: nn.Module, n_in: int) -> Connection | None:
        found = super().connect(module, n_in)
        if found is None:
            return None
        return Connection(found.n_out, reads=False, tie=found.tie, whole=module.num_channels // module.num_groups)

    def unit_parameters(self, module: nn.Module) -> list[tuple[str, int]]:
        return [("weight", 0), ("bias", 0)]

    def set_out_count(self, module: nn.Module, n: int) -> None:
        per_group = module.num_channels // module.num_groups
        module.num_channels, module.num_groups = n, n // per_group


class LayerNormAdapter(CoupledAdapter):
    """LayerNorm over the last dimension: unit ``i`` is feature ``i`` (removing features changes the
    statistics it normalizes with, so the rebuilt layer is not exact)."""

    def unit_dim(self, module: nn.Module, ndim: int) -> int | None:
        return ndim - 1

    def out_count(self, module: nn.Module) -> int | None:
        return int(module.normalized_shape[-1])

    def connect(self, module: nn.Module, n_in: int) -> Connection | None:
        return super().connect(module, n_in) if len(module.normalized_shape) == 1 else None

    def unit_parameters(self, module: nn.Module) -> list[tuple[str, int]]:
        return [("weight", 0), ("bias", 0)]

    def set_out_count(self, module: nn.Module, n: int) -> None:
        module.normalized_shape = (n,)


class PReLUAdapter(CoupledAdapter):
    """Per-channel PReLU (one slope per channel); a single shared slope is an activation."""

    kind_name = "prelu"
    count_attr = "num_parameters"

    def kind(self, module: nn.Module) -> str:
        return "prelu" if module.num_parameters > 1 else "act"

    def unit_parameters(self, module: nn.Module) -> list[tuple[str, int]]:
        return [("weight", 0)]


class EmbeddingAdapter(LayerAdapter):
    """``nn.Embedding``: units are the embedding dimensions (its input, token ids, carries none)."""

    kind_name = "embedding"

    def unit_dim(self, module: nn.Module, ndim: int) -> int | None:
        return None

    def out_dim(self, module: nn.Module, ndim: int) -> int:
        return ndim - 1

    def connect(self, module: nn.Module, n_in: int) -> Connection | None:
        return Connection(module.embedding_dim, reads=False)

    def out_count(self, module: nn.Module) -> int | None:
        return module.embedding_dim

    def weight(self, module: nn.Module) -> torch.Tensor | None:
        return module.weight.t()

    def unit_parameters(self, module: nn.Module) -> list[tuple[str, int]]:
        return [("weight", 1)]

    def set_out_count(self, module: nn.Module, n: int) -> None:
        module.embedding_dim = n

    def count(self, module: nn.Module, output_shape, n_out: int, n_in: int) -> tuple[int, int]:
        return module.num_embeddings * n_out, 0


class AttentionAdapter(LayerAdapter):
    """``nn.MultiheadAttention`` (self-attention, ``kdim == vdim == embed_dim``): unit ``i`` is embedding
    dimension ``i`` of its input and output (tied: the module maps the embedding to itself), cut equally
    in every head (the query, key and value rows of a dimension go with it; the queries are rescaled so
    that the attention logits keep their scale)."""

    kind_name = "attention"

    def unit_dim(self, module: nn.Module, ndim: int) -> int | None:
        return ndim - 1

    def connect(self, module: nn.Module, n_in: int) -> Connection | None:
        if n_in != module.embed_dim or not module._qkv_same_embed_dim:
            return None
        return Connection(n_in, reads=False, tie=_tie_all(n_in), out_blocks=module.num_heads)

    def out_count(self, module: nn.Module) -> int | None:
        return module.embed_dim

    def slice_problem(self, module: nn.Module, side: str) -> str | None:
        return None if module._qkv_same_embed_dim else "a MultiheadAttention with its own key / value sizes"

    def slice_out(self, module: nn.Module, keep: np.ndarray) -> None:
        e, heads, k = module.embed_dim, module.num_heads, len(keep)
        if k % heads:
            raise SurgeryError(f"MultiheadAttention with {heads} heads cannot keep {k} dimensions; keep a multiple.")
        keep = np.asarray(keep)
        rows = np.concatenate([keep, keep + e, keep + 2 * e])
        scale = math.sqrt((k // heads) / (e // heads))  # 1/sqrt(head_dim) changes with the head size
        with torch.no_grad():
            module.in_proj_weight[:e] *= scale
            if module.in_proj_bias is not None:
                module.in_proj_bias[:e] *= scale
        set_param(module, "in_proj_weight", 0, rows)
        set_param(module, "in_proj_weight", 1, keep)
        set_param(module, "in_proj_bias", 0, rows)
        set_param(module.out_proj, "weight", 0, keep)
        set_param(module.out_proj, "weight", 1, keep)
        set_param(module.out_proj, "bias", 0, keep)
        module.out_proj.in_features = module.out_proj.out_features = k
        module.embed_dim = module.kdim = module.vdim = k
        module.head_dim = k // heads
        for attr in ("bias_k", "bias_v"):
            set_param(module, attr, 2, keep)

    def count(self, module: nn.Module, output_shape, n_out: int, n_in: int) -> tuple[int, int]:
        tokens = math.prod(output_shape[:-1]) // output_shape[0] if output_shape and len(output_shape) > 2 else 1
        params = 4 * n_out * n_out + (4 * n_out if module.in_proj_bias is not None else 0)
        return params, 4 * n_out * n_out * tokens + 2 * tokens * tokens * n_out


for _type, _adapter in (
    (nn.Linear, LinearAdapter()),
    (_CONV, ConvAdapter()),
    (_BN, BatchNormAdapter()),
    (_INSTANCE, InstanceNormAdapter()),
    (nn.GroupNorm, GroupNormAdapter()),
    (nn.LayerNorm, LayerNormAdapter()),
    (nn.PReLU, PReLUAdapter()),
    (nn.Embedding, EmbeddingAdapter()),
    (nn.MultiheadAttention, AttentionAdapter()),
):
    register_adapter(_type, _adapter)
