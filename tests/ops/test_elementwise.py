"""handgrad.ops.elementwise: fast kernels equal their plain NumPy definitions bit for bit."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg
from handgrad.ops.elementwise import BLOCK, clamp_min_zero

SPECIAL = [-0.0, 0.0, np.nan, np.inf, -np.inf, -1e-30, 1e-30]

# sizes around the zeros block: empty, inside one block, exactly one, several plus a rest
sizes = st.sampled_from([0, 1, 7, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5])


@given(size=sizes, dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16), in_place=st.booleans())
def test_clamp_min_zero_equals_np_maximum(size, dtype, seed, in_place):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(size).astype(dtype)
    if size:
        x[rng.integers(0, size, min(size, len(SPECIAL)))] = SPECIAL[:min(size, len(SPECIAL))]
    expected = np.maximum(x, 0)
    out = x if in_place else np.empty_like(x)
    result = clamp_min_zero(x, out)
    assert result is out and result.dtype == dtype
    np.testing.assert_array_equal(result.view(f"u{x.itemsize}"),
                                  expected.view(f"u{x.itemsize}"))  # NaN and -0.0 too


def test_clamp_min_zero_keeps_shape_and_handles_views():
    x = np.random.default_rng(0).standard_normal((5, 6, 7)).astype(np.float32)
    out = np.empty_like(x)
    np.testing.assert_array_equal(clamp_min_zero(x, out), np.maximum(x, 0))
    view = x[:, ::2]  # not contiguous: the plain path
    out = np.empty(view.shape, np.float32)
    np.testing.assert_array_equal(clamp_min_zero(view, out), np.maximum(view, 0))


def test_zeros_block_cannot_be_written():
    x = -np.ones(10, np.float32)
    clamp_min_zero(x, x)
    from handgrad.ops import elementwise
    with pytest.raises(ValueError):
        elementwise._zeros(np.dtype(np.float32))[0] = 1.0


def test_relu_layer_keeps_nan_and_clamps():
    x = np.array([[-1.0, np.nan, 2.0, -0.0, -np.inf]], np.float32)
    y = hg.ReLU()(x)
    np.testing.assert_array_equal(y, np.array([[0.0, np.nan, 2.0, 0.0, 0.0]], np.float32))
