"""Pooling layers: fast kernels vs loop references, gradient checks, contract, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.layers import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    GlobalAvgPool2d,
    MaxPool2d,
)
from handgrad.layers.pooling import max_pool2d
from tests import reference
from tests.helpers import check_layer_contract


def distinct_values(shape, seed):
    """A float64 ``arrays_NCHW`` whose values are all distinct and >= 0.05 apart (no ties)."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    return (rng.permutation(size) * 0.05 - size * 0.025).reshape(shape)


@st.composite
def pool_configs(draw, dilation=True, max_size=8):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    ceil_mode = draw(st.booleans())
    # Images at least one window tall/wide: then no window is all padding (PyTorch would
    # return -inf there, which a numerical gradient cannot check).
    H = draw(st.integers(dil[0] * (kh - 1) + 1, max_size))
    W = draw(st.integers(dil[1] * (kw - 1) + 1, max_size))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W)
    kwargs = dict(kernel_size=(kh, kw), stride=stride, padding=padding, ceil_mode=ceil_mode)
    if dilation:
        kwargs["dilation"] = dil
    return kwargs, distinct_values(shape, draw(st.integers(0, 2**32 - 1)))


def _resolved(kwargs):
    k = kwargs["kernel_size"]
    s = kwargs["stride"] or k
    return k, s, kwargs["padding"], kwargs.get("dilation", (1, 1)), kwargs["ceil_mode"]


@given(pool_configs())
def test_max_pool_matches_loop_reference(config):
    kwargs, x = config
    layer = MaxPool2d(**kwargs)
    y = layer(x)
    grad_out = np.random.default_rng(0).standard_normal(y.shape)
    y_ref, gx_ref = reference.max_pool2d_forward_backward(x, grad_out, *_resolved(kwargs))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(layer.backward(grad_out), gx_ref, rtol=1e-12, atol=1e-15)


@given(pool_configs(max_size=5))
def test_max_pool_ties_go_to_first_maximum(config):
    kwargs, x = config
    x = np.round(x * 4) / 4  # now many ties (0.05 steps rounded to quarters)
    layer = MaxPool2d(**kwargs)
    grad_out = np.random.default_rng(0).standard_normal(layer(x).shape)
    _, gx_ref = reference.max_pool2d_forward_backward(x, grad_out, *_resolved(kwargs))
    np.testing.assert_allclose(layer.backward(grad_out), gx_ref, rtol=1e-12, atol=1e-15)


@given(config=pool_configs(max_size=5))
def test_max_pool_gradients_match_numerical(config, check_gradients):
    kwargs, x = config
    check_gradients(MaxPool2d(**kwargs), x)


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 1, 3, 3)) * 5.0  # every real value below the zero a zero-pad would give
    layer = MaxPool2d(3, stride=1, padding=1)
    y = layer(x)
    np.testing.assert_array_equal(y, -5.0)
    gx = layer.backward(np.ones_like(y))
    assert gx.sum() == y.size  # every output's gradient landed on a real pixel


@st.composite
def avg_configs(draw):
    kwargs, x = draw(pool_configs(dilation=False))
    kwargs["count_include_pad"] = draw(st.booleans())
    kwargs["divisor_override"] = draw(st.sampled_from([None, None, 3]))
    return kwargs, x


@given(avg_configs())
def test_avg_pool_matches_loop_reference(config):
    kwargs, x = config
    layer = AvgPool2d(**kwargs)
    y = layer(x)
    grad_out = np.random.default_rng(0).standard_normal(y.shape)
    k, s, p, _, ceil_mode = _resolved(kwargs)
    y_ref, gx_ref = reference.avg_pool2d_forward_backward(
        x, grad_out, k, s, p, ceil_mode, kwargs["count_include_pad"], kwargs["divisor_override"])
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.backward(grad_out), gx_ref, rtol=1e-12, atol=1e-14)


@given(config=avg_configs())
def test_avg_pool_gradients_match_numerical(config, check_gradients):
    kwargs, x = config
    check_gradients(AvgPool2d(**kwargs), x)


@given(H=st.integers(1, 9), W=st.integers(1, 9), oh=st.integers(1, 5), ow=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1))
def test_adaptive_pools_match_loop_reference(H, W, oh, ow, seed):
    x = distinct_values((2, 3, H, W), seed)
    np.testing.assert_allclose(AdaptiveAvgPool2d((oh, ow))(x),
                               reference.adaptive_pool2d(x, (oh, ow), np.mean), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_array_equal(AdaptiveMaxPool2d((oh, ow))(x),
                                  reference.adaptive_pool2d(x, (oh, ow), np.max))


@given(config=st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from(
    [1, 2, 3, (2, 4), (None, 2)])), seed=st.integers(0, 2**32 - 1))
def test_adaptive_pool_gradients_match_numerical(config, seed, check_gradients):
    H, W, size = config
    x = distinct_values((2, 2, H, W), seed)
    check_gradients(AdaptiveAvgPool2d(size), x)
    check_gradients(AdaptiveMaxPool2d(size), x)


def test_global_avg_pool_shapes():
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 6)).astype(np.float32)
    y = GlobalAvgPool2d()(x)
    assert y.shape == (4, 3, 1, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y[..., 0, 0], x.mean(axis=(2, 3)), rtol=1e-5)
    flat = GlobalAvgPool2d(flatten=True)
    assert flat(x).shape == (4, 3)
    gx = flat.backward(np.ones((4, 3), dtype=np.float32))
    assert gx.shape == x.shape and gx.dtype == np.float32
    np.testing.assert_allclose(gx, 1 / 30, rtol=1e-6)
    with pytest.raises(ValueError, match=r"GlobalAvgPool2d.*\(4, 3\)"):
        flat.backward(np.ones((4, 3, 1, 1), dtype=np.float32))


@pytest.mark.parametrize("make", [
    lambda: MaxPool2d(2),
    lambda: MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
    lambda: AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    lambda: AdaptiveAvgPool2d((2, 3)),
    lambda: AdaptiveAvgPool2d(1),
    lambda: AdaptiveMaxPool2d((3, 2)),
    lambda: AdaptiveMaxPool2d(2),
    lambda: GlobalAvgPool2d(),
])
def test_pooling_contract_and_float32(make):
    x = distinct_values((2, 3, 7, 6), 0).astype(np.float32)
    layer = check_layer_contract(make, x)
    y = layer(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32


@pytest.mark.parametrize("make, match", [
    (lambda: MaxPool2d(0), "kernel_size"),
    (lambda: MaxPool2d(2, stride=0), "stride"),
    (lambda: MaxPool2d(2, stride=(1, -2)), "stride"),
    (lambda: MaxPool2d(3, padding=2), "half the kernel"),
    (lambda: AvgPool2d(2, padding=-1), "padding"),
    (lambda: AvgPool2d(2, divisor_override=0), "divisor_override"),
    (lambda: AdaptiveAvgPool2d(0), "output_size"),
    (lambda: AdaptiveMaxPool2d((1, 2, 3)), "output_size"),
])
def test_pooling_rejects_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_pooling_rejects_bad_input():
    with pytest.raises(ValueError, match=r"MaxPool2d\(kernel_size=\(2, 2\).*\(N, C, H, W\)"):
        MaxPool2d(2)(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"MaxPool2d.*\(2, 1\).*too small"):
        MaxPool2d(3)(np.zeros((1, 1, 2, 1)))
    with pytest.raises(ValueError, match=r"AvgPool2d.*\(N, C, H, W\)"):
        AvgPool2d(2)(np.zeros((1, 1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d.*\(N, C, H, W\)"):
        AdaptiveAvgPool2d(2)(np.zeros((4, 4)))
    with pytest.raises(TypeError, match="floating"):
        MaxPool2d(2)(np.zeros((1, 1, 4, 4), dtype=np.int64))
    layer = MaxPool2d(2)
    layer(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"grad_out of shape \(1, 1, 2, 2\)"):
        layer.backward(np.zeros((1, 1, 4, 4)))


@pytest.mark.parametrize("kernel", [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3)])
def test_max_pool2d_kernel_writes_into_out_with_first_max_index(kernel):
    # The running maximum alternates between two buffers: whatever the number of kernel
    # offsets, the result must end in `out`, and the index must be the first maximum.
    rng = np.random.default_rng(sum(kernel))
    x = rng.integers(0, 3, (2, 3, 7, 8)).astype(np.float32)  # many ties
    kh, kw = kernel
    out_hw = ((7 - kh) // kh + 1, (8 - kw) // kw + 1)
    out = np.full((2, 3) + out_hw, np.nan, np.float32)
    index_out = np.full((2, 3) + out_hw, 99, np.uint8)
    y, index = max_pool2d(x, kernel, kernel, (1, 1), out_hw, out=out, index_out=index_out)
    assert y is out and index is index_out
    windows = np.stack([x[:, :, i::kh, j::kw][:, :, :out_hw[0], :out_hw[1]]
                        for i in range(kh) for j in range(kw)])
    np.testing.assert_array_equal(out, windows.max(axis=0))
    np.testing.assert_array_equal(index, windows.argmax(axis=0))  # argmax: the first maximum
