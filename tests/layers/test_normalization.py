"""BatchNorm1d/2d, LayerNorm, GroupNorm: gradients, running statistics, contract, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.layers import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from tests.helpers import arrays, check_layer_contract

momenta = st.sampled_from([0.1, 0.5, None])


def _random_affine(layer, seed):
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)
    return layer


def _warm_up(layer, x, steps=2):
    """A few training forwards so the running statistics are not the defaults."""
    for i in range(steps):
        layer(x * (1.5 + i) + 0.3 * i)
    return layer


modes = pytest.mark.parametrize("mode", ["train", "eval"])
tracking = pytest.mark.parametrize("track", [True, False])
affines = pytest.mark.parametrize("affine", [True, False])


@modes
@tracking
@affines
@given(n=st.integers(2, 3), c=st.integers(1, 3), h=st.integers(1, 3), w=st.integers(1, 3),
       momentum=momenta, data=st.data())
def test_batchnorm2d_gradients(check_gradients, n, c, h, w, affine, track, momentum, mode, data):
    x = data.draw(arrays((n, c, h, w)))
    layer = BatchNorm2d(c, momentum=momentum, affine=affine, track_running_stats=track,
                        dtype=np.float64)
    _random_affine(layer, data.draw(st.integers(0, 1000)))
    if mode == "eval":
        _warm_up(layer, x)
        layer.eval(backward=True)
    check_gradients(layer, x)


@modes
@tracking
@affines
@given(n=st.integers(2, 4), c=st.integers(1, 4), length=st.sampled_from([None, 1, 3]),
       data=st.data())
def test_batchnorm1d_gradients(check_gradients, n, c, length, affine, track, mode, data):
    shape = (n, c) if length is None else (n, c, length)
    x = data.draw(arrays(shape))
    layer = BatchNorm1d(c, affine=affine, track_running_stats=track, dtype=np.float64)
    _random_affine(layer, data.draw(st.integers(0, 1000)))
    if mode == "eval":
        _warm_up(layer, x)
        layer.eval(backward=True)
    check_gradients(layer, x)


@given(lead=st.sampled_from([(2,), (3, 2), ()]), norm=st.sampled_from([(4,), (2, 3), (5,)]),
       affine=st.booleans(), bias=st.booleans(), data=st.data())
def test_layernorm_gradients(check_gradients, lead, norm, affine, bias, data):
    x = data.draw(arrays(lead + norm))
    layer = LayerNorm(norm, elementwise_affine=affine, bias=bias, dtype=np.float64)
    _random_affine(layer, data.draw(st.integers(0, 1000)))
    check_gradients(layer, x)


@given(n=st.integers(1, 3), groups_and_channels=st.sampled_from([(1, 3), (2, 4), (3, 3), (2, 6)]),
       spatial=st.sampled_from([(), (3,), (2, 3)]), affine=st.booleans(), data=st.data())
def test_groupnorm_gradients(check_gradients, n, groups_and_channels, spatial, affine, data):
    g, c = groups_and_channels
    x = data.draw(arrays((n, c) + spatial))
    layer = GroupNorm(g, c, affine=affine, dtype=np.float64)
    _random_affine(layer, data.draw(st.integers(0, 1000)))
    check_gradients(layer, x)


def _reference_batchnorm(x, axes, weight, bias, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    shape = [1] * x.ndim
    shape[1] = -1
    return (x - mean) / np.sqrt(var + eps) * weight.reshape(shape) + bias.reshape(shape)


def test_batchnorm2d_forward_matches_plain_formula(rng):
    x = rng.standard_normal((4, 3, 5, 6)) * 3 + 2
    layer = _random_affine(BatchNorm2d(3, eps=1e-3, dtype=np.float64), 1)
    expected = _reference_batchnorm(x, (0, 2, 3), layer.weight.data, layer.bias.data, 1e-3)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_running_statistics_follow_pytorch_rule(rng, momentum):
    layer = BatchNorm2d(3, momentum=momentum, dtype=np.float64)
    mean, var = np.zeros(3), np.ones(3)
    for step in range(1, 5):
        x = rng.standard_normal((4, 3, 2, 5)) * step + step
        layer(x)
        factor = 1.0 / step if momentum is None else momentum
        m = x.size // 3
        batch_var = x.var(axis=(0, 2, 3)) * m / (m - 1)  # unbiased
        mean = (1 - factor) * mean + factor * x.mean(axis=(0, 2, 3))
        var = (1 - factor) * var + factor * batch_var
        assert int(layer.num_batches_tracked) == step
    assert layer.num_batches_tracked.dtype == np.int64
    np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, var, rtol=1e-12)


def test_eval_uses_running_statistics_and_leaves_them(rng):
    layer = _random_affine(BatchNorm1d(4, dtype=np.float64), 2)
    _warm_up(layer, rng.standard_normal((6, 4)))
    state = layer.state_dict()
    layer.eval()
    x = rng.standard_normal((1, 4))  # a batch of one is fine in eval mode
    expected = ((x - state["running_mean"]) / np.sqrt(state["running_var"] + 1e-5)
                * state["weight"] + state["bias"])
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)


def test_without_running_stats_uses_batch_statistics_in_eval(rng):
    layer = BatchNorm2d(2, track_running_stats=False, dtype=np.float64)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    x = rng.standard_normal((3, 2, 4, 4)) * 2 + 1
    y_train = layer(x)
    layer.eval()
    np.testing.assert_allclose(layer(x), y_train, rtol=1e-12)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(x[:1, :, :1, :1])


def test_state_dict_names_and_shapes():
    layer = BatchNorm2d(5)
    state = layer.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert state["num_batches_tracked"].shape == () and state["weight"].shape == (5,)
    assert list(BatchNorm1d(3, affine=False).state_dict()) == [
        "running_mean", "running_var", "num_batches_tracked"]
    assert list(LayerNorm((2, 3), bias=False).state_dict()) == ["weight"]
    assert LayerNorm((2, 3)).state_dict()["bias"].shape == (2, 3)
    assert list(GroupNorm(2, 4).state_dict()) == ["weight", "bias"]


@pytest.mark.parametrize("make_layer, shape", [
    (lambda: _random_affine(BatchNorm2d(3), 0), (4, 3, 5, 5)),
    (lambda: BatchNorm2d(3, affine=False), (4, 3, 5, 5)),
    (lambda: BatchNorm2d(3, track_running_stats=False), (4, 3, 2, 2)),
    (lambda: _random_affine(BatchNorm1d(3), 0), (5, 3)),
    (lambda: BatchNorm1d(3, momentum=None), (5, 3, 7)),
    (lambda: _random_affine(LayerNorm(6), 0), (4, 6)),
    (lambda: LayerNorm((2, 3), elementwise_affine=False), (4, 2, 3)),
    (lambda: _random_affine(GroupNorm(2, 4), 0), (3, 4, 5)),
])
def test_layer_contract_float32(rng, make_layer, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    layer = check_layer_contract(make_layer, x)
    y = layer(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32
    for name, p in layer.named_parameters():
        assert p.grad.dtype == np.float32, name
    for name, buf in layer.named_buffers():
        assert buf.dtype == (np.int64 if name == "num_batches_tracked" else np.float32), name
    layer.eval(backward=True)
    assert layer(x).dtype == np.float32 and layer.backward(y).dtype == np.float32


def test_batchnorm_normalises_large_float32_batch(rng):
    x = (rng.standard_normal((16, 8, 12, 12)) * 5 + 3).astype(np.float32)
    y = BatchNorm2d(8)(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-3)


def test_reused_buffer_does_not_alias_outputs(rng):
    layer = BatchNorm2d(2, affine=False)
    x1 = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    y1 = layer(x1)
    saved = y1.copy()
    layer.backward(np.ones_like(y1))
    layer(rng.standard_normal((3, 2, 4, 4)).astype(np.float32))
    np.testing.assert_array_equal(y1, saved)


def test_batch_of_one_value_per_channel_raises():
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3.*more than 1 value per channel"):
        BatchNorm1d(3)(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel when training"):
        BatchNorm2d(3)(np.ones((1, 3, 1, 1), np.float32))
    BatchNorm2d(3)(np.ones((1, 3, 2, 1), np.float32))  # two values per channel: fine


@pytest.mark.parametrize("layer, x, error, match", [
    (BatchNorm2d(3), np.zeros((2, 4, 3, 3), np.float32), ValueError, r"\(N, 3, H, W\).*\(2, 4"),
    (BatchNorm2d(3), np.zeros((2, 3, 3), np.float32), ValueError, r"expected input of shape"),
    (BatchNorm1d(3), np.zeros((2, 3, 3, 3), np.float32), ValueError, r"\(N, 3\) or \(N, 3, L\)"),
    (BatchNorm2d(3), np.zeros((2, 3, 3, 3), np.int64), TypeError, "floating"),
    (BatchNorm2d(3, affine=False), np.zeros((2, 3, 3, 3)), TypeError, "float32"),
    (LayerNorm(4), np.zeros((2, 5), np.float32), ValueError, r"\(\*, 4\)"),
    (GroupNorm(2, 4), np.zeros((2, 3, 5), np.float32), ValueError, r"\(N, 4, \*\)"),
])
def test_bad_input(layer, x, error, match):
    with pytest.raises(error, match=match):
        layer(x)


def test_bad_grad_and_constructor_arguments(rng):
    layer = BatchNorm2d(2)
    layer(rng.standard_normal((2, 2, 3, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="grad_out of shape"):
        layer.backward(np.zeros((2, 2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="divisible"):
        GroupNorm(3, 4)
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        LayerNorm(3, eps=-1.0)
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm1d(0)


@given(n=st.integers(1, 40), c=st.integers(1, 20), s=st.sampled_from([1, 7, 128, 256, 1024, 1536]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_channel_dot_matches_einsum(n, c, s, dtype):
    # Long rows go through vecdot, split into pieces when the result would be small
    # (so that threads do not serialise on the GIL); every path gives the same sums.
    from handgrad.layers.normalization import _channel_dot

    rng = np.random.default_rng(n * 1000 + c * 10 + s)
    a = rng.standard_normal((n, c, s)).astype(dtype)
    b = rng.standard_normal((n, c, s)).astype(dtype)
    expected = np.einsum("ncs,ncs->c", a.astype(np.float64), b.astype(np.float64))
    got = _channel_dot(a, b)
    assert got.shape == (c,) and got.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.sqrt(n * s))
    # A channel block of a larger array (what BatchNorm's threads pass) works the same.
    wide = np.concatenate([a, b], axis=1)
    np.testing.assert_allclose(_channel_dot(wide[:, :c], wide[:, :c]),
                               np.einsum("ncs,ncs->c", a.astype(np.float64), a.astype(np.float64)),
                               rtol=tol, atol=tol * np.sqrt(n * s))
