"""Pooling's PyTorch edge cases (ceil_mode, indices, unpooling, unbatched and empty inputs)
and the 1-d pools: gradient checks and PyTorch parity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from handgrad.layers import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
    MaxUnpool1d,
    MaxUnpool2d,
)
from handgrad.ops import output_size
from tests.helpers import check_layer_contract

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-7, 1e-10


def distinct(shape, seed):
    """Values with gaps of at least 0.1 between any two: no max-pool ties, no kinks."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1
            + rng.uniform(0, 0.01, shape))


@st.composite
def pool_configs(draw, dims=2, kind="max"):
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3))
    padding = draw(st.integers(0, k // 2))
    dilation = draw(st.integers(1, 2)) if kind == "max" else 1
    kwargs = dict(kernel_size=k, stride=stride, padding=padding,
                  ceil_mode=draw(st.booleans()))
    if kind == "max":
        kwargs["dilation"] = dilation
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
        if dims == 2 and draw(st.booleans()):
            kwargs["divisor_override"] = draw(st.integers(1, 5))
    size = draw(st.integers(max(1, dilation * (k - 1) + 1 - 2 * padding), 7))
    batch = draw(st.sampled_from([(), (1,), (2,)]))
    shape = batch + (draw(st.integers(1, 2)),) + (size,) * (dims - 1) + (size + 1,)
    return kwargs, distinct(shape, draw(st.integers(0, 2**16)))


def some_window_is_all_padding(kwargs, shape):
    """True when a window reads only padding (PyTorch's max pooling then corrupts memory)."""
    k, s, p = kwargs["kernel_size"], kwargs["stride"], kwargs["padding"]
    d = kwargs.get("dilation", 1)
    for size in shape:  # the spatial sizes
        for o in range(output_size(size, k, s, p, d, kwargs["ceil_mode"])):
            if not any(0 <= o * s - p + j * d < size for j in range(k)):
                return True
    return False


POOLS = {(2, "max"): (MaxPool2d, "MaxPool2d"), (1, "max"): (MaxPool1d, "MaxPool1d"),
         (2, "avg"): (AvgPool2d, "AvgPool2d"), (1, "avg"): (AvgPool1d, "AvgPool1d")}


def torch_grad(module, x, g):
    xt = torch.from_numpy(x.copy()).requires_grad_()
    out = module(xt)
    yt = out[0] if isinstance(out, tuple) else out
    yt.backward(torch.from_numpy(g.copy()))
    return out, xt.grad.numpy()


@pytest.mark.parametrize("dims, kind", list(POOLS))
@given(data=st.data())
def test_pools_match_torch_and_numerical_gradients(dims, kind, data, check_gradients):
    kwargs, x = data.draw(pool_configs(dims, kind))
    assume(not some_window_is_all_padding(kwargs, x.shape[-dims:]))
    cls, name = POOLS[(dims, kind)]
    if kind == "max":
        kwargs["return_indices"] = data.draw(st.booleans())
    layer = cls(**kwargs)
    out = layer(x)
    y = out[0] if kwargs.get("return_indices") else out
    g = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(g)
    out_t, gx_t = torch_grad(getattr(torch.nn, name)(**kwargs), x, g)
    y_t = out_t[0] if kwargs.get("return_indices") else out_t
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad_x, gx_t, rtol=RTOL, atol=ATOL)
    if kwargs.get("return_indices"):
        assert out[1].dtype == np.int64
        np.testing.assert_array_equal(out[1], out_t[1].numpy())
    kwargs.pop("return_indices", None)
    check_gradients(cls(**kwargs), x)


@pytest.mark.parametrize("dims", [1, 2])
@given(data=st.data())
def test_adaptive_pools_match_torch_and_numerical_gradients(dims, data, check_gradients):
    batch = data.draw(st.sampled_from([(), (2,)]))
    in_size = tuple(data.draw(st.integers(1, 7)) for _ in range(dims))
    out_size = tuple(data.draw(st.integers(1, 5)) for _ in range(dims))
    x = distinct(batch + (2,) + in_size, data.draw(st.integers(0, 2**16)))
    arg = out_size[0] if dims == 1 else out_size
    for kind in ("Avg", "Max"):
        name = f"Adaptive{kind}Pool{dims}d"
        layer_cls = {"AdaptiveAvgPool1d": AdaptiveAvgPool1d, "AdaptiveAvgPool2d":
                     AdaptiveAvgPool2d, "AdaptiveMaxPool1d": AdaptiveMaxPool1d,
                     "AdaptiveMaxPool2d": AdaptiveMaxPool2d}[name]
        extra = {"return_indices": True} if kind == "Max" else {}
        layer = layer_cls(arg, **extra)
        out = layer(x)
        y = out[0] if extra else out
        g = np.random.default_rng(1).standard_normal(y.shape)
        grad_x = layer.backward(g)
        out_t, gx_t = torch_grad(getattr(torch.nn, name)(arg, **extra), x, g)
        y_t = out_t[0] if extra else out_t
        np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grad_x, gx_t, rtol=RTOL, atol=ATOL)
        if extra:
            assert out[1].dtype == np.int64
            np.testing.assert_array_equal(out[1], out_t[1].numpy())
        check_gradients(layer_cls(arg), x)


@pytest.mark.parametrize("dims", [1, 2])
@given(data=st.data())
def test_max_unpool_inverts_max_pool_like_torch(dims, data, check_gradients):
    k = data.draw(st.integers(1, 3))
    stride = data.draw(st.integers(k, 3))  # non-overlapping windows: distinct indices
    padding = data.draw(st.integers(0, k // 2))
    size = data.draw(st.integers(max(1, k - 2 * padding), 7))
    batch = data.draw(st.sampled_from([(), (2,)]))
    x = distinct(batch + (2,) + (size,) * dims, data.draw(st.integers(0, 2**16)))
    pool_cls, unpool_cls = (MaxPool1d, MaxUnpool1d) if dims == 1 else (MaxPool2d, MaxUnpool2d)
    y, indices = pool_cls(k, stride, padding, return_indices=True)(x)
    default = (y.shape[-1] - 1) * stride - 2 * padding + k
    size_out = data.draw(st.integers(max(default - stride + 1, size), default + stride - 1))
    output_size = (size_out,) * dims
    unpool = unpool_cls(k, stride, padding)
    z = unpool(y, indices, output_size)
    g = np.random.default_rng(1).standard_normal(z.shape)
    grad_y = unpool.backward(g)
    name = f"MaxUnpool{dims}d"
    yt = torch.from_numpy(y.copy()).requires_grad_()
    zt = getattr(torch.nn, name)(k, stride, padding)(yt, torch.from_numpy(indices),
                                                     output_size)
    zt.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(z, zt.detach().numpy())
    np.testing.assert_array_equal(grad_y, yt.grad.numpy())
    check_gradients(unpool_cls(k, stride, padding), y, indices, output_size)


EMPTY = [
    (lambda: MaxPool2d(2, return_indices=True), (0, 2, 4, 5)),
    (lambda: AvgPool2d(3, 2, 1, ceil_mode=True), (0, 2, 4, 5)),
    (lambda: MaxPool1d(2), (0, 3, 5)),
    (lambda: AvgPool1d(2), (0, 3, 5)),
    (lambda: AdaptiveAvgPool2d((2, 3)), (0, 2, 4, 5)),
    (lambda: AdaptiveMaxPool2d((3, 2), return_indices=True), (0, 2, 4, 5)),
    (lambda: AdaptiveMaxPool1d(3), (0, 2, 5)),
    (lambda: AdaptiveAvgPool1d(1), (0, 2, 5)),
]


@pytest.mark.parametrize("make, shape", EMPTY)
def test_empty_batch_gives_empty_outputs_like_torch(make, shape):
    layer = make()
    x = np.zeros(shape, np.float32)
    out = layer(x)
    y = out[0] if isinstance(out, tuple) else out
    name = type(layer).__name__
    args = {k: v for k, v in vars(layer).items() if k in (
        "kernel_size", "stride", "padding", "ceil_mode", "output_size", "return_indices")}
    out_t = getattr(torch.nn, name)(**args)(torch.from_numpy(x))
    y_t = out_t[0] if isinstance(out_t, tuple) else out_t
    assert y.shape == tuple(y_t.shape) and y.dtype == np.float32
    assert layer.backward(np.zeros_like(y)).shape == shape


def test_max_pool1d_contract_and_unpool_errors():
    x = distinct((2, 3, 8), 0).astype(np.float32)
    check_layer_contract(lambda: MaxPool1d(3, 2, 1), x)
    check_layer_contract(lambda: AdaptiveMaxPool1d(3), x)
    y, idx = MaxPool2d(2, return_indices=True)(distinct((1, 2, 4, 4), 0))
    unpool = MaxUnpool2d(2)
    with pytest.raises(ValueError, match=r"MaxUnpool2d.*output_size \(6, 6\).*between 2 and 6"):
        unpool(y, idx, (6, 6))
    with pytest.raises(ValueError, match="index outside"):
        unpool(y, idx + 100)
    with pytest.raises(ValueError, match="indices of the input's shape"):
        unpool(y, idx[:, :1])
    with pytest.raises(TypeError, match="integer indices"):
        unpool(y, idx.astype(np.float64))
    with pytest.raises(ValueError, match=r"MaxPool1d.*\(N, C, L\) or \(C, L\)"):
        MaxPool1d(2)(np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="AdaptiveAvgPool1d: expected output_size"):
        AdaptiveAvgPool1d((2, 2))
    with pytest.raises(ValueError, match="at most half the kernel"):
        MaxPool1d(2, padding=2)


@pytest.mark.parametrize("dims", [1, 2, 3])
@given(data=st.data())
def test_lp_pools_match_torch_and_numerical_gradients(dims, data, check_gradients):
    from handgrad.layers import LPPool1d, LPPool2d, LPPool3d

    cls = {1: LPPool1d, 2: LPPool2d, 3: LPPool3d}[dims]
    k = data.draw(st.integers(1, 3 if dims < 3 else 2))
    args = (data.draw(st.sampled_from([1, 2, 3, 1.5])), k)
    kwargs = dict(stride=data.draw(st.sampled_from([None, 1, 2])),
                  ceil_mode=data.draw(st.booleans()))
    shape = data.draw(st.sampled_from([(), (2,)])) + (2,) + tuple(
        data.draw(st.integers(k, 4)) for _ in range(dims))
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).uniform(0.2, 2.0, shape)
    layer = cls(*args, **kwargs)
    y = layer(x)
    g = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(g)
    module = getattr(torch.nn, cls.__name__)(*args, **kwargs)
    y_t, gx_t = torch_grad(module, x, g)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad_x, gx_t, rtol=RTOL, atol=ATOL)
    assert repr(layer) == repr(module)
    check_gradients(cls(*args, **kwargs), x)
