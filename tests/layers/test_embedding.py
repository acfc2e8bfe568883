"""Embedding: lookup, gradient accumulation, padding row, bad ids, PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad import Embedding, numerical_gradient


@given(V=st.integers(1, 8), D=st.integers(1, 4), shape=st.sampled_from([(5,), (2, 3), (3, 4, 2)]),
       padding=st.booleans(), seed=st.integers(0, 2**16))
def test_gradient_matches_central_differences(V, D, shape, padding, seed):
    rng = np.random.default_rng(seed)
    padding_idx = int(rng.integers(V)) if padding else None
    layer = Embedding(V, D, padding_idx=padding_idx, dtype=np.float64, rng=seed)
    ids = rng.integers(0, V, size=shape)  # repeated ids on purpose
    g = rng.standard_normal(shape + (D,))
    y = layer(ids)
    np.testing.assert_array_equal(y, layer.weight.data[ids])
    assert layer.backward(g) is None  # integer ids have no gradient
    numeric = numerical_gradient(lambda _: float(np.sum(layer(ids) * g)), layer.weight.data)
    if padding_idx is not None:
        numeric[padding_idx] = 0  # the padding row receives no gradient
    np.testing.assert_allclose(layer.weight.grad, numeric, rtol=1e-6, atol=1e-8)


def test_padding_row_zero_accumulation_and_dtype():
    layer = Embedding(5, 3, padding_idx=-1, rng=0)
    assert layer.padding_idx == 4 and not layer.weight.data[4].any()
    ids = np.array([[0, 4, 0], [2, 4, 1]])
    y = layer(ids)
    assert y.dtype == np.float32 and y.shape == (2, 3, 3)
    g = np.ones((2, 3, 3), np.float32)
    layer.backward(g)
    layer(ids)
    layer.backward(g)
    assert layer.weight.grad.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.grad[:, 0], [4, 2, 2, 0, 0])
    layer.zero_grad()
    assert layer.weight.grad is None
    layer.eval()
    layer(ids)
    with pytest.raises(RuntimeError):
        layer.backward(g)
    other = Embedding(5, 3, padding_idx=4, rng=1)
    other.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(other(ids), layer(ids))


def test_bad_input():
    layer = Embedding(5, 3)
    with pytest.raises(ValueError, match=r"Embedding\(5, 3\): id 7 is out of range \[0, 5\)"):
        layer(np.array([1, 7]))
    with pytest.raises(ValueError, match="id -1"):
        layer(np.array([-1, 2]))
    with pytest.raises(TypeError, match="integer ids"):
        layer(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(5, 3, padding_idx=5)
    layer(np.array([1, 2]))
    with pytest.raises(ValueError, match="grad_out"):
        layer.backward(np.zeros((2, 4), np.float32))


def test_parity_with_torch():
    torch = pytest.importorskip("torch")
    ours = Embedding(7, 4, padding_idx=2, dtype=np.float64, rng=3)
    theirs = torch.nn.Embedding(7, 4, padding_idx=2).double()
    theirs.load_state_dict({"weight": torch.from_numpy(ours.weight.data.copy())})
    ids = np.random.default_rng(4).integers(0, 7, size=(3, 5))
    g = np.random.default_rng(5).standard_normal((3, 5, 4))
    y_t = theirs(torch.from_numpy(ids))
    (y_t * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(ours(ids), y_t.detach().numpy(), rtol=1e-6)
    ours.backward(g)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-6, atol=1e-12)
