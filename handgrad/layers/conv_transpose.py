"""Transposed convolutions: ConvTranspose2d, and ConvTranspose1d on a height-1 view.

A transposed convolution is the input gradient of a convolution, used as a layer: every
input pixel spreads ``W[c, o, :, :]`` times its value onto a window of the output. With
``xcols`` the input as columns (C, N*H*W) and ``Wm = W.reshape(C, O*kh*kw)`` (per group)::

    y     = crop(col2im(Wm^T @ xcols)) + b     # (N, O, OH, OW)
    gcols = im2col(uncrop(grad_out))           # (O*kh*kw, N*H*W): a convolution's columns
    dL/dx = Wm @ gcols                         # a convolution of grad_out
    dL/dW = xcols @ gcols^T                    dL/db = sum of grad_out over (n, oh, ow)

``col2im`` sums the windows onto the full output ``(H-1)*s + d*(k-1) + 1`` long; ``crop``
removes ``padding`` from both ends and adds ``output_padding`` zeros at the end. The
``im2col`` / ``col2im`` are ``handgrad.ops.window``'s, the ones ``Conv2d`` uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import default_weight_init_
from ..layer import Layer
from ..ops.parallel import channel_sum
from ..ops.window import col2im, im2col, pair, single
from ..parameter import Parameter
from ..random import resolve_rng
from .conv import conv_repr

__all__ = ["ConvTranspose2d", "ConvTranspose1d", "as_columns", "from_columns"]


def as_columns(x: NDArray, groups: int) -> NDArray:
    """(N, C, *spatial) as per-group columns (G, C/G, N*prod(spatial))."""
    N, C = x.shape[:2]
    S = int(np.prod(x.shape[2:]))
    cols = x.reshape(N, groups, C // groups, S).transpose(1, 2, 0, 3)
    return cols.reshape(groups, C // groups, N * S)


def from_columns(cols: NDArray, shape: tuple[int, ...]) -> NDArray:
    """Inverse of :func:`as_columns`: (G, C/G, N*S) back to (N, C, *spatial)."""
    N, C = shape[:2]
    G = cols.shape[0]
    S = int(np.prod(shape[2:]))
    return cols.reshape(G, C // G, N, S).transpose(2, 0, 1, 3).reshape(shape)


class ConvTranspose2d(Layer):
    """2-D transposed convolution over NCHW images, as ``torch.nn.ConvTranspose2d``.

    ``y[n, o, h*s + i*d - p, w*s + j*d - p] += W[c, o, i, j] * x[n, c, h, w]`` summed over
    c in o's group, plus ``b[o]``: the adjoint of ``Conv2d`` with the same geometry
    (formulas at the top of this module).

    Args:
        in_channels, out_channels: C and O; both divisible by ``groups``.
        kernel_size, stride (default 1), padding (default 0): ``k`` or ``(kh, kw)``;
            ``padding`` crops ``p`` from both ends of each output axis.
        output_padding: zeros added at the end of each output axis (smaller than the
            stride or the dilation); picks one of the sizes that a strided convolution maps
            to the same input size.
        groups, bias: as ``Conv2d``.
        dilation: spacing of the kernel taps (default 1).
        padding_mode: only ``'zeros'`` (as PyTorch).
        dtype, rng: parameter dtype and generator for the initial weights.

    Call as ``layer(x, output_size=None)``; ``output_size`` ((OH, OW), or a shape whose last
    two entries are used) chooses ``output_padding`` for this call.

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``
        - output: ``(N, O, OH, OW)``, ``OH = (H-1)*sh - 2*ph + dh*(kh-1) + output_padding + 1``
        - weight: ``(C, O/groups, kh, kw)``; bias: ``(O,)``; PyTorch's default init
          (fan_in = O/groups*kh*kw)

    Forward caches the input.
    """

    _dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros",
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        name = type(self).__name__
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        self.out_channels = check_positive_int(name, "out_channels", out_channels)
        self.groups = check_positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide both in_channels="
                             f"{in_channels} and out_channels={out_channels}")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported (as in "
                             f"PyTorch), got {padding_mode!r}")
        self.padding_mode = padding_mode
        if self._dims == 2:
            self.kernel_size = pair(kernel_size, "kernel_size", name)
            self.stride = pair(stride, "stride", name)
            self.padding = pair(padding, "padding", name, minimum=0)
            self.output_padding = pair(output_padding, "output_padding", name, minimum=0)
            self.dilation = pair(dilation, "dilation", name)
            geometry = (self.kernel_size, self.stride, self.padding, self.output_padding,
                        self.dilation)
        else:
            values = [single(v, n, name, m) for v, n, m in (
                (kernel_size, "kernel_size", 1), (stride, "stride", 1),
                (padding, "padding", 0), (output_padding, "output_padding", 0),
                (dilation, "dilation", 1))]
            (self.kernel_size, self.stride, self.padding, self.output_padding,
             self.dilation) = [(v,) for v in values]
            geometry = tuple((1 if n != 2 and n != 3 else 0, v) for n, v in enumerate(values))
        self._kernel2, self._stride2, self._padding2, self._output_padding2, \
            self._dilation2 = geometry
        self._check_output_padding(self._output_padding2)
        self.weight = Parameter(np.empty(
            (in_channels, out_channels // groups) + self.kernel_size, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)
        self._cache = None

    def _check_output_padding(self, output_padding: tuple[int, int]) -> None:
        for op, s, d in zip(output_padding, self._stride2, self._dilation2):
            if op >= s and op >= d:
                raise ValueError(f"{type(self).__name__}: output_padding {self.output_padding} "
                                 f"must be smaller than either the stride {self.stride} or the "
                                 f"dilation {self.dilation} (as in PyTorch)")

    def reset_parameters(self, rng=None) -> None:
        default_weight_init_(self.weight, self.bias, resolve_rng(rng))

    def _as_nchw(self, x: NDArray) -> tuple[NDArray, bool]:
        C, d = self.in_channels, self._dims
        if x.ndim == d + 1 and x.shape[0] == C:
            x, unbatched = x[None], True
        elif x.ndim == d + 2 and x.shape[1] == C:
            unbatched = False
        else:
            form = f"(N, {C}, H, W) or ({C}, H, W)" if d == 2 else f"(N, {C}, L) or ({C}, L)"
            raise ValueError(f"{self.describe()}: expected input of shape {form}, got {x.shape}")
        return (x if d == 2 else x[:, :, None]), unbatched

    def _output(self, y: NDArray, unbatched: bool) -> NDArray:
        if self._dims == 1:
            y = y[:, :, 0]
        return y[0] if unbatched else y

    def _full_hw(self, in_hw) -> tuple[int, int]:
        """Length of the uncropped output, ``(H-1)*s + d*(k-1) + 1``, per axis."""
        return tuple((in_hw[a] - 1) * self._stride2[a] + self._dilation2[a] *
                     (self._kernel2[a] - 1) + 1 for a in range(2))  # type: ignore[return-value]

    def _output_padding_for(self, in_hw, output_size: Any) -> tuple[int, int]:
        if output_size is None:
            return self._output_padding2
        size = tuple(int(v) for v in output_size)[-self._dims:]
        if len(size) != self._dims:
            raise ValueError(f"{self.describe()}: expected output_size with at least "
                             f"{self._dims} entries, got {output_size!r}")
        size = size if self._dims == 2 else (1,) + size
        full = self._full_hw(in_hw)
        extra = []
        for a in range(2):
            smallest = full[a] - 2 * self._padding2[a]
            if not smallest <= size[a] <= smallest + self._stride2[a] - 1:
                raise ValueError(f"{self.describe()}: output_size {tuple(output_size)} is not "
                                 f"possible for input size {tuple(in_hw)}; each size must be "
                                 f"in [{smallest}, {smallest + self._stride2[a] - 1}]")
            extra.append(size[a] - smallest)
        return tuple(extra)  # type: ignore[return-value]

    def forward(self, x: NDArray, output_size: Any = None) -> NDArray:
        x, unbatched = self._as_nchw(as_float_input(self, x))
        N, C, H, W = x.shape
        O, G = self.out_channels, self.groups
        output_padding = self._output_padding_for((H, W), output_size)
        full = self._full_hw((H, W))
        (ph, pw), (oph, opw) = self._padding2, output_padding
        out_hw = (full[0] - 2 * ph + oph, full[1] - 2 * pw + opw)
        if min(out_hw) < 1:
            raise ValueError(f"{self.describe()}: input of spatial size {(H, W)} gives an "
                             f"empty output {out_hw} (padding {self.padding} is too large)")
        K = O // G * self._kernel2[0] * self._kernel2[1]
        w = self.weight.data.reshape(G, C // G, K)
        cols = np.matmul(w.transpose(0, 2, 1), as_columns(x, G))  # (G, O/G*kh*kw, N*H*W)
        y_full = col2im(cols.reshape(G * K, N * H * W), (N, O) + full, self._kernel2,
                        self._stride2, self._dilation2)
        y = np.zeros((N, O) + out_hw, dtype=x.dtype)
        rows = min(out_hw[0], full[0] - ph)  # output_padding past the full output stays 0
        width = min(out_hw[1], full[1] - pw)
        y[:, :, :rows, :width] = y_full[:, :, ph:ph + rows, pw:pw + width]
        if self.bias is not None:
            y += self.bias.data.reshape(1, O, 1, 1)
        self._cache = (x, full, out_hw, unbatched) if self.caching else None
        return self._output(y, unbatched)

    def backward(self, grad_out: NDArray) -> NDArray | None:
        x, full, out_hw, unbatched = self._saved(self._cache)
        N, C, H, W = x.shape
        O, G = self.out_channels, self.groups
        shape = (N, O) + out_hw if self._dims == 2 else (N, O, out_hw[1])
        grad_out = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        grad_out = grad_out[None] if unbatched else grad_out
        grad_out = grad_out if self._dims == 2 else grad_out[:, :, None]
        (ph, pw) = self._padding2
        rows, width = min(out_hw[0], full[0] - ph), min(out_hw[1], full[1] - pw)
        grad_full = np.zeros((N, O) + full, dtype=grad_out.dtype)  # uncrop: zeros outside
        grad_full[:, :, ph:ph + rows, pw:pw + width] = grad_out[:, :, :rows, :width]
        gcols = im2col(grad_full, self._kernel2, self._stride2, self._dilation2)
        K = O // G * self._kernel2[0] * self._kernel2[1]
        gcols = gcols.reshape(G, K, N * H * W)  # (G, O/G*kh*kw, N*H*W)
        if self.bias is not None and self.bias.requires_grad:
            grad_b = channel_sum(grad_out) if N else np.zeros(O, grad_out.dtype)
            self.bias.accumulate_grad(grad_b, fresh=True)
        if self.weight.requires_grad:  # dL/dW = xcols @ gcols^T, per group
            grad_w = np.matmul(as_columns(x, G), gcols.transpose(0, 2, 1))
            self.weight.accumulate_grad(grad_w.reshape(self.weight.data.shape), fresh=True)
        if not self.needs_input_grad:
            return None
        w = self.weight.data.reshape(G, C // G, K)
        grad_x = from_columns(np.matmul(w, gcols), x.shape)  # dL/dx = Wm @ gcols
        return self._output(grad_x, unbatched)

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._cache = None

    def extra_repr(self) -> str:
        return conv_repr(self)


class ConvTranspose1d(ConvTranspose2d):
    """1-D transposed convolution over (N, C, L), as ``torch.nn.ConvTranspose1d``:
    ``ConvTranspose2d`` on the height-1 view with a (1, k) kernel.

    ``y[n, o, t*s + j*d - p] += W[c, o, j] * x[n, c, t]`` (+ ``b[o]``).

    Args:
        in_channels, out_channels, kernel_size: as ``ConvTranspose2d``; so are stride,
            padding, output_padding, groups, bias and dilation (each ``k`` or ``(k,)``).

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``
        - output: ``(N, O, L_out)``, ``L_out = (L-1)*s - 2p + d*(k-1) + output_padding + 1``
        - weight: ``(C, O/groups, k)``; bias: ``(O,)``

    Forward caches the input.
    """

    _dims = 1
