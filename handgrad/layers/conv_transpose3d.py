"""3-D transposed convolution: ConvTranspose3d, as kd 2-D col2im passes.

As ``ConvTranspose2d``, with the depth taps of the kernel taken one at a time: depth slice
``t`` of the input spreads onto output depth ``t*sd + a*dd`` through the 2-D kernel
``W[:, :, a]``. With ``xcols`` the input as columns (C, N*D*H*W)::

    cols    = W.reshape(C, O*kd*kh*kw)^T @ xcols            (one multiply, per group)
    y_full[:, :, t*sd + a*dd] += col2im(cols of tap a)     (the 2-D col2im, batch N*D)
    y       = crop(y_full) + b
    gcols_a = im2col(uncrop(grad_out)[:, :, t*sd + a*dd])   (the 2-D im2col, batch N*D)
    dL/dx   = W @ gcols             dL/dW = xcols @ gcols^T     dL/db = sum of grad_out

``im2col`` / ``col2im`` are ``handgrad.ops.window``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import default_weight_init_
from ..layer import Layer
from ..ops.window import col2im, im2col
from ..parameter import Parameter
from ..random import resolve_rng
from .conv import conv_repr
from .conv3d import fold_depth, triple, unfold_depth
from .conv_transpose import as_columns, from_columns

__all__ = ["ConvTranspose3d"]


class ConvTranspose3d(Layer):
    """3-D transposed convolution over NCDHW volumes, as ``torch.nn.ConvTranspose3d``.

    ``y[n, o, t*sd + a*dd - pd, h*sh + i*dh - ph, w*sw + j*dw - pw] += W[c, o, a, i, j] *
    x[n, c, t, h, w]`` (c in o's group), plus ``b[o]``: the adjoint of ``Conv3d``.

    Args:
        in_channels, out_channels, groups, bias, dtype, rng: as ``ConvTranspose2d``.
        kernel_size, stride (1), padding (0), output_padding (0), dilation (1): ``k`` or
            triples; ``output_padding`` smaller than the stride or the dilation.
        padding_mode: only ``'zeros'``.

    Call as ``layer(x, output_size=None)``.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``
        - output: ``(N, O, OD, OH, OW)``, ``OD = (D-1)*sd - 2*pd + dd*(kd-1) + opd + 1``
        - weight: ``(C, O/groups, kd, kh, kw)``; bias: ``(O,)``

    Forward caches the input.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros",
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        name = "ConvTranspose3d"
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
        self.kernel_size = triple(kernel_size, "kernel_size", name)
        self.stride = triple(stride, "stride", name)
        self.padding = triple(padding, "padding", name, minimum=0)
        self.output_padding = triple(output_padding, "output_padding", name, minimum=0)
        self.dilation = triple(dilation, "dilation", name)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(f"{name}: output_padding {self.output_padding} must be "
                                 f"smaller than either the stride {self.stride} or the "
                                 f"dilation {self.dilation} (as in PyTorch)")
        self.weight = Parameter(np.empty(
            (in_channels, out_channels // groups) + self.kernel_size, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)
        self._cache = None

    def reset_parameters(self, rng=None) -> None:
        default_weight_init_(self.weight, self.bias, resolve_rng(rng))

    def _sizes(self, in_size, output_size: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The uncropped output size per axis and the cropped (final) one."""
        full = tuple((n - 1) * s + d * (k - 1) + 1 for n, s, d, k in
                     zip(in_size, self.stride, self.dilation, self.kernel_size))
        smallest = tuple(f - 2 * p for f, p in zip(full, self.padding))
        if output_size is None:
            out = tuple(m + op for m, op in zip(smallest, self.output_padding))
        else:
            out = tuple(int(v) for v in output_size)[-3:]
            if len(out) != 3 or any(not m <= o <= m + s - 1 for o, m, s in
                                    zip(out, smallest, self.stride)):
                raise ValueError(f"{self.describe()}: output_size {tuple(output_size)} is not "
                                 f"possible for input size {tuple(in_size)}; each size must "
                                 f"be between {smallest} and the stride more, minus one")
        if min(out) < 1:
            raise ValueError(f"{self.describe()}: input of spatial size {tuple(in_size)} "
                             f"gives an empty output {out}")
        return full, out

    def _crop(self, full: tuple[int, ...], out: tuple[int, ...]) -> tuple[slice, ...]:
        """Where the output lies in the uncropped one (output_padding beyond it is zero)."""
        return tuple(slice(p, p + min(o, f - p)) for p, o, f in zip(self.padding, out, full))

    def forward(self, x: NDArray, output_size: Any = None) -> NDArray:
        x = as_float_input(self, x)
        C = self.in_channels
        unbatched = x.ndim == 4 and x.shape[0] == C
        if not unbatched and (x.ndim != 5 or x.shape[1] != C):
            raise ValueError(f"{self.describe()}: expected input of shape (N, {C}, D, H, W) "
                             f"or ({C}, D, H, W), got {x.shape}")
        x = x[None] if unbatched else x
        N, _, D, H, W = x.shape
        O, G = self.out_channels, self.groups
        (kd, kh, kw), (sd, sh, sw), (dd, dh, dw) = self.kernel_size, self.stride, self.dilation
        full, out = self._sizes((D, H, W), output_size)
        w = self.weight.data.reshape(G, C // G, O // G * kd * kh * kw)
        cols = np.matmul(w.transpose(0, 2, 1), as_columns(x, G))  # (G, (O/G, a, i, j), L)
        cols = cols.reshape(G, O // G, kd, kh * kw, N * D * H * W)
        y_full = np.zeros((N, O) + full, x.dtype)
        for a in range(kd):
            ya = col2im(cols[:, :, a].reshape(O * kh * kw, N * D * H * W), (N * D, O) + full[1:],
                        (kh, kw), (sh, sw), (dh, dw))  # (N*D, O, Hf, Wf)
            y_full[:, :, a * dd:a * dd + sd * (D - 1) + 1:sd] += unfold_depth(ya, N, D)
        y = np.zeros((N, O) + out, x.dtype)
        crop = self._crop(full, out)
        y[(slice(None), slice(None)) + tuple(slice(0, c.stop - c.start) for c in crop)] = \
            y_full[(slice(None), slice(None)) + crop]
        if self.bias is not None:
            y += self.bias.data.reshape(1, O, 1, 1, 1)
        self._cache = (x, full, out, unbatched) if self.caching else None
        return y[0] if unbatched else y

    def backward(self, grad_out: NDArray) -> NDArray | None:
        x, full, out, unbatched = self._saved(self._cache)
        N, C, D, H, W = x.shape
        O, G = self.out_channels, self.groups
        shape = (N, O) + out
        grad_out = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        g = grad_out[None] if unbatched else grad_out
        (kd, kh, kw), (sd, sh, sw), (dd, dh, dw) = self.kernel_size, self.stride, self.dilation
        crop = self._crop(full, out)
        grad_full = np.zeros((N, O) + full, g.dtype)  # uncrop: zeros outside the output
        grad_full[(slice(None), slice(None)) + crop] = \
            g[(slice(None), slice(None)) + tuple(slice(0, c.stop - c.start) for c in crop)]
        L = N * D * H * W
        gcols = np.empty((G, O // G, kd, kh * kw, L), g.dtype)
        for a in range(kd):
            ga = fold_depth(grad_full[:, :, a * dd:a * dd + sd * (D - 1) + 1:sd])
            gcols[:, :, a] = im2col(ga, (kh, kw), (sh, sw), (dh, dw)).reshape(
                G, O // G, kh * kw, L)
        gcols = gcols.reshape(G, O // G * kd * kh * kw, L)  # rows ordered as the weight's
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate_grad(g.sum(axis=(0, 2, 3, 4)), fresh=True)
        if self.weight.requires_grad:  # dL/dW = xcols @ gcols^T, per group
            grad_w = np.matmul(as_columns(x, G), gcols.transpose(0, 2, 1))
            self.weight.accumulate_grad(grad_w.reshape(self.weight.data.shape), fresh=True)
        if not self.needs_input_grad:
            return None
        w = self.weight.data.reshape(G, C // G, -1)
        grad_x = from_columns(np.matmul(w, gcols), x.shape)
        return grad_x[0] if unbatched else grad_x

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._cache = None

    def extra_repr(self) -> str:
        return conv_repr(self)
