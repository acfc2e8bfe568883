"""Resampling: Upsample (nearest, nearest-exact, linear, bilinear, bicubic, trilinear),
UpsamplingNearest2d, UpsamplingBilinear2d.

Every mode is separable: along each spatial axis, output position ``q`` reads one source
position (nearest), two neighbours with weights (linear) or four (cubic), the same for
every row::

    nearest:  y[..., q] = x[..., src[q]]
    linear:   y[..., q] = (1 - l[q]) * x[..., i0[q]] + l[q] * x[..., i1[q]]
    cubic:    y[..., q] = sum_{k<4} w_k[q] * x[..., clamp(floor(src[q]) - 1 + k)]

Backward adds each output's gradient (times its weight) onto the source it read. The
source indices grow with ``q``, so the outputs reading one source are one contiguous run,
and the fold is one ``np.add.reduceat`` per term (no scatter). Source positions are
PyTorch's (``align_corners``, ``scale_factor`` or the size ratio), so results match it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad
from ..layer import Layer

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]

# mode -> the number of spatial axes it needs (None: any of 1-3)
MODES = {"nearest": None, "nearest-exact": None, "area": None, "linear": 1, "bilinear": 2,
         "bicubic": 2, "trilinear": 3}

Taps = list[tuple[NDArray, NDArray | None]]  # per axis: (source indices, weights or None)


def _nearest_taps(size: int, out: int, scale: float | None, exact: bool) -> Taps:
    """PyTorch's nearest source index (computed in float32, as its kernel does)."""
    q = np.arange(out)
    if not exact and out == size:
        return [(q, None)]
    if not exact and out == 2 * size:
        return [(q >> 1, None)]
    ratio = np.float32(1.0 / scale) if scale else np.float32(size) / np.float32(out)
    pos = (q.astype(np.float32) + np.float32(0.5 if exact else 0.0)) * ratio
    return [(np.minimum(np.floor(pos).astype(np.int64), size - 1), None)]


def _linear_taps(size: int, out: int, scale: float | None, align_corners: bool,
                 dtype) -> Taps:
    """Two neighbours and their weights, PyTorch's ``area_pixel_compute_source_index``."""
    q = np.arange(out, dtype=np.float64)
    if align_corners:
        src = q * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        ratio = 1.0 / scale if scale else size / out
        src = np.maximum((q + 0.5) * ratio - 0.5, 0.0)
    i0 = src.astype(np.int64)  # src >= 0: truncation is floor
    i1 = i0 + (i0 < size - 1)
    lam = (src - i0).astype(dtype)
    return [(i0, 1 - lam), (i1, lam)]


def _cubic_taps(size: int, out: int, scale: float | None, align_corners: bool,
                dtype) -> Taps:
    """Four neighbours ``floor(src) - 1 .. + 2`` (clamped to the axis) with Keys' cubic
    convolution weights (A = -0.75), as PyTorch's bicubic kernel."""
    q = np.arange(out, dtype=np.float64)
    if align_corners:
        src = q * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:  # not clamped at 0 for cubic
        src = (q + 0.5) * (1.0 / scale if scale else size / out) - 0.5
    base = np.floor(src)
    t = src - base
    A = -0.75

    def near(x):  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    base = base.astype(np.int64)
    return [(np.clip(base - 1 + k, 0, size - 1), w.astype(dtype))
            for k, w in enumerate(weights)]


def _area_taps(size: int, out: int, dtype) -> Taps:
    """The mean of PyTorch's adaptive bin ``[floor(q*size/out), ceil((q+1)*size/out))``, as
    ``longest bin`` taps: tap k reads ``min(start + k, end - 1)`` with weight 1/len, or 0
    past the bin's end (each tap's indices still grow with q)."""
    q = np.arange(out)
    start, end = (q * size) // out, -(-((q + 1) * size) // out)
    length = end - start
    taps = []
    for k in range(int(length.max())):
        weight = np.where(k < length, 1.0 / length, 0.0).astype(dtype)
        taps.append((np.minimum(start + k, end - 1), weight))
    return taps


def _resample_axis(x: NDArray, axis: int, taps: Taps) -> NDArray:
    shape = [1] * x.ndim
    shape[axis] = -1
    y = None
    for index, weight in taps:
        part = np.take(x, index, axis=axis)
        if weight is not None:
            part *= weight.reshape(shape)
        y = part if y is None else np.add(y, part, out=y)
    return y


def _fold_axis(g: NDArray, axis: int, taps: Taps, size: int) -> NDArray:
    """Adjoint of :func:`_resample_axis`: run sums of ``g`` onto their sources."""
    shape = list(g.shape)
    shape[axis] = size
    out = np.zeros(shape, g.dtype)
    wshape = [1] * g.ndim
    wshape[axis] = -1
    for index, weight in taps:
        part = g if weight is None else g * weight.reshape(wshape)
        starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
        sums = np.add.reduceat(part, starts, axis=axis)  # one per distinct source, in order
        target = (slice(None),) * axis + (index[starts],)
        out[target] += sums  # distinct indices: a plain indexed add
    return out


class Upsample(Layer):
    """Resize the spatial axes, as ``torch.nn.Upsample``.

    ``nearest``: ``y[..., q] = x[..., min(floor(q * in/out), in-1)]`` per axis
    (``nearest-exact``: ``floor((q + 0.5) * in/out)``). ``linear`` (3-d input),
    ``bilinear`` (4-d), ``trilinear`` (5-d): interpolation between the two nearest source
    positions (``bicubic``: Keys' cubic over four, A = -0.75, edges clamped),
    ``src = q * (in-1)/(out-1)`` with ``align_corners`` else ``(q + 0.5) * in/out - 0.5``
    (clamped at 0). With ``scale_factor`` (and ``recompute_scale_factor`` not True) the
    ratio ``in/out`` is ``1/scale_factor``, as in PyTorch.

    Args:
        size: output size, ``L`` / ``(H, W)`` (or one int for every axis).
        scale_factor: multiplier per axis (a float or a tuple), output ``floor(in * s)``.
        mode: ``'nearest'`` (default), ``'nearest-exact'``, ``'linear'``, ``'bilinear'``,
            ``'bicubic'``, ``'trilinear'``, ``'area'`` (the mean of each adaptive bin, as
            ``AdaptiveAvgPool``).
        align_corners: for the interpolating modes only (default False).
        recompute_scale_factor: compute the ratio from the output size instead.

    Shape:
        - input: ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)`` (linear: 3-d only,
          bilinear and bicubic: 4-d, trilinear: 5-d; batched only, as PyTorch's
          ``interpolate``)
        - output: the same with the new spatial size

    Forward caches the input's spatial size and the per-axis source indices and weights.
    """

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None):
        super().__init__()
        name = type(self).__name__
        if mode not in MODES:
            raise ValueError(f"{name}: expected mode in {tuple(MODES)}, got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{name}: give exactly one of size and scale_factor, got "
                             f"size={size!r}, scale_factor={scale_factor!r}")
        if align_corners is not None and MODES[mode] is None:
            raise ValueError(f"{name}: align_corners can only be set with the interpolating "
                             f"modes (linear, bilinear, bicubic, trilinear), got mode {mode!r}")
        self.name = name
        self.size = tuple(size) if isinstance(size, list) else size
        self.scale_factor = tuple(float(s) for s in scale_factor) if isinstance(
            scale_factor, (tuple, list)) else None if scale_factor is None else \
            float(scale_factor)
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor
        self._cache = None

    def _sizes(self, in_size: tuple[int, ...]) -> tuple[tuple[int, ...], tuple]:
        """Output size and the scale per axis handed to the source-index rule."""
        d = len(in_size)
        if self.size is not None:
            size = self.size if isinstance(self.size, tuple) else (self.size,) * d
            if len(size) != d or not all(isinstance(s, int) and s > 0 for s in size):
                raise ValueError(f"{self.describe()}: expected size as {d} positive ints for "
                                 f"input of spatial size {in_size}, got {self.size!r}")
            return tuple(size), (None,) * d
        scale = self.scale_factor if isinstance(self.scale_factor, tuple) else \
            (self.scale_factor,) * d
        if len(scale) != d or min(scale) <= 0:
            raise ValueError(f"{self.describe()}: expected scale_factor as {d} positive "
                             f"numbers, got {self.scale_factor!r}")
        out = tuple(math.floor(n * s) for n, s in zip(in_size, scale))
        if min(out) < 1:
            raise ValueError(f"{self.describe()}: scale_factor {self.scale_factor} gives an "
                             f"empty output for input size {in_size}")
        return out, (None,) * d if self.recompute_scale_factor else scale

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        need = MODES[self.mode]
        if x.ndim not in (3, 4, 5) or (need is not None and x.ndim != need + 2):
            form = {None: "(N, C, L), (N, C, H, W) or (N, C, D, H, W)", 1: "(N, C, L)",
                    2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}[need]
            raise ValueError(f"{self.describe()}: expected input of shape {form} (as "
                             f"torch.nn.functional.interpolate), got {x.shape}")
        d = x.ndim - 2
        in_size = x.shape[x.ndim - d:]
        out_size, scales = self._sizes(in_size)
        taps = []
        for n, o, s in zip(in_size, out_size, scales):
            if self.mode == "area":  # adaptive average pooling to the output size
                taps.append(_area_taps(n, o, x.dtype))
            elif MODES[self.mode] is None:
                taps.append(_nearest_taps(n, o, s, self.mode == "nearest-exact"))
            elif self.mode == "bicubic":
                taps.append(_cubic_taps(n, o, s, bool(self.align_corners), x.dtype))
            else:
                taps.append(_linear_taps(n, o, s, bool(self.align_corners), x.dtype))
        y = x
        for a in range(d):  # axis -d + a
            y = _resample_axis(y, x.ndim - d + a, taps[a])
        if y is x:
            y = x.copy()
        self._cache = (x.shape, in_size, taps) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        x_shape, in_size, taps = self._saved(self._cache)
        d = len(in_size)
        out_shape = x_shape[:len(x_shape) - d] + tuple(len(t[0][0]) for t in taps)
        g = check_grad(self, grad_out, out_shape)
        for a in range(d):
            g = _fold_axis(g, len(x_shape) - d + a, taps[a], in_size[a])
        return g if g is not grad_out else g.copy()

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            s = f"scale_factor={self.scale_factor}"
        else:
            s = f"size={self.size}"
        return s + f", mode='{self.mode}'"


class UpsamplingNearest2d(Upsample):
    """``Upsample(size, scale_factor, mode='nearest')`` for images, as
    ``torch.nn.UpsamplingNearest2d``.

    Shape:
        - input: ``(N, C, H, W)``; output: ``(N, C, OH, OW)``
    """

    def __init__(self, size: Any = None, scale_factor: Any = None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample(size, scale_factor, mode='bilinear', align_corners=True)``, as
    ``torch.nn.UpsamplingBilinear2d``.

    Shape:
        - input: ``(N, C, H, W)``; output: ``(N, C, OH, OW)``
    """

    def __init__(self, size: Any = None, scale_factor: Any = None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)
