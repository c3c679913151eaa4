"""What kind of layer or operation a traced ``torch.fx`` node is.

Kinds of parametric layers (they own units; the layer adapters of :mod:`workbench.adapters` give them):
``linear``, ``conv`` (2-d), ``conv1d``, ``conv3d``, ``depthwise_conv``, ``convtranspose``, ``embedding``,
``bn``, ``norm`` (affine InstanceNorm, GroupNorm, LayerNorm), ``prelu`` (per-channel), ``attention``.
Parameter-free kinds: ``input``, ``act``, ``dropout``, ``identity``, ``pool``, ``unpool``, ``upsample``,
``flatten`` (any reshape), ``pad``, ``add``, ``mul``, ``cat``, ``split``, ``getitem``, ``permute``,
``reduce``, ``constant``, ``other``. Modules with parameters that are none of the above are ``opaque``.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from workbench.adapters import adapter_for

#: Kinds that compute new units from their input (they read other units through weights).
PRODUCER_KINDS = frozenset({"linear", "conv", "conv1d", "conv3d", "depthwise_conv", "convtranspose", "embedding"})
#: Kinds whose units are tied one-to-one to the units they read (same group as their producer).
COUPLED_KINDS = frozenset({"bn", "norm", "prelu", "depthwise_conv", "attention"})
#: Kinds that own units (``parameter``: a parameter used directly in forward, tied to what it meets).
UNIT_KINDS = PRODUCER_KINDS | COUPLED_KINDS | {"parameter"}

_ACT_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.LogSigmoid,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Threshold,
    nn.RReLU,
)
_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
_POOL_MODULES = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.LPPool1d,
    nn.LPPool2d,
)
_UNPOOL_MODULES = (nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d)
_UPSAMPLE_MODULES = (nn.Upsample,)
_PAD_MODULES = (
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ZeroPad3d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ConstantPad3d,
    nn.ReflectionPad1d,
    nn.ReflectionPad2d,
    nn.ReflectionPad3d,
    nn.ReplicationPad1d,
    nn.ReplicationPad2d,
    nn.ReplicationPad3d,
)

ELEMENTWISE_FUNCTIONS = {
    torch.relu,
    torch.relu_,
    F.relu,
    F.relu_,
    F.relu6,
    F.leaky_relu,
    F.leaky_relu_,
    F.elu,
    F.elu_,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    torch.sigmoid,
    F.sigmoid,
    torch.tanh,
    F.tanh,
    F.hardtanh,
    F.hardswish,
    F.hardsigmoid,
    F.softplus,
    F.softsign,
    F.softmax,
    F.log_softmax,
    torch.softmax,
    torch.log_softmax,
    F.threshold,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
    torch.clamp,
    torch.clip,
    torch.abs,
    torch.exp,
    torch.neg,
    operator.neg,
    torch.square,
    torch.sqrt,
}
ELEMENTWISE_METHODS = {
    "relu",
    "relu_",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "clamp",
    "clamp_",
    "clip",
    "clip_",
    "contiguous",
    "expand",
    "expand_as",
    "float",
    "double",
    "half",
    "to",
    "type",
    "type_as",
    "clone",
    "detach",
    "abs",
    "exp",
    "neg",
    "softmax",
    "log_softmax",
    "square",
    "sqrt",
    "exp_",
    "abs_",
}
POOL_FUNCTIONS = {
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
    F.lp_pool1d,
    F.lp_pool2d,
    F.interpolate,
    F.upsample,
    F.upsample_nearest,
    F.upsample_bilinear,
    torch.max_pool1d,
    torch.max_pool2d,
    torch.max_pool3d,
    torch.avg_pool1d,
    F.max_pool2d_with_indices,
    F.max_pool1d_with_indices,
    F.max_pool3d_with_indices,
}
UNPOOL_FUNCTIONS = {F.max_unpool1d, F.max_unpool2d, F.max_unpool3d}
ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub}
MUL_FUNCTIONS = {
    operator.mul,
    operator.imul,
    torch.mul,
    operator.truediv,
    operator.itruediv,
    torch.div,
    torch.maximum,
    torch.minimum,
    operator.pow,
    torch.pow,
}
ADD_METHODS = {"add", "add_", "sub", "sub_"}
MUL_METHODS = {"mul", "mul_", "div", "div_", "maximum", "minimum", "pow"}
CAT_FUNCTIONS = {torch.cat, torch.concat, torch.concatenate}
RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}
RESHAPE_METHODS = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "view_as", "reshape_as"}
PERMUTE_FUNCTIONS = {torch.transpose, torch.permute, torch.swapaxes, torch.movedim}
PERMUTE_METHODS = {"permute", "transpose", "t", "swapaxes", "movedim"}
REDUCE_FUNCTIONS = {torch.mean, torch.sum, torch.amax, torch.amin, torch.max, torch.min}
REDUCE_METHODS = {"mean", "sum", "amax", "amin", "max", "min"}
SPLIT_FUNCTIONS = {torch.split, torch.chunk}
SPLIT_METHODS = {"split", "chunk"}
CONSTANT_FUNCTIONS = {
    torch.zeros,
    torch.ones,
    torch.full,
    torch.empty,
    torch.zeros_like,
    torch.ones_like,
    torch.full_like,
    torch.empty_like,
}
CONSTANT_METHODS = {"new_zeros", "new_ones", "new_full", "new_empty", "zero_"}
NON_TENSOR_METHODS = {"size", "dim", "numel", "item", "tolist"}


def module_kind(module: nn.Module) -> str:
    """The kind of a leaf module (see the module docstring): its layer adapter's kind when it has one
    (:mod:`workbench.adapters`), else the kind of a parameter-free module."""
    adapter = adapter_for(module)
    if adapter is not None:
        return adapter.kind(module)
    if isinstance(module, _ACT_MODULES):
        return "act"
    if isinstance(module, _DROPOUT_MODULES):
        return "dropout"
    if isinstance(module, nn.Identity):
        return "identity"
    if isinstance(module, _POOL_MODULES):
        return "pool"
    if isinstance(module, _UNPOOL_MODULES):
        return "unpool"
    if isinstance(module, _UPSAMPLE_MODULES):
        return "upsample"
    if isinstance(module, (nn.Flatten, nn.Unflatten)):
        return "flatten"
    if isinstance(module, _PAD_MODULES):
        return "pad"
    if any(True for _ in module.parameters()):
        return "opaque"
    return "other"


def function_kind(op: str, target: object) -> str:
    """The kind of a ``call_function`` / ``call_method`` node."""
    if op == "call_method":
        table = (
            (ELEMENTWISE_METHODS, "act"),
            (ADD_METHODS, "add"),
            (MUL_METHODS, "mul"),
            (RESHAPE_METHODS, "flatten"),
            (PERMUTE_METHODS, "permute"),
            (REDUCE_METHODS, "reduce"),
            (SPLIT_METHODS, "split"),
            (CONSTANT_METHODS, "constant"),
            (NON_TENSOR_METHODS, "value"),
        )
        for names, kind in table:
            if target in names:
                return kind
        return "other"
    if target is operator.getitem:
        return "getitem"
    if target is getattr:
        return "value"
    table = (
        (ELEMENTWISE_FUNCTIONS, "act"),
        (POOL_FUNCTIONS, "pool"),
        (UNPOOL_FUNCTIONS, "unpool"),
        (ADD_FUNCTIONS, "add"),
        (MUL_FUNCTIONS, "mul"),
        (CAT_FUNCTIONS, "cat"),
        (RESHAPE_FUNCTIONS, "flatten"),
        (PERMUTE_FUNCTIONS, "permute"),
        (REDUCE_FUNCTIONS, "reduce"),
        (SPLIT_FUNCTIONS, "split"),
        (CONSTANT_FUNCTIONS, "constant"),
    )
    for functions, kind in table:
        if target in functions:
            return kind
    if target is F.pad:
        return "pad"
    return "other"
