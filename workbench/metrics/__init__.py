"""Cost and quality figures of a model: parameters, multiply-adds, stored bytes, latency, accuracy and mIoU.

- :func:`count_params`, :func:`count_macs`, :func:`param_bytes`, :func:`dense_bytes` -- static size and cost
- :func:`measure_latency` -- median and interquartile range of the forward time
- :func:`profile` -- all of them at once, as a :class:`Profile`
- :func:`confusion_matrix`, :func:`mean_iou`, :func:`pixel_accuracy`, :func:`accuracy` -- quality scores
- :func:`storage_report` -- stored bytes per layer (dense, CSR, or the layer's own quantized / Huffman
  coded scheme) and the compression ratio against dense fp32
- :func:`format_table` -- an aligned text table with human-friendly numbers
- :func:`count_sparse_macs`, :func:`layer_macs` -- multiply-adds when zero weights are skipped
"""

from __future__ import annotations

from workbench.metrics.counting import count_macs, count_params, dense_bytes, param_bytes
from workbench.metrics.forward import checked_forward, evaluation_mode
from workbench.metrics.latency import measure_latency
from workbench.metrics.profiling import Profile, profile
from workbench.metrics.scores import IGNORE_INDEX, accuracy, confusion_matrix, iou_per_class, mean_iou, pixel_accuracy
from workbench.metrics.sparse_counting import LayerMacs, count_sparse_macs, layer_macs
from workbench.metrics.storage import LayerStorage, StorageReport, WeightStorage, csr_bits, storage_report, width_for
from workbench.metrics.table import format_bytes, format_count, format_table

__all__ = [
    "count_params",
    "count_macs",
    "param_bytes",
    "dense_bytes",
    "measure_latency",
    "Profile",
    "profile",
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
    "pixel_accuracy",
    "accuracy",
    "IGNORE_INDEX",
    "format_table",
    "format_count",
    "format_bytes",
    "checked_forward",
    "evaluation_mode",
    "storage_report",
    "StorageReport",
    "LayerStorage",
    "WeightStorage",
    "csr_bits",
    "width_for",
    "count_sparse_macs",
    "layer_macs",
    "LayerMacs",
]
