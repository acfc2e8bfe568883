"""Sliding-window pooling: MaxPool2d, AvgPool2d, and MaxPool1d, AvgPool1d on a height-1 view.

Max pooling, with ``xpad`` padded by ``-inf``::

    y[n, c, oh, ow] = max_{i, j} xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]
    dL/dx[n, c, h, w] = sum of grad_out over the windows whose (first) maximum is (h, w)

Average pooling, with zero padding and ``D`` the divisor (window size, real pixels in the
window, or ``divisor_override``)::

    y[n, c, oh, ow] = sum_{i, j} xpad[n, c, oh*sh + i, ow*sw + j] / D[oh, ow]
    dL/dxpad[p] = sum over the windows containing p of grad_out / D

Both loop over the kh*kw kernel offsets, never over pixels (kernels in
``handgrad.ops.pooling``). Inputs may be unbatched, (C, H, W) or (C, L).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad
from ..layer import Layer
from ..ops.parallel import run_chunks, split
from ..ops.pooling import backprop_max_pool2d, flat_indices, index_dtype, max_pool2d
from ..ops.window import ceil_extra, output_shape, pad2d, pair, single, unpad2d, window_slice

__all__ = [
    "MaxPool2d", "AvgPool2d", "MaxPool1d", "AvgPool1d", "max_pool2d", "backprop_max_pool2d",
    "as_batched_nchw",
]


def as_batched_nchw(layer: Layer, x: Any, dims: int = 2) -> tuple[NDArray, bool]:
    """The input as (N, C, H, W) (a height-1 view for ``dims=1``) and whether it came
    unbatched: (C, H, W) / (C, L)."""
    x = as_float_input(layer, x)
    if x.ndim not in (dims + 1, dims + 2) or (x.ndim == dims + 2 and x.shape[1] == 0) or \
            (x.ndim == dims + 1 and x.shape[0] == 0):
        form = "(N, C, H, W) or (C, H, W)" if dims == 2 else "(N, C, L) or (C, L)"
        raise ValueError(f"{layer.describe()}: expected input of shape {form} with C > 0, "
                         f"got {x.shape}")
    unbatched = x.ndim == dims + 1
    if unbatched:
        x = x[None]
    return (x if dims == 2 else x[:, :, None]), unbatched


def _output(y: NDArray, unbatched: bool, dims: int) -> NDArray:
    """Undo :func:`as_batched_nchw` on an output (or a gradient)."""
    if dims == 1:
        y = y[:, :, 0]
    return y[0] if unbatched else y


def _batched_grad(layer: Layer, grad_out: Any, shape: tuple[int, ...], unbatched: bool,
                  dims: int) -> NDArray:
    """``grad_out`` checked against the forward output's shape, as (N, C, OH, OW)."""
    public = shape if dims == 2 else shape[:2] + shape[3:]
    grad_out = check_grad(layer, grad_out, public[1:] if unbatched else public)
    if unbatched:
        grad_out = grad_out[None]
    return grad_out if dims == 2 else grad_out[:, :, None]


def _axis_counts(size: int, out: int, kernel: int, stride: int, padding: int,
                 include_pad: bool) -> list[int]:
    """Per output position along one axis, how many pixels the average divides by."""
    counts = []
    for o in range(out):
        start = o * stride - padding
        end = min(start + kernel, size + padding)
        if not include_pad:
            start, end = max(start, 0), min(end, size)
        counts.append(end - start)
    return counts


class _Pool2d(Layer):
    _dims = 2

    def __init__(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
                 ceil_mode: bool):
        super().__init__()
        name = type(self).__name__
        if self._dims == 2:
            self.kernel_size = pair(kernel_size, "kernel_size", name)
            self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
            self.padding = pair(padding, "padding", name, minimum=0)
            self.dilation = pair(dilation, "dilation", name)
            two = (self.kernel_size, self.stride, self.padding, self.dilation)
        else:  # 1-d: ints, as PyTorch keeps them; a (1, k) window on the height-1 view
            self.kernel_size = single(kernel_size, "kernel_size", name)
            self.stride = self.kernel_size if stride is None else single(stride, "stride", name)
            self.padding = single(padding, "padding", name, minimum=0)
            self.dilation = single(dilation, "dilation", name)
            two = tuple((d, v) for d, v in zip((1, 1, 0, 1), (
                self.kernel_size, self.stride, self.padding, self.dilation)))
        self._kernel2, self._stride2, self._padding2, self._dilation2 = two
        for p, k in zip(self._padding2, self._kernel2):
            if p > k // 2:
                raise ValueError(
                    f"{name}: padding {self.padding} must be at most half the kernel size "
                    f"{self.kernel_size} (as in PyTorch)"
                )
        self.ceil_mode = bool(ceil_mode)
        self._cache = None

    def _geometry(self, x: NDArray):
        """Output size and the padding (incl. ceil_mode's trailing extra) for input ``x``."""
        H, W = x.shape[2:]
        (ph, pw) = self._padding2
        out_hw = output_shape((H, W), self._kernel2, self._stride2, ((ph, ph), (pw, pw)),
                              self._dilation2, self.ceil_mode, who=self.describe)
        extra = [ceil_extra(x.shape[2 + a], self._kernel2[a], self._stride2[a],
                            self._padding2[a], self._dilation2[a], out_hw[a]) for a in range(2)]
        pads = ((ph, ph + extra[0]), (pw, pw + extra[1]))
        return out_hw, pads

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self._dilation2 != (1, 1):
            s += f", dilation={self.dilation}"
        if self.ceil_mode:
            s += ", ceil_mode=True"
        return s


class MaxPool2d(_Pool2d):
    """Max over sliding windows, as ``torch.nn.MaxPool2d``.

    ``y[n, c, oh, ow] = max_{i, j} xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]`` where the
    padding is ``-inf`` (a padded position never wins).

    The gradient of each output goes to exactly one input pixel: the first maximum of its
    window in row-major order (PyTorch's tie rule). NaN inputs are not treated specially.

    Args:
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: default ``kernel_size``.
        padding: implicit ``-inf`` padding on both sides, at most half the kernel size.
        dilation: spacing between window elements (default 1).
        return_indices: forward returns ``(y, indices)``, ``indices`` (int64, y's shape) the
            position ``h*W + w`` of each maximum in the unpadded input (for ``MaxUnpool2d``).
        ceil_mode: use ``ceil`` instead of ``floor`` in the output-size rule (PyTorch's rule:
            the last window must start inside the input or the leading padding).

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``
        - output: ``(N, C, OH, OW)`` (or ``(C, OH, OW)``),
          ``OH = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1``

    Forward caches the winning kernel offset of every output (uint8 for kernels up to 16x16).
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, return_indices: bool = False, ceil_mode: bool = False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)
        self.return_indices = bool(return_indices)

    def forward(self, x: NDArray) -> NDArray | tuple[NDArray, NDArray]:
        x, unbatched = as_batched_nchw(self, x, self._dims)
        out_hw, pads = self._geometry(x)
        xp = pad2d(x, pads, value=-np.inf)
        shape = xp.shape[:2] + tuple(out_hw)
        y = np.empty(shape, xp.dtype)
        kh, kw = self._kernel2
        with_index = self.caching or self.return_indices
        index = np.empty(shape, index_dtype(kh * kw)) if with_index else None

        def block(worker: int, bounds: tuple[int, int]) -> None:
            k = slice(*bounds)  # images are independent: one block per thread
            max_pool2d(xp[k], self._kernel2, self._stride2, self._dilation2, out_hw,
                       with_index=index is not None, out=y[k],
                       index_out=None if index is None else index[k])

        run_chunks(block, split(len(x), x.nbytes))
        self._cache = (index, xp.shape, pads, unbatched) if self.caching else None
        y = _output(y, unbatched, self._dims)
        if not self.return_indices:
            return y
        flat = flat_indices(index, self._kernel2, self._stride2, self._dilation2, pads,
                            x.shape[2:])
        return y, _output(flat, unbatched, self._dims)

    def backward(self, grad_out: NDArray) -> NDArray:
        index, xp_shape, pads, unbatched = self._saved(self._cache)
        grad_out = _batched_grad(self, grad_out, index.shape, unbatched, self._dims)
        grad_xp = np.empty(xp_shape, grad_out.dtype)

        def block(worker: int, bounds: tuple[int, int]) -> None:
            k = slice(*bounds)
            backprop_max_pool2d(grad_out[k], index[k], grad_xp[k].shape, self._kernel2,
                                self._stride2, self._dilation2, out=grad_xp[k])

        run_chunks(block, split(len(grad_xp), grad_xp.nbytes))
        return _output(unpad2d(grad_xp, pads), unbatched, self._dims)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + ", return_indices=True" if self.return_indices else s


class AvgPool2d(_Pool2d):
    """Mean over sliding windows, as ``torch.nn.AvgPool2d``.

    ``y[n, c, oh, ow] = sum_{i, j} xpad[n, c, oh*sh + i, ow*sw + j] / divisor`` with zero
    padding. The divisor is the window clipped to the padded input (``count_include_pad=True``,
    ``kh*kw`` unless ``ceil_mode`` lets the window overhang), the number of real pixels in the
    window (``count_include_pad=False``), or ``divisor_override``.

    Args:
        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override: as in
            PyTorch (stride defaults to ``kernel_size``; padding is at most half the kernel).

    Shape:
        - input: ``(N, C, H, W)`` or ``(C, H, W)``
        - output: ``(N, C, OH, OW)`` (or ``(C, OH, OW)``), ``OH = floor((H + 2*ph - kh)/sh) + 1``

    Forward caches only the input shape and the divisor.
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        if divisor_override is not None:
            if isinstance(divisor_override, bool) or not isinstance(
                divisor_override, (int, np.integer)
            ) or divisor_override <= 0:
                raise ValueError(
                    f"{type(self).__name__}: expected a positive integer divisor_override, "
                    f"got {divisor_override!r}"
                )
        self.divisor_override = divisor_override

    def _divisor(self, x: NDArray, out_hw) -> float | NDArray:
        """A Python float when every window has the same divisor, else an (OH, OW) map."""
        if self.divisor_override is not None:
            return float(self.divisor_override)
        (kh, kw), (sh, sw), (ph, pw) = self._kernel2, self._stride2, self._padding2
        H, W = x.shape[2:]
        ch = _axis_counts(H, out_hw[0], kh, sh, ph, self.count_include_pad)
        cw = _axis_counts(W, out_hw[1], kw, sw, pw, self.count_include_pad)
        if len(set(ch)) == 1 and len(set(cw)) == 1:
            return float(ch[0] * cw[0])
        return np.outer(np.array(ch, dtype=x.dtype), np.array(cw, dtype=x.dtype))

    def forward(self, x: NDArray) -> NDArray:
        x, unbatched = as_batched_nchw(self, x, self._dims)
        out_hw, pads = self._geometry(x)
        xp = pad2d(x, pads, value=0.0)
        kh, kw = self._kernel2
        rows, cols = window_slice(0, 0, out_hw, self._stride2)
        y = xp[:, :, rows, cols].copy()
        for k in range(1, kh * kw):
            rows, cols = window_slice(k // kw, k % kw, out_hw, self._stride2)
            y += xp[:, :, rows, cols]
        divisor = self._divisor(x, out_hw)
        if isinstance(divisor, float):
            y *= 1.0 / divisor
        else:
            y /= divisor
        self._cache = (xp.shape, pads, divisor, tuple(out_hw), unbatched) if self.caching \
            else None
        return _output(y, unbatched, self._dims)

    def backward(self, grad_out: NDArray) -> NDArray:
        xp_shape, pads, divisor, out_hw, unbatched = self._saved(self._cache)
        grad_out = _batched_grad(self, grad_out, xp_shape[:2] + out_hw, unbatched, self._dims)
        kh, kw = self._kernel2
        # dL/dxpad[p] = sum over the windows containing p of grad_out / divisor.
        g = grad_out * (1.0 / divisor) if isinstance(divisor, float) else grad_out / divisor
        grad_xp = np.zeros(xp_shape, dtype=g.dtype)
        disjoint = self._stride2[0] >= kh and self._stride2[1] >= kw
        for k in range(kh * kw):
            rows, cols = window_slice(k // kw, k % kw, out_hw, self._stride2)
            if disjoint:  # windows do not overlap: assign instead of add
                grad_xp[:, :, rows, cols] = g
            else:
                grad_xp[:, :, rows, cols] += g
        return _output(unpad2d(grad_xp, pads), unbatched, self._dims)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if not self.count_include_pad:
            s += ", count_include_pad=False"
        if self.divisor_override is not None:
            s += f", divisor_override={self.divisor_override}"
        return s


class MaxPool1d(MaxPool2d):
    """Max over sliding windows of (N, C, L) sequences, as ``torch.nn.MaxPool1d``:
    ``MaxPool2d`` on the height-1 view with a (1, k) window (same kernels, same cache).

    ``y[n, c, t] = max_j xpad[n, c, t*s + j*d]``; indices (``return_indices``) are positions
    in L.

    Args:
        kernel_size, stride, padding, dilation, return_indices, ceil_mode: ints (or
            1-tuples), as ``MaxPool2d`` (stride defaults to ``kernel_size``).

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``
        - output: ``(N, C, L_out)``, ``L_out = floor((L + 2p - d*(k-1) - 1) / s) + 1``
    """

    _dims = 1


class AvgPool1d(AvgPool2d):
    """Mean over sliding windows of (N, C, L) sequences, as ``torch.nn.AvgPool1d``:
    ``AvgPool2d`` on the height-1 view with a (1, k) window.

    ``y[n, c, t] = sum_j xpad[n, c, t*s + j] / divisor`` (divisor as ``AvgPool2d``'s).

    Args:
        kernel_size, stride, padding, ceil_mode, count_include_pad: as in PyTorch (stride
            defaults to ``kernel_size``; PyTorch has no ``divisor_override`` for 1-d).

    Shape:
        - input: ``(N, C, L)`` or ``(C, L)``
        - output: ``(N, C, L_out)``, ``L_out = floor((L + 2p - k) / s) + 1``
    """

    _dims = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
