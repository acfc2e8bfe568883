"""Per-sample normalization: LayerNorm, RMSNorm, GroupNorm, InstanceNorm1d/2d/3d.

Unlike BatchNorm, each sample is normalised on its own. LayerNorm, GroupNorm and
InstanceNorm view the input as rows, one per normalisation group, and share the row kernel
of ``handgrad.ops.normalize``:

    forward:  xhat = (x - mean) / sqrt(var + eps),  y = xhat * weight + bias
    backward: grad_x = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
              dxhat = grad_out * weight,  grad_weight = sum(grad_out * xhat),
              grad_bias = sum(grad_out)

with the means over the values of a row (biased variance). The rows are: the trailing
``normalized_shape`` of a sample (LayerNorm), a sample's ``C / G`` channels with all their
positions (GroupNorm), one channel of one sample (InstanceNorm). RMSNorm divides by the root
mean square without centring. LocalResponseNorm (across neighbouring channels) is in
``local_response_norm.py``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..layer import Layer
from ..ops.normalize import backprop_normalize_rows, normalize_rows, row_dot, row_sum
from ..ops.parallel import channel_sum, ones
from ..parameter import Parameter
from .normalization import _channel_dot, _check_eps, _expand, _NormBase

__all__ = ["LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
           "InstanceNorm3d"]


def _shape_tuple(name: str, normalized_shape) -> tuple[int, ...]:
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (normalized_shape,)
    shape = tuple(normalized_shape)
    if not shape:
        raise ValueError(f"{name}: expected a non-empty normalized_shape, got ()")
    return tuple(check_positive_int(name, "normalized_shape entry", d) for d in shape)


def _check_trailing(layer: Layer, x: NDArray, shape: tuple[int, ...]) -> None:
    k = len(shape)
    if x.ndim < k or x.shape[x.ndim - k:] != shape:
        raise ValueError(f"{layer.describe()}: expected input of shape (*, "
                         f"{', '.join(map(str, shape))}), got {x.shape}")


class LayerNorm(Layer):
    """Layer normalization over the last dimensions (Ba et al., 2016), as ``torch.nn.LayerNorm``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, mean and biased var taken over the
    trailing ``normalized_shape`` dimensions of each sample; weight and bias are element-wise.

    Args:
        normalized_shape: an int or tuple, the trailing shape normalised over.
        eps: added to the variance (default 1e-5).
        elementwise_affine: learn ``weight`` (ones) and ``bias`` (zeros) (default True).
        bias: learn the bias (default True; only with ``elementwise_affine``).
        dtype: parameter dtype (float32 by default).

    Shape:
        - input: ``(*, *normalized_shape)``; output: same shape
        - weight, bias: ``normalized_shape``

    Forward caches ``xhat`` and ``1/sqrt(var + eps)``.
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype: DTypeLike = np.float32):
        super().__init__()
        self.normalized_shape = _shape_tuple("LayerNorm", normalized_shape)
        self.eps = _check_eps("LayerNorm", eps)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if self.elementwise_affine and bias:
            self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self._cache = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        _check_trailing(self, x, self.normalized_shape)
        d = math.prod(self.normalized_shape)
        xhat, _, invstd = normalize_rows(np.ascontiguousarray(x).reshape(-1, d), self.eps)
        y = xhat
        if self.weight is not None:
            y = np.multiply(xhat, self.weight.data.reshape(-1))
            if self.bias is not None:
                y += self.bias.data.reshape(-1)
        self._cache = (xhat, invstd, x.shape) if self.caching else None
        return y.reshape(x.shape)

    def backward(self, grad_out: NDArray) -> NDArray:
        xhat, invstd, shape = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, shape)
        b, d = xhat.shape
        g2 = np.ascontiguousarray(grad_out).reshape(b, d)
        dxhat = g2
        if self.weight is not None:
            if self.weight.requires_grad:
                gw = ones(b, g2.dtype) @ (g2 * xhat)
                self.weight.accumulate_grad(gw.reshape(self.normalized_shape), fresh=True)
            if self.bias is not None and self.bias.requires_grad:
                gb = ones(b, g2.dtype) @ g2
                self.bias.accumulate_grad(gb.reshape(self.normalized_shape), fresh=True)
            dxhat = g2 * self.weight.data.reshape(-1)
        return backprop_normalize_rows(dxhat, xhat, invstd).reshape(shape)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}"
                + (", bias=False" if self.elementwise_affine and self.bias is None else ""))


class RMSNorm(Layer):
    """Root-mean-square normalization (Zhang & Sennrich, 2019), as ``torch.nn.RMSNorm``.

    ``y = x / sqrt(mean(x^2) + eps) * weight``, the mean over the trailing
    ``normalized_shape`` dimensions of each sample (no centring, no bias). Backward, with
    ``r = 1 / sqrt(mean(x^2) + eps)`` and ``u = grad_out * weight``:
    ``grad_x = r * (u - x * r^2 * mean(u * x))``, ``grad_weight = sum(grad_out * x * r)``.

    Args:
        normalized_shape: an int or tuple, the trailing shape normalised over.
        eps: added to the mean square; None (default) is the machine epsilon of the input's
            dtype, as PyTorch.
        elementwise_affine: learn an element-wise ``weight`` (ones) (default True).
        dtype: parameter dtype (float32 by default).

    Shape:
        - input: ``(*, *normalized_shape)``; output: same shape
        - weight: ``normalized_shape``

    Forward caches the input rows and ``r``.
    """

    def __init__(self, normalized_shape, eps: float | None = None,
                 elementwise_affine: bool = True, dtype: DTypeLike = np.float32):
        super().__init__()
        self.normalized_shape = _shape_tuple("RMSNorm", normalized_shape)
        self.eps = None if eps is None else _check_eps("RMSNorm", eps)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        self._cache = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        _check_trailing(self, x, self.normalized_shape)
        d = math.prod(self.normalized_shape)
        x2 = np.ascontiguousarray(x).reshape(-1, d)  # (B, D)
        eps = np.finfo(x.dtype).eps if self.eps is None else self.eps
        r = row_dot(x2, x2)
        r *= 1.0 / d
        r += eps
        np.sqrt(r, out=r)
        np.reciprocal(r, out=r)
        y = np.multiply(x2, r[:, None])
        if self.weight is not None:
            y *= self.weight.data.reshape(-1)
        self._cache = (x2, r, x.shape) if self.caching else None
        return y.reshape(x.shape)

    def backward(self, grad_out: NDArray) -> NDArray:
        x2, r, shape = self._saved(self._cache)
        grad_out = check_grad(self, grad_out, shape)
        b, d = x2.shape
        g2 = np.ascontiguousarray(grad_out).reshape(b, d)
        u = g2
        if self.weight is not None:
            if self.weight.requires_grad:
                gw = r @ (g2 * x2) if b else np.zeros(d, g2.dtype)  # sum_rows g * x * r
                self.weight.accumulate_grad(gw.reshape(self.normalized_shape), fresh=True)
            u = g2 * self.weight.data.reshape(-1)
        coef = row_dot(u, x2) * (1.0 / d) * r * r  # r^2 * mean(u * x), per row
        grad_x = np.multiply(x2, -coef[:, None])
        grad_x += u
        grad_x *= r[:, None]
        return grad_x.reshape(shape)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Layer):
    """Group normalization (Wu & He, 2018), as ``torch.nn.GroupNorm``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``; mean and biased var over each
    sample's group of ``C / num_groups`` channels and all spatial positions; weight and bias
    are per channel.

    Args:
        num_groups: number of groups G (must divide num_channels).
        num_channels: C.
        eps: added to the variance (default 1e-5).
        affine: learn per-channel ``weight`` (ones) and ``bias`` (zeros) (default True).
        dtype: parameter dtype (float32 by default).
        bias: with ``affine``, also learn the bias (default True; keyword only).

    Shape:
        - input: ``(N, C, *)``; output: same shape
        - weight, bias: ``(C,)``

    Forward caches ``xhat`` and ``1/sqrt(var + eps)``.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, dtype: DTypeLike = np.float32, *, bias: bool = True):
        super().__init__()
        self.num_groups = check_positive_int("GroupNorm", "num_groups", num_groups)
        self.num_channels = check_positive_int("GroupNorm", "num_channels", num_channels)
        if num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                f"({num_groups})"
            )
        self.eps = _check_eps("GroupNorm", eps)
        self.affine = bool(affine)
        _affine_parameters(self, num_channels, self.affine, bias, dtype)
        self._cache = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"{self.describe()}: expected input of shape (N, {self.num_channels}, *), "
                f"got {x.shape}"
            )
        y, self._cache = _normalize_channels(self, x, self.num_groups)
        return y

    def backward(self, grad_out: NDArray) -> NDArray:
        return _backprop_channels(self, self._saved(self._cache), grad_out, self.num_groups)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
                + (", bias=False" if self.affine and self.bias is None else ""))


def _affine_parameters(layer: Layer, c: int, affine: bool, bias: bool, dtype) -> None:
    if affine:
        layer.weight = Parameter(np.ones(c, dtype=dtype))
    else:
        layer.register_parameter("weight", None)
    if affine and bias:
        layer.bias = Parameter(np.zeros(c, dtype=dtype))
    else:
        layer.register_parameter("bias", None)


def _normalize_channels(layer: Layer, x: NDArray, groups: int):
    """Forward of GroupNorm / InstanceNorm (batch statistics) on ``(N, C, *)``: rows are a
    sample's ``C / groups`` channels. Returns the output and the cache (None in eval)."""
    n, c = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(n, c, math.prod(x.shape[2:]))  # (N, C, S)
    s = x3.shape[2]
    if x3.size == 0:
        xhat3, invstd = x3, np.empty(0, x.dtype)
    else:
        xhat, _, invstd = normalize_rows(x3.reshape(n * groups, (c // groups) * s), layer.eps)
        xhat3 = xhat.reshape(n, c, s)
    y = xhat3
    if layer.weight is not None:
        y = np.multiply(xhat3, _expand(layer.weight.data, s))
        if layer.bias is not None:
            y += _expand(layer.bias.data, s)
    cache = ("batch", xhat3, invstd, x.shape) if layer.caching else None
    return y.reshape(x.shape), cache


def _backprop_channels(layer: Layer, cache: tuple, grad_out: NDArray, groups: int) -> NDArray:
    """Backward of :func:`_normalize_channels` (or of InstanceNorm's running statistics)."""
    kind, xhat3, invstd, shape = cache[:4]
    grad_out = check_grad(layer, grad_out, shape)
    n, c, s = xhat3.shape
    g3 = np.ascontiguousarray(grad_out).reshape(n, c, s)
    dxhat = g3
    if layer.weight is not None:
        if layer.weight.requires_grad:
            gw = _channel_dot(g3, xhat3) if g3.size else np.zeros(c, g3.dtype)
            layer.weight.accumulate_grad(gw, fresh=True)
        if layer.bias is not None and layer.bias.requires_grad:
            gb = channel_sum(g3) if g3.size else np.zeros(c, g3.dtype)
            layer.bias.accumulate_grad(gb, fresh=True)
        dxhat = np.multiply(g3, _expand(layer.weight.data, s))
    if g3.size == 0:
        return np.zeros(shape, g3.dtype)
    if kind == "running":  # running statistics are constants: grad_x = dxhat * invstd[c]
        return (dxhat * _expand(invstd, s)).reshape(shape)
    k = (c // groups) * s
    rows = backprop_normalize_rows(dxhat.reshape(n * groups, k), xhat3.reshape(n * groups, k),
                                   invstd)
    return rows.reshape(shape)


class _InstanceNorm(_NormBase):
    """InstanceNorm: each channel of each sample normalised over its positions."""

    _rank = 0  # dimensions of one sample: (C, L) -> 2, (C, H, W) -> 3, ...
    _shape_text = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False,
                 dtype: DTypeLike = np.float32, *, bias: bool = True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype,
                         bias=bias)

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if x.ndim not in (self._rank, self._rank + 1):
            raise ValueError(f"{self.describe()}: expected input of shape "
                             f"{self._shape_text.format(C=self.num_features)}, got {x.shape}")
        unbatched = x.ndim == self._rank
        xb = x[None] if unbatched else x
        if xb.shape[1] != self.num_features:
            if self.affine or self.track_running_stats:
                raise ValueError(f"{self.describe()}: expected {self.num_features} channels "
                                 f"at dim {0 if unbatched else 1}, got input of shape "
                                 f"{x.shape}")
            warnings.warn(f"{self.describe()}: the input's {xb.shape[1]} channels do not "
                          f"match num_features ({self.num_features}), which is not used "
                          f"because affine=False", stacklevel=2)
        use_batch_stats = self.training or not self.track_running_stats
        spatial = math.prod(xb.shape[2:])
        if use_batch_stats and spatial == 1 and self.training and xb.size:
            raise ValueError(f"{self.describe()}: expected more than 1 spatial element when "
                             f"training, got input of shape {x.shape}")
        if use_batch_stats:
            y, cache = _normalize_channels(self, xb, xb.shape[1])
            if self.training and self.track_running_stats and xb.size:
                self._update_running_stats(xb)
        else:
            y, cache = self._forward_running_stats(xb)
        self._cache = None if cache is None else (*cache, unbatched)
        return y[0] if unbatched else y

    def _update_running_stats(self, xb: NDArray) -> None:
        # As PyTorch: each (sample, channel) updates its copy of the running statistics with
        # its mean and unbiased variance, and the copies are averaged over the batch.
        n, c = xb.shape[:2]
        rows = xb.reshape(n * c, -1)
        s = rows.shape[1]
        mean = row_sum(rows) * (1.0 / s)
        centred = rows - mean[:, None]
        var = row_dot(centred, centred) * (1.0 / max(s - 1, 1))
        factor = self.momentum if self.momentum is not None else 0.0
        for name, stat in (("running_mean", mean), ("running_var", var)):
            buffer = self._buffers[name]
            buffer *= 1.0 - factor
            buffer += factor * stat.reshape(n, c).mean(axis=0)

    def _forward_running_stats(self, xb: NDArray):
        n, c = xb.shape[:2]
        x3 = np.ascontiguousarray(xb).reshape(n, c, math.prod(xb.shape[2:]))
        s = x3.shape[2]
        invstd = 1.0 / np.sqrt(self.running_var + self.eps)
        xhat3 = (x3 - _expand(self.running_mean, s)) * _expand(invstd, s)
        y = xhat3
        if self.weight is not None:
            y = xhat3 * _expand(self.weight.data, s)
            if self.bias is not None:
                y += _expand(self.bias.data, s)
        cache = ("running", xhat3, invstd, xb.shape) if self.caching else None
        return y.reshape(xb.shape), cache

    def backward(self, grad_out: NDArray) -> NDArray:
        cache = self._saved(self._cache)
        shape, unbatched = cache[3], cache[4]
        if unbatched:
            grad_out = check_grad(self, grad_out, shape[1:])[None]
        grad_x = _backprop_channels(self, cache, grad_out, shape[1])
        return grad_x[0] if unbatched else grad_x

class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of sequences (Ulyanov et al., 2016), as ``torch.nn.InstanceNorm1d``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with mean and biased var over the L
    positions of each channel of each sample. With ``track_running_stats`` the running
    statistics are updated in training (the batch average of the per-sample statistics,
    unbiased variance) and used in eval mode.

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: running-statistics factor (default 0.1).
        affine: learn per-channel ``weight`` and ``bias`` (default False).
        track_running_stats: keep ``running_mean``, ``running_var``, ``num_batches_tracked``
            (default False).
        dtype: parameter and buffer dtype (float32 by default).
        bias: with ``affine``, also learn the bias (default True; keyword only).

    Shape:
        - input: ``(N, C, L)`` or unbatched ``(C, L)``; output: same shape
        - weight, bias, running_mean, running_var: ``(C,)``

    Forward caches ``xhat`` and ``1/sqrt(var + eps)``.
    """

    _rank = 2
    _shape_text = "(N, {C}, L) or ({C}, L)"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of images (Ulyanov et al., 2016), as ``torch.nn.InstanceNorm2d``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with mean and biased var over the
    H×W positions of each channel of each sample; running statistics as in InstanceNorm1d.

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: running-statistics factor (default 0.1).
        affine: learn per-channel ``weight`` and ``bias`` (default False).
        track_running_stats: keep running statistics (default False).
        dtype: parameter and buffer dtype (float32 by default).
        bias: with ``affine``, also learn the bias (default True; keyword only).

    Shape:
        - input: ``(N, C, H, W)`` or unbatched ``(C, H, W)``; output: same shape
        - weight, bias, running_mean, running_var: ``(C,)``

    Forward caches ``xhat`` and ``1/sqrt(var + eps)``.
    """

    _rank = 3
    _shape_text = "(N, {C}, H, W) or ({C}, H, W)"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of volumes, as ``torch.nn.InstanceNorm3d``.

    As InstanceNorm2d over the D×H×W positions of each channel of each sample.

    Args:
        num_features: C.
        eps: added to the variance (default 1e-5).
        momentum: running-statistics factor (default 0.1).
        affine: learn per-channel ``weight`` and ``bias`` (default False).
        track_running_stats: keep running statistics (default False).
        dtype: parameter and buffer dtype (float32 by default).
        bias: with ``affine``, also learn the bias (default True; keyword only).

    Shape:
        - input: ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``; output: same shape
        - weight, bias, running_mean, running_var: ``(C,)``

    Forward caches ``xhat`` and ``1/sqrt(var + eps)``.
    """

    _rank = 4
    _shape_text = "(N, {C}, D, H, W) or ({C}, D, H, W)"
