"""The added activations (PReLU, ReLU6, ..., Hardshrink) and the softmax edge cases:
gradient checks under hypothesis-drawn shapes and hyperparameters, the layer contract,
values, 0-dim and empty inputs, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from tests.helpers import arrays, check_layer_contract

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


def off_kinks(x: np.ndarray, points, margin: float = 0.05) -> np.ndarray:
    """Move values within ``margin`` of any of ``points`` out to ``point +- margin``."""
    x = np.array(x, copy=True)
    for p in points:
        near = np.abs(x - p) < margin
        x[near] = p + np.where(x[near] >= p, margin, -margin)
    return x


def draw_layer(name: str, data):
    """A layer of class ``name`` with hypothesis-drawn hyperparameters, and its kinks."""
    floats = st.floats
    if name == "Hardtanh":
        low = data.draw(floats(-3, 0.5))
        high = low + data.draw(floats(0.3, 3))
        return hg.Hardtanh(low, high), [low, high]
    if name == "Softplus":
        beta = data.draw(st.sampled_from([1.0, 0.5, 2.0, -1.0]))
        threshold = data.draw(st.sampled_from([20.0, 1.0, 3.0]))
        return hg.Softplus(beta, threshold), [threshold / beta]
    if name == "CELU":
        return hg.CELU(data.draw(st.sampled_from([1.0, 0.5, 2.0]))), [0.0]
    if name == "Threshold":
        threshold = data.draw(floats(-2, 2))
        return hg.Threshold(threshold, data.draw(floats(-3, 3))), [threshold]
    if name in ("Softshrink", "Hardshrink"):
        lambd = data.draw(floats(0, 1.5))
        return getattr(hg, name)(lambd), [-lambd, lambd]
    simple = {"ReLU6": [0.0, 6.0], "Hardswish": [-3.0, 3.0], "Hardsigmoid": [-3.0, 3.0],
              "Softsign": [0.0], "Mish": [], "SELU": [0.0], "LogSigmoid": [],
              "Tanhshrink": []}
    return getattr(hg, name)(), simple[name]


ELEMENTWISE = ["ReLU6", "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign", "Mish",
               "SELU", "CELU", "LogSigmoid", "Threshold", "Tanhshrink", "Softshrink",
               "Hardshrink"]


@pytest.mark.parametrize("name", ELEMENTWISE)
@given(shape=shapes, data=st.data())
def test_elementwise_gradients(check_gradients, name, shape, data):
    layer, kinks = draw_layer(name, data)
    x = off_kinks(data.draw(arrays(shape, -7.0, 7.0)), kinks)
    check_gradients(layer, x)


@given(shape=shapes, per_channel=st.booleans(), init=st.floats(-1, 1), data=st.data())
def test_prelu_gradients(check_gradients, shape, per_channel, init, data):
    channels = shape[1] if per_channel and len(shape) >= 2 else 1
    layer = hg.PReLU(channels, init, dtype=np.float64)
    layer.weight.data[:] = data.draw(arrays((channels,), -1.0, 1.0))
    x = off_kinks(data.draw(arrays(shape, -3.0, 3.0)), [0.0])
    report = check_gradients(layer, x)
    assert [row.name for row in report.rows] == ["input", "weight"]


@given(shape=shapes, data=st.data())
def test_glu_gradients(check_gradients, shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    shape = list(shape)
    shape[dim] *= 2
    check_gradients(hg.GLU(dim), data.draw(arrays(tuple(shape), -3.0, 3.0)))


@given(shape=shapes, data=st.data())
def test_softmin_gradients(check_gradients, shape, data):
    dim = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    check_gradients(hg.Softmin(dim), data.draw(arrays(shape, -3.0, 3.0)))


@given(n=st.integers(1, 2), c=st.integers(1, 4), h=st.integers(1, 3), w=st.integers(1, 3),
       batched=st.booleans(), data=st.data())
def test_softmax2d_gradients(check_gradients, n, c, h, w, batched, data):
    shape = (n, c, h, w) if batched else (c, h, w)
    check_gradients(hg.Softmax2d(), data.draw(arrays(shape, -3.0, 3.0)))


@pytest.mark.parametrize("layer", [hg.Softmax(0), hg.Softmax(-1), hg.LogSoftmax(0),
                                   hg.LogSoftmax(-1), hg.Softmin(0), hg.Softmin()])
def test_softmax_family_on_a_0_dim_input(check_gradients, layer):
    y = layer(np.array(1.7))
    assert y.shape == ()
    assert float(y) == (0.0 if isinstance(layer, hg.LogSoftmax) else 1.0)
    assert layer.backward(np.array(2.5)).shape == ()
    check_gradients(layer, np.array(-0.3))
    with pytest.raises(ValueError, match=r"dim 1 is out of range for an input with 0 "
                                         r"dimensions \(expected a dim in \[-1, 0\]\)"):
        type(layer)(1)(np.array(1.0))


ALL = ELEMENTWISE + ["PReLU", "GLU", "Softmin", "Softmax", "LogSoftmax", "ReLU", "LeakyReLU",
                     "ELU", "SiLU", "Sigmoid", "Tanh", "GELU"]


def make(name, dtype=np.float32):
    if name == "Threshold":
        return hg.Threshold(0.1, -2.0)
    if name == "PReLU":
        return hg.PReLU(dtype=dtype)
    if name in ("Softmin", "Softmax", "LogSoftmax"):
        return getattr(hg, name)(0)
    return getattr(hg, name)()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(0,), (0, 4), (3, 0), ()])
def test_empty_and_0_dim_inputs(name, shape):
    layer = make(name, np.float64)
    if name == "GLU" and shape == ():
        with pytest.raises(ValueError, match="at least 1 dimension"):
            layer(np.ones(shape))
        return
    x = np.random.default_rng(0).standard_normal(shape)
    y = layer(x)
    expected = shape if name != "GLU" else shape[:-1] + (shape[-1] // 2,)
    assert y.shape == expected
    dx = layer.backward(np.ones(expected))
    assert dx.shape == shape
    if x.size:  # the 0-dim case: a finite value and gradient
        assert np.isfinite(y) and np.isfinite(dx)


@pytest.mark.parametrize("name", ELEMENTWISE + ["PReLU", "GLU", "Softmin", "Softmax2d"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_contract(name, dtype):
    x = np.random.default_rng(0).standard_normal((2, 4, 2, 2)).astype(dtype)
    if name == "PReLU":
        check_layer_contract(lambda: hg.PReLU(4, dtype=dtype), x)
    else:
        check_layer_contract(lambda: make(name) if name != "Softmax2d" else hg.Softmax2d(), x)


def test_values():
    x = np.array([-4.0, -3.0, -1.0, 0.0, 0.5, 3.0, 7.0])
    np.testing.assert_array_equal(hg.ReLU6()(x), [0, 0, 0, 0, 0.5, 3, 6])
    np.testing.assert_array_equal(hg.Hardtanh(-2, 2)(x), [-2, -2, -1, 0, 0.5, 2, 2])
    np.testing.assert_allclose(hg.Hardsigmoid()(x), np.clip(x / 6 + 0.5, 0, 1))
    np.testing.assert_allclose(hg.Hardswish()(x), x * np.clip(x + 3, 0, 6) / 6)
    np.testing.assert_array_equal(hg.Threshold(0.5, -9)(x), [-9, -9, -9, -9, -9, 3, 7])
    np.testing.assert_array_equal(hg.Softshrink(1.0)(x), [-3, -2, 0, 0, 0, 2, 6])
    np.testing.assert_array_equal(hg.Hardshrink(1.0)(x), [-4, -3, 0, 0, 0, 3, 7])
    np.testing.assert_allclose(hg.Softplus()(x), np.log1p(np.exp(x)))
    np.testing.assert_allclose(hg.LogSigmoid()(x), -np.log1p(np.exp(-x)))
    np.testing.assert_allclose(hg.Softsign()(x), x / (1 + np.abs(x)))
    np.testing.assert_allclose(hg.Tanhshrink()(x), x - np.tanh(x))
    np.testing.assert_allclose(hg.Mish()(x), x * np.tanh(np.log1p(np.exp(x))))
    np.testing.assert_allclose(hg.CELU(2.0)(x), np.where(x > 0, x, 2 * np.expm1(x / 2)))
    np.testing.assert_allclose(hg.SELU()(x) / hg.SELU.SCALE,
                               np.where(x > 0, x, hg.SELU.ALPHA * np.expm1(x)))
    np.testing.assert_allclose(hg.PReLU(init=0.1, dtype=np.float64)(x), np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(hg.Softmin(0)(x), hg.Softmax(0)(-x))
    glu = hg.GLU(0)(np.array([1.0, 2.0, 0.0, 3.0]))
    np.testing.assert_allclose(glu, [0.5, 2 / (1 + np.exp(-3.0))])


def test_no_overflow_at_extremes():
    x = np.array([-1e4, 1e4], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for layer in (hg.Softplus(), hg.Softplus(beta=-2.0), hg.LogSigmoid(), hg.Mish(),
                      hg.SELU(), hg.CELU(0.5)):
            y = layer(x)
            assert y.dtype == np.float32 and np.all(np.isfinite(y)), type(layer).__name__
            assert np.all(np.isfinite(layer.backward(np.ones(2, np.float32))))


@pytest.mark.parametrize("layer", [hg.ReLU(inplace=True), hg.LeakyReLU(0.1, True),
                                   hg.ELU(inplace=True), hg.SiLU(inplace=True),
                                   hg.ReLU6(inplace=True), hg.Hardtanh(inplace=True),
                                   hg.Hardswish(True), hg.Hardsigmoid(True), hg.Mish(True),
                                   hg.SELU(True), hg.CELU(inplace=True),
                                   hg.Threshold(0.1, 2.0, inplace=True)])
def test_inplace_gives_the_same_result_and_leaves_the_input(layer):
    x = np.random.default_rng(1).standard_normal((3, 4))
    before = x.copy()
    plain = type(layer)(**{k: getattr(layer, k) for k in _args(layer)})
    np.testing.assert_array_equal(layer(x), plain(x))
    np.testing.assert_array_equal(x, before)
    assert "inplace=True" in repr(layer) and "inplace" not in repr(plain)


def _args(layer):
    names = {"LeakyReLU": ["negative_slope"], "ELU": ["alpha"], "CELU": ["alpha"],
             "Hardtanh": ["min_val", "max_val"], "Threshold": ["threshold", "value"]}
    return names.get(type(layer).__name__, [])


def test_prelu_channels_and_weight_gradient():
    layer = hg.PReLU(3, init=0.5, dtype=np.float64)
    assert layer.weight.shape == (3,) and list(layer.state_dict()) == ["weight"]
    np.testing.assert_array_equal(layer.weight.data, [0.5, 0.5, 0.5])
    x = np.array([[[-1.0, 2.0], [-3.0, -4.0], [5.0, 6.0]]])  # (1, 3, 2)
    np.testing.assert_array_equal(layer(x), [[[-0.5, 2.0], [-1.5, -2.0], [5.0, 6.0]]])
    layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(layer.weight.grad, [-1.0, -7.0, 0.0])
    np.testing.assert_array_equal(hg.PReLU(dtype=np.float64)(np.array([-2.0, 2.0])), [-0.5, 2])


def test_bad_input():
    with pytest.raises(ValueError, match=r"PReLU\(num_parameters=3\): expected input of shape "
                                         r"\(N, 3, \*\) \(channel dim 1\), got input of shape "
                                         r"\(3,\)"):
        hg.PReLU(3, dtype=np.float64)(np.ones(3))
    with pytest.raises(ValueError, match=r"got a 0-dim input"):
        hg.PReLU(3, dtype=np.float64)(np.array(1.0))
    with pytest.raises(TypeError, match=r"PReLU\(num_parameters=1\): expected input of dtype "
                                        r"float32"):
        hg.PReLU()(np.ones(3))
    with pytest.raises(ValueError, match="PReLU: expected a positive integer num_parameters"):
        hg.PReLU(0)
    with pytest.raises(ValueError, match=r"GLU\(dim=-1\): expected an even size along dim -1"):
        hg.GLU()(np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"GLU\(dim=2\): dim 2 is out of range"):
        hg.GLU(2)(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"Softmax2d: expected input of shape \(N, C, H, W\) or "
                                         r"\(C, H, W\), got \(3, 4\)"):
        hg.Softmax2d()(np.ones((3, 4)))
    with pytest.raises(ValueError, match="Hardtanh: expected max_val > min_val, got min_val=1.0"):
        hg.Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match="Softshrink: expected lambd >= 0, got -1"):
        hg.Softshrink(-1)
    with pytest.raises(ValueError, match="CELU: expected a non-zero alpha"):
        hg.CELU(0.0)
    with pytest.raises(ValueError, match="Softplus: expected a non-zero beta"):
        hg.Softplus(0)
    with pytest.raises(TypeError, match="Threshold: expected a number for threshold"):
        hg.Threshold("1", 0.0)
    with pytest.raises(TypeError, match="Softmin: expected an integer dim or None"):
        hg.Softmin(1.5)
    with pytest.raises(TypeError, match=r"Mish\(\): expected a floating-point input"):
        hg.Mish()(np.arange(3))
    layer = hg.Softplus()
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Softplus\(beta=1.0, threshold=20.0\): expected "
                                         r"grad_out of shape \(2, 3\)"):
        layer.backward(np.ones(3))


def test_repr_matches_pytorch():
    assert repr(hg.Hardtanh()) == "Hardtanh(min_val=-1.0, max_val=1.0)"
    assert repr(hg.ReLU6(inplace=True)) == "ReLU6(inplace=True)"
    assert repr(hg.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(hg.Softshrink()) == "Softshrink(0.5)"
    assert repr(hg.PReLU()) == "PReLU(num_parameters=1)"
    assert repr(hg.Softmin()) == "Softmin(dim=None)"
    assert repr(hg.GLU()) == "GLU(dim=-1)"
    assert repr(hg.SELU()) == "SELU()" and repr(hg.CELU()) == "CELU(alpha=1.0)"
    assert repr(hg.LeakyReLU(inplace=True)) == "LeakyReLU(negative_slope=0.01, inplace=True)"


def test_dropout_accepts_inplace():
    x = np.random.default_rng(2).standard_normal((4, 5))
    before = x.copy()
    a, b = hg.Dropout(0.5, inplace=True, rng=3), hg.Dropout(0.5, rng=3)
    np.testing.assert_array_equal(a(x), b(x))
    np.testing.assert_array_equal(x, before)
    assert repr(a) == "Dropout(p=0.5, inplace=True)"
