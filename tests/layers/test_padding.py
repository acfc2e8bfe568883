"""Padding layers and the shared padding kernel: gradient checks and PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import handgrad.layers as layers
from handgrad.ops import backprop_pad, pad
from tests.helpers import check_layer_contract

torch = pytest.importorskip("torch")

NAMES = ["ZeroPad", "ConstantPad", "ReflectionPad", "ReplicationPad", "CircularPad"]


@st.composite
def pad_configs(draw, name, dims):
    size = tuple(draw(st.integers(1, 5 if dims < 3 else 3)) for _ in range(dims))
    low = -1 if name in ("ZeroPad", "ConstantPad") else 0
    amounts = []
    for axis in reversed(range(dims)):  # PyTorch's order: last axis first
        n = size[axis]
        high = {"ReflectionPad": n - 1, "CircularPad": n}.get(name, 3 if dims < 3 else 2)
        amounts += [draw(st.integers(low if n > 2 else 0, high)) for _ in range(2)]
    args = [tuple(amounts)] if draw(st.booleans()) or len(set(amounts)) > 1 else [amounts[0]]
    if name == "ConstantPad":
        args.append(draw(st.sampled_from([0.0, -1.5, 2.0])))
    batch = draw(st.sampled_from([(), (2,)]))
    seed = draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).standard_normal(batch + (2,) + size)
    return args, x


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_padding_layers_match_torch_and_numerical_gradients(name, dims, data, check_gradients):
    args, x = data.draw(pad_configs(name, dims))
    cls = getattr(layers, f"{name}{dims}d")
    layer = cls(*args)
    y = layer(x)
    g = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(g)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    module = getattr(torch.nn, f"{name}{dims}d")(*args)
    yt = module(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert repr(layer) == repr(module)
    check_gradients(cls(*args), x)


def test_padding_kernel_folds_without_scatter_and_keeps_dtype():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    for mode in ("constant", "reflect", "replicate", "circular"):
        y = pad(x, ((1, 2), (2, 3)), mode)
        assert y.dtype == np.float32 and y.shape == (1, 6, 9)
        g = backprop_pad(np.ones_like(y), ((1, 2), (2, 3)), mode)
        # every output entry's gradient lands somewhere: the total is kept (constant: interior)
        assert g.shape == x.shape and g.dtype == np.float32
        assert g.sum() == (x.size if mode == "constant" else y.size)


def test_padding_contract_and_errors():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    check_layer_contract(lambda: layers.ReflectionPad2d((1, 2, 0, 3)), x)
    with pytest.raises(ValueError, match=r"ReflectionPad2d.*reflect padding \(0, 4\) must be "
                                         r"smaller than the input size 4"):
        layers.ReflectionPad2d((0, 0, 0, 4))(x)
    with pytest.raises(ValueError, match=r"CircularPad1d.*at most the input size 5"):
        layers.CircularPad1d(6)(x[0])
    with pytest.raises(ValueError, match=r"ReplicationPad1d: expected padding as a "
                                         r"non-negative int or a 2-tuple"):
        layers.ReplicationPad1d((1, 2, 3))
    with pytest.raises(ValueError, match="non-negative"):
        layers.ReflectionPad1d(-1)
    with pytest.raises(ValueError, match=r"ZeroPad2d.*\(N, C, H, W\) or \(C, H, W\)"):
        layers.ZeroPad2d(1)(x[0, 0])
    layer = layers.ZeroPad2d(1)
    layer(x)
    with pytest.raises(ValueError, match=r"grad_out of shape \(2, 3, 6, 7\)"):
        layer.backward(x)
