"""The padding kernel against np.pad and a brute-force adjoint (no PyTorch needed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.ops import backprop_pad, pad
from tests import reference


@given(data=st.data())
def test_pad_matches_numpy_and_its_adjoint(data):
    mode = data.draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    dims = data.draw(st.integers(1, 3))
    shape = (2,) + tuple(data.draw(st.integers(1, 4)) for _ in range(dims))
    high = {"reflect": lambda n: n - 1, "circular": lambda n: n}.get(mode, lambda n: 3)
    padding = tuple((data.draw(st.integers(0, high(n))), data.draw(st.integers(0, high(n))))
                    for n in shape[1:])
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).standard_normal(shape)
    y = pad(x, padding, mode, value=0.5)
    np.testing.assert_array_equal(y, reference.pad(x, padding, mode, value=0.5))
    g = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_allclose(backprop_pad(g, padding, mode),
                               reference.backprop_pad(g, x.shape, padding, mode),
                               rtol=1e-12, atol=1e-12)


def test_constant_padding_crops_with_negative_amounts():
    x = np.arange(12.0).reshape(3, 4)
    y = pad(x, ((-1, 1), (2, -3)), value=9.0)
    np.testing.assert_array_equal(y, [[9, 9, 4], [9, 9, 8], [9, 9, 9]])
    grad = backprop_pad(np.ones_like(y), ((-1, 1), (2, -3)))
    np.testing.assert_array_equal(grad, [[0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]])


def test_pad_errors_name_the_caller():
    with pytest.raises(ValueError, match="Thing: reflect padding .* smaller"):
        pad(np.zeros((1, 3)), ((0, 3),), "reflect", who="Thing")
    with pytest.raises(ValueError, match="padding mode"):
        pad(np.zeros((1, 3)), ((0, 1),), "mirror")
    with pytest.raises(ValueError, match="only supported with constant"):
        pad(np.zeros((1, 3)), ((-1, 1),), "circular")
