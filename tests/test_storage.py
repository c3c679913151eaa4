"""Storage accounting: dense, CSR, and the real encoded streams of transformed layers."""

import pytest
import torch
from torch import nn

from workbench.errors import CompressionError
from workbench.metrics.storage import csr_bits, storage_report, width_for
from workbench.quantize import binary_connect, encode_model, fixed_point, hashed_dct, share_weights
from workbench.sparse import prune


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10))


def test_dense_model_ratio_is_one():
    report = storage_report(_mlp())
    assert report.stored_bytes == report.dense_bytes == 4 * (100 * 50 + 50 + 50 * 10 + 10)
    assert report.ratio == 1.0
    assert [r.scheme for r in report.layers] == ["dense", "dense"]


def test_csr_count_and_index_width():
    w = torch.zeros(3, 300)
    w[0, 5] = w[2, 299] = w[2, 0] = 1.0
    bits, detail = csr_bits(w)
    assert detail["index_bits"] == 16 and detail["pointer_bits"] == 8  # 300 columns need 16 bits
    assert bits == 3 * (32 + 16) + 4 * 8
    assert width_for(255) == 8 and width_for(256) == 16
    model = prune(_mlp(), rate=0.9)
    report = storage_report(model)
    row = report.layers[0]
    assert row.scheme == "csr" and row.nonzero == 500
    assert row.weight_bits == 500 * (32 + 8) + 51 * 16
    assert storage_report(model, format="dense").layers[0].scheme == "dense"


def test_shared_huffman_storage_comes_from_the_real_streams():
    model = share_weights(prune(_mlp(), rate=0.9), bits=4, index_bits=4)
    report = storage_report(model)
    encoded = encode_model(model)
    for row in report.layers:
        enc = encoded[row.name]
        assert row.scheme == "shared+huffman"
        assert row.weight_bits == enc.huffman_bits
        stream_bytes = len(enc.weight_stream.data) + len(enc.index_stream.data)
        assert row.weight_bits / 8 >= stream_bytes - 2
        assert row.detail["fixed_length_bits"] == enc.fixed_bits
    assert report.ratio > 15
    assert report.stored_bytes < storage_report(prune(_mlp(), rate=0.9)).stored_bytes


def test_binary_fixed_and_hashed_storage():
    binary = storage_report(binary_connect(_mlp()))
    assert binary.layers[0].weight_bits == 5000 and binary.layers[0].bits_per_weight == 1.0
    fixed = storage_report(fixed_point(_mlp(), weight_bits=6, act_bits=None))
    assert fixed.layers[0].weight_bits == 5000 * 6 + 8
    conv = nn.Sequential(nn.Conv2d(4, 8, 3))
    hashed = storage_report(hashed_dct(conv, compression=0.25))
    assert hashed.layers[0].weight_bits == 72 * 32 + 64
    assert hashed.dense_bytes == 4 * (8 * 4 * 9 + 8)


def test_other_parameters_and_batchnorm_are_counted():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    report = storage_report(model)
    assert report.other_params == 4 * 4  # weight, bias, running mean, running var
    assert report.to_dict()["stored_bytes"] == report.stored_bytes
    assert "total" in report.table()


def test_bad_format_and_value_bits():
    with pytest.raises(CompressionError, match="format"):
        storage_report(_mlp(), format="coo")
    with pytest.raises(CompressionError, match="value_bits"):
        storage_report(_mlp(), value_bits=0)


def test_fixed_point_biases_are_on_grid_and_counted_at_their_bits():
    from workbench.quantize import fixed_point_biases

    model = _mlp()
    dense = storage_report(model)
    quantized = fixed_point_biases(model, bits=6)
    report = storage_report(quantized)
    for row, module in zip(report.layers, (quantized[0], quantized[2])):
        assert row.bias_bits == module.bias.numel() * 6 + 8
        frac = module.parametrizations.bias[0].frac_bits
        k = module.bias.detach() * 2.0**frac
        assert torch.equal(k, torch.round(k)) and k.abs().max() <= 31
        assert row.weight_bits == dense.layers[0 if row.name == "0" else 1].weight_bits
    assert report.dense_bytes == dense.dense_bytes  # the dense baseline still counts fp32 biases
    assert report.stored_bits == dense.stored_bits - (50 + 10) * (32 - 6) + 2 * 8
    assert torch.equal(model[0].bias, _mlp()[0].bias)  # a copy was changed, not the model
    with pytest.raises(CompressionError, match="bias_bits"):
        fixed_point_biases(model, bits={"linear": 1})
