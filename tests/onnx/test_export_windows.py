"""Convolution and pooling geometry under hypothesis: where ONNX's and PyTorch's rules
could part (asymmetric 'same' padding, dilation, groups, ceil_mode, padded averages)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import handgrad as hg

from .roundtrip import check_roundtrip


@st.composite
def conv_settings(draw):
    groups = draw(st.sampled_from([1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    if draw(st.booleans()):
        stride, padding = (1, 1), "same"
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    bias = draw(st.booleans())
    return dict(in_channels=c_in, out_channels=c_out, kernel_size=kernel, stride=stride,
                padding=padding, dilation=dilation, groups=groups, bias=bias)


@given(settings=conv_settings(), size=st.tuples(st.integers(8, 11), st.integers(8, 11)),
       seed=st.integers(0, 2**16))
def test_conv2d_geometry(settings, size, seed, tmp_path_factory):
    rng = np.random.default_rng(seed)
    layer = hg.Conv2d(**settings, rng=seed)
    x = rng.standard_normal((2, settings["in_channels"], *size), dtype=np.float32)
    other = rng.standard_normal((3, settings["in_channels"], *size), dtype=np.float32)
    check_roundtrip(layer, x, tmp_path_factory.mktemp("conv"), [other])


@st.composite
def pool_settings(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    return kernel, stride, padding, draw(st.booleans())


@given(settings=pool_settings(), kind=st.sampled_from(["max", "avg", "avg-exclude"]),
       size=st.tuples(st.integers(7, 10), st.integers(7, 10)), seed=st.integers(0, 2**16))
def test_pool_geometry(settings, kind, size, seed, tmp_path_factory):
    kernel, stride, padding, ceil_mode = settings
    if kind == "max":
        layer = hg.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    else:
        layer = hg.AvgPool2d(kernel, stride, padding, ceil_mode=ceil_mode,
                             count_include_pad=kind == "avg")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, *size), dtype=np.float32)
    check_roundtrip(layer, x, tmp_path_factory.mktemp("pool"),
                    [rng.standard_normal((1, 2, *size), dtype=np.float32)])
