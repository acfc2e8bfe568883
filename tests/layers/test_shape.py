"""Flatten and Unflatten: shapes, gradients, the layer contract, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from tests.helpers import arrays, check_layer_contract

shapes = st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple)


@given(shape=shapes, data=st.data())
def test_flatten_gradients(check_gradients, shape, data):
    start = data.draw(st.integers(-len(shape), len(shape) - 1))
    end = data.draw(st.integers(start % len(shape), len(shape) - 1))
    layer = hg.Flatten(start, end)
    x = data.draw(arrays(shape))
    expected = shape[:start % len(shape)] + (int(np.prod(shape[start % len(shape):end + 1])),) \
        + shape[end + 1:]
    assert layer(x).shape == expected
    check_gradients(layer, x)


@given(n=st.integers(1, 3), a=st.integers(1, 3), b=st.integers(1, 3), data=st.data())
def test_unflatten_gradients(check_gradients, n, a, b, data):
    layer = hg.Unflatten(1, (a, b))
    x = data.draw(arrays((n, a * b)))
    assert layer(x).shape == (n, a, b)
    check_gradients(layer, x)


def test_contracts():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    check_layer_contract(hg.Flatten, x)
    check_layer_contract(lambda: hg.Unflatten(-1, (2, 2)), x)


def test_flatten_default_is_nchw_to_rows():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(hg.Flatten()(x), x.reshape(2, 60))
    np.testing.assert_array_equal(hg.Unflatten(1, (3, 4, 5))(hg.Flatten()(x)), x)


def test_bad_input():
    with pytest.raises(ValueError, match=r"Flatten\(start_dim=3, end_dim=-1\): start_dim/end_dim "
                                         r"out of range for an input of shape \(2, 3\)"):
        hg.Flatten(3)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="start_dim must not come after end_dim"):
        hg.Flatten(2, 1)(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"expected dimension 1 of size 6, got input of shape "
                                         r"\(2, 5\)"):
        hg.Unflatten(1, (2, 3))(np.ones((2, 5)))
    flatten = hg.Flatten()
    flatten(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 12\).*got \(2, 5\)"):
        flatten.backward(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 12\).*got \(2, 12, 1"):
        flatten.backward(np.ones((2, 12, 1)))  # same size, wrong shape: was reshaped silently
