"""Transformer layers and stacks: float64 gradient checks under hypothesis, names, contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import handgrad as hg
from handgrad.layer import Layer
from tests.helpers import arrays, check_layer_contract


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny shapes: one BLAS thread is fastest and avoids contention on a busy CPU."""
    with threadpool_limits(1):
        yield

class TwoInputs(Layer):
    """Test harness: a flat input split into (tgt, memory) or (src, tgt), so gradcheck
    checks the gradient of both; the wrapped layer's backward returns a pair."""

    def __init__(self, inner, shapes, **kwargs):
        super().__init__()
        self.inner, self.shapes, self.kwargs = inner, shapes, kwargs
        self.split = int(np.prod(shapes[0]))

    def forward(self, flat):
        a, b = flat[:self.split].reshape(self.shapes[0]), flat[self.split:].reshape(self.shapes[1])
        return self.inner(a, b, **self.kwargs)

    def backward(self, grad):
        return np.concatenate([g.ravel() for g in self.inner.backward(grad)])


def _layout(batched, batch_first, n, length, features):
    if not batched:
        return (length, features)
    return (n, length, features) if batch_first else (length, n, features)


layer_options = st.fixed_dictionaries({
    "nhead": st.sampled_from([1, 2]),
    "norm_first": st.booleans(),
    "activation": st.sampled_from(["relu", "gelu"]),
    "batch_first": st.booleans(),
    "bias": st.booleans(),
    "dropout": st.sampled_from([0.0, 0.0, 0.2]),
})


def _kpm(rng, batched, n, length):
    kpm = np.zeros((n, length) if batched else (length,), dtype=bool)
    kpm[..., -1] = length > 1 and bool(rng.integers(2))  # the last key padded, sometimes
    return kpm


@given(options=layer_options, L=st.integers(1, 4), N=st.integers(1, 2), batched=st.booleans(),
       masked=st.booleans(), data=st.data())
def test_encoder_layer_gradients(check_gradients, options, L, N, batched, masked, data):
    E = 2 * options["nhead"]
    layer = hg.TransformerEncoderLayer(E, dim_feedforward=6, dtype=np.float64, rng=0, **options)
    x = data.draw(arrays(_layout(batched, options["batch_first"], N, L, E)))
    kwargs = {}
    if masked:
        rng = np.random.default_rng(data.draw(st.integers(0, 99)))
        kwargs = dict(src_mask=np.triu(np.ones((L, L), dtype=bool), 1), is_causal=True,
                      src_key_padding_mask=_kpm(rng, batched, N, L))
    check_gradients(layer, x, **kwargs)


@given(options=layer_options, T=st.integers(1, 4), S=st.integers(1, 4), N=st.integers(1, 2),
       batched=st.booleans(), masked=st.booleans(), data=st.data())
def test_decoder_layer_gradients(check_gradients, options, T, S, N, batched, masked, data):
    E = 2 * options["nhead"]
    layer = hg.TransformerDecoderLayer(E, dim_feedforward=4, dtype=np.float64, rng=0, **options)
    shapes = [_layout(batched, options["batch_first"], N, length, E) for length in (T, S)]
    kwargs = {}
    if masked:
        rng = np.random.default_rng(data.draw(st.integers(0, 99)))
        kwargs = dict(tgt_mask=hg.Transformer.generate_square_subsequent_mask(T, np.float64),
                      memory_mask=rng.standard_normal((T, S)),
                      tgt_key_padding_mask=_kpm(rng, batched, N, T).astype(np.float64) * -1e9,
                      memory_key_padding_mask=_kpm(rng, batched, N, S).astype(np.float64) * -1e9)
    flat = data.draw(arrays((sum(int(np.prod(s)) for s in shapes),)))
    check_gradients(TwoInputs(layer, shapes, **kwargs), flat)


@pytest.mark.parametrize("norm_first,with_norm", [(False, True), (True, False)])
def test_encoder_stack_gradients(check_gradients, norm_first, with_norm):
    # two layers with dropout (each copy its own masks) and the final norm; the layer
    # itself is checked under hypothesis above
    layer = hg.TransformerEncoderLayer(4, 2, dim_feedforward=4, dropout=0.2,
                                       norm_first=norm_first, dtype=np.float64, rng=1)
    norm = hg.LayerNorm(4, dtype=np.float64) if with_norm else None
    encoder = hg.TransformerEncoder(layer, 2, norm=norm)
    mask = hg.Transformer.generate_square_subsequent_mask(3, np.float64)
    x = np.random.default_rng(int(norm_first)).standard_normal((3, 2, 4))
    check_gradients(encoder, x, mask=mask)


@pytest.mark.parametrize("norm_first,batch_first", [(False, False), (True, True)])
def test_transformer_gradients(check_gradients, norm_first, batch_first):
    # the whole model once per layout (its layers are checked under hypothesis above)
    model = hg.Transformer(2, 2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=3,
                           dropout=0.1, norm_first=norm_first, batch_first=batch_first,
                           dtype=np.float64, rng=2)
    shapes = [_layout(True, batch_first, 2, length, 2) for length in (3, 2)]
    flat = np.random.default_rng(0).standard_normal(sum(int(np.prod(s)) for s in shapes))
    mask = hg.Transformer.generate_square_subsequent_mask(2, np.float64)
    check_gradients(TwoInputs(model, shapes, tgt_mask=mask), flat)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encoder_layer_contract(dtype):
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(dtype)
    check_layer_contract(
        lambda: hg.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, dtype=dtype,
                                           rng=0), x)


def test_state_dict_names_follow_pytorch():
    layer = hg.TransformerDecoderLayer(4, 2, dim_feedforward=8)
    assert list(layer.state_dict()) == [
        "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
        "self_attn.out_proj.bias", "multihead_attn.in_proj_weight",
        "multihead_attn.in_proj_bias", "multihead_attn.out_proj.weight",
        "multihead_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
        "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
        "norm3.weight", "norm3.bias"]
    model = hg.Transformer(4, 2, 2, 1, 8)
    names = list(model.state_dict())
    assert "encoder.layers.1.self_attn.in_proj_weight" in names
    assert "encoder.norm.weight" in names and "decoder.norm.bias" in names
    assert "decoder.layers.0.multihead_attn.out_proj.weight" in names
    assert not any(n.startswith("decoder.layers.1") for n in names)
    no_bias = hg.TransformerEncoderLayer(4, 2, 8, bias=False)
    assert not any(n.endswith("bias") for n in no_bias.state_dict())


def test_stack_copies_start_equal_and_drop_independently():
    def build():
        return hg.TransformerEncoder(hg.TransformerEncoderLayer(4, 2, 8, dropout=0.5, rng=3), 2)

    encoder, twin = build(), build()
    a, b = encoder.layers[0], encoder.layers[1]
    np.testing.assert_array_equal(a.linear1.weight.data, b.linear1.weight.data)
    assert a.linear1.weight is not b.linear1.weight
    x = np.ones((5, 4, 8), dtype=np.float32)
    mask_a, mask_b = a.dropout(x), b.dropout(x)
    assert not np.array_equal(mask_a, mask_b)
    # seeded: the same template seed gives the same masks in every copy
    np.testing.assert_array_equal(twin.layers[0].dropout(x), mask_a)
    np.testing.assert_array_equal(twin.layers[1].dropout(x), mask_b)


def test_transformer_xavier_init_and_causal_mask():
    model = hg.Transformer(8, 2, 1, 1, 16, rng=0)
    w = model.encoder.layers[0].linear1.weight.data
    bound = np.sqrt(6 / (8 + 16))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    mask = hg.Transformer.generate_square_subsequent_mask(3)
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]])


def test_eval_mode_is_deterministic_and_training_dropout_is_not():
    model = hg.TransformerEncoderLayer(4, 2, 8, dropout=0.5, rng=0)
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    assert not np.array_equal(model(x), model(x))
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="activation 'relu', 'gelu'"):
        hg.TransformerEncoderLayer(4, 2, activation="tanh")
    with pytest.raises(ValueError, match="divisible by num_heads"):
        hg.TransformerEncoderLayer(6, 4)
    with pytest.raises(TypeError, match="expected a TransformerEncoderLayer"):
        hg.TransformerEncoder(hg.TransformerDecoderLayer(4, 2), 2)
    with pytest.raises(ValueError, match="positive integer num_layers"):
        hg.TransformerEncoder(hg.TransformerEncoderLayer(4, 2), 0)
    layer = hg.TransformerEncoderLayer(4, 2, 8)
    with pytest.raises(ValueError, match=r"expected src of shape \(L, N, 4\)"):
        layer(np.zeros((3, 2, 5), dtype=np.float32))
    with pytest.raises(RuntimeError, match="no forward cached"):
        layer.backward(np.zeros((3, 2, 4), dtype=np.float32))
    model = hg.Transformer(4, 2, 1, 1, 8)
    with pytest.raises(ValueError, match="one batch size"):
        model(np.zeros((3, 2, 4), np.float32), np.zeros((3, 1, 4), np.float32))
    with pytest.raises(ValueError, match="d_model=4"):
        model(np.zeros((3, 2, 4), np.float32), np.zeros((3, 2, 3), np.float32))
    with pytest.raises(ValueError, match="is_causal=True needs attn_mask"):
        hg.TransformerEncoder(layer, 1)(np.zeros((3, 2, 4), np.float32), is_causal=True)
