"""2-D convolution as one matrix multiply around im2col / col2im (``handgrad.ops.window``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import default_weight_init_
from ..layer import Layer
from ..ops.window import (
    col2im,
    col2im_wide,
    im2col,
    im2col_wide,
    output_shape,
    pad2d,
    pair,
    resolve_padding,
    unpad2d,
)
from ..ops.workspace import scratch
from ..parameter import Parameter
from ..random import resolve_rng


class Conv2d(Layer):
    """2-D cross-correlation over NCHW images, as ``torch.nn.Conv2d``.

    ``y[n, o, oh, ow] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] *
    xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]``, computed as ``W.reshape(O, -1) @ im2col(x)``
    (one matrix multiply; with ``groups`` one batched multiply over the group axis).

    Args:
        in_channels, out_channels: C and O; both must be divisible by ``groups``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``, positive (default 1).
        padding: ``p``, ``(ph, pw)``, ``'valid'`` (no padding) or ``'same'`` (stride 1 only;
            output size = input size, padding ``d*(k-1)`` split with the extra pixel after,
            as PyTorch does). Padding is with zeros.
        dilation: ``d`` or ``(dh, dw)`` (default 1).
        groups: split input and output channels into this many independent groups
            (``groups == in_channels`` gives a depthwise convolution).
        bias: learn an additive per-channel bias (default True).
        padding_mode: only ``'zeros'`` is implemented.
        dtype: parameter dtype (float32 by default).
        rng: generator for the initial weights (default: ``handgrad.random``'s).

    Shape:
        - input: ``(N, C, H, W)``
        - output: ``(N, O, OH, OW)`` with
          ``OH = floor((H + pad_top + pad_bottom - dh*(kh-1) - 1) / sh) + 1`` (same for OW)
        - weight: ``(O, C/groups, kh, kw)``, PyTorch's default init
          (kaiming_uniform with a=sqrt(5))
        - bias: ``(O,)``, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C/groups*kh*kw

    Forward caches the im2col columns of the input (backward needs exactly them for the
    weight gradient; caching them is cheaper than recomputing the strided copy).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        name = "Conv2d"
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        self.out_channels = check_positive_int(name, "out_channels", out_channels)
        self.groups = check_positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: groups={groups} must divide both in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.dilation = pair(dilation, "dilation", name)
        self._pads = resolve_padding(padding, self.kernel_size, self.stride, self.dilation, name)
        self.padding = padding if isinstance(padding, str) else pair(padding, "padding", name, 0)
        if padding_mode != "zeros":
            raise ValueError(
                f"{name}: padding_mode={padding_mode!r} is not implemented; only 'zeros' is"
            )
        self.padding_mode = padding_mode
        kh, kw = self.kernel_size
        self.weight = Parameter(
            np.empty((out_channels, in_channels // groups, kh, kw), dtype=dtype)
        )
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)
        self._cache = None
        # Per-layer buffers reused while the input shape stays the same: the cached
        # columns, and grad_out in column layout (its garbage columns stay zero).
        self._cols = self._cols_key = self._gy = None
        # Stride-1 input gradient: "correlation" (im2col of grad_out, cheaper when
        # out_channels <= in_channels), "col2im", or "auto" to choose by that rule.
        self._input_grad_method = "auto"

    def reset_parameters(self, rng=None) -> None:
        default_weight_init_(self.weight, self.bias, resolve_rng(rng))

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.describe()}: expected input of shape (N, {self.in_channels}, H, W), "
                f"got {x.shape}"
            )
        N, _, H, W = x.shape
        O, G = self.out_channels, self.groups
        oh, ow = output_shape((H, W), self.kernel_size, self.stride, self._pads, self.dilation,
                              who=self.describe())
        xp = pad2d(x, self._pads)
        # Stride 1 uses the wide column layout (rows of Wp, garbage beyond OW): its copies
        # are long contiguous runs. Other strides use the compact layout.
        wide = self.stride == (1, 1)
        row = xp.shape[3] if wide else ow  # length of one output row in the columns
        if self.caching:  # the columns are cached: a buffer owned by this layer
            out = self._cols if self._cols_key == xp.shape else None
        else:  # consumed right here: shared scratch
            out = scratch("conv2d.cols", (x.shape[1] * self.kernel_size[0] *
                                          self.kernel_size[1], N * oh * row), x.dtype)
        if wide:
            cols = im2col_wide(xp, self.kernel_size, self.dilation, out=out)
        else:
            cols = im2col(xp, self.kernel_size, self.stride, self.dilation, out=out)
        if self.caching:
            self._cols, self._cols_key = cols, xp.shape
        K, L = cols.shape[0] // G, cols.shape[1]  # K = C/G*kh*kw, L = N*OH*row
        w = self.weight.data.reshape(G, O // G, K)
        y2 = np.matmul(w, cols.reshape(G, K, L), out=scratch("conv2d.y", (G, O // G, L), x.dtype))
        y2 = y2.reshape(O, N, oh, row)[..., :ow].transpose(1, 0, 2, 3)  # (N, O, OH, OW) view
        y = np.empty((N, O, oh, ow), dtype=x.dtype)
        if self.bias is not None:
            np.add(y2, self.bias.data[:, None, None], out=y)
        else:
            np.copyto(y, y2)
        self._cache = (cols, xp.shape, (oh, ow), wide) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        cols, xp_shape, (oh, ow), wide = self._saved(self._cache)
        N = xp_shape[0]
        O, G = self.out_channels, self.groups
        grad_out = check_grad(self, grad_out, (N, O, oh, ow))
        K, L = cols.shape[0] // G, cols.shape[1]
        row = xp_shape[3] if wide else ow
        # grad_out as (O, N*OH*row); in the wide layout the garbage columns must be zero
        # (they meet real data in cols), so this buffer is zeroed once and only its valid
        # part is written afterwards.
        gy = self._gy if self._gy is not None and self._gy.shape == (O, N, oh, row) and \
            self._gy.dtype == cols.dtype else np.zeros((O, N, oh, row), dtype=cols.dtype)
        self._gy = gy
        np.copyto(gy[..., :ow], grad_out.transpose(1, 0, 2, 3))
        gy = gy.reshape(G, O // G, L)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate_grad(gy.reshape(O, L).sum(axis=1), fresh=True)
        if self.weight.requires_grad:
            # dL/dW = gy @ cols^T, per group.
            grad_w = np.matmul(gy, cols.reshape(G, K, L).transpose(0, 2, 1))  # (G, O/G, K)
            self.weight.accumulate_grad(grad_w.reshape(self.weight.data.shape), fresh=True)
        w = self.weight.data.reshape(G, O // G, K)
        method = self._input_grad_method
        if method == "auto":
            method = "correlation" if O <= self.in_channels else "col2im"
        if wide and method == "correlation" and self._flip_pads() is not None:
            return self._grad_input_by_correlation(grad_out)
        # Input gradient: dL/dx[n, c, h, w] = sum over (o, i, j, oh, ow) with
        # h = oh*sh + i*dh - pad_top, w = ow*sw + j*dw - pad_left of W[o, c, i, j] *
        # gy[n, o, oh, ow]; i.e. the columns W^T @ gy summed back to pixels by col2im.
        grad_cols = np.matmul(w.transpose(0, 2, 1), gy,
                              out=scratch("conv2d.grad_cols", (G, K, L), cols.dtype))
        grad_cols = grad_cols.reshape(G * K, L)
        if wide:
            grad_xp = col2im_wide(grad_cols, xp_shape, self.kernel_size, self.dilation)
        else:
            grad_xp = col2im(grad_cols, xp_shape, self.kernel_size, self.stride, self.dilation)
        return unpad2d(grad_xp, self._pads)

    def _flip_pads(self):
        """Padding of grad_out for the stride-1 input gradient, or None if one is negative."""
        pads = tuple(
            (d * (k - 1) - before, d * (k - 1) - after)
            for k, d, (before, after) in zip(self.kernel_size, self.dilation, self._pads)
        )
        return None if min(min(p) for p in pads) < 0 else pads

    def _grad_input_by_correlation(self, grad_out: NDArray) -> NDArray:
        """Stride-1 input gradient as a convolution of grad_out (no col2im scatter).

        dL/dx[n, c, h, w] = sum_{o, i, j} W[o, c, i, j] * gy[n, o, h + pt - i*dh, w + pl - j*dw]
        (gy zero outside its range). With the kernel flipped (i' = kh-1-i) this is a stride-1
        correlation of gy, padded by d*(k-1) - p on each side, with weights
        Wt[c, o, i', j'] = W[o, c, kh-1-i', kw-1-j'] (input and output channels swapped,
        per group): one more im2col and one matrix multiply.
        """
        N, O = grad_out.shape[:2]
        G, C = self.groups, self.in_channels
        kh, kw = self.kernel_size
        gyp = pad2d(grad_out, self._flip_pads())  # (N, O, H + dh*(kh-1), W + dw*(kw-1))
        H = gyp.shape[2] - self.dilation[0] * (kh - 1)
        W = gyp.shape[3] - self.dilation[1] * (kw - 1)
        Wg = gyp.shape[3]
        K, L = O // G * kh * kw, N * H * Wg
        gcols = im2col_wide(gyp, self.kernel_size, self.dilation,
                            out=scratch("conv2d.grad_cols", (O * kh * kw, L), gyp.dtype))
        wt = self.weight.data.reshape(G, O // G, C // G, kh, kw)[:, :, :, ::-1, ::-1]
        wt = wt.transpose(0, 2, 1, 3, 4).reshape(G, C // G, K)  # a small copy
        gx = np.matmul(wt, gcols.reshape(G, K, L), out=scratch("conv2d.y", (G, C // G, L),
                                                                gyp.dtype))
        grad_x = np.empty((N, C, H, W), dtype=gyp.dtype)
        np.copyto(grad_x, gx.reshape(C, N, H, Wg)[..., :W].transpose(1, 0, 2, 3))
        return grad_x

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._cols = self._cols_key = self._gy = None
        self._cache = None

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else \
                f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
