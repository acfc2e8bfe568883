"""Conv2d: fast kernel vs the loop reference, gradient checks, the layer contract, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad.layers import Conv2d
from handgrad.ops import resolve_padding
from tests import reference
from tests.helpers import check_layer_contract


@st.composite
def conv_configs(draw, max_size=7):
    """A small Conv2d configuration and a float64 input ``arrays_NCHW`` that fits it."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    use_same = draw(st.booleans()) and draw(st.booleans())
    if use_same:
        stride, padding = 1, "same"
    else:
        stride = draw(st.sampled_from([(1, 1), (1, 1), (1, 1), (2, 1), (1, 3), (2, 2), (3, 2)]))
        padding = draw(st.sampled_from([0, 1, (0, 2), (2, 1), "valid"]))
    pads = resolve_padding(padding, (kh, kw), (1, 1) if stride == 1 else stride, (dh, dw))
    H = draw(st.integers(max(1, dh * (kh - 1) + 1 - sum(pads[0])), max_size))
    W = draw(st.integers(max(1, dw * (kw - 1) + 1 - sum(pads[1])), max_size))
    N = draw(st.integers(1, 2))
    kwargs = dict(stride=stride, padding=padding, dilation=(dh, dw), groups=groups,
                  bias=draw(st.booleans()))
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).standard_normal((N, cin, H, W))
    return (cin, cout, (kh, kw)), kwargs, pads, x


def _reference(layer, x, pads, grad_out):
    w = layer.weight.data
    b = None if layer.bias is None else layer.bias.data
    y = reference.conv2d_forward(x, w, b, layer.stride, pads, layer.dilation, layer.groups)
    grads = reference.conv2d_backward(x, w, grad_out, layer.stride, pads, layer.dilation,
                                      layer.groups)
    return y, grads


@given(conv_configs())
def test_conv2d_matches_loop_reference(config):
    args, kwargs, pads, x = config
    layer = Conv2d(*args, **kwargs, dtype=np.float64, rng=0)
    y = layer(x)
    grad_out = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(grad_out)
    y_ref, (gx_ref, gw_ref, gb_ref) = _reference(layer, x, pads, grad_out)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_x, gx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, gw_ref, rtol=1e-10, atol=1e-12)
    if layer.bias is not None:
        np.testing.assert_allclose(layer.bias.grad, gb_ref, rtol=1e-10, atol=1e-12)


@given(conv_configs())
def test_conv2d_input_gradient_methods_agree(config):
    # Stride 1 has two backward kernels: columns of x (col2im scatter for the input
    # gradient) and one im2col of grad_out (correlation; it also gives the weight gradient,
    # with the kernel flipped). Both must give the same three gradients.
    args, kwargs, _, x = config
    layer = Conv2d(*args, **kwargs, dtype=np.float64, rng=0)
    grad_out = np.random.default_rng(1).standard_normal(layer(x).shape)
    results = []
    for method in ("col2im", "correlation"):
        layer._input_grad_method = method
        grads = [layer.backward(grad_out), layer.weight.grad.copy()]
        if layer.bias is not None:
            grads.append(layer.bias.grad.copy())
        results.append(grads)
        layer.zero_grad()
    for by_columns, by_correlation in zip(*results):
        np.testing.assert_allclose(by_columns, by_correlation, rtol=1e-10, atol=1e-12)


@given(conv_configs())
def test_conv2d_chunked_batch_matches_single_chunk(config):
    # Columns are built in cache-sized chunks of the batch; tiny chunks (one image, and an
    # uneven last chunk) must give the same result as one chunk.
    args, kwargs, _, x = config
    x = np.concatenate([x, x[:1] * 0.5, x[-1:] * 2.0])  # 3 or 4 images
    layer = Conv2d(*args, **kwargs, dtype=np.float64, rng=0)
    y = layer(x)
    grad_out = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(grad_out)
    chunked = Conv2d(*args, **kwargs, dtype=np.float64, rng=0)
    chunked._chunk_bytes = 1  # one image per chunk
    np.testing.assert_allclose(chunked(x), y, rtol=1e-12, atol=1e-14)
    assert len(chunked._cache[0].chunks) == len(x)
    np.testing.assert_allclose(chunked.backward(grad_out), grad_x, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(chunked.weight.grad, layer.weight.grad, rtol=1e-12, atol=1e-13)


@given(config=conv_configs(max_size=5))
def test_conv2d_gradients_match_numerical(config, check_gradients):
    args, kwargs, _, x = config
    check_gradients(Conv2d(*args, **kwargs, dtype=np.float64, rng=0), x)


def test_conv2d_repeated_forwards_match_a_fresh_layer():
    # Stride 1 reuses the last training step's strips (zeros in place, pixels copied);
    # a different batch size makes new ones. Every forward must match a fresh layer's.
    rng = np.random.default_rng(0)
    layer = Conv2d(3, 4, 3, padding=(2, 1), dilation=(2, 1), dtype=np.float64, rng=0)
    for n in (5, 5, 3, 5):
        x = rng.standard_normal((n, 3, 6, 7))
        fresh = Conv2d(3, 4, 3, padding=(2, 1), dilation=(2, 1), dtype=np.float64, rng=0)
        y = layer(x)
        np.testing.assert_allclose(y, fresh(x), rtol=1e-12, atol=1e-12)
        grad_out = rng.standard_normal(y.shape)
        layer.zero_grad()
        np.testing.assert_allclose(layer.backward(grad_out), fresh.backward(grad_out),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.weight.grad, fresh.weight.grad, rtol=1e-12,
                                   atol=1e-12)


def test_conv2d_layers_taking_turns_match_the_reference():
    # Backward reuses kept zero-filled strips and column frames across calls and layers
    # (only pixels are rewritten): layers of other geometries in between must not leave
    # anything behind. Both stride-1 kernels (O <= C: correlation, O > C: col2im), padding,
    # dilation, a strided layer, two batch sizes, each layer twice.
    rng = np.random.default_rng(3)
    specs = [((2, 3, 3), dict(padding=1), (5, 6)), ((3, 2, 3), dict(padding=1), (5, 6)),
             ((1, 2, (3, 1)), {}, (6, 8)), ((1, 2, 3), dict(padding=(0, 1)), (6, 8)),
             ((2, 2, 3), dict(padding=2, dilation=2), (7, 5)),
             ((2, 4, 3), dict(stride=2, padding=1), (7, 7))]
    layers = [(Conv2d(*args, **kw, dtype=np.float64, rng=i), kw, hw)
              for i, (args, kw, hw) in enumerate(specs)]
    for n in (3, 2, 3):
        for layer, kw, hw in layers:
            x = rng.standard_normal((n, layer.in_channels) + hw)
            layer.zero_grad()
            y = layer(x)
            grad_out = rng.standard_normal(y.shape)
            grad_x = layer.backward(grad_out)
            pads = resolve_padding(kw.get("padding", 0), layer.kernel_size, layer.stride,
                                   layer.dilation)
            y_ref, (gx_ref, gw_ref, gb_ref) = _reference(layer, x, pads, grad_out)
            np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(grad_x, gx_ref, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(layer.weight.grad, gw_ref, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(layer.bias.grad, gb_ref, rtol=1e-10, atol=1e-12)


def test_conv2d_col2im_uses_the_frame_it_wrote_even_if_evicted(monkeypatch):
    # Column frames are kept in a bounded pool shared by threads: the backward must sum the
    # frame its multiply wrote into, even when the pool dropped that frame in between.
    from handgrad.ops import conv_layout, workspace

    real = conv_layout.column_frame

    def evicting(*args, **kwargs):
        frame = real(*args, **kwargs)
        workspace.clear_scratch()  # another thread filled the pool meanwhile
        return frame

    monkeypatch.setattr(conv_layout, "column_frame", evicting)
    layer = Conv2d(2, 5, 3, padding=1, dtype=np.float64, rng=0)  # out > in: col2im path
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 6))
    y = layer(x)
    grad_out = np.random.default_rng(1).standard_normal(y.shape)
    grad_x = layer.backward(grad_out)
    pads = resolve_padding(1, layer.kernel_size, layer.stride, layer.dilation)
    _, (gx_ref, _, _) = _reference(layer, x, pads, grad_out)
    np.testing.assert_allclose(grad_x, gx_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_empty_batch_gives_zero_parameter_gradients(stride):
    # As PyTorch: a batch of 0 images is a valid input; its gradients are all zero.
    layer = Conv2d(2, 3, 3, stride=stride, padding=1, rng=0)
    y = layer(np.zeros((0, 2, 5, 5), np.float32))
    assert y.shape == (0, 3, 3 if stride == 2 else 5, 3 if stride == 2 else 5)
    grad_x = layer.backward(np.zeros_like(y))
    assert grad_x.shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(layer.weight.grad, np.zeros((3, 2, 3, 3), np.float32))
    np.testing.assert_array_equal(layer.bias.grad, np.zeros(3, np.float32))


def test_conv2d_same_padding_keeps_size_even_kernel(check_gradients):
    layer = Conv2d(2, 3, (4, 2), padding="same", dilation=(1, 3), dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 6))
    assert layer(x).shape == (2, 3, 5, 6)
    check_gradients(layer, x)


def test_conv2d_depthwise_is_per_channel():
    layer = Conv2d(3, 3, 3, padding=1, groups=3, bias=False, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 5))
    y = layer(x)
    for c in range(3):
        single = Conv2d(1, 1, 3, padding=1, bias=False, dtype=np.float64)
        single.weight.data[...] = layer.weight.data[c:c + 1]
        np.testing.assert_allclose(y[:, c:c + 1], single(x[:, c:c + 1]), rtol=1e-12)


def test_conv2d_contract_and_float32():
    x = np.random.default_rng(0).standard_normal((2, 4, 7, 6)).astype(np.float32)
    layer = check_layer_contract(lambda: Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=0), x)
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == (2, 6, 4, 3)
    gx = layer.backward(np.ones_like(y))
    assert gx.dtype == np.float32 and layer.weight.grad.dtype == np.float32
    assert layer.bias.grad.dtype == np.float32


def test_conv2d_state_dict_names_and_shapes_are_pytorch():
    layer = Conv2d(4, 6, (3, 2), groups=2)
    state = layer.state_dict()
    assert list(state) == ["weight", "bias"]
    assert state["weight"].shape == (6, 2, 3, 2) and state["bias"].shape == (6,)
    bound = 1 / np.sqrt(2 * 3 * 2)  # PyTorch's default init bounds: fan_in = C/groups*kh*kw
    assert np.abs(state["bias"]).max() <= bound
    assert np.abs(state["weight"]).max() <= bound  # kaiming_uniform(a=sqrt(5)) bound
    assert "bias" not in Conv2d(1, 1, 1, bias=False).state_dict()


def test_conv2d_frozen_weight_gets_no_gradient():
    layer = Conv2d(2, 2, 3, rng=0)
    layer.weight.requires_grad = False
    x = np.ones((1, 2, 4, 4), dtype=np.float32)
    layer.backward(np.ones_like(layer(x)))
    assert layer.weight.grad is None and layer.bias.grad is not None


def test_conv2d_repr_matches_pytorch_style():
    assert repr(Conv2d(3, 16, 3)) == "Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1))"
    assert repr(Conv2d(4, 8, (3, 1), stride=2, padding=1, dilation=2,
                       groups=4, bias=False)) == (
        "Conv2d(4, 8, kernel_size=(3, 1), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
        "groups=4, bias=False)"
    )


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), "groups=2 must divide"),
    (dict(in_channels=4, out_channels=3, kernel_size=3, groups=2), "groups=2 must divide"),
    (dict(in_channels=3, out_channels=4, kernel_size=0), "kernel_size"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, stride=0), "stride"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, stride=(1, -1)), "stride"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, padding=-1), "padding"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding="same"), "stride 1"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, dilation=0), "dilation"),
    (dict(in_channels=0, out_channels=4, kernel_size=3), "in_channels"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, padding_mode="mirror"), "padding_mode"),
])
def test_conv2d_rejects_bad_arguments_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Conv2d(**kwargs)


def test_conv2d_rejects_bad_input_at_forward():
    layer = Conv2d(3, 16, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 16.*\(N, 3, H, W\).*\(8, 1, 28, 28\)"):
        layer(np.zeros((8, 1, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\).*\(1, 28, 28\)"):
        layer(np.zeros((1, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Conv2d\(3, 16.*\(2, 2\).*too small"):
        layer(np.zeros((1, 3, 2, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="dtype"):
        layer(np.zeros((1, 3, 5, 5), dtype=np.float64))
    layer(np.zeros((1, 3, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"grad_out of shape \(1, 16, 3, 3\)"):
        layer.backward(np.zeros((1, 16, 5, 5), dtype=np.float32))
