"""Batch normalization: BatchNorm1d, BatchNorm2d, BatchNorm3d (per-sample norms: layer_norm.py).

Every layer here views its input as ``(A, B, S)`` groups of values and normalises with
``xhat = (x - mean) / sqrt(var + eps)`` (biased variance), then applies a per-feature affine
map. Per-group sums are matrix-vector products with a ones vector (BLAS), which is much
faster in NumPy than ``sum`` over small axes; per-group dot products use ``einsum``.

The common backward (for ``y = w * xhat + b``, ``M`` values per normalisation group,
``dxhat = grad_out * w``) is the closed form

    grad_x = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))

where the means run over the ``M`` values that shared a mean and variance.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..layer import Layer
from ..ops.backend import kernels
from ..ops.parallel import GIL_FREE_SIZE, channel_sum, ones, run_chunks, split
from ..parameter import Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]

_vecdot = getattr(np, "vecdot", None)  # NumPy >= 2.0


def _channel_dot(a: NDArray, b: NDArray) -> NDArray:
    """``sum(a * b)`` over N and S of two ``(N, C, S)`` arrays, without a temporary."""
    n, c, s = a.shape
    if s >= 128 and _vecdot is not None:
        # Long rows: vecdot's inner dot product is about twice einsum's speed. vecdot
        # holds the GIL when its result is small (GIL_FREE_SIZE), which would make the
        # threads' channel blocks run one at a time: rows are split into r pieces until
        # the result is large enough (pieces of at least 128 values).
        r = 1
        while n * c * r < GIL_FREE_SIZE and s % (2 * r) == 0 and s // (2 * r) >= 128:
            r *= 2
        dots = _vecdot(a.reshape(n, c, r, s // r), b.reshape(n, c, r, s // r))  # (N, C, r)
        per_cr = ones(n, a.dtype) @ dots.reshape(n, c * r)
        return per_cr.reshape(c, r) @ ones(r, a.dtype) if r > 1 else per_cr
    return np.einsum("ncs,ncs->c", a, b)


def _expand(v: NDArray, s: int) -> NDArray:
    """A per-channel vector ``(C,)`` as a contiguous ``(C, S)`` array.

    Broadcasting a materialised ``(C, S)`` operand over N runs NumPy's contiguous inner
    loop, about twice as fast as broadcasting ``v[:, None]`` (a stride-0 inner operand).
    """
    if s == 1:
        return v[:, None]
    return np.repeat(v, s).reshape(v.shape[0], s)


def _row_sum(a: NDArray) -> NDArray:
    """Row sums of a contiguous 2-d array as one matrix-vector product."""
    return a @ ones(a.shape[1], a.dtype)


def _row_dot(a: NDArray, b: NDArray) -> NDArray:
    return np.einsum("ij,ij->i", a, b)


def _check_eps(name: str, eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not eps >= 0:
        raise ValueError(f"{name}: expected a non-negative eps, got {eps!r}")
    return float(eps)


class _NormBase(Layer):
    """What BatchNorm and InstanceNorm share (PyTorch's ``_NormBase``): the checked
    arguments, the per-channel ``weight``/``bias`` and the running-statistics buffers."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 dtype: DTypeLike = np.float32, *, bias: bool = True):
        super().__init__()
        name = type(self).__name__
        self.num_features = check_positive_int(name, "num_features", num_features)
        self.eps = _check_eps(name, eps)
        if momentum is not None and (isinstance(momentum, bool) or not 0 <= momentum <= 1):
            raise ValueError(f"{name}: expected momentum in [0, 1] or None, got {momentum!r}")
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{name}: expected a floating dtype, got {dtype}")
        if self.affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if self.affine and bias:
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self._cache = None

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.fill(0)
            self.running_var.fill(1)
            self.num_batches_tracked.fill(0)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data.fill(1)
        if self.bias is not None:
            self.bias.data.fill(0)

    def extra_repr(self) -> str:
        text = (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
        return text + (", bias=False" if self.affine and self.bias is None else "")


class _BatchNorm(_NormBase):
    """Shared BatchNorm implementation on an ``(N, C, S)`` view of the input."""

    _ranks: tuple[int, ...] = ()
    _shape_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 dtype: DTypeLike = np.float32, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype,
                         bias=bias)
        self._xc_buffer: NDArray | None = None

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        self._xc_buffer = None

    # ------------------------------------------------------------------ forward
    def _view(self, x: NDArray) -> NDArray:
        if x.ndim not in self._ranks or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self.describe()}: expected input of shape "
                f"{self._shape_text.format(C=self.num_features)}, got {x.shape}"
            )
        x = np.ascontiguousarray(x)
        return x.reshape(x.shape[0], self.num_features, math.prod(x.shape[2:]))  # (N, C, S)

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if self.track_running_stats and x.dtype != self.running_mean.dtype:
            raise TypeError(
                f"{self.describe()}: expected input of dtype {self.running_mean.dtype} (the "
                f"layer's dtype), got {x.dtype}; convert the input with "
                f".astype(np.{self.running_mean.dtype}) or the layer with .to(np.{x.dtype})"
            )
        x3 = self._view(x)
        if x3.size == 0:  # an empty batch: an empty output, as PyTorch (which counts it)
            if self.training and self.track_running_stats:
                self._buffers["num_batches_tracked"] += 1
            self._cache = ("empty", x3, None, x.shape) if self.caching else None
            return np.empty(x.shape, x.dtype)
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            y3, cache = self._forward_batch_stats(x3, x.shape)
        else:
            y3, cache = self._forward_running_stats(x3)
        self._cache = (*cache, x.shape) if self.caching else None
        return y3.reshape(x.shape)

    def _forward_batch_stats(self, x3: NDArray, shape: tuple[int, ...]):
        n, c, s = x3.shape
        m = n * s
        if m <= 1:
            hint = ", or layer.eval() to use the running statistics" \
                if self.track_running_stats else ""
            raise ValueError(
                f"{self.describe()}: expected more than 1 value per channel when training, "
                f"got input size {shape}; use a batch of 2 or more{hint}"
            )
        # xc = x - mean is internal (only this layer reads it), so its buffer is reused
        # between steps. The output is always a fresh array.
        xc = self._xc_buffer
        if xc is None or xc.shape != x3.shape or xc.dtype != x3.dtype:
            xc = self._xc_buffer = np.empty_like(x3)
        fused = kernels()  # the Numba backend: one compiled kernel (ops/numba_norm.py)
        if fused is not None:
            w = self.weight.data if self.weight is not None else None
            b = self.bias.data if self.bias is not None else None
            y, mean, var, invstd = fused.batch_norm_train(x3, w, b, self.eps, xc)
            if self.track_running_stats and self.training:
                self._update_running_stats(mean, var, m)
            return y, ("batch", xc, invstd)
        y = np.empty_like(x3)
        mean, var, invstd = (np.empty(c, x3.dtype) for _ in range(3))
        w = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None

        def block(worker: int, bounds: tuple[int, int]) -> None:
            k = slice(*bounds)  # channels are independent: threads take channel blocks
            mean[k] = channel_sum(x3[:, k])
            mean[k] *= 1.0 / m
            np.subtract(x3[:, k], _expand(mean[k], s), out=xc[:, k])  # (N, C, S)
            var[k] = _channel_dot(xc[:, k], xc[:, k])
            var[k] *= 1.0 / m  # biased variance, used to normalise
            inv = var[k] + self.eps
            np.sqrt(inv, out=inv)
            np.reciprocal(inv, out=inv)
            invstd[k] = inv
            # y = xc * (w * invstd) + b: xhat itself is never stored.
            scale = inv * w[k] if w is not None else inv
            np.multiply(xc[:, k], _expand(scale, s), out=y[:, k])
            if b is not None:
                y[:, k] += _expand(b[k], s)

        run_chunks(block, split(c, x3.nbytes))
        if self.track_running_stats and self.training:
            self._update_running_stats(mean, var, m)
        return y, ("batch", xc, invstd)

    def _update_running_stats(self, mean: NDArray, var: NDArray, m: int) -> None:
        # PyTorch: running = (1 - momentum) * running + momentum * batch statistic, with the
        # unbiased variance var * m / (m - 1); momentum=None gives the cumulative average.
        # In place on the buffer arrays (no attribute assignment through Layer.__setattr__).
        buffers = self._buffers
        running_mean, running_var = buffers["running_mean"], buffers["running_var"]
        count = buffers["num_batches_tracked"]
        count += 1
        factor = 1.0 / float(count) if self.momentum is None else self.momentum
        running_mean *= 1.0 - factor
        running_mean += factor * mean
        running_var *= 1.0 - factor
        running_var += (factor * m / (m - 1)) * var

    def _forward_running_stats(self, x3: NDArray):
        # y = x * scale + shift with scale = w / sqrt(running_var + eps),
        # shift = b - running_mean * scale.
        invstd = 1.0 / np.sqrt(self.running_var + self.eps)
        scale = invstd * self.weight.data if self.affine else invstd
        shift = -self.running_mean * scale
        if self.bias is not None:
            shift += self.bias.data
        fused = kernels()
        if fused is not None:
            return fused.batch_norm_running(x3, scale, shift), ("running", x3, invstd)
        s = x3.shape[2]
        y = np.multiply(x3, _expand(scale, s))
        y += _expand(shift, s)
        return y, ("running", x3, invstd)

    # ------------------------------------------------------------------ backward
    def backward(self, grad_out: NDArray) -> NDArray:
        kind, saved, invstd, shape = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, shape)
        g3 = np.ascontiguousarray(grad_out).reshape(saved.shape)  # (N, C, S)
        if kind == "empty":
            zeros = np.zeros(self.num_features, g3.dtype)
            self._param_grads(zeros, zeros)
            return np.zeros(shape, g3.dtype)
        if kind == "batch":
            grad_x = self._backward_batch_stats(g3, saved, invstd)
        else:
            grad_x = self._backward_running_stats(g3, saved, invstd)
        return grad_x.reshape(shape)

    def _param_grads(self, sum_g: NDArray, sum_g_xhat: NDArray) -> None:
        if self.weight is not None and self.weight.requires_grad:
            self.weight.accumulate_grad(sum_g_xhat, fresh=True)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate_grad(sum_g, fresh=True)

    def _backward_batch_stats(self, g3: NDArray, xc: NDArray, invstd: NDArray) -> NDArray:
        # With M values per channel, xhat = xc * invstd and a = w * invstd:
        #   grad_x = a * (g - sum(g) / M - xhat * sum(g * xhat) / M)
        # (sum(g) and sum(g * xhat) are also the bias and weight gradients), computed as
        #   grad_x = g * a + xc * coef_xc + coef_const   with per-channel coefficients.
        fused = kernels()
        if fused is not None:
            w = self.weight.data if self.weight is not None else None
            grad_x, sum_g, sum_g_xhat = fused.batch_norm_train_backward(g3, xc, invstd, w)
            self._param_grads(sum_g, sum_g_xhat)
            return grad_x
        n, c, s = xc.shape
        m = n * s
        grad_x = np.empty_like(xc)
        sum_g, sum_g_xhat = np.empty(c, xc.dtype), np.empty(c, xc.dtype)
        a = invstd * self.weight.data if self.affine else invstd

        def block(worker: int, bounds: tuple[int, int]) -> None:
            k = slice(*bounds)  # channels are independent: threads take channel blocks
            sum_g[k] = channel_sum(g3[:, k])
            sum_g_xhat[k] = _channel_dot(g3[:, k], xc[:, k])
            sum_g_xhat[k] *= invstd[k]
            coef_xc = sum_g_xhat[k] * invstd[k]
            coef_xc *= -a[k] / m
            coef_const = sum_g[k] * (-a[k] / m)
            out = np.multiply(xc[:, k], _expand(coef_xc, s), out=grad_x[:, k])
            out += _expand(coef_const, s)
            out += np.multiply(g3[:, k], _expand(a[k], s))  # a short-lived temporary

        run_chunks(block, split(c, xc.nbytes))
        self._param_grads(sum_g, sum_g_xhat)
        return grad_x

    def _backward_running_stats(self, g3: NDArray, x3: NDArray, invstd: NDArray) -> NDArray:
        # Running statistics are constants: grad_x = g * w * invstd;
        # grad_w = sum(g * xhat) = invstd * (sum(g * x) - running_mean * sum(g)).
        a = invstd * self.weight.data if self.affine else invstd
        grad_x = np.multiply(g3, _expand(a, g3.shape[2]))
        if self.affine and any(p.requires_grad for p in (self.weight, self.bias) if p is not None):
            sum_g = channel_sum(g3)
            sum_g_xhat = (_channel_dot(g3, x3) - self.running_mean * sum_g) * invstd
            self._param_grads(sum_g, sum_g_xhat)
        return grad_x

class BatchNorm1d(_BatchNorm):
    """Batch normalization over a batch of vectors or sequences (Ioffe & Szegedy, 2015).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per feature (channel) C. In training,
    mean and (biased) var are the batch statistics over N (and L), and
    ``running = (1 - momentum) * running + momentum * stat`` with the *unbiased* variance
    (``momentum=None``: cumulative average); in eval mode the running statistics are used.
    With ``track_running_stats=False`` the batch statistics are always used.

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: running-statistics factor (default 0.1), or None for a cumulative average.
        affine: learn ``weight`` (ones) and ``bias`` (zeros) (default True).
        track_running_stats: keep ``running_mean``, ``running_var``, ``num_batches_tracked``.
        dtype: parameter and buffer dtype (float32 by default).
        bias: with ``affine``, also learn the bias (default True; keyword only).

    Shape:
        - input: ``(N, C)`` or ``(N, C, L)``; output: same shape
        - weight, bias, running_mean, running_var: ``(C,)``; num_batches_tracked: ``()`` int64

    Forward caches ``x - mean`` and ``1/sqrt(var + eps)`` (batch statistics) or the input
    (running statistics); the ``x - mean`` buffer is reused between steps.
    """

    _ranks = (2, 3)
    _shape_text = "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization over images, per channel (Ioffe & Szegedy, 2015).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, statistics over N, H and W. In
    training the batch statistics are used and ``running = (1 - momentum) * running +
    momentum * stat`` with the *unbiased* variance (``momentum=None``: cumulative average);
    in eval mode the running statistics are used. With ``track_running_stats=False`` the
    batch statistics are always used.

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: running-statistics factor (default 0.1), or None for a cumulative average.
        affine: learn ``weight`` (ones) and ``bias`` (zeros) (default True).
        track_running_stats: keep ``running_mean``, ``running_var``, ``num_batches_tracked``.
        dtype: parameter and buffer dtype (float32 by default).
        bias: with ``affine``, also learn the bias (default True; keyword only).

    Shape:
        - input: ``(N, C, H, W)``; output: same shape
        - weight, bias, running_mean, running_var: ``(C,)``; num_batches_tracked: ``()`` int64

    Forward caches ``x - mean`` and ``1/sqrt(var + eps)`` (batch statistics) or the input
    (running statistics); the ``x - mean`` buffer is reused between steps.
    """

    _ranks = (4,)
    _shape_text = "(N, {C}, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalization over volumes, per channel (Ioffe & Szegedy, 2015).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, statistics over N, D, H and W; the
    running statistics, ``momentum`` and ``track_running_stats`` work as in BatchNorm2d.

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: running-statistics factor (default 0.1), or None for a cumulative average.
        affine: learn ``weight`` (ones) and ``bias`` (zeros) (default True).
        track_running_stats: keep ``running_mean``, ``running_var``, ``num_batches_tracked``.
        dtype: parameter and buffer dtype (float32 by default).
        bias: with ``affine``, also learn the bias (default True; keyword only).

    Shape:
        - input: ``(N, C, D, H, W)``; output: same shape
        - weight, bias, running_mean, running_var: ``(C,)``; num_batches_tracked: ``()`` int64

    Forward caches ``x - mean`` and ``1/sqrt(var + eps)`` (batch statistics) or the input
    (running statistics).
    """

    _ranks = (5,)
    _shape_text = "(N, {C}, D, H, W)"
