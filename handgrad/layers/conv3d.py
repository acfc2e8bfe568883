"""3-D convolution as kd 2-D convolutions: Conv3d.

The depth taps of a 3-D kernel are independent 2-D convolutions of depth slices. With
``xpad`` padded in depth and ``xa[n, t] = xpad[n, :, t*sd + a*dd]`` the slices that depth
tap ``a`` reads, folded into the batch as (N*OD, C, H, W)::

    y[n, :, t]  = b + sum_a Conv2d_{W[:, :, a]}(xa[n, t])
    dL/dW[:, :, a] = the 2-D weight gradient of tap a (grad_out folded the same way)
    dL/dxpad[n, :, t*sd + a*dd] += the 2-D input gradient of tap a

so every tap runs the fast ``Conv2d`` kernels (``handgrad.ops.conv2d``) on the whole batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import default_weight_init_
from ..layer import Layer
from ..ops.conv2d import conv2d_backward, conv2d_forward
from ..ops.padding import backprop_pad, pad
from ..ops.window import output_shape, output_size
from ..parameter import Parameter
from ..random import resolve_rng
from .conv import PADDING_MODES, conv_repr

__all__ = ["Conv3d", "triple"]


def triple(value: Any, name: str, who: str, minimum: int = 1) -> tuple[int, int, int]:
    """``(v, v, v)`` for an int, or a 3-tuple of ints, each ``>= minimum``."""
    values = (value,) * 3 if isinstance(value, (int, np.integer)) and \
        not isinstance(value, bool) else tuple(value) if isinstance(value, (tuple, list)) \
        else ()
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError(f"{who}: expected {name} as an int or a triple of ints, got {value!r}")
    if min(values) < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{who}: expected {bound} {name}, got {value!r}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def _same_padding(kernel, dilation) -> tuple[tuple[int, int], ...]:
    return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                 for k, d in zip(kernel, dilation))


def fold_depth(a: NDArray) -> NDArray:
    """(N, C, OD, H, W) as the batch of 2-D images (N*OD, C, H, W) (a copy)."""
    N, C, D, H, W = a.shape
    return np.ascontiguousarray(a.transpose(0, 2, 1, 3, 4)).reshape(N * D, C, H, W)


def unfold_depth(a: NDArray, N: int, D: int) -> NDArray:
    """Inverse of :func:`fold_depth`, as a (N, C, D, H, W) view."""
    return a.reshape((N, D) + a.shape[1:]).transpose(0, 2, 1, 3, 4)


class Conv3d(Layer):
    """3-D cross-correlation over NCDHW volumes, as ``torch.nn.Conv3d``.

    ``y[n, o, t, p, q] = b[o] + sum_{c, a, i, j} W[o, c, a, i, j] *
    xpad[n, c, t*sd + a*dd, p*sh + i*dh, q*sw + j*dw]``, run as kd 2-D convolutions (one
    per depth tap, module docstring).

    Args:
        in_channels, out_channels, groups, bias, padding_mode, dtype, rng: as ``Conv2d``.
        kernel_size, stride (default 1), dilation (default 1): ``k`` or ``(kd, kh, kw)``.
        padding: ``p``, ``(pd, ph, pw)``, ``'valid'`` or ``'same'`` (stride 1).

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``
        - output: ``(N, O, OD, OH, OW)``, ``OD = floor((D + 2*pd - dd*(kd-1) - 1)/sd) + 1``
        - weight: ``(O, C/groups, kd, kh, kw)``; bias: ``(O,)``

    Forward caches one 2-D layout (the padded depth slices) per depth tap.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        name = "Conv3d"
        self.in_channels = check_positive_int(name, "in_channels", in_channels)
        self.out_channels = check_positive_int(name, "out_channels", out_channels)
        self.groups = check_positive_int(name, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide both in_channels="
                             f"{in_channels} and out_channels={out_channels}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: expected padding_mode in {PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.padding_mode = padding_mode
        self.kernel_size = triple(kernel_size, "kernel_size", name)
        self.stride = triple(stride, "stride", name)
        self.dilation = triple(dilation, "dilation", name)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{name}: expected padding 'valid', 'same', an int or a "
                                 f"triple, got {padding!r}")
            if padding == "same" and self.stride != (1, 1, 1):
                raise ValueError(f"{name}: padding='same' needs stride 1 (as in PyTorch), "
                                 f"got stride {self.stride}")
            self._pads = _same_padding(self.kernel_size, self.dilation) \
                if padding == "same" else ((0, 0),) * 3
            self.padding = padding
        else:
            self.padding = triple(padding, "padding", name, minimum=0)
            self._pads = tuple((p, p) for p in self.padding)
        self.weight = Parameter(np.empty(
            (out_channels, in_channels // groups) + self.kernel_size, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)
        self._cache = None

    def reset_parameters(self, rng=None) -> None:
        default_weight_init_(self.weight, self.bias, resolve_rng(rng))

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        C = self.in_channels
        unbatched = x.ndim == 4 and x.shape[0] == C
        if not unbatched and (x.ndim != 5 or x.shape[1] != C):
            raise ValueError(f"{self.describe()}: expected input of shape (N, {C}, D, H, W) "
                             f"or ({C}, D, H, W), got {x.shape}")
        x = x[None] if unbatched else x
        N = x.shape[0]
        if self.padding_mode != "zeros":
            xp = pad(x, self._pads, self.padding_mode, who=self.describe())
            pads2 = ((0, 0), (0, 0))
        else:  # depth padded here, height and width by the 2-D kernels
            xp = pad(x, self._pads[:1] + ((0, 0), (0, 0)), who=self.describe())
            pads2 = self._pads[1:]
        (kd, kh, kw), (sd, sh, sw), (dd, dh, dw) = self.kernel_size, self.stride, self.dilation
        od = output_size(xp.shape[2], kd, sd, 0, dd)
        out_hw = output_shape(xp.shape[3:], (kh, kw), (sh, sw), pads2, (dh, dw),
                              who=self.describe)
        if od < 1:
            raise ValueError(f"{self.describe()}: input depth {x.shape[2]} (padded "
                             f"{xp.shape[2]}) is too small for a kernel covering "
                             f"{dd * (kd - 1) + 1}")
        previous = self._cache[0] if self._cache is not None else [None] * kd
        self._cache = None
        y, layouts = None, []
        for a in range(kd):
            xa = fold_depth(xp[:, :, a * dd:a * dd + sd * (od - 1) + 1:sd])  # (N*OD, C, H, W)
            bias = self.bias.data if self.bias is not None and a == 0 else None
            ya, layout = conv2d_forward(xa, self.weight.data[:, :, a], bias, self.groups,
                                        (sh, sw), (dh, dw), pads2, out_hw, previous[a])
            y = ya if y is None else np.add(y, ya, out=y)
            layouts.append(layout)
        y = np.ascontiguousarray(unfold_depth(y, N, od))  # (N, O, OD, OH, OW)
        self._cache = (layouts, xp.shape, od, unbatched) if self.caching else None
        return y[0] if unbatched else y

    def backward(self, grad_out: NDArray) -> NDArray | None:
        layouts, xp_shape, od, unbatched = self._saved(self._cache)
        N = xp_shape[0]
        shape = (N, self.out_channels, od) + layouts[0].out_hw
        grad_out = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        g2 = fold_depth(grad_out[None] if unbatched else grad_out)  # (N*OD, O, OH, OW)
        want_w, want_x = self.weight.requires_grad, self.needs_input_grad
        want_b = self.bias is not None and self.bias.requires_grad
        kd, sd, dd = self.kernel_size[0], self.stride[0], self.dilation[0]
        grad_w = np.empty_like(self.weight.data) if want_w else None
        grad_xp = np.zeros(xp_shape, g2.dtype) if want_x else None
        for a in range(kd):
            gx, gw, gb = conv2d_backward(layouts[a], g2, self.weight.data[:, :, a],
                                         self.groups, want_w, want_b and a == 0, want_x)
            if want_w:
                grad_w[:, :, a] = gw
            if gb is not None:
                self.bias.accumulate_grad(gb, fresh=True)
            if want_x:  # tap a read depths a*dd + t*sd: add its gradient back there
                grad_xp[:, :, a * dd:a * dd + sd * (od - 1) + 1:sd] += unfold_depth(gx, N, od)
        if want_w:
            self.weight.accumulate_grad(grad_w, fresh=True)
        if not want_x:
            return None
        if self.padding_mode != "zeros":
            grad_x = backprop_pad(grad_xp, self._pads, self.padding_mode)
        else:
            grad_x = backprop_pad(grad_xp, self._pads[:1] + ((0, 0), (0, 0)))
        return grad_x[0] if unbatched else grad_x

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._cache = None

    def extra_repr(self) -> str:
        return conv_repr(self)
