"""Activations and softmax: gradient checks, the layer contract, values, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from tests.helpers import arrays, away_from_zero, check_layer_contract

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)

ACTIVATIONS = {
    "ReLU": hg.ReLU,
    "LeakyReLU": lambda: hg.LeakyReLU(0.2),
    "Sigmoid": hg.Sigmoid,
    "Tanh": hg.Tanh,
    "GELU": hg.GELU,
    "GELU-tanh": lambda: hg.GELU(approximate="tanh"),
    "SiLU": hg.SiLU,
    "ELU": lambda: hg.ELU(0.7),
    "Softmax": lambda: hg.Softmax(dim=-1),
    "Softmax0": lambda: hg.Softmax(dim=0),
    "LogSoftmax": lambda: hg.LogSoftmax(dim=1),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(shape=shapes, data=st.data())
def test_activation_gradients(check_gradients, name, shape, data):
    if name == "LogSoftmax" and len(shape) < 2:
        shape = shape + (3,)
    x = away_from_zero(data.draw(arrays(shape, -3.0, 3.0)))  # off the ReLU-like kinks
    check_gradients(ACTIVATIONS[name](), x)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_contract(name, dtype):
    x = away_from_zero(np.random.default_rng(0).standard_normal((3, 4))).astype(dtype)
    check_layer_contract(ACTIVATIONS[name], x)


def test_values():
    x = np.array([-2.0, -0.5, 0.0, 1.5])
    np.testing.assert_array_equal(hg.ReLU()(x), [0, 0, 0, 1.5])
    np.testing.assert_allclose(hg.LeakyReLU(0.1)(x), [-0.2, -0.05, 0, 1.5])
    np.testing.assert_allclose(hg.Sigmoid()(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(hg.ELU()(x), np.where(x > 0, x, np.expm1(x)))
    np.testing.assert_allclose(hg.Softmax()(x).sum(), 1.0)
    np.testing.assert_allclose(np.exp(hg.LogSoftmax(dim=0)(x)), hg.Softmax(0)(x))


def test_relu_gradient_at_zero_is_zero():
    relu = hg.ReLU()
    relu(np.array([0.0, 1.0]))
    np.testing.assert_array_equal(relu.backward(np.ones(2)), [0.0, 1.0])


def test_sigmoid_and_softmax_do_not_overflow():
    x = np.array([-1e4, 1e4], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_array_equal(hg.Sigmoid()(x), [0.0, 1.0])
        np.testing.assert_allclose(hg.Softmax()(x), [0.0, 1.0])
        assert np.all(np.isfinite(hg.LogSoftmax()(x)))


def test_bad_input():
    with pytest.raises(TypeError, match=r"ReLU\(\): expected a floating-point input, got dtype"):
        hg.ReLU()(np.arange(3))
    with pytest.raises(ValueError, match=r"Softmax\(dim=2\): dim 2 is out of range for an input "
                                         r"with 2 dimensions"):
        hg.Softmax(dim=2)(np.ones((2, 3)))
    with pytest.raises(TypeError, match="Softmax: expected an integer dim"):
        hg.Softmax(dim=1.0)
    with pytest.raises(ValueError, match="GELU: expected approximate 'none' or 'tanh'"):
        hg.GELU("erf")
    tanh = hg.Tanh()
    tanh(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Tanh\(\): expected grad_out of shape \(2, 3\)"):
        tanh.backward(np.ones((3, 2)))


def test_repr():
    assert repr(hg.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(hg.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(hg.GELU()) == "GELU(approximate='none')"
