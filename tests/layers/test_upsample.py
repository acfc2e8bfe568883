"""Upsample and its fixed-mode forms: PyTorch parity and gradient checks under hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.layers import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d
from tests.helpers import check_layer_contract

torch = pytest.importorskip("torch")


@st.composite
def upsample_configs(draw):
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "linear", "bilinear", "bicubic",
                                 "trilinear", "area"]))
    dims = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}.get(mode) or \
        draw(st.integers(1, 3))
    in_size = tuple(draw(st.integers(1, 5 if dims < 3 else 3)) for _ in range(dims))
    kwargs = dict(mode=mode)
    if draw(st.booleans()):
        kwargs["size"] = tuple(draw(st.integers(1, 9 if dims < 3 else 4)) for _ in range(dims))
        if draw(st.booleans()):
            kwargs["size"] = kwargs["size"][0] if dims == 1 else kwargs["size"]
    else:
        scale = tuple(draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])) for _ in in_size)
        if any(int(n * s) < 1 for n, s in zip(in_size, scale)):
            scale = tuple(2.0 for _ in in_size)
        kwargs["scale_factor"] = scale if draw(st.booleans()) else scale[0]
        if not isinstance(kwargs["scale_factor"], tuple) and \
                any(int(n * scale[0]) < 1 for n in in_size):
            kwargs["scale_factor"] = 2.0
        kwargs["recompute_scale_factor"] = draw(st.sampled_from([None, True]))
    if mode not in ("nearest", "nearest-exact", "area"):
        kwargs["align_corners"] = draw(st.sampled_from([None, False, True]))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(
        (draw(st.integers(0, 2)), 2) + in_size)
    return kwargs, x


@given(upsample_configs())
def test_upsample_matches_torch(config):
    kwargs, x = config
    layer = Upsample(**kwargs)
    y = layer(x)
    g = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(g)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    module = torch.nn.Upsample(**kwargs)
    yt = module(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert repr(layer) == repr(module)


@given(config=upsample_configs())
def test_upsample_gradients_match_numerical(config, check_gradients):
    kwargs, x = config
    if len(x):
        check_gradients(Upsample(**kwargs), x)


@pytest.mark.parametrize("cls", [UpsamplingNearest2d, UpsamplingBilinear2d])
def test_fixed_mode_upsampling_matches_torch(cls):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    layer = cls(scale_factor=2)
    y = layer(x)
    g = np.random.default_rng(1).standard_normal(y.shape)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = getattr(torch.nn, cls.__name__)(scale_factor=2)(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    check_layer_contract(lambda: cls(size=(3, 7)), x.astype(np.float32))


def test_upsample_rejects_bad_arguments():
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        Upsample()
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        Upsample(size=2, scale_factor=2)
    with pytest.raises(ValueError, match="mode in"):
        Upsample(size=2, mode="box")
    with pytest.raises(ValueError, match="align_corners can only be set"):
        Upsample(size=2, align_corners=True)
    with pytest.raises(ValueError, match=r"Upsample.*\(N, C, H, W\).*\(1, 2, 3\)"):
        Upsample(size=4, mode="bilinear")(np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="expected size as 2 positive ints"):
        Upsample(size=(2, 3, 4))(np.zeros((1, 2, 3, 3)))
