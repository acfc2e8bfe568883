"""3-D pooling over NCDHW volumes: MaxPool3d, AvgPool3d.

Max pooling runs the 2-D max-pool kernel once per depth tap (``handgrad.ops.pooling``) and
keeps, per output, the running maximum and the tap that won it::

    y[n, c, t] = max_a MaxPool2d(xpad[n, c, t*sd + a*dd])
    dL/dx: grad_out to the winning tap's slice, then the 2-D scatter onto its winner

Average pooling adds the kd*kh*kw shifted window views of the zero-padded volume and
divides by the (separable) window count::

    y[n, c, t, p, q] = sum_{a, i, j} xpad[n, c, t*sd + a, p*sh + i, q*sw + j] / D[t, p, q]
    dL/dxpad = the same shifted views of grad_out / D, added back
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad
from ..layer import Layer
from ..ops.padding import pad
from ..ops.pooling import backprop_max_pool2d, flat_indices, max_pool2d
from ..ops.window import ceil_extra, output_size
from .conv3d import triple
from .pooling import _axis_counts

__all__ = ["MaxPool3d", "AvgPool3d"]


class _Pool3d(Layer):
    def __init__(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
                 ceil_mode: bool):
        super().__init__()
        name = type(self).__name__
        self.kernel_size = triple(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else triple(stride, "stride", name)
        self.padding = triple(padding, "padding", name, minimum=0)
        self.dilation = triple(dilation, "dilation", name)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding {self.padding} must be at most half the kernel "
                             f"size {self.kernel_size} (as in PyTorch)")
        self.ceil_mode = bool(ceil_mode)
        self._cache = None

    def _batched(self, x: Any) -> tuple[NDArray, bool]:
        x = as_float_input(self, x)
        if x.ndim not in (4, 5) or x.shape[-4] == 0:
            raise ValueError(f"{self.describe()}: expected input of shape (N, C, D, H, W) or "
                             f"(C, D, H, W) with C > 0, got {x.shape}")
        return (x[None], True) if x.ndim == 4 else (x, False)

    def _geometry(self, x: NDArray) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
        """Output size and per-axis padding (ceil_mode's trailing extra included)."""
        out, pads = [], []
        for size, k, s, p, d in zip(x.shape[2:], self.kernel_size, self.stride, self.padding,
                                    self.dilation):
            o = output_size(size, k, s, p, d, self.ceil_mode)
            if o < 1:
                raise ValueError(f"{self.describe()}: input of spatial size {x.shape[2:]} is "
                                 f"too small for the kernel; the output would be empty")
            out.append(o)
            pads.append((p, p + ceil_extra(size, k, s, p, d, o)))
        return tuple(out), tuple(pads)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}" + (", ceil_mode=True" if self.ceil_mode else ""))


class MaxPool3d(_Pool3d):
    """Max over sliding 3-D windows, as ``torch.nn.MaxPool3d``.

    ``y[n, c, t, p, q] = max_{a, i, j} xpad[n, c, t*sd + a*dd, p*sh + i*dh, q*sw + j*dw]``
    (``-inf`` padding; ties go to the first maximum in (d, h, w) order, as PyTorch).

    Args:
        kernel_size, stride (default ``kernel_size``), padding, dilation: ``k`` or triples.
        return_indices: also return each maximum's position ``(d*H + h)*W + w`` (int64).
        ceil_mode: PyTorch's ceil output-size rule.

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: ``(N, C, OD, OH, OW)``

    Forward caches the winning depth tap and 2-D offset of every output.
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, return_indices: bool = False, ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)
        self.return_indices = bool(return_indices)

    def forward(self, x: NDArray) -> NDArray | tuple[NDArray, NDArray]:
        x, unbatched = self._batched(x)
        N, C, D, H, W = x.shape
        (od, oh, ow), pads = self._geometry(x)
        xp = pad(x, pads, "constant", -np.inf)
        (kd, kh, kw), (sd, sh, sw), (dd, dh, dw) = self.kernel_size, self.stride, self.dilation
        y = offset = tap = None
        for a in range(kd):  # the 2-D kernel on the depth slices of tap a, (N, C*OD, Hp, Wp)
            xa = np.ascontiguousarray(xp[:, :, a * dd:a * dd + sd * (od - 1) + 1:sd])
            ya, ia = max_pool2d(xa.reshape(N, C * od, *xa.shape[3:]), (kh, kw), (sh, sw),
                                (dh, dw), (oh, ow))
            if y is None:
                y, offset, tap = ya, ia, np.zeros(ya.shape, np.uint8 if kd < 256 else np.int64)
                continue
            wins = ya > y  # strictly: an earlier tap keeps a tie
            np.maximum(y, ya, out=y)
            offset = np.where(wins, ia, offset)
            tap = np.where(wins, tap.dtype.type(a), tap)
        self._cache = (offset, tap, xp.shape, pads, unbatched) if self.caching else None
        y = y.reshape(N, C, od, oh, ow)
        y = y[0] if unbatched else y
        if not self.return_indices:
            return y
        flat2 = flat_indices(offset, (kh, kw), (sh, sw), (dh, dw), pads[1:], (H, W))
        depth = (np.arange(od)[:, None, None] * sd
                 + tap.reshape(N, C, od, oh, ow).astype(np.int64) * dd - pads[0][0])
        flat = depth * (H * W) + flat2.reshape(N, C, od, oh, ow)
        return y, flat[0] if unbatched else flat

    def backward(self, grad_out: NDArray) -> NDArray:
        offset, tap, xp_shape, pads, unbatched = self._saved(self._cache)
        N, C = xp_shape[:2]
        od = offset.shape[1] // C
        shape = (N, C, od) + offset.shape[2:]
        grad_out = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        g = grad_out.reshape(offset.shape)  # (N, C*OD, OH, OW)
        (kd, kh, kw), (sd, sh, sw), (dd, dh, dw) = self.kernel_size, self.stride, self.dilation
        grad_xp = np.zeros(xp_shape, g.dtype)
        for a in range(kd):
            ga = g * (tap == a) if kd > 1 else g
            slab = (N, C * od) + tuple(xp_shape[3:])
            gxa = backprop_max_pool2d(ga, offset, slab, (kh, kw), (sh, sw), (dh, dw))
            grad_xp[:, :, a * dd:a * dd + sd * (od - 1) + 1:sd] += gxa.reshape(
                N, C, od, *xp_shape[3:])
        (t, _), (top, _), (left, _) = pads
        D, H, W = (xp_shape[2 + i] - sum(pads[i]) for i in range(3))
        grad_x = grad_xp[:, :, t:t + D, top:top + H, left:left + W]
        return grad_x[0] if unbatched else grad_x

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if self.dilation != (1, 1, 1):
            s += f", dilation={self.dilation}"
        return s + (", return_indices=True" if self.return_indices else "")


class AvgPool3d(_Pool3d):
    """Mean over sliding 3-D windows, as ``torch.nn.AvgPool3d``.

    ``y = sum of the window / divisor`` with zero padding; the divisor as ``AvgPool2d``'s
    (window clipped to the padded input, real voxels only with ``count_include_pad=False``,
    or ``divisor_override``), a product of per-axis counts.

    Args:
        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override: as in
            PyTorch (stride defaults to ``kernel_size``).

    Shape:
        - input: ``(N, C, D, H, W)`` or ``(C, D, H, W)``; output: ``(N, C, OD, OH, OW)``

    Forward caches the padded shape and the divisor.
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        if divisor_override is not None and (isinstance(divisor_override, bool) or not
                                             isinstance(divisor_override, (int, np.integer))
                                             or divisor_override <= 0):
            raise ValueError(f"AvgPool3d: expected a positive integer divisor_override, got "
                             f"{divisor_override!r}")
        self.divisor_override = divisor_override

    def _windows(self, out: tuple[int, ...]):
        """The (depth, rows, cols) slices read by every kernel offset."""
        for a in range(self.kernel_size[0]):
            for i in range(self.kernel_size[1]):
                for j in range(self.kernel_size[2]):
                    yield tuple(slice(o0, o0 + s * (n - 1) + 1, s) for o0, s, n in
                                zip((a, i, j), self.stride, out))

    def forward(self, x: NDArray) -> NDArray:
        x, unbatched = self._batched(x)
        out, pads = self._geometry(x)
        xp = pad(x, pads)
        y = None
        for window in self._windows(out):
            part = xp[(slice(None), slice(None)) + window]
            y = part.copy() if y is None else np.add(y, part, out=y)
        if self.divisor_override is not None:
            divisor: Any = float(self.divisor_override)
        else:
            counts = [np.array(_axis_counts(n, o, k, s, p, self.count_include_pad), x.dtype)
                      for n, o, k, s, p in zip(x.shape[2:], out, self.kernel_size, self.stride,
                                               self.padding)]
            divisor = counts[0][:, None, None] * counts[1][:, None] * counts[2]
        y /= divisor
        self._cache = (xp.shape, pads, divisor, out, unbatched) if self.caching else None
        return y[0] if unbatched else y

    def backward(self, grad_out: NDArray) -> NDArray:
        xp_shape, pads, divisor, out, unbatched = self._saved(self._cache)
        shape = tuple(xp_shape[:2]) + out
        grad_out = check_grad(self, grad_out, shape[1:] if unbatched else shape)
        g = (grad_out[None] if unbatched else grad_out) / divisor
        grad_xp = np.zeros(xp_shape, g.dtype)
        for window in self._windows(out):
            grad_xp[(slice(None), slice(None)) + window] += g
        grad_x = grad_xp[(slice(None), slice(None)) + tuple(
            slice(p[0], xp_shape[2 + i] - p[1]) for i, p in enumerate(pads))]
        return grad_x[0] if unbatched else grad_x

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if not self.count_include_pad:
            s += ", count_include_pad=False"
        if self.divisor_override is not None:
            s += f", divisor_override={self.divisor_override}"
        return s
