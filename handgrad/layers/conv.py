"""Convolutions: Conv2d, and Conv1d as Conv2d on a height-1 view.

Forward (cross-correlation, as PyTorch), with ``xpad`` the padded input::

    y[n, o, oh, ow] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] *
                      xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]
                    = (W.reshape(O, -1) @ im2col(xpad))[o, (n, oh, ow)]

Backward, with ``gy = grad_out`` laid out like im2col's columns (O, N*OH*OW)::

    dL/dW = gy @ im2col(xpad)^T          dL/db = sum of gy over (n, oh, ow)
    dL/dx = unpad(col2im(W.reshape(O, -1)^T @ gy))

The kernels (``handgrad.ops.conv2d``) do exactly this, in cache-sized chunks of the batch
on worker threads; ``tests/reference.py`` has the pixel-by-pixel loops they are checked
against. ``padding_mode`` other than ``'zeros'`` pads with ``handgrad.ops.padding.pad``
first (its backward folds the border gradients back) and convolves without padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import default_weight_init_
from ..layer import Layer
from ..ops.conv2d import conv2d_backward, conv2d_forward
from ..ops.conv_layout import CHUNK_BYTES
from ..ops.padding import backprop_pad, pad
from ..ops.window import output_shape, pair, resolve_padding, single
from ..parameter import Parameter
from ..random import resolve_rng

__all__ = ["Conv2d", "Conv1d"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class Conv2d(Layer):
    """2-D cross-correlation over NCHW images, as ``torch.nn.Conv2d``.

    ``y = W * xpad + b`` (the formula at the top of this module): one matrix multiply
    ``W.reshape(O, -1) @ im2col(x)`` per chunk of the batch (one batched multiply over the
    group axis with ``groups``).

    Args:
        in_channels, out_channels: C and O; both must be divisible by ``groups``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``, positive (default 1).
        padding: ``p``, ``(ph, pw)``, ``'valid'`` (no padding) or ``'same'`` (stride 1 only;
            output size = input size, padding ``d*(k-1)`` split with the extra pixel after,
            as PyTorch does).
        dilation: ``d`` or ``(dh, dw)`` (default 1).
        groups: split input and output channels into this many independent groups
            (``groups == in_channels`` gives a depthwise convolution).
        bias: learn an additive per-channel bias (default True).
        padding_mode: ``'zeros'`` (default), ``'reflect'`` (padding < input size),
            ``'replicate'`` or ``'circular'`` (padding <= input size).
        dtype: parameter dtype (float32 by default).
        rng: generator for the initial weights (default: ``handgrad.random``'s).

    Shape:
        - input: ``(N, C, H, W)`` or unbatched ``(C, H, W)``
        - output: ``(N, O, OH, OW)`` (or ``(O, OH, OW)``) with
          ``OH = floor((H + pad_top + pad_bottom - dh*(kh-1) - 1) / sh) + 1`` (same for OW)
        - weight: ``(O, C/groups, kh, kw)``, PyTorch's default init
          (kaiming_uniform with a=sqrt(5))
        - bias: ``(O,)``, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C/groups*kh*kw

    Forward caches the padded input (for stride 1 each chunk of the batch side by side in one
    strip image, ``ops.conv_layout.StripLayout``); backward rebuilds the columns from it:
    measured, faster than caching all columns, and no more memory than PyTorch.
    """

    _dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        name = type(self).__name__
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        self.out_channels = check_positive_int(name, "out_channels", out_channels)
        self.groups = check_positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: expected padding_mode in {PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.padding_mode = padding_mode
        self._set_geometry(kernel_size, stride, padding, dilation, name)
        self.weight = Parameter(
            np.empty((out_channels, in_channels // groups) + self.kernel_size, dtype=dtype)
        )
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)
        self._cache = None
        # Stride-1 backward when an input gradient is wanted: "correlation" (one im2col of
        # grad_out gives the input and weight gradients; cheaper when out_channels <=
        # in_channels), "col2im" (columns of x, col2im scatter), or "auto" for that rule.
        self._input_grad_method = "auto"
        self._chunk_bytes = CHUNK_BYTES

    def _set_geometry(self, kernel_size, stride, padding, dilation, name) -> None:
        """Public attributes as PyTorch's; the kernels' 2-D geometry in ``_kernel2``,
        ``_stride2``, ``_dilation2`` and the per-side padding ``_pads``."""
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.dilation = pair(dilation, "dilation", name)
        self._pads = resolve_padding(padding, self.kernel_size, self.stride, self.dilation, name)
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", name, 0)
        self._kernel2, self._stride2, self._dilation2 = self.kernel_size, self.stride, \
            self.dilation

    def reset_parameters(self, rng=None) -> None:
        default_weight_init_(self.weight, self.bias, resolve_rng(rng))

    def _as_nchw(self, x: NDArray) -> tuple[NDArray, bool]:
        """The input as (N, C, H, W) and whether it came unbatched."""
        if x.ndim == 3 and x.shape[0] == self.in_channels:
            return x[None], True
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.describe()}: expected input of shape (N, {self.in_channels}, H, W) "
                f"or ({self.in_channels}, H, W), got {x.shape}"
            )
        return x, False

    def _weight2(self) -> NDArray:
        return self.weight.data.reshape(self.weight.data.shape[:2] + self._kernel2)

    def forward(self, x: NDArray) -> NDArray:
        x, unbatched = self._as_nchw(as_float_input(self, x))
        pads = self._pads
        if self.padding_mode != "zeros":  # pad explicitly, convolve without padding
            x = pad(x, pads, self.padding_mode, who=self.describe())
            pads = ((0, 0), (0, 0))
        out_hw = output_shape(x.shape[2:], self._kernel2, self._stride2, pads, self._dilation2,
                              who=self.describe)
        # The last training step's strips are reused when they have the same geometry:
        # their zeros are in place already, only the pixels are copied.
        previous = self._cache[0] if self._cache is not None else None
        self._cache = None
        bias = None if self.bias is None else self.bias.data
        y, layout = conv2d_forward(x, self._weight2(), bias, self.groups, self._stride2,
                                   self._dilation2, pads, out_hw, previous, self._chunk_bytes)
        self._cache = (layout, out_hw, unbatched) if self.caching else None
        return self._output(y, unbatched)

    def _output(self, y: NDArray, unbatched: bool) -> NDArray:
        return y[0] if unbatched else y

    def backward(self, grad_out: NDArray) -> NDArray | None:
        layout, out_hw, unbatched = self._saved(self._cache)
        N = layout.shape[0]
        shape = (N, self.out_channels) + out_hw
        grad_out = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        if unbatched:
            grad_out = grad_out[None]
        want_b = self.bias is not None and self.bias.requires_grad
        # dL/dW = gy @ cols^T, dL/db = sum gy, dL/dx = col2im(W^T @ gy) (module docstring)
        grad_x, grad_w, grad_b = conv2d_backward(
            layout, grad_out, self._weight2(), self.groups, self.weight.requires_grad, want_b,
            self.needs_input_grad, self._input_grad_method)
        if grad_w is not None:
            self.weight.accumulate_grad(grad_w.reshape(self.weight.data.shape), fresh=True)
        if grad_b is not None:
            self.bias.accumulate_grad(grad_b, fresh=True)
        if grad_x is None:
            return None
        if self.padding_mode != "zeros":
            grad_x = backprop_pad(grad_x, self._pads, self.padding_mode)
        return grad_x[0] if unbatched else grad_x

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._cache = None

    def extra_repr(self) -> str:
        return conv_repr(self)


class Conv1d(Conv2d):
    """1-D cross-correlation over (N, C, L) sequences, as ``torch.nn.Conv1d``.

    ``y[n, o, t] = b[o] + sum_{c in group(o), j} W[o, c, j] * xpad[n, c, t*s + j*d]``:
    exactly ``Conv2d`` on the height-1 view (N, C, 1, L) with a (1, k) kernel (same kernels,
    same speed), so forward, backward and the cache are Conv2d's.

    Args:
        in_channels, out_channels, groups, bias, padding_mode, dtype, rng: as ``Conv2d``.
        kernel_size, stride (default 1), dilation (default 1): ``k`` or ``(k,)``.
        padding: ``p``, ``(p,)``, ``'valid'`` or ``'same'``.

    Shape:
        - input: ``(N, C, L)`` or unbatched ``(C, L)``
        - output: ``(N, O, L_out)``, ``L_out = floor((L + 2p - d*(k-1) - 1) / s) + 1``
        - weight: ``(O, C/groups, k)``; bias: ``(O,)``
    """

    _dims = 1

    def _set_geometry(self, kernel_size, stride, padding, dilation, name) -> None:
        k = single(kernel_size, "kernel_size", name)
        s = single(stride, "stride", name)
        d = single(dilation, "dilation", name)
        self.kernel_size, self.stride, self.dilation = (k,), (s,), (d,)
        self._kernel2, self._stride2, self._dilation2 = (1, k), (1, s), (1, d)
        if isinstance(padding, str):
            self._pads = resolve_padding(padding, self._kernel2, self._stride2,
                                         self._dilation2, name)
            self.padding = padding
        else:
            p = single(padding, "padding", name, minimum=0)
            self._pads = ((0, 0), (p, p))
            self.padding = (p,)

    def _as_nchw(self, x: NDArray) -> tuple[NDArray, bool]:
        C = self.in_channels
        if x.ndim == 2 and x.shape[0] == C:
            return x[None, :, None], True
        if x.ndim != 3 or x.shape[1] != C:
            raise ValueError(f"{self.describe()}: expected input of shape (N, {C}, L) or "
                             f"({C}, L), got {x.shape}")
        return x[:, :, None], False

    def _output(self, y: NDArray, unbatched: bool) -> NDArray:
        return y[0, :, 0] if unbatched else y[:, :, 0]

    def backward(self, grad_out: NDArray) -> NDArray | None:
        layout, out_hw, unbatched = self._saved(self._cache)
        shape = (layout.shape[0], self.out_channels, out_hw[1])
        grad_out = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        grad_x = super().backward(grad_out[:, None] if unbatched else grad_out[:, :, None])
        if grad_x is None:
            return None
        return grad_x[:, 0] if unbatched else grad_x[:, :, 0]


def conv_repr(layer: Layer) -> str:
    """PyTorch's repr of a convolution's arguments (the non-default ones after stride), for
    every Conv and ConvTranspose layer."""
    s = (f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, "
         f"stride={layer.stride}")
    if isinstance(layer.padding, str) or any(layer.padding):
        s += f", padding={layer.padding}"
    if any(d != 1 for d in layer.dilation):
        s += f", dilation={layer.dilation}"
    if any(getattr(layer, "output_padding", ())):
        s += f", output_padding={layer.output_padding}"
    if layer.groups != 1:
        s += f", groups={layer.groups}"
    if layer.bias is None:
        s += ", bias=False"
    if getattr(layer, "padding_mode", "zeros") != "zeros":
        s += f", padding_mode={layer.padding_mode}"
    return s
