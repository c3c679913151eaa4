"""Quantization and coding transforms: each is ``transform(model, ...) -> model``.

- weight sharing / trained quantization: :func:`share_weights`, :class:`SharedWeight`, :func:`kmeans_1d`
- Huffman-coded shared weights: :func:`encode_model`, :func:`huffman_code` (Deep Compression itself is a
  pipeline: ``workbench.pipeline.DeepCompression``)
- Huffman coding: :class:`HuffmanCode`; layer format: :func:`encode_layer`, :func:`decode_layer`
- soft weight-sharing: :class:`GaussianMixturePrior`, :func:`soft_weight_sharing`, :func:`quantize_to_prior`
- fixed point: :func:`fixed_point`, :func:`fixed_point_biases`, :func:`iterative_fixed_point`, :func:`quantize_fixed`
- binary / ternary / power of two: :func:`binary_connect`, :func:`binarize_network`, :func:`ternary_connect`,
  :func:`power_of_two`, :func:`quantized_backprop`, :class:`ClipHook`
- frequency domain: :func:`dct_compress` (CNNpack), :func:`hashed_dct` (FreshNets), :func:`dct_kernels`
"""

from workbench.quantize.binary import (
    BinaryWeight,
    ClipHook,
    PowerOfTwoWeight,
    QuantizedBackprop,
    SignActivation,
    TernaryWeight,
    binarize_network,
    binary_connect,
    pow2_quantize,
    power_of_two,
    quantized_backprop,
    ternary_connect,
)
from workbench.quantize.coding import EncodedLayer, decode_layer, encode_layer, relative_gaps
from workbench.quantize.dct import dct_kernels, idct_kernels
from workbench.quantize.fixed_point import (
    ActivationQuantizer,
    FixedPointWeight,
    choose_frac_bits,
    fixed_point,
    fixed_point_biases,
    iterative_fixed_point,
    quantize_fixed,
)
from workbench.quantize.frequency import HashedDCTWeight, dct_compress, hashed_dct
from workbench.quantize.huffman import EncodedStream, HuffmanCode, entropy_bits
from workbench.quantize.sharing import SharedWeight, encode_model, huffman_code, kmeans_1d, share_weights
from workbench.quantize.soft_sharing import GaussianMixturePrior, quantize_to_prior, soft_weight_sharing

__all__ = [
    "ActivationQuantizer",
    "BinaryWeight",
    "ClipHook",
    "EncodedLayer",
    "EncodedStream",
    "FixedPointWeight",
    "GaussianMixturePrior",
    "HashedDCTWeight",
    "HuffmanCode",
    "PowerOfTwoWeight",
    "QuantizedBackprop",
    "SharedWeight",
    "SignActivation",
    "TernaryWeight",
    "binarize_network",
    "binary_connect",
    "choose_frac_bits",
    "dct_compress",
    "dct_kernels",
    "decode_layer",
    "encode_layer",
    "huffman_code",
    "encode_model",
    "entropy_bits",
    "fixed_point",
    "fixed_point_biases",
    "hashed_dct",
    "idct_kernels",
    "iterative_fixed_point",
    "kmeans_1d",
    "pow2_quantize",
    "power_of_two",
    "quantize_fixed",
    "quantize_to_prior",
    "quantized_backprop",
    "relative_gaps",
    "share_weights",
    "soft_weight_sharing",
    "ternary_connect",
]
