"""MultiheadAttention, the Transformer layers and stacks, CharTransformer: checker and ONNX
Runtime agree with handgrad (any batch size; any length for CharTransformer). Attention
graphs are not imported: load names the first node it cannot map."""

from __future__ import annotations

import numpy as np
import pytest

import handgrad as hg
import handgrad.onnx
from handgrad import models

from .roundtrip import check_roundtrip


def _f(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


MHA = [
    ("time-major", dict(), False, (8, 8)),
    ("batch-first-kdim-vdim-no-bias", dict(batch_first=True, kdim=3, vdim=5, bias=False), True,
     (3, 5)),
]


@pytest.mark.parametrize("kwargs, batch_first, kv", [c[1:] for c in MHA], ids=[c[0] for c in MHA])
def test_multihead_attention(kwargs, batch_first, kv, tmp_path):
    rng = np.random.default_rng(0)
    layer = hg.MultiheadAttention(8, 2, rng=0, **kwargs)

    def args(n):
        def shaped(length, size):
            return _f(rng, n, length, size) if batch_first else _f(rng, length, n, size)
        return shaped(5, 8), shaped(6, kv[0]), shaped(6, kv[1])

    check_roundtrip(layer, args(2), tmp_path, [args(3)], load_back=False)


def test_multihead_attention_unbatched(tmp_path):
    rng = np.random.default_rng(1)
    layer = hg.MultiheadAttention(8, 4, rng=1)
    check_roundtrip(layer, (_f(rng, 5, 8), _f(rng, 6, 8), _f(rng, 6, 8)), tmp_path,
                    load_back=False)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_and_decoder_layers(norm_first, activation, tmp_path):
    rng = np.random.default_rng(2)
    enc = hg.TransformerEncoderLayer(8, 2, 16, activation=activation, batch_first=True,
                                     norm_first=norm_first, rng=2)
    check_roundtrip(enc, _f(rng, 2, 5, 8), tmp_path, [_f(rng, 4, 5, 8)], load_back=False)
    dec = hg.TransformerDecoderLayer(8, 2, 16, activation=activation, norm_first=norm_first,
                                     rng=3)
    check_roundtrip(dec, (_f(rng, 5, 2, 8), _f(rng, 6, 2, 8)), tmp_path / "..",
                    [(_f(rng, 5, 3, 8), _f(rng, 6, 3, 8))], load_back=False)


def test_stacks_and_transformer(tmp_path):
    rng = np.random.default_rng(4)
    stack = hg.TransformerEncoder(hg.TransformerEncoderLayer(8, 2, 16, rng=4), 2,
                                  norm=hg.LayerNorm(8))
    check_roundtrip(stack, _f(rng, 5, 2, 8), tmp_path, [_f(rng, 5, 1, 8)], load_back=False)
    decoder = hg.TransformerDecoder(hg.TransformerDecoderLayer(8, 2, 16, rng=5), 2)
    check_roundtrip(decoder, (_f(rng, 4, 2, 8), _f(rng, 5, 2, 8)), tmp_path / "..",
                    load_back=False)
    model = hg.Transformer(8, 2, 2, 2, 16, batch_first=True, rng=6)
    proto = hg.onnx.export(model, (_f(rng, 2, 5, 8), _f(rng, 2, 4, 8)),
                           tmp_path / "t.onnx")
    names = {t.name for t in proto.graph.initializer}
    assert "encoder.layers.1.self_attn.in_proj_weight" in names
    assert "decoder.layers.0.multihead_attn.out_proj.weight" in names
    check_roundtrip(model, (_f(rng, 2, 5, 8), _f(rng, 2, 4, 8)), tmp_path / "..",
                    [(_f(rng, 3, 5, 8), _f(rng, 3, 4, 8))], load_back=False)


@pytest.mark.parametrize("norm_first", [True, False])
def test_char_transformer_any_length(norm_first, tmp_path):
    rng = np.random.default_rng(7)
    model = models.CharTransformer(11, 16, 2, 2, 32, max_len=12, norm_first=norm_first, rng=7)
    check_roundtrip(model, rng.integers(0, 11, (2, 7)), tmp_path,
                    [rng.integers(0, 11, (3, 12)), rng.integers(0, 11, (1, 1))],
                    dynamic_axes={1: "T"}, load_back=False)


def test_attention_graphs_are_not_imported(tmp_path):
    rng = np.random.default_rng(8)
    hg.onnx.export(hg.TransformerEncoderLayer(8, 2, 16), _f(rng, 5, 2, 8), tmp_path / "e.onnx")
    with pytest.raises(hg.onnx.UnsupportedGraphError, match="handgrad.onnx.load: node"):
        hg.onnx.load(tmp_path / "e.onnx")


@pytest.mark.parametrize("kwargs, message", [
    (dict(add_bias_kv=True), "add_bias_kv and add_zero_attn"),
    (dict(add_zero_attn=True), "add_bias_kv and add_zero_attn"),
])
def test_unexported_attention_settings(kwargs, message, tmp_path):
    layer = hg.MultiheadAttention(8, 2, **kwargs)
    x = np.zeros((5, 2, 8), np.float32)
    with pytest.raises(hg.onnx.UnsupportedLayerError, match=message):
        hg.onnx.export(layer, (x, x, x), tmp_path / "m.onnx")
