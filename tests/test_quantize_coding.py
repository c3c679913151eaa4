"""Huffman coding, Deep Compression's layer format, k-means weight sharing and trained quantization."""

import numpy as np
import pytest
import torch
from torch import nn
from toy import STEADY

from workbench.edits import note
from workbench.errors import CompressionError
from workbench.quantize import (
    HuffmanCode,
    decode_layer,
    encode_layer,
    encode_model,
    entropy_bits,
    kmeans_1d,
    relative_gaps,
    share_weights,
)
from workbench.sparse import prune
from workbench.train import fit


@pytest.mark.parametrize("symbols", [[], [7], [3, 3, 3, 3], [0, 1], list(range(40)) * 3])
def test_huffman_round_trip_edge_cases(symbols):
    code = HuffmanCode.from_symbols(symbols)
    stream = code.encode(symbols)
    assert code.decode(stream).tolist() == list(symbols)
    if len(set(symbols)) == 1:
        assert stream.n_bits == len(symbols)  # one symbol: one bit each


def test_huffman_beats_fixed_length_and_meets_entropy_bound():
    rng = np.random.default_rng(0)
    symbols = rng.choice(16, size=5000, p=np.r_[0.5, 0.2, 0.1, [0.2 / 13] * 13])
    code = HuffmanCode.from_symbols(symbols)
    stream = code.encode(symbols)
    assert np.array_equal(code.decode(stream), symbols)
    assert stream.n_bits < 4 * symbols.size  # fixed length needs 4 bits
    h = entropy_bits(symbols)
    assert h <= stream.n_bits <= h + symbols.size  # within one bit per symbol of the entropy
    assert len(stream.data) == -(-stream.n_bits // 8)
    # canonical: lengths never decrease as frequency decreases
    assert code.lengths[0] <= code.lengths[1] <= code.lengths[5]


def test_huffman_rejects_unknown_symbol():
    with pytest.raises(CompressionError):
        HuffmanCode.from_symbols([1, 2]).encode([3])


def test_relative_index_fillers_follow_the_paper():
    symbols, filler = relative_gaps(np.array([0, 1, 9, 30]), index_bits=3)
    # gaps 1, 1, 8, 21; 21 > 8 needs two fillers of 8 then gap 5
    assert symbols.tolist() == [0, 0, 7, 7, 7, 4]
    assert filler.tolist() == [False, False, False, True, True, False]


def test_layer_encoding_round_trip_and_sizes():
    rng = np.random.default_rng(1)
    mask = rng.random((40, 60)) < 0.08
    codebook = np.array([0.0, -0.3, 0.1, 0.4], dtype=np.float32)
    codes = rng.integers(1, 4, size=mask.shape)
    enc = encode_layer(codes, codebook, 2, mask, index_bits=4)
    assert np.array_equal(decode_layer(enc), np.where(mask, codebook[codes], 0).astype(np.float32))
    assert enc.n_entries == mask.sum() + enc.n_fillers
    expected = (
        enc.weight_stream.n_bits
        + enc.index_stream.n_bits
        + enc.weight_code.table_bits()
        + enc.index_code.table_bits()
        + 4 * 32
        + 128
    )
    assert enc.huffman_bits == expected
    with pytest.raises(CompressionError, match="zero"):
        encode_layer(codes, codebook[::-1].copy(), 2, mask, index_bits=4)


def test_kmeans_inits_and_bounds():
    x = np.r_[np.full(50, -1.0), np.full(50, 0.5), np.full(50, 2.0)] + np.random.default_rng(0).normal(0, 0.01, 150)
    for init in ("linear", "density", "random"):
        c, labels = kmeans_1d(x, 3, init=init, random_state=0)
        assert np.allclose(np.sort(c), [-1, 0.5, 2], atol=0.05)
        assert np.allclose(c[labels], x, atol=0.05)
    with pytest.raises(CompressionError, match="init"):
        kmeans_1d(x, 3, init="kmeans++")


def _toy(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(200, 10, generator=g)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
    return model, (x, y)


def test_sharing_limits_values_and_trained_quantization_keeps_clusters():
    model, data = _toy()
    pruned = prune(model, rate=0.7)
    shared = share_weights(pruned, bits={"0": 3, "linear": 2})
    first = shared[0]
    assert torch.unique(first.weight).numel() <= 2**3
    assert torch.unique(shared[2].weight).numel() <= 2**2
    p = first.parametrizations.weight[0]
    assert first.parametrizations.weight.original.numel() == 2**3 - 1  # zero is the 8th value
    index_before = p.index.clone()
    centroids_before = first.parametrizations.weight.original.detach().clone()
    # gradient of a centroid = sum of gradients of its weights
    x, y = data
    loss = nn.functional.cross_entropy(shared(x), y)
    (gw,) = torch.autograd.grad(loss, [first.parametrizations.weight.original], retain_graph=True)
    fit(shared, data, epochs=5, lr=1e-2, **STEADY)  # 20 steps
    centroids_after = first.parametrizations.weight.original.detach()
    assert torch.equal(p.index, index_before)
    assert not torch.allclose(centroids_after, centroids_before)
    w = first.weight.detach()
    mask = p.mask
    assert torch.all(w[~mask] == 0)
    assert torch.allclose(w[mask], centroids_after[p.index[mask]])
    assert gw.abs().sum() > 0


def test_centroid_gradient_is_the_sum_of_member_gradients():
    layer = nn.Linear(6, 4)
    share_weights(nn.Sequential(layer), bits=2, inplace=True)
    original = layer.parametrizations.weight.original
    x = torch.randn(5, 6)
    out = layer(x).pow(2).sum()
    out.backward()
    # gradient w.r.t. each weight: dL/dW = 2 * y^T x
    with torch.no_grad():
        y = layer(x)
        grad_w = 2 * (y - layer.bias).T @ x + 2 * layer.bias[:, None] * x.sum(0)[None, :]
    idx = layer.parametrizations.weight[0].index
    expected = torch.zeros_like(original).index_add_(0, idx.flatten(), grad_w.flatten())
    assert torch.allclose(original.grad, expected, atol=1e-4)


@pytest.mark.parametrize("bits", [0, 17, 2.5, "8"])
def test_bad_bits_names_layer_and_parameter(bits):
    model, _ = _toy()
    with pytest.raises(CompressionError, match=r"bits for layer '0'"):
        share_weights(model, bits=bits)


def test_encode_model_decodes_to_the_weights():
    model, _ = _toy()
    shared = share_weights(prune(model, rate=0.8), bits=4, index_bits=3)
    encoded = encode_model(shared)
    assert set(encoded) == {"0", "2"}
    for name, enc in encoded.items():
        assert np.array_equal(decode_layer(enc), dict(shared.named_modules())[name].weight.detach().numpy())


def test_deep_compression_pipeline_steps_and_streams():
    from workbench.pipeline import DeepCompression

    model, data = _toy()
    pipeline = DeepCompression(
        prune_rounds=[0.5, 0.8],
        bits=3,
        index_bits=4,
        retrain_epochs=1,
        quant_epochs=1,
        fit_kwargs={"quiet": True, "lr": 1e-2},
    )
    assert [step["do"] for step in pipeline.steps] == [
        "prune",
        "retrain",
        "prune",
        "retrain",
        "share",
        "retrain",
        "huffman",
    ]
    assert [step.get("rate") for step in pipeline.steps[:3:2]] == [0.5, 0.8] and pipeline.steps[1]["lr"] == 1e-2
    out = pipeline.run(model, data, val_data=data)
    assert len(pipeline.log) == 7 and "val_accuracy" in pipeline.log[-1]
    for name in ("0", "2"):
        layer = dict(out.named_modules())[name]
        assert torch.unique(layer.weight).numel() <= 8
        assert (layer.weight == 0).float().mean().item() == pytest.approx(0.8, abs=0.02)
        assert np.array_equal(decode_layer(note(out, "encoded")[name]), layer.weight.detach().numpy())


def test_deep_compression_distils_from_the_input_and_quantizes_biases():
    from workbench.metrics.storage import storage_report
    from workbench.pipeline import DeepCompression

    model, data = _toy()
    reference = [p.detach().clone() for p in model.parameters()]
    options = dict(
        prune_rounds=[0.5, 0.8],
        bits=3,
        index_bits=4,
        retrain_epochs=1,
        quant_epochs=1,
        fit_kwargs={"quiet": True, "lr": 1e-2},
    )
    plain = DeepCompression(**options).run(model, data)
    pipeline = DeepCompression(**options, bias_bits=8, teacher="input", distill_options={"temperature": 2.0})
    assert [step["do"] for step in pipeline.steps][4:6] == ["share", "fixed-point-biases"]
    out = pipeline.run(model, data)
    assert all(torch.equal(a, b) for a, b in zip(reference, model.parameters()))  # the input is untouched
    assert not any(torch.equal(a.weight, b.weight) for a, b in ((out[0], plain[0]), (out[2], plain[2])))
    with_bias, without = storage_report(out), storage_report(plain)
    assert [r.bias_bits for r in with_bias.layers] == [r.bias.numel() * 8 + 8 for r in (out[0], out[2])]
    assert with_bias.stored_bits < without.stored_bits
    with pytest.raises(CompressionError, match="teacher"):
        DeepCompression(**options, teacher="original").run(model, data)
