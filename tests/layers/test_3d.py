"""Conv3d, MaxPool3d, AvgPool3d: gradient checks and PyTorch parity under hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.layers import AvgPool3d, Conv3d, MaxPool3d
from tests.helpers import check_layer_contract, to_torch_state

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-7, 1e-10


def run_torch(module, x, g):
    xt = torch.from_numpy(x.copy()).requires_grad_()
    out = module(xt)
    yt = out[0] if isinstance(out, tuple) else out
    yt.backward(torch.from_numpy(g))
    return out, xt.grad.numpy()


@st.composite
def conv3d_configs(draw):
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups
    kernel = tuple(draw(st.integers(1, 2)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(3))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(3))
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    padding = draw(st.sampled_from([0, 1, (1, 0, 1)]))
    if stride == (1, 1, 1) and draw(st.booleans()):
        padding = "same"
    size = tuple(draw(st.integers(max(2, d * (k - 1) + 1), 4)) for k, d in zip(kernel, dilation))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(
        draw(st.sampled_from([(), (1,), (2,)])) + (cin,) + size)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  bias=draw(st.booleans()), padding_mode=mode)
    return (cin, cout, kernel), kwargs, x


@given(data=st.data())
def test_conv3d_matches_torch_and_numerical_gradients(data, check_gradients):
    args, kwargs, x = data.draw(conv3d_configs())
    layer = Conv3d(*args, **kwargs, dtype=np.float64, rng=0)
    module = torch.nn.Conv3d(*args, **kwargs).double()
    to_torch_state(layer, module)
    y = layer(x)
    g = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(g)
    y_t, gx_t = run_torch(module, x, g)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad_x, gx_t, rtol=RTOL, atol=ATOL)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, dict(module.named_parameters())[name].grad.numpy(),
                                   rtol=RTOL, atol=ATOL, err_msg=name)
    assert repr(layer) == repr(module)
    check_gradients(Conv3d(*args, **kwargs, dtype=np.float64, rng=1), x)


@given(data=st.data())
def test_3d_pools_match_torch_and_numerical_gradients(data, check_gradients):
    k = data.draw(st.integers(1, 2))
    kwargs = dict(kernel_size=k, stride=data.draw(st.integers(1, 2)),
                  padding=data.draw(st.integers(0, k // 2)), ceil_mode=data.draw(st.booleans()))
    shape = data.draw(st.sampled_from([(), (2,)])) + (2,) + tuple(
        data.draw(st.integers(2, 4)) for _ in range(3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1  # no ties
    avg = dict(count_include_pad=data.draw(st.booleans()),
               divisor_override=data.draw(st.sampled_from([None, 3])))
    for cls, extra in ((MaxPool3d, dict(return_indices=True)), (AvgPool3d, avg)):
        layer = cls(**kwargs, **extra)
        out = layer(x)
        y = out[0] if isinstance(out, tuple) else out
        g = rng.standard_normal(y.shape)
        grad_x = layer.backward(g)
        out_t, gx_t = run_torch(getattr(torch.nn, cls.__name__)(**kwargs, **extra), x, g)
        y_t = out_t[0] if isinstance(out_t, tuple) else out_t
        np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grad_x, gx_t, rtol=RTOL, atol=ATOL)
        if isinstance(out, tuple):
            np.testing.assert_array_equal(out[1], out_t[1].numpy())
        check_gradients(cls(**kwargs), x)


@pytest.mark.parametrize("make", [lambda: Conv3d(2, 3, 2, stride=2, rng=0),
                                  lambda: MaxPool3d(2), lambda: AvgPool3d(2, padding=1)])
def test_3d_empty_batch_and_contract(make):
    layer = make()
    y = layer(np.zeros((0, 2, 4, 4, 4), np.float32))
    assert y.shape[0] == 0 and y.dtype == np.float32
    assert layer.backward(np.zeros_like(y)).shape == (0, 2, 4, 4, 4)
    x = np.random.default_rng(0).permutation(2 * 2 * 64).reshape(2, 2, 4, 4, 4)
    check_layer_contract(make, x.astype(np.float32) * 0.01)


def test_3d_errors():
    with pytest.raises(ValueError, match=r"Conv3d.*\(N, 2, D, H, W\) or \(2, D, H, W\)"):
        Conv3d(2, 3, 2)(np.zeros((1, 3, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="kernel_size as an int or a triple"):
        Conv3d(2, 3, (2, 2))
    with pytest.raises(ValueError, match="at most half the kernel"):
        MaxPool3d(2, padding=2)
    with pytest.raises(ValueError, match="depth 1 .* too small"):
        Conv3d(1, 1, 2)(np.zeros((1, 1, 1, 4, 4), np.float32))


@given(data=st.data())
def test_conv_transpose3d_matches_torch_and_numerical_gradients(data, check_gradients):
    from handgrad.layers import ConvTranspose3d

    groups = data.draw(st.sampled_from([1, 2]))
    cin, cout = groups, groups * data.draw(st.integers(1, 2))
    kernel = tuple(data.draw(st.integers(1, 2)) for _ in range(3))
    stride = tuple(data.draw(st.integers(1, 2)) for _ in range(3))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(3))
    output_padding = tuple(data.draw(st.integers(0, max(s, d) - 1))
                           for s, d in zip(stride, dilation))
    size = tuple(data.draw(st.integers(1, 3)) for _ in range(3))
    full_h = (size[1] - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    padding = data.draw(st.sampled_from([0, (0, 1, 0)])) if full_h + output_padding[1] > 2 \
        else 0
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding,
                  groups=groups, bias=data.draw(st.booleans()), dilation=dilation)
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).standard_normal(
        data.draw(st.sampled_from([(), (2,)])) + (cin,) + size)
    layer = ConvTranspose3d(cin, cout, kernel, **kwargs, dtype=np.float64, rng=0)
    module = torch.nn.ConvTranspose3d(cin, cout, kernel, **kwargs).double()
    to_torch_state(layer, module)
    y = layer(x)
    g = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(g)
    y_t, gx_t = run_torch(module, x, g)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad_x, gx_t, rtol=RTOL, atol=ATOL)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, dict(module.named_parameters())[name].grad.numpy(),
                                   rtol=RTOL, atol=ATOL, err_msg=name)
    assert repr(layer) == repr(module)
    check_gradients(ConvTranspose3d(cin, cout, kernel, **kwargs, dtype=np.float64, rng=1), x)


def test_conv_transpose3d_empty_batch_and_output_size():
    from handgrad.layers import ConvTranspose3d

    layer = ConvTranspose3d(2, 3, 2, stride=2, rng=0)
    y = layer(np.zeros((0, 2, 2, 3, 2), np.float32))
    assert y.shape == (0, 3, 4, 6, 4)
    assert layer.backward(np.zeros_like(y)).shape == (0, 2, 2, 3, 2)
    assert layer(np.zeros((1, 2, 2, 3, 2), np.float32), (5, 7, 4)).shape == (1, 3, 5, 7, 4)
    with pytest.raises(ValueError, match="output_size .* is not possible"):
        layer(np.zeros((1, 2, 2, 3, 2), np.float32), (6, 6, 4))


@given(data=st.data())
def test_3d_adaptive_pools_and_unpool_match_torch(data, check_gradients):
    from handgrad.layers import AdaptiveAvgPool3d, AdaptiveMaxPool3d, MaxUnpool3d

    shape = data.draw(st.sampled_from([(), (2,)])) + (2,) + tuple(
        data.draw(st.integers(1, 4)) for _ in range(3))
    out = tuple(data.draw(st.sampled_from([None, 1, 2, 3])) for _ in range(3))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1
    for cls, extra in ((AdaptiveAvgPool3d, {}), (AdaptiveMaxPool3d, dict(return_indices=True))):
        layer = cls(out, **extra)
        res = layer(x)
        y = res[0] if extra else res
        g = rng.standard_normal(y.shape)
        grad_x = layer.backward(g)
        res_t, gx_t = run_torch(getattr(torch.nn, cls.__name__)(out, **extra), x, g)
        y_t = res_t[0] if extra else res_t
        np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grad_x, gx_t, rtol=RTOL, atol=ATOL)
        if extra:
            np.testing.assert_array_equal(res[1], res_t[1].numpy())
        check_gradients(cls(out), x)
    if min(shape[-3:]) >= 2:
        y, idx = MaxPool3d(2, return_indices=True)(x)
        unpool = MaxUnpool3d(2)
        z = unpool(y, idx, shape[-3:])
        zt = torch.nn.MaxUnpool3d(2)(torch.from_numpy(y), torch.from_numpy(idx), shape[-3:])
        np.testing.assert_array_equal(z, zt.numpy())
        check_gradients(MaxUnpool3d(2), y, idx, shape[-3:])
