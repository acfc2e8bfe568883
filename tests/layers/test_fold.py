"""Unfold, Fold, PixelShuffle, PixelUnshuffle: PyTorch parity and gradient checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.layers import Fold, PixelShuffle, PixelUnshuffle, Unfold
from tests.helpers import check_layer_contract

torch = pytest.importorskip("torch")


def assert_parity(layer, module, x):
    y = layer(x)
    g = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(g)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = module(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert repr(layer) == repr(module)


@given(data=st.data())
def test_unfold_and_fold_match_torch_and_numerical_gradients(data, check_gradients):
    kernel = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    kwargs = dict(dilation=data.draw(st.integers(1, 2)), padding=data.draw(st.integers(0, 1)),
                  stride=data.draw(st.integers(1, 2)))
    d, p = kwargs["dilation"], kwargs["padding"]
    hw = tuple(data.draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 5)) for k in kernel)
    batch = data.draw(st.sampled_from([(), (2,)]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal(batch + (2,) + hw)
    assert_parity(Unfold(kernel, **kwargs), torch.nn.Unfold(kernel, **kwargs), x)
    check_gradients(Unfold(kernel, **kwargs), x)
    cols = Unfold(kernel, **kwargs)(x)
    assert_parity(Fold(hw, kernel, **kwargs), torch.nn.Fold(hw, kernel, **kwargs), cols)
    check_gradients(Fold(hw, kernel, **kwargs), cols)


@given(r=st.integers(1, 3), batch=st.sampled_from([(), (2,), (2, 1)]))
def test_pixel_shuffle_matches_torch(r, batch, check_gradients):
    x = np.random.default_rng(r).standard_normal(batch + (2 * r * r, 3, 2))
    assert_parity(PixelShuffle(r), torch.nn.PixelShuffle(r), x)
    check_gradients(PixelShuffle(r), x)
    z = np.random.default_rng(r).standard_normal(batch + (2, 2 * r, 3 * r))
    assert_parity(PixelUnshuffle(r), torch.nn.PixelUnshuffle(r), z)


def test_fold_contract_empty_batch_and_errors():
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 4)).astype(np.float32)
    check_layer_contract(lambda: Unfold(2, stride=2), x)
    y = Unfold(3, padding=1)(np.zeros((0, 2, 4, 4), np.float32))
    assert y.shape == (0, 18, 16)
    assert Fold((4, 4), 3, padding=1)(y).shape == (0, 2, 4, 4)
    with pytest.raises(ValueError, match=r"Fold.*\(N, C\*4, 9\)"):
        Fold((4, 4), 2)(np.zeros((1, 8, 8)))
    with pytest.raises(ValueError, match=r"PixelShuffle.*\(\*, C\*4, H, W\)"):
        PixelShuffle(2)(np.zeros((1, 3, 2, 2)))


@given(groups=st.integers(1, 3), per=st.integers(1, 3),
       shape=st.sampled_from([(2,), (3, 2), (1, 2, 2)]), batch=st.integers(0, 2))
def test_channel_shuffle_matches_torch(groups, per, shape, batch, check_gradients):
    from handgrad.layers import ChannelShuffle

    x = np.random.default_rng(per).standard_normal((batch, groups * per) + shape)
    assert_parity(ChannelShuffle(groups), torch.nn.ChannelShuffle(groups), x)
    if batch:
        check_gradients(ChannelShuffle(groups), x)
