"""Sparse networks: magnitude pruning with masks, dynamic network surgery, structured sparsity.

- :func:`prune`, :func:`magnitude_masks`, :func:`iterative_prune` -- Han et al. 2015
- :class:`Masks`, :func:`get_masks`, :func:`set_masks` -- pruning masks as weight parametrizations
  (:class:`WeightMask`): pruned weights stay zero in any training and are saved with the model
- :func:`dynamic_surgery`, :class:`SurgeryHook`, :func:`finish_surgery` -- Guo et al. 2016
- :class:`GroupLasso`, :func:`structured_report` -- Wen et al. 2016
"""

from workbench.sparse.dynamic_surgery import (
    SurgeryHook,
    SurgeryMask,
    dense_weight,
    dynamic_surgery,
    finish_surgery,
    surgery_step,
)
from workbench.sparse.group_lasso import GROUP_KINDS, GroupLasso, StructuredReport, group_norms, structured_report
from workbench.sparse.layers import bake, weight_layers
from workbench.sparse.magnitude import iterative_prune, magnitude_masks, prune
from workbench.sparse.masks import Masks, WeightMask, get_masks, set_masks

__all__ = [
    "GROUP_KINDS",
    "GroupLasso",
    "Masks",
    "WeightMask",
    "StructuredReport",
    "SurgeryHook",
    "SurgeryMask",
    "bake",
    "dense_weight",
    "dynamic_surgery",
    "finish_surgery",
    "get_masks",
    "group_norms",
    "iterative_prune",
    "magnitude_masks",
    "prune",
    "set_masks",
    "structured_report",
    "surgery_step",
    "weight_layers",
]
