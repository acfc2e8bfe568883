"""MultiheadAttention: float64 gradient checks under hypothesis, masks, layouts, contract."""

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

class QKV(Layer):
    """Test harness: one flat input split into query, key and value; the output and the
    attention weights flattened into one vector, so that gradcheck checks all three input
    gradients and the gradient through the returned weights."""

    def __init__(self, mha, shapes, need_weights=True, **kwargs):
        super().__init__()
        self.mha, self.shapes, self.kwargs = mha, shapes, kwargs
        self.need_weights = need_weights
        self.sizes = [int(np.prod(s)) for s in shapes]

    def forward(self, flat):
        q, k, v = (part.reshape(s) for part, s in
                   zip(np.split(flat, np.cumsum(self.sizes)[:2]), self.shapes))
        y, w = self.mha(q, k, v, need_weights=self.need_weights, **self.kwargs)
        self.out_shapes = (y.shape, None if w is None else w.shape)
        return np.concatenate([y.ravel(), w.ravel()]) if w is not None else y.ravel()

    def backward(self, grad):
        y_shape, w_shape = self.out_shapes
        n = int(np.prod(y_shape))
        grad_w = None if w_shape is None else grad[n:].reshape(w_shape)
        grads = self.mha.backward(grad[:n].reshape(y_shape), grad_w)
        return np.concatenate([g.ravel() for g in grads])


class SelfAttention(Layer):
    """Test harness: ``mha(x, x, x)[0]``; backward sums the three input gradients."""

    def __init__(self, mha, **kwargs):
        super().__init__()
        self.mha, self.kwargs = mha, kwargs

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False, **self.kwargs)[0]

    def backward(self, grad):
        gq, gk, gv = self.mha.backward(grad)
        return gq + gk + gv


def _layout(batched, batch_first, n, length, features):
    if not batched:
        return (length, features)
    return (n, length, features) if batch_first else (length, n, features)


@st.composite
def attention_cases(draw):
    heads = draw(st.sampled_from([1, 2]))
    E = heads * draw(st.integers(1, 8 // heads))
    L, S, N = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 2))
    batched, batch_first = draw(st.booleans()), draw(st.booleans())
    kdim = draw(st.sampled_from([None, 3]))
    vdim = draw(st.sampled_from([None, 2]))
    options = dict(add_bias_kv=draw(st.booleans()), add_zero_attn=draw(st.booleans()),
                   bias=draw(st.booleans()), kdim=kdim, vdim=vdim, batch_first=batch_first)
    masks = {}
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = N if batched else 1
    attn_kind = draw(st.sampled_from([None, "bool2d", "float2d", "bool3d", "float3d"]))
    if attn_kind is not None:
        shape = (L, S) if attn_kind.endswith("2d") else ((n * heads) if batched else heads, L, S)
        if attn_kind.startswith("bool"):
            masks["attn_mask"] = rng.random(shape) < 0.3
        else:
            masks["attn_mask"] = rng.standard_normal(shape)
    kpm_kind = draw(st.sampled_from([None, "bool", "float"]))
    if kpm_kind is not None:
        shape = (N, S) if batched else (S,)
        kpm = rng.random(shape) < 0.3
        masks["key_padding_mask"] = kpm if kpm_kind == "bool" else np.where(kpm, -np.inf, 0.5)
    shapes = [_layout(batched, batch_first, N, L, E),
              _layout(batched, batch_first, N, S, kdim or E),
              _layout(batched, batch_first, N, S, vdim or E)]
    average = draw(st.booleans())
    return E, heads, options, masks, shapes, average


@given(case=attention_cases(), data=st.data())
def test_multihead_attention_gradients(check_gradients, case, data):
    E, heads, options, masks, shapes, average = case
    mha = hg.MultiheadAttention(E, heads, dtype=np.float64, rng=0, **options)
    flat = data.draw(arrays((sum(int(np.prod(s)) for s in shapes),)))
    check_gradients(QKV(mha, shapes, average_attn_weights=average, **masks), flat)


@given(heads=st.sampled_from([1, 2]), L=st.integers(1, 4), N=st.integers(1, 2),
       batch_first=st.booleans(), batched=st.booleans(), causal=st.booleans(), data=st.data())
def test_self_attention_gradients_are_the_sum_of_three(check_gradients, heads, L, N,
                                                       batch_first, batched, causal, data):
    E = 2 * heads
    mha = hg.MultiheadAttention(E, heads, batch_first=batch_first, dtype=np.float64, rng=1)
    kwargs = {}
    if causal:
        kwargs = dict(attn_mask=hg.Transformer.generate_square_subsequent_mask(L, np.float64),
                      is_causal=True)
    x = data.draw(arrays(_layout(batched, batch_first, N, L, E)))
    check_gradients(SelfAttention(mha, **kwargs), x)


@given(p=st.sampled_from([0.2, 0.5]), data=st.data())
def test_attention_dropout_gradients_replay_the_mask(check_gradients, p, data):
    mha = hg.MultiheadAttention(4, 2, dropout=p, dtype=np.float64, rng=2)
    shapes = [(3, 2, 4)] * 3
    check_gradients(QKV(mha, shapes), data.draw(arrays((72,))))


def test_dropout_zeroes_weights_in_training_only():
    mha = hg.MultiheadAttention(4, 1, dropout=0.5, dtype=np.float64, rng=3)
    x = np.random.default_rng(0).standard_normal((6, 2, 4))
    _, w = mha(x, x, x)
    kept = w != 0
    assert 0.3 < kept.mean() < 0.7
    mha.eval()
    _, w_eval = mha(x, x, x)
    assert (w_eval != 0).all()
    np.testing.assert_allclose(w_eval.sum(-1), 1.0)
    np.testing.assert_allclose(w[kept], 2 * w_eval[kept])  # the survivors scaled by 1/(1-p)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_contract(dtype):
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(dtype)
    mask = hg.Transformer.generate_square_subsequent_mask(3, dtype)
    check_layer_contract(
        lambda: SelfAttention(hg.MultiheadAttention(4, 2, dtype=dtype, rng=0), attn_mask=mask),
        x)


def test_float32_stays_float32_and_weights_sum_to_one():
    mha = hg.MultiheadAttention(6, 2, rng=0)
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 3, 6)).astype(np.float32)
    k = rng.standard_normal((4, 3, 6)).astype(np.float32)
    y, w = mha(q, k, k)
    assert y.dtype == np.float32 and w.dtype == np.float32
    assert y.shape == (2, 3, 6) and w.shape == (3, 2, 4)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    grads = mha.backward(np.ones_like(y))
    assert [g.dtype for g in grads] == [np.float32] * 3
    assert [g.shape for g in grads] == [q.shape, k.shape, k.shape]


def test_masked_keys_get_no_weight_and_fully_masked_rows_give_the_output_bias():
    mha = hg.MultiheadAttention(4, 2, dtype=np.float64, rng=0)
    mha.out_proj.bias.data[:] = [1.0, 2.0, 3.0, 4.0]
    x = np.random.default_rng(0).standard_normal((3, 2, 4))
    kpm = np.array([[False, True, False], [True, True, True]])
    y, w = mha(x, x, x, key_padding_mask=kpm, average_attn_weights=False)
    assert w.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(w[0, :, :, 1], 0.0)
    np.testing.assert_allclose(w[0].sum(-1), 1.0)
    np.testing.assert_array_equal(w[1], 0.0)  # every key of batch entry 1 is padding
    np.testing.assert_allclose(y[:, 1], np.tile([1.0, 2.0, 3.0, 4.0], (3, 1)))
    grads = mha.backward(np.ones_like(y))
    assert all(np.isfinite(g).all() for g in grads)


def test_boolean_and_float_masks_agree():
    mha = hg.MultiheadAttention(4, 2, batch_first=True, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    causal = np.triu(np.ones((3, 3), dtype=bool), 1)
    y_bool, w_bool = mha(x, x, x, attn_mask=causal)
    y_float, w_float = mha(x, x, x, attn_mask=hg.Transformer.generate_square_subsequent_mask(
        3, np.float64))
    np.testing.assert_allclose(y_bool, y_float)
    np.testing.assert_allclose(w_bool, w_float)
    np.testing.assert_array_equal(w_bool[:, 0, 1:], 0.0)
    y_3d, _ = mha(x, x, x, attn_mask=np.broadcast_to(causal, (4, 3, 3)))
    np.testing.assert_allclose(y_3d, y_bool)


def test_unbatched_matches_a_batch_of_one():
    mha = hg.MultiheadAttention(4, 2, kdim=3, vdim=5, dtype=np.float64, rng=0)
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 4)), rng.standard_normal((3, 3)), rng.standard_normal((3, 5))
    y, w = mha(q, k, v, key_padding_mask=np.array([False, True, False]))
    grads = mha.backward(np.ones_like(y))
    y1, w1 = mha(q[:, None], k[:, None], v[:, None], key_padding_mask=np.array([[0, 1, 0]]) > 0)
    grads1 = mha.backward(np.ones_like(y1))
    np.testing.assert_allclose(y, y1[:, 0])
    np.testing.assert_allclose(w, w1[0])
    for g, g1 in zip(grads, grads1):
        np.testing.assert_allclose(g, g1[:, 0])


def test_state_dict_names_and_shapes():
    packed = hg.MultiheadAttention(6, 2, add_bias_kv=True)
    shapes = {k: v.shape for k, v in packed.state_dict().items()}
    assert shapes == {"in_proj_weight": (18, 6), "in_proj_bias": (18,), "bias_k": (1, 1, 6),
                      "bias_v": (1, 1, 6), "out_proj.weight": (6, 6), "out_proj.bias": (6,)}
    separate = hg.MultiheadAttention(6, 3, bias=False, kdim=4, vdim=5)
    shapes = {k: v.shape for k, v in separate.state_dict().items()}
    assert shapes == {"q_proj_weight": (6, 6), "k_proj_weight": (6, 4), "v_proj_weight": (6, 5),
                      "out_proj.weight": (6, 6)}
    np.testing.assert_array_equal(packed.in_proj_bias.data, 0.0)
    np.testing.assert_array_equal(packed.out_proj.bias.data, 0.0)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        hg.MultiheadAttention(5, 2)
    with pytest.raises(ValueError, match=r"dropout in \[0, 1\]"):
        hg.MultiheadAttention(4, 2, dropout=2.0)
    mha = hg.MultiheadAttention(4, 2, dtype=np.float64)
    x = np.zeros((3, 2, 4))
    with pytest.raises(ValueError, match="feature sizes"):
        mha(x, np.zeros((3, 2, 5)), np.zeros((3, 2, 5)))
    with pytest.raises(ValueError, match="all 3-D"):
        mha(x, x[:, 0], x)
    with pytest.raises(ValueError, match="one batch size"):
        mha(x, np.zeros((3, 1, 4)), np.zeros((3, 1, 4)))
    with pytest.raises(TypeError, match="boolean or floating attn_mask"):
        mha(x, x, x, attn_mask=np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 3\) or \(4, 3, 3\)"):
        mha(x, x, x, attn_mask=np.zeros((2, 3, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 3\)"):
        mha(x, x, x, key_padding_mask=np.zeros((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="is_causal=True needs attn_mask"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(TypeError, match="dtype float64"):
        mha(x.astype(np.float32), x, x)
    mha(x, x, x, need_weights=False)
    with pytest.raises(ValueError, match="need_weights=False"):
        mha.backward(np.zeros((3, 2, 4)), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"grad_out of shape \(3, 2, 4\)"):
        mha.backward(np.zeros((2, 3, 4)))
    assert repr(hg.MultiheadAttention(4, 2, batch_first=True)) == (
        "MultiheadAttention(embed_dim=4, num_heads=2, batch_first=True\n"
        "  (out_proj): Linear(in_features=4, out_features=4, bias=True)\n)")
