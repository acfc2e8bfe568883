"""2-D pooling: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, GlobalAvgPool2d.

Max and average pooling loop over the kh*kw kernel offsets (never over pixels): each offset
is one strided view of the padded input (``handgrad.ops.window.window_slice``), combined
element-wise over the whole batch at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad
from ..layer import Layer
from ..ops.parallel import run_chunks, split
from ..ops.window import ceil_extra, output_shape, pad2d, pair, unpad2d, window_slice

__all__ = [
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "GlobalAvgPool2d",
    "max_pool2d", "backprop_max_pool2d",
]


# ---------------------------------------------------------------------------- kernels
def _index_dtype(window: int) -> np.dtype:
    """The smallest unsigned type for offsets within a window of ``window`` elements."""
    return np.dtype(np.uint8 if window <= 256 else np.uint16)


def max_pool2d(xp: NDArray, kernel_size, stride, dilation, out_hw, with_index: bool = True,
               out: NDArray | None = None, index_out: NDArray | None = None
               ) -> tuple[NDArray, NDArray | None]:
    """Window maxima of padded ``xp`` (N, C, Hp, Wp) and the winning kernel offset.

    Returns ``y`` (N, C, OH, OW) and ``index`` (same shape, uint8/uint16: ``i*kw + j`` of the
    first maximum in row-major window order, as PyTorch breaks ties), or None for the index
    when ``with_index`` is False. ``out`` / ``index_out`` (of that shape and dtype; any
    contents) receive them instead of new arrays.
    """
    kh, kw = kernel_size
    rows, cols = window_slice(0, 0, out_hw, stride, dilation)
    if out is None:
        out = np.empty(xp.shape[:2] + tuple(out_hw), dtype=xp.dtype)
    if not with_index:
        y = out
        np.copyto(y, xp[:, :, rows, cols])
        for k in range(1, kh * kw):
            rows, cols = window_slice(k // kw, k % kw, out_hw, stride, dilation)
            np.maximum(y, xp[:, :, rows, cols], out=y)
        return y, None
    index = index_out if index_out is not None else \
        np.empty(out.shape, dtype=_index_dtype(kh * kw))
    index.fill(0)
    wins = np.empty(out.shape, dtype=bool)
    stamp = np.empty(out.shape, dtype=index.dtype)
    # The running maximum alternates between two buffers, so that whether offset k wins
    # compares two contiguous arrays (new maximum > old maximum, i.e. v > old maximum:
    # strictly, the first maximum keeps the win) instead of reading the strided window
    # view a second time. Started in the buffer that makes the last maximum land in out.
    spare = np.empty_like(out)
    y, other = (out, spare) if (kh * kw - 1) % 2 == 0 else (spare, out)
    np.copyto(y, xp[:, :, rows, cols])
    # Masked NumPy operations (where=, boolean indexing) are ~20x slower than plain
    # element-wise ones, so the index is updated arithmetically: offsets come in increasing
    # order, so max(index, wins * k) is k where offset k wins and the old index elsewhere.
    for k in range(1, kh * kw):
        rows, cols = window_slice(k // kw, k % kw, out_hw, stride, dilation)
        np.maximum(y, xp[:, :, rows, cols], out=other)
        np.greater(other, y, out=wins)
        np.multiply(wins, index.dtype.type(k), out=stamp)
        np.maximum(index, stamp, out=index)
        y, other = other, y
    return y, index


def backprop_max_pool2d(grad_out: NDArray, index: NDArray, padded_shape, kernel_size, stride,
                        dilation, out: NDArray | None = None) -> NDArray:
    """Gradient w.r.t. padded input: each output's gradient goes to its one winning pixel.

    Written into ``out`` (of ``padded_shape``; any contents) when given, else a new array.
    """
    kh, kw = kernel_size
    out_hw = grad_out.shape[2:]
    # Windows tiling the padded input exactly (the usual k x k, stride k pooling): every
    # pixel is written once below, so the result needs no zero fill first.
    tiled = tuple(dilation) == (1, 1) and tuple(stride) == (kh, kw) and \
        padded_shape[2:] == (kh * out_hw[0], kw * out_hw[1])
    if out is None:
        grad_xp = (np.empty if tiled else np.zeros)(padded_shape, dtype=grad_out.dtype)
    else:
        grad_xp = out
        if not tiled:
            grad_xp.fill(0)
    hit = np.empty(index.shape, dtype=bool)
    share = np.empty(grad_out.shape, dtype=grad_out.dtype)
    for k in range(kh * kw):
        rows, cols = window_slice(k // kw, k % kw, out_hw, stride, dilation)
        target = grad_xp[:, :, rows, cols]
        np.equal(index, k, out=hit)
        if tiled:  # every pixel has exactly one writer
            np.multiply(grad_out, hit, out=target)
        else:  # (masked where= adds are far slower than multiply + add)
            np.multiply(grad_out, hit, out=share)
            target += share
    return grad_xp


def _check_nchw(layer: Layer, x: NDArray) -> NDArray:
    x = as_float_input(layer, x)
    if x.ndim != 4:
        raise ValueError(f"{layer.describe()}: expected input of shape (N, C, H, W), got {x.shape}")
    return x


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


# ---------------------------------------------------------------------------- max / avg
class _Pool2d(Layer):
    def __init__(self, name: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
                 ceil_mode: bool):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name, minimum=0)
        self.dilation = pair(dilation, "dilation", name)
        for p, k in zip(self.padding, self.kernel_size):
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
        (ph, pw) = self.padding
        out_hw = output_shape((H, W), self.kernel_size, self.stride, ((ph, ph), (pw, pw)),
                              self.dilation, self.ceil_mode, who=self.describe)
        extra = [ceil_extra(x.shape[2 + a], self.kernel_size[a], self.stride[a],
                            self.padding[a], self.dilation[a], out_hw[a]) for a in range(2)]
        pads = ((ph, ph + extra[0]), (pw, pw + extra[1]))
        return out_hw, pads

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.dilation != (1, 1):
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
        ceil_mode: use ``ceil`` instead of ``floor`` in the output-size rule (PyTorch's rule:
            the last window must start inside the input or the leading padding).

    Shape:
        - input: ``(N, C, H, W)``
        - output: ``(N, C, OH, OW)``, ``OH = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1``

    Forward caches the winning kernel offset of every output (uint8 for kernels up to 16x16).
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, ceil_mode: bool = False):
        super().__init__("MaxPool2d", kernel_size, stride, padding, dilation, ceil_mode)

    def forward(self, x: NDArray) -> NDArray:
        x = _check_nchw(self, x)
        out_hw, pads = self._geometry(x)
        xp = pad2d(x, pads, value=-np.inf)
        shape = xp.shape[:2] + tuple(out_hw)
        y = np.empty(shape, xp.dtype)
        kh, kw = self.kernel_size
        index = np.empty(shape, _index_dtype(kh * kw)) if self.caching else None

        def block(worker: int, bounds: tuple[int, int]) -> None:
            k = slice(*bounds)  # images are independent: one block per thread
            max_pool2d(xp[k], self.kernel_size, self.stride, self.dilation, out_hw,
                       with_index=index is not None, out=y[k],
                       index_out=None if index is None else index[k])

        run_chunks(block, split(len(x), x.nbytes))
        self._cache = (index, xp.shape, pads) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        index, xp_shape, pads = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, index.shape)
        grad_xp = np.empty(xp_shape, grad_out.dtype)

        def block(worker: int, bounds: tuple[int, int]) -> None:
            k = slice(*bounds)
            backprop_max_pool2d(grad_out[k], index[k], grad_xp[k].shape, self.kernel_size,
                                self.stride, self.dilation, out=grad_xp[k])

        run_chunks(block, split(len(grad_xp), grad_xp.nbytes))
        return unpad2d(grad_xp, pads)


class AvgPool2d(_Pool2d):
    """Mean over sliding windows, as ``torch.nn.AvgPool2d``.

    ``y[n, c, oh, ow] = sum_{i, j} xpad[n, c, oh*sh + i, ow*sw + j] / divisor`` with zero
    padding. The divisor is ``kh*kw`` (``count_include_pad=True``, windows clipped to the
    padded input with ``ceil_mode``), the number of real pixels in the window
    (``count_include_pad=False``), or ``divisor_override``.

    Args:
        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override: as in
            PyTorch (stride defaults to ``kernel_size``; padding is at most half the kernel).

    Shape:
        - input: ``(N, C, H, W)``
        - output: ``(N, C, OH, OW)``, ``OH = floor((H + 2*ph - kh) / sh) + 1``

    Forward caches only the input shape and the divisor.
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__("AvgPool2d", kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = bool(count_include_pad)
        if divisor_override is not None:
            if isinstance(divisor_override, bool) or not isinstance(
                divisor_override, (int, np.integer)
            ) or divisor_override <= 0:
                raise ValueError(
                    f"AvgPool2d: expected a positive integer divisor_override, got "
                    f"{divisor_override!r}"
                )
        self.divisor_override = divisor_override

    def _divisor(self, x: NDArray, out_hw) -> float | NDArray:
        """A Python float when every window has the same divisor, else an (OH, OW) map."""
        if self.divisor_override is not None:
            return float(self.divisor_override)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        H, W = x.shape[2:]
        ch = _axis_counts(H, out_hw[0], kh, sh, ph, self.count_include_pad)
        cw = _axis_counts(W, out_hw[1], kw, sw, pw, self.count_include_pad)
        if len(set(ch)) == 1 and len(set(cw)) == 1:
            return float(ch[0] * cw[0])
        return np.outer(np.array(ch, dtype=x.dtype), np.array(cw, dtype=x.dtype))

    def forward(self, x: NDArray) -> NDArray:
        x = _check_nchw(self, x)
        out_hw, pads = self._geometry(x)
        xp = pad2d(x, pads, value=0.0)
        kh, kw = self.kernel_size
        rows, cols = window_slice(0, 0, out_hw, self.stride)
        y = xp[:, :, rows, cols].copy()
        for k in range(1, kh * kw):
            rows, cols = window_slice(k // kw, k % kw, out_hw, self.stride)
            y += xp[:, :, rows, cols]
        divisor = self._divisor(x, out_hw)
        if isinstance(divisor, float):
            y *= 1.0 / divisor
        else:
            y /= divisor
        self._cache = (xp.shape, pads, divisor, tuple(out_hw)) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        xp_shape, pads, divisor, out_hw = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, xp_shape[:2] + out_hw)
        kh, kw = self.kernel_size
        # dL/dxpad[p] = sum over the windows containing p of grad_out / divisor.
        g = grad_out * (1.0 / divisor) if isinstance(divisor, float) else grad_out / divisor
        grad_xp = np.zeros(xp_shape, dtype=g.dtype)
        disjoint = self.stride[0] >= kh and self.stride[1] >= kw
        for k in range(kh * kw):
            rows, cols = window_slice(k // kw, k % kw, out_hw, self.stride)
            if disjoint:  # windows do not overlap: assign instead of add
                grad_xp[:, :, rows, cols] = g
            else:
                grad_xp[:, :, rows, cols] += g
        return unpad2d(grad_xp, pads)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if not self.count_include_pad:
            s += ", count_include_pad=False"
        if self.divisor_override is not None:
            s += f", divisor_override={self.divisor_override}"
        return s


# ---------------------------------------------------------------------------- adaptive
def _adaptive_size(output_size: Any, name: str) -> tuple[int | None, int | None]:
    values = (output_size, output_size) if not isinstance(output_size, (tuple, list)) \
        else tuple(output_size)
    if len(values) != 2 or not all(
        v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0)
        for v in values
    ):
        raise ValueError(
            f"{name}: expected output_size as a positive int, a pair of positive ints or "
            f"None, got {output_size!r}"
        )
    return tuple(None if v is None else int(v) for v in values)  # type: ignore[return-value]


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive bins: ``[floor(i*size/out), ceil((i+1)*size/out))``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _averaging_matrix(size: int, out: int, dtype) -> NDArray:
    """(out, size) matrix whose row i averages bin i."""
    m = np.zeros((out, size), dtype=dtype)
    for i, (start, end) in enumerate(adaptive_bins(size, out)):
        m[i, start:end] = 1.0 / (end - start)
    return m


class _AdaptivePool2d(Layer):
    _name = "AdaptivePool2d"

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = _adaptive_size(output_size, self._name)
        self._cache = None

    def _out_hw(self, x: NDArray) -> tuple[int, int]:
        return tuple(x.shape[2 + a] if self.output_size[a] is None else self.output_size[a]
                     for a in range(2))  # type: ignore[return-value]

    def _check(self, x: NDArray) -> NDArray:
        x = _check_nchw(self, x)
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"{self.describe()}: expected a non-empty image, got {x.shape}")
        return x

    def extra_repr(self) -> str:
        size = self.output_size
        return f"output_size={size[0] if size[0] == size[1] else size}"


class AdaptiveAvgPool2d(_AdaptivePool2d):
    """Average over PyTorch's adaptive bins, as ``torch.nn.AdaptiveAvgPool2d``.

    Output pixel ``(i, j)`` averages rows ``[floor(i*H/OH), ceil((i+1)*H/OH))`` and columns
    ``[floor(j*W/OW), ceil((j+1)*W/OW))``. Separable, so ``y = A_h @ x @ A_w^T`` with
    averaging matrices ``A_h`` (OH, H) and ``A_w`` (OW, W); output size 1 is a plain mean.

    Args:
        output_size: ``k``, ``(OH, OW)``; ``None`` in a pair keeps that input size.

    Shape:
        - input: ``(N, C, H, W)``; output: ``(N, C, OH, OW)``

    Forward caches the input shape (and the two small averaging matrices).
    """

    _name = "AdaptiveAvgPool2d"

    def forward(self, x: NDArray) -> NDArray:
        x = self._check(x)
        N, C, H, W = x.shape
        oh, ow = self._out_hw(x)
        if (oh, ow) == (1, 1):
            y = x.reshape(N, C, H * W).sum(axis=2, keepdims=True).reshape(N, C, 1, 1)
            y *= 1.0 / (H * W)
            self._cache = (x.shape, None, None) if self.caching else None
            return y
        a_h = _averaging_matrix(H, oh, x.dtype)
        a_w = _averaging_matrix(W, ow, x.dtype)
        y = np.matmul(a_h, x @ a_w.T)  # (N, C, H, OW) -> (N, C, OH, OW)
        self._cache = (x.shape, a_h, a_w) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        x_shape, a_h, a_w = self._saved(self._cache)
        N, C, H, W = x_shape
        if a_h is None:
            grad_out = check_grad(self, grad_out, (N, C, 1, 1))
            grad_x = np.empty(x_shape, dtype=grad_out.dtype)
            np.multiply(grad_out, 1.0 / (H * W), out=grad_x)  # broadcast over H, W
            return grad_x
        grad_out = check_grad(self, grad_out, (N, C, a_h.shape[0], a_w.shape[0]))
        # y = A_h x A_w^T  =>  dL/dx = A_h^T grad_out A_w
        return np.matmul(a_h.T, grad_out @ a_w)


class GlobalAvgPool2d(AdaptiveAvgPool2d):
    """Mean over all pixels of each channel: ``AdaptiveAvgPool2d(1)``.

    Returns ``(N, C, 1, 1)`` like PyTorch's ``AdaptiveAvgPool2d(1)`` by default, or
    ``(N, C)`` with ``flatten=True`` (then no ``Flatten`` layer is needed before a Linear).

    Shape:
        - input: ``(N, C, H, W)``; output: ``(N, C, 1, 1)`` or ``(N, C)`` with ``flatten``

    Forward caches the input shape.
    """

    _name = "GlobalAvgPool2d"

    def __init__(self, flatten: bool = False):
        super().__init__(1)
        self.flatten = bool(flatten)

    def forward(self, x: NDArray) -> NDArray:
        y = super().forward(x)
        return y.reshape(y.shape[:2]) if self.flatten else y

    def backward(self, grad_out: NDArray) -> NDArray:
        if self.flatten and self._cache is not None:
            grad_out = np.asarray(grad_out)
            if grad_out.ndim == 2:
                grad_out = grad_out.reshape(grad_out.shape + (1, 1))
            else:
                x_shape = self._cache[0]
                raise ValueError(
                    f"{self.describe()}: expected grad_out of shape {tuple(x_shape[:2])} (the "
                    f"forward output's), got {grad_out.shape}"
                )
        return super().backward(grad_out)

    def extra_repr(self) -> str:
        return "flatten=True" if self.flatten else ""


class AdaptiveMaxPool2d(_AdaptivePool2d):
    """Max over PyTorch's adaptive bins, as ``torch.nn.AdaptiveMaxPool2d``.

    Bins as in ``AdaptiveAvgPool2d``; the gradient goes to the first maximum of each bin in
    row-major order. When the bins tile the input evenly this is ``MaxPool2d`` with
    ``kernel = stride = H/OH``; otherwise it loops over the (few) output bins.

    Args:
        output_size: ``k``, ``(OH, OW)``; ``None`` in a pair keeps that input size.

    Shape:
        - input: ``(N, C, H, W)``; output: ``(N, C, OH, OW)``

    Forward caches the winning position of every output.
    """

    _name = "AdaptiveMaxPool2d"

    def forward(self, x: NDArray) -> NDArray:
        x = self._check(x)
        N, C, H, W = x.shape
        oh, ow = self._out_hw(x)
        if H % oh == 0 and W % ow == 0:
            kernel = (H // oh, W // ow)
            y, index = max_pool2d(x, kernel, kernel, (1, 1), (oh, ow), with_index=self.caching)
            self._cache = ("even", index, x.shape, kernel) if self.caching else None
            return y
        bins_h, bins_w = adaptive_bins(H, oh), adaptive_bins(W, ow)
        y = np.empty((N, C, oh, ow), dtype=x.dtype)
        index = np.empty((N, C, oh, ow), dtype=np.intp) if self.caching else None
        for i, (h0, h1) in enumerate(bins_h):
            for j, (w0, w1) in enumerate(bins_w):
                window = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)
                arg = window.argmax(axis=2)  # first maximum in row-major order
                y[:, :, i, j] = np.take_along_axis(window, arg[..., None], axis=2)[..., 0]
                if index is not None:
                    index[:, :, i, j] = arg
        self._cache = ("bins", index, x.shape, (bins_h, bins_w)) if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        kind, index, x_shape, geometry = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, index.shape)
        if kind == "even":
            return backprop_max_pool2d(grad_out, index, x_shape, geometry, geometry, (1, 1))
        bins_h, bins_w = geometry
        grad_x = np.zeros(x_shape, dtype=grad_out.dtype)
        for i, (h0, h1) in enumerate(bins_h):
            for j, (w0, w1) in enumerate(bins_w):
                width = w1 - w0
                positions = np.arange((h1 - h0) * width).reshape(h1 - h0, width)
                hit = positions == index[:, :, i, j, None, None]  # (N, C, bh, bw)
                grad_x[:, :, h0:h1, w0:w1] += hit * grad_out[:, :, i, j, None, None]
        return grad_x

