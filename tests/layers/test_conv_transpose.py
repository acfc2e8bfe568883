"""ConvTranspose1d/2d: gradient checks, adjointness with Conv2d, PyTorch parity, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.layers import Conv2d, ConvTranspose1d, ConvTranspose2d
from tests.helpers import check_layer_contract, to_torch_state

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-7, 1e-10


@st.composite
def transpose_configs(draw, dims=2):
    groups = draw(st.sampled_from([1, 1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    padding = draw(st.integers(0, 2))
    output_padding = draw(st.integers(0, max(stride, dilation) - 1))
    size = draw(st.integers(1, 4))
    full = (size - 1) * stride + dilation * (k - 1) + 1
    if full - 2 * padding + output_padding < 1:
        padding = 0
    batch = draw(st.sampled_from([(), (1,), (2,)]))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(
        batch + (cin,) + (size,) * dims)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding,
                  groups=groups, bias=draw(st.booleans()), dilation=dilation)
    return (cin, cout, k), kwargs, x


def assert_parity(layer, module, x, *args):
    to_torch_state(layer, module)
    y = layer(x, *args)
    g = np.random.default_rng(7).standard_normal(y.shape)
    grad_x = layer.backward(g)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = module(xt, *args)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=RTOL, atol=ATOL)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, dict(module.named_parameters())[name].grad.numpy(),
                                   rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("dims", [1, 2])
@given(data=st.data())
def test_conv_transpose_matches_torch_and_numerical_gradients(dims, data, check_gradients):
    args, kwargs, x = data.draw(transpose_configs(dims))
    cls, torch_cls = (ConvTranspose2d, torch.nn.ConvTranspose2d) if dims == 2 else \
        (ConvTranspose1d, torch.nn.ConvTranspose1d)
    layer = cls(*args, **kwargs, dtype=np.float64, rng=0)
    module = torch_cls(*args, **kwargs).double()
    assert {k: v.shape for k, v in layer.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert repr(layer) == repr(module)
    assert_parity(layer, module, x)
    check_gradients(cls(*args, **kwargs, dtype=np.float64, rng=1), x)


@given(transpose_configs())
def test_conv_transpose_is_the_adjoint_of_conv2d(config):
    # <ConvT(x), z> = <x, Conv(z)> for the Conv2d with the same weight and geometry (whose
    # output has an extra row when output_padding >= stride: cropped).
    (cin, cout, k), kwargs, x = config
    x = x.reshape((-1,) + x.shape[-3:])
    kwargs["bias"] = False
    layer = ConvTranspose2d(cin, cout, k, **kwargs, dtype=np.float64, rng=0)
    y = layer(x)
    conv = Conv2d(cout, cin, k, stride=kwargs["stride"], padding=kwargs["padding"],
                  dilation=kwargs["dilation"], groups=kwargs["groups"], bias=False,
                  dtype=np.float64)
    conv.weight.data[...] = layer.weight.data
    z = np.random.default_rng(3).standard_normal(y.shape)
    back = conv(z)[:, :, :x.shape[2], :x.shape[3]]
    np.testing.assert_allclose(np.vdot(y, z), np.vdot(x, back), rtol=1e-10, atol=1e-10)


def test_conv_transpose_output_size_chooses_output_padding():
    layer = ConvTranspose2d(2, 3, 3, stride=2, padding=1, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5))
    assert layer(x).shape == (1, 3, 7, 9)
    module = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    assert_parity(layer, module, x, [8, 10])
    assert layer(x, (1, 3, 8, 9)).shape == (1, 3, 8, 9)
    with pytest.raises(ValueError, match=r"output_size \(9, 9\) is not possible.*\[7, 8\]"):
        layer(x, (9, 9))


def test_conv_transpose_empty_batch_and_contract():
    layer = ConvTranspose1d(2, 4, 3, stride=2, rng=0)
    y = layer(np.zeros((0, 2, 5), np.float32))
    assert y.shape == (0, 4, 11) and y.dtype == np.float32
    assert layer.backward(np.zeros_like(y)).shape == (0, 2, 5)
    assert not layer.weight.grad.any() and not layer.bias.grad.any()
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 4)).astype(np.float32)
    check_layer_contract(lambda: ConvTranspose2d(4, 6, 2, stride=2, groups=2, rng=0), x)


def test_conv_transpose_rejects_bad_arguments():
    with pytest.raises(ValueError, match="output_padding .* smaller than either the stride"):
        ConvTranspose2d(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="only padding_mode='zeros'"):
        ConvTranspose1d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="groups=2 must divide"):
        ConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"ConvTranspose2d.*\(N, 3, H, W\) or \(3, H, W\)"):
        ConvTranspose2d(3, 4, 3)(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="empty output"):
        ConvTranspose2d(1, 1, 1, padding=1)(np.zeros((1, 1, 2, 2), np.float32))
