"""Linear and Identity: gradient checks, the layer contract, shapes and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from tests.helpers import arrays, check_layer_contract

batch_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@given(lead=batch_shapes, n_in=st.integers(1, 5), n_out=st.integers(1, 4), bias=st.booleans(),
       data=st.data())
def test_linear_gradients(check_gradients, lead, n_in, n_out, bias, data):
    layer = hg.Linear(n_in, n_out, bias=bias, dtype=np.float64, rng=0)
    x = data.draw(arrays(lead + (n_in,)))
    report = check_gradients(layer, x)
    assert [r.name for r in report.rows] == ["input", "weight"] + (["bias"] if bias else [])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_contract(bias, dtype):
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(dtype)
    check_layer_contract(lambda: hg.Linear(3, 5, bias=bias, dtype=dtype, rng=1), x)


def test_identity_contract_and_gradient(check_gradients):
    x = np.random.default_rng(0).standard_normal((2, 3))
    check_layer_contract(hg.Identity, x)
    check_gradients(hg.Identity(54, unused="ignored"), x)


def test_linear_forward_value_and_names():
    layer = hg.Linear(2, 3, dtype=np.float64)
    layer.weight.data[...] = [[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]]
    layer.bias.data[...] = [0.5, 0.0, -1.0]
    np.testing.assert_allclose(layer(np.array([[1.0, 1.0]])), [[3.5, -1.0, 2.5]])
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in hg.Linear(2, 3, bias=False).named_parameters()] == ["weight"]
    assert hg.Linear(2, 3, bias=False).bias is None


def test_linear_frozen_weight_gets_no_grad():
    layer = hg.Linear(3, 2, dtype=np.float64)
    layer.weight.requires_grad = False
    layer(np.ones((2, 3)))
    layer.backward(np.ones((2, 2)))
    assert layer.weight.grad is None and layer.bias.grad is not None


def test_linear_bad_input():
    layer = hg.Linear(784, 256)
    expected = (r"Linear\(in_features=784, out_features=256, bias=True\): expected input of "
                r"shape \(\*, 784\), got \(32, 28, 28\)")
    with pytest.raises(ValueError, match=expected):
        layer(np.zeros((32, 28, 28), dtype=np.float32))
    with pytest.raises(TypeError, match="expected a floating-point input, got dtype int64"):
        layer(np.zeros((2, 784), dtype=np.int64))
    with pytest.raises(TypeError, match="expected input of dtype float32.*got float64"):
        layer(np.zeros((2, 784)))
    layer(np.zeros((2, 784), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 256\).*got \(2, 255\)"):
        layer.backward(np.zeros((2, 255), dtype=np.float32))
    with pytest.raises(ValueError, match="Linear: expected a positive integer in_features, got 0"):
        hg.Linear(0, 3)
