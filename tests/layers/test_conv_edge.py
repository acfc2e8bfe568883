"""Conv2d's PyTorch edge cases (padding_mode, unbatched and empty inputs) and Conv1d."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.layers import Conv1d, Conv2d
from tests.helpers import check_layer_contract

torch = pytest.importorskip("torch")

from tests.helpers import to_torch_state  # noqa: E402

RTOL, ATOL = 1e-7, 1e-10


def torch_run(module, x, g):
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = module(xt)
    yt.backward(torch.from_numpy(g.copy()))
    return yt.detach().numpy(), xt.grad.numpy()


def assert_parity(layer, module, x):
    to_torch_state(layer, module)
    y = layer(x)
    g = np.random.default_rng(7).standard_normal(y.shape)
    grad_x = layer.backward(g)
    y_t, gx_t = torch_run(module, x, g)
    np.testing.assert_allclose(y, y_t, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad_x, gx_t, rtol=RTOL, atol=ATOL)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, dict(module.named_parameters())[name].grad.numpy(),
                                   rtol=RTOL, atol=ATOL, err_msg=name)


@st.composite
def padded_conv_configs(draw, dims=2):
    mode = draw(st.sampled_from(["reflect", "replicate", "circular", "zeros"]))
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    stride, dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    padding = draw(st.sampled_from([0, 1, 2, "same"])) if stride == 1 else \
        draw(st.sampled_from([0, 1, 2]))
    size = draw(st.integers(max(3, dilation * (k - 1) + 1), 6))
    shape = (draw(st.integers(1, 2)), cin) + (size,) * dims
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=mode, bias=draw(st.booleans()))
    return (cin, cout, k), kwargs, x


@given(config=padded_conv_configs())
def test_conv2d_padding_modes_gradients(config, check_gradients):
    args, kwargs, x = config
    check_gradients(Conv2d(*args, **kwargs, dtype=np.float64, rng=0), x)


@given(config=padded_conv_configs(dims=1))
def test_conv1d_gradients(config, check_gradients):
    args, kwargs, x = config
    check_gradients(Conv1d(*args, **kwargs, dtype=np.float64, rng=0), x)


@given(config=padded_conv_configs())
def test_conv2d_padding_modes_match_torch(config):
    args, kwargs, x = config
    assert_parity(Conv2d(*args, **kwargs, dtype=np.float64, rng=0),
                  torch.nn.Conv2d(*args, **kwargs).double(), x)


@given(config=padded_conv_configs(dims=1))
def test_conv1d_matches_torch(config):
    args, kwargs, x = config
    assert_parity(Conv1d(*args, **kwargs, dtype=np.float64, rng=0),
                  torch.nn.Conv1d(*args, **kwargs).double(), x)


@pytest.mark.parametrize("make, torch_make, shape", [
    (lambda: Conv2d(3, 4, 3, padding=1, padding_mode="reflect", dtype=np.float64, rng=0),
     lambda: torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (3, 5, 6)),
    (lambda: Conv2d(2, 4, 2, stride=2, groups=2, dtype=np.float64, rng=0),
     lambda: torch.nn.Conv2d(2, 4, 2, stride=2, groups=2), (2, 5, 6)),
    (lambda: Conv1d(3, 4, 3, padding=2, padding_mode="circular", dtype=np.float64, rng=0),
     lambda: torch.nn.Conv1d(3, 4, 3, padding=2, padding_mode="circular"), (3, 7)),
])
def test_unbatched_input_matches_torch(make, torch_make, shape):
    layer = make()
    x = np.random.default_rng(0).standard_normal(shape)
    assert layer(x).ndim == len(shape)
    assert_parity(layer, torch_make().double(), x)


@pytest.mark.parametrize("make, shape", [
    (lambda: Conv2d(2, 3, 3, padding=1, padding_mode="replicate", rng=0), (0, 2, 5, 5)),
    (lambda: Conv1d(2, 3, 3, stride=2, rng=0), (0, 2, 7)),
    (lambda: Conv1d(2, 3, 3, rng=0), (0, 2, 7)),
])
def test_empty_batch_gives_empty_outputs_and_zero_gradients(make, shape):
    layer = make()
    x = np.zeros(shape, np.float32)
    y = layer(x)
    expected = torch_run_shape(layer, x)
    assert y.shape == expected and y.dtype == np.float32
    grad_x = layer.backward(np.zeros_like(y))
    assert grad_x.shape == shape
    assert not layer.weight.grad.any() and layer.weight.grad.shape == layer.weight.data.shape
    assert not layer.bias.grad.any()


def torch_run_shape(layer, x):
    cls = torch.nn.Conv1d if isinstance(layer, Conv1d) else torch.nn.Conv2d
    module = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                 layer.padding, layer.dilation, layer.groups, padding_mode=layer.padding_mode)
    return tuple(module(torch.from_numpy(x)).shape)


def test_conv1d_state_dict_and_repr_are_pytorch():
    layer = Conv1d(4, 6, 3, stride=2, padding=1, groups=2)
    module = torch.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2)
    assert {k: v.shape for k, v in layer.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert repr(layer) == repr(module)
    assert repr(Conv2d(2, 2, 3, padding=1, padding_mode="reflect")) == \
        repr(torch.nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))


def test_conv1d_contract_and_float32():
    x = np.random.default_rng(0).standard_normal((2, 4, 9)).astype(np.float32)
    layer = check_layer_contract(lambda: Conv1d(4, 6, 3, stride=2, padding=1, rng=0), x)
    assert layer(x).dtype == np.float32 and layer(x).shape == (2, 6, 5)


def test_padding_mode_errors_name_the_layer_and_the_rule():
    with pytest.raises(ValueError, match=r"Conv2d\(.*reflect padding \(3, 3\) must be smaller "
                                         r"than the input size 3"):
        Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="circular padding .* at most the input size 2"):
        Conv1d(1, 1, 3, padding=3, padding_mode="circular")(np.zeros((1, 1, 2), np.float32))
    with pytest.raises(ValueError, match="padding_mode"):
        Conv1d(1, 1, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"Conv1d.*\(N, 2, L\) or \(2, L\).*\(1, 3, 5\)"):
        Conv1d(2, 1, 3)(np.zeros((1, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"Conv1d.*kernel_size.*\(3, 3\)"):
        Conv1d(2, 1, (3, 3))
    layer = Conv1d(2, 1, 3)
    layer(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"grad_out of shape \(1, 3\)"):
        layer.backward(np.zeros((1, 1, 3), np.float32))
