"""PyTorch parity (float64, rtol 1e-6) for Conv2d and every pooling layer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from handgrad.layers import (  # noqa: E402
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    Conv2d,
    GlobalAvgPool2d,
    MaxPool2d,
)
from tests.helpers import to_torch_state  # noqa: E402

RTOL, ATOL = 1e-6, 1e-10


def run_both(layer, torch_module, x, grad_out=None):
    """Forward and backward through both; returns handgrad's and torch's (y, grad_x)."""
    y = layer(x)
    g = np.random.default_rng(7).standard_normal(y.shape) if grad_out is None else grad_out
    grad_x = layer.backward(g)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about even kernels with padding='same'
        yt = torch_module(xt)
    yt.backward(torch.from_numpy(g.copy()).reshape(yt.shape))
    np.testing.assert_allclose(y, yt.detach().numpy().reshape(y.shape), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=RTOL, atol=ATOL)


CONV_CONFIGS = [
    # (in, out, kernel, kwargs, input H, W)
    (3, 8, 3, dict(), 8, 8),
    (3, 8, 3, dict(padding=1), 9, 7),
    (4, 6, (3, 5), dict(stride=(2, 3), padding=(1, 2)), 11, 13),
    (4, 4, 3, dict(stride=2, padding=1, groups=4), 9, 10),  # depthwise
    (6, 9, 3, dict(groups=3, dilation=2, padding=2), 10, 9),
    (2, 3, 4, dict(padding="same"), 7, 6),  # even kernel: asymmetric padding
    (2, 3, (3, 2), dict(padding="same", dilation=(2, 3)), 8, 9),
    (3, 5, 5, dict(padding="valid", bias=False), 9, 9),
    (16, 32, 1, dict(stride=2, bias=False), 8, 8),  # ResNet projection shortcut
    (1, 6, 5, dict(padding=2), 12, 12),  # LeNet's first conv
    (3, 4, 2, dict(stride=3), 10, 11),  # size not divisible by the stride
    (4, 2, 1, dict(padding=1), 5, 6),  # padding beyond the kernel: col2im fallback
    (8, 8, 3, dict(padding=(0, 1)), 6, 7),  # stride 1, out <= in: correlation gradient
]


@pytest.mark.parametrize("cin, cout, kernel, kwargs, H, W", CONV_CONFIGS)
def test_conv2d_matches_torch(cin, cout, kernel, kwargs, H, W):
    layer = Conv2d(cin, cout, kernel, **kwargs, dtype=np.float64, rng=0)
    module = torch.nn.Conv2d(cin, cout, kernel, **kwargs).double()
    to_torch_state(layer, module)
    x = np.random.default_rng(1).standard_normal((3, cin, H, W))
    run_both(layer, module, x)
    np.testing.assert_allclose(layer.weight.grad, module.weight.grad.numpy(), rtol=RTOL,
                               atol=ATOL)
    if layer.bias is not None:
        np.testing.assert_allclose(layer.bias.grad, module.bias.grad.numpy(), rtol=RTOL,
                                   atol=ATOL)


def test_conv2d_loads_torch_state_dict():
    module = torch.nn.Conv2d(4, 6, (3, 2), groups=2)
    layer = Conv2d(4, 6, (3, 2), groups=2)
    layer.load_state_dict({k: v.numpy() for k, v in module.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 5)).astype(np.float32)
    np.testing.assert_allclose(layer(x), module(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_conv2d_default_init_matches_torch_bounds():
    # Same distribution as torch: compare bounds over a large draw (values differ: other RNG).
    layer = Conv2d(8, 64, 3, rng=0)
    module = torch.nn.Conv2d(8, 64, 3)
    for name in ("weight", "bias"):
        ours = np.abs(getattr(layer, name).data).max()
        theirs = getattr(module, name).detach().abs().max().item()
        assert abs(ours - theirs) / theirs < 0.05, name


POOL_CONFIGS = [
    (MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=2)),
    (MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=3, stride=2, padding=1)),
    (MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1),
                                         dilation=(2, 1))),
    (MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=3, stride=2, ceil_mode=True)),
    (MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=2)),
    (AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1)),
    (AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1,
                                         count_include_pad=False)),
    (AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=3, stride=2, ceil_mode=True)),
    (AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                         count_include_pad=False)),
    (AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=(2, 3), stride=1, divisor_override=5)),
    (AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d, dict(output_size=1)),
    (AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d, dict(output_size=(3, 5))),
    (AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d, dict(output_size=(None, 2))),
    (AdaptiveMaxPool2d, torch.nn.AdaptiveMaxPool2d, dict(output_size=1)),
    (AdaptiveMaxPool2d, torch.nn.AdaptiveMaxPool2d, dict(output_size=(3, 5))),
    (AdaptiveMaxPool2d, torch.nn.AdaptiveMaxPool2d, dict(output_size=(2, 4))),
]


@pytest.mark.parametrize("ours, theirs, kwargs", POOL_CONFIGS)
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 9, 7)])
def test_pooling_matches_torch(ours, theirs, kwargs, shape):
    x = np.random.default_rng(2).standard_normal(shape)
    run_both(ours(**kwargs), theirs(**kwargs), x)


@pytest.mark.parametrize("ours, theirs, kwargs", [
    c for c in POOL_CONFIGS if c[0] in (MaxPool2d, AdaptiveMaxPool2d)
])
def test_max_pooling_ties_match_torch(ours, theirs, kwargs):
    # Heavily tied input (values in {-1, 0, 1}, constant blocks): the gradient must go to
    # the same single winner PyTorch picks (the first maximum in row-major window order).
    rng = np.random.default_rng(3)
    x = np.round(rng.uniform(-1.2, 1.2, size=(2, 3, 9, 8)))
    x[0, 0] = 1.0
    run_both(ours(**kwargs), theirs(**kwargs), x)


def test_global_avg_pool_matches_torch():
    x = np.random.default_rng(4).standard_normal((2, 5, 6, 7))
    run_both(GlobalAvgPool2d(), torch.nn.AdaptiveAvgPool2d(1), x)
    flat = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    run_both(GlobalAvgPool2d(flatten=True), flat, x)
