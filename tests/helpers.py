"""Test helpers shared across the suite: the layer-contract checks and hypothesis strategies."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import strategies as st

import handgrad


def away_from_zero(x: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """Move values in (-margin, margin) out to +-margin: keeps inputs off ReLU-like kinks."""
    x = np.array(x, copy=True)
    small = np.abs(x) < margin
    x[small] = np.where(x[small] >= 0, margin, -margin)
    return x


@st.composite
def arrays(draw, shape, low=-2.0, high=2.0):
    """A float64 array of ``shape`` drawn from a hypothesis-chosen seed (fast to shrink)."""
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def check_layer_contract(make_layer, x, *args, grad_out=None, rng=None):
    """The contract every layer obeys, checked on a fresh layer from ``make_layer()``.

    - backward without forward raises RuntimeError;
    - two forward+backward passes without zero_grad give twice the parameter gradients,
      and zero_grad resets them to None;
    - eval mode caches nothing (backward then raises RuntimeError), and
      ``eval(backward=True)`` allows a backward pass;
    - a state_dict round trip into a fresh layer gives identical outputs;
    - float32 input stays float32.
    """
    rng = rng or np.random.default_rng(0)
    layer = make_layer()
    try:
        layer.backward(np.zeros(1))
        raise AssertionError("backward without forward did not raise")
    except RuntimeError:
        pass

    y = layer(x, *args)
    assert np.asarray(y).dtype == np.asarray(x).dtype, "output dtype differs from input dtype"
    if grad_out is None:
        g = rng.standard_normal(np.shape(y)).astype(np.asarray(x).dtype)
    else:
        g = grad_out
    layer.zero_grad()
    gx1 = layer.backward(g)
    first = {n: p.grad.copy() for n, p in layer.named_parameters() if p.grad is not None}
    assert len(first) == len(list(layer.parameters())), "some parameter received no gradient"
    layer(x, *args)
    gx2 = layer.backward(g)
    np.testing.assert_allclose(gx1, gx2, rtol=1e-5, atol=1e-6)
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * first[n], rtol=1e-5, atol=1e-6, err_msg=n)
    layer.zero_grad()
    assert all(p.grad is None for p in layer.parameters())

    layer.eval()
    layer(x, *args)
    try:
        layer.backward(g)
        raise AssertionError("backward after an eval-mode forward did not raise")
    except RuntimeError:
        pass
    layer.eval(backward=True)
    layer(x, *args)
    assert np.shape(layer.backward(g)) == np.shape(x)

    other = make_layer()
    other.load_state_dict(layer.state_dict())
    other.eval()
    layer.eval()
    np.testing.assert_array_equal(np.asarray(layer(x, *args)), np.asarray(other(x, *args)))
    layer.train()
    return layer


def same_copy(layer):
    return copy.deepcopy(layer)


def to_torch_state(layer: handgrad.Layer, torch_module) -> None:
    """Load a handgrad layer's state_dict into a torch module (float64)."""
    import torch

    state = {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}
    torch_module.load_state_dict(state)
