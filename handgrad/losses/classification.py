"""Classification losses: CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss, BCELoss.

The class losses take scores of shape ``(N, C)`` or ``(N, C, d1, ...)`` (class dimension 1,
as in PyTorch) or unbatched ``(C,)``. Internally the class dimension is moved last and the
rest flattened to ``M`` rows: ``(M, C)`` scores and ``(M,)`` targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._softmax_ce import softmax_ce_backward, softmax_ce_forward
from .base import Loss
from .regression import as_array, check_pred, check_same_shape_target, upstream_scale


def _weight_buffer(loss: Loss, name: str, value: Any) -> NDArray | None:
    if value is None:
        return None
    array = np.array(value, copy=True)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(
            f"{type(loss).__name__}: expected a numeric array for {name}, got dtype {array.dtype}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    return array


def _rows(x: NDArray) -> tuple[NDArray, tuple[int, ...]]:
    """Scores ``(N, C, *d)`` as ``(M, C)`` rows, and the per-row shape ``(N, *d)``."""
    c = x.shape[1]
    row_shape = (x.shape[0],) + x.shape[2:]
    if x.ndim == 2:
        return x, row_shape
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)).reshape(-1, c), row_shape  # (N*d1*..., C)


def _unrows(grad: NDArray, in_shape: tuple[int, ...]) -> NDArray:
    """Inverse of ``_rows`` for a gradient: ``(M, C)`` back to ``in_shape``."""
    if len(in_shape) <= 2:
        return grad.reshape(in_shape)
    n, c = in_shape[:2]
    grad = grad.reshape((n,) + in_shape[2:] + (c,))
    return np.ascontiguousarray(np.moveaxis(grad, -1, 1))


class _ClassIndexLoss(Loss):
    """Shared input/target checks of CrossEntropyLoss and NLLLoss."""

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 ignore_index: int = -100,
                 reduce: bool | None = None, reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        name = type(self).__name__
        w = _weight_buffer(self, "weight", weight)
        if w is not None and w.ndim != 1:
            raise ValueError(f"{name}: expected a 1-d weight of shape (C,), got shape {w.shape}")
        self.register_buffer("weight", w)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"{name}: expected an integer ignore_index, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        self._cache = None

    def _check(self, pred: Any, target: Any, allow_probs: bool, finite: bool = True) -> tuple:
        """Returns ``(x, target, unbatched, probs, ignored)`` with ``x`` of shape
        ``(N, C, *d)``; ``ignored``: some target is ``ignore_index``. Checks that ``x`` is
        finite unless ``finite`` is False (the caller does it)."""
        name = type(self).__name__
        x = check_pred(self, pred, finite)
        target = as_array(self, target, "target")
        if x.ndim == 0:
            raise ValueError(f"{name}: expected input of shape (N, C) or (N, C, d1, ...), got ()")
        unbatched = x.ndim == 1
        if unbatched:
            x = x[None]
            if target.shape == (x.shape[1],) and np.issubdtype(target.dtype, np.floating):
                target = target[None]
            elif target.ndim == 0:
                target = target.reshape(1)
        c = x.shape[1]
        index_shape = (x.shape[0],) + x.shape[2:]
        shown_in = "(C,)" if unbatched else str(x.shape)
        shown_idx = "()" if unbatched else str(index_shape)
        probs = target.dtype.kind == "f"
        if probs:
            if allow_probs and target.shape == x.shape:
                return x, target.astype(x.dtype, copy=False), unbatched, True, False
            also = f" or float class probabilities of shape {shown_in}" if allow_probs else ""
            raise TypeError(
                f"{name}: expected integer class indices of shape {shown_idx}{also}, got a "
                f"{target.dtype} target of shape {target.shape}; use target.astype(np.int64) "
                f"for class indices"
            )
        if target.dtype.kind not in "iu":
            raise TypeError(
                f"{name}: expected integer class indices, got a target of dtype {target.dtype}"
            )
        if target.shape != index_shape:
            raise ValueError(
                f"{name}: expected target of shape {shown_idx} for input of shape {shown_in}, "
                f"got {target.shape}"
            )
        ignore_index = self.ignore_index
        if target.size and (target.min() < 0 or target.max() >= c):  # ignored or bad
            bad = (target != ignore_index) & ((target < 0) | (target >= c))
            if bad.any():
                value = int(target[bad].flat[0])
                raise ValueError(
                    f"{name}: class index {value} is out of range for {c} classes (expected "
                    f"0 <= target < {c}, or ignore_index={ignore_index}); "
                    f"{int(bad.sum())} bad target(s)"
                )
            ignored = True
        else:
            ignored = 0 <= ignore_index < c and bool((target == ignore_index).any())
        if self.weight is not None and self.weight.shape != (c,):
            raise ValueError(
                f"{name}: weight of shape {self.weight.shape} does not match the {c} classes "
                f"of an input of shape {shown_in}; expected weight of shape ({c},)"
            )
        # as intp: flat indices i * C + t must stay integers (int64 + uint64 is float64)
        return x, target.astype(np.intp, copy=False), unbatched, False, ignored

    def _indices(self, target: NDArray, dtype: np.dtype) -> tuple[NDArray, NDArray, NDArray]:
        """Flat targets with ignored entries set to 0, the valid mask, and each row's weight."""
        t = target.reshape(-1)
        valid = t != self.ignore_index
        t_safe = np.where(valid, t, 0)
        if self.weight is None:
            w_t = valid.astype(dtype)
        else:
            w_t = self.weight.astype(dtype, copy=False)[t_safe] * valid
        return t_safe, valid, w_t

    def _finish(self, per_row: NDArray, row_shape: tuple[int, ...], unbatched: bool,
                denom: float) -> Any:
        if self.reduction == "none":
            return per_row.reshape(() if unbatched else row_shape)
        total = per_row.sum()
        if self.reduction == "sum":
            return float(total)
        return float(total) / denom if denom != 0 else float("nan")

    def _scale(self, grad_output, row_shape, unbatched, denom, dtype):
        """The upstream factor: a float, or a ``(M, 1)`` array for ``'none'``."""
        g = upstream_scale(self, grad_output, () if unbatched else row_shape, 1, dtype)
        if isinstance(g, np.ndarray):
            return g.reshape(-1, 1)
        if self.reduction == "mean":
            # nothing counted (all targets ignored): the loss is NaN, the gradient 0 (PyTorch)
            return g / denom if denom != 0 else 0.0
        return g

    def extra_repr(self) -> str:
        parts = []
        if self.weight is not None:
            parts.append(f"weight={np.array2string(self.weight, precision=4)}")
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.reduction != "mean":
            parts.append(f"reduction='{self.reduction}'")
        return ", ".join(parts)


class CrossEntropyLoss(_ClassIndexLoss):
    """Cross entropy of softmax(logits) with class indices or class probabilities.

    With class index targets ``y`` and ``logp = log_softmax(x)`` over the class dimension:

        l_i = (1 - eps) w[y_i] (-logp[i, y_i]) + (eps / C) sum_c w[c] (-logp[i, c])

    (``w = 1`` without ``weight``; ``eps`` is ``label_smoothing``); rows whose target is
    ``ignore_index`` contribute 0. ``'mean'`` divides the sum by ``sum_i w[y_i]`` over the
    rows not ignored, exactly as PyTorch. With probability targets ``t`` (a float array of the
    input's shape), ``t <- (1 - eps) t + eps / C`` and ``l_i = -sum_c w[c] t[i, c] logp[i, c]``;
    ``'mean'`` divides by the number of rows.

    Backward is the fused log-softmax gradient, with ``p = softmax(x)``:
    ``dl_i/dx[i, c] = p[i, c] * sum_k a[i, k] - a[i, c]``, where ``a[i, k]`` is the coefficient
    of ``-logp[i, k]`` in ``l_i`` above.

    Args:
        weight: per-class weights, shape ``(C,)`` (a buffer; default None = all ones).
        ignore_index: a target value that contributes neither loss nor gradient.
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.
        label_smoothing: ``eps`` in [0, 1].

    Shape: input ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; target integer ``(N,)``,
    ``(N, d1, ...)`` or ``()``, or float of the input's shape; output a float, or the
    target's index shape for ``'none'``. Forward caches, for class indices without
    ``weight``, ``softmax(x) - eps / C`` already scaled by ``1 / (rows counted)`` for
    ``'mean'`` (zero on ignored rows), which backward overwrites with the gradient
    (``_softmax_ce``: one exp pass, no temporaries, threads for large inputs); otherwise
    ``softmax(x)`` and the row weights.
    """

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 ignore_index: int = -100,
                 reduce: bool | None = None, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        if isinstance(label_smoothing, bool) or not isinstance(
            label_smoothing, (int, float, np.floating)
        ) or not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"CrossEntropyLoss: expected label_smoothing in [0, 1], got {label_smoothing!r}"
            )
        self.label_smoothing = float(label_smoothing)

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        x, target, unbatched, probs, ignored = self._check(pred, target, allow_probs=True,
                                                           finite=False)
        if not probs and self.weight is None:
            return self._forward_fused(x, target, unbatched, ignored)
        self._check_finite_pred(x)
        in_shape = x.shape
        z, row_shape = _rows(x)  # (M, C)
        c = z.shape[1]
        eps = self.label_smoothing
        dtype = z.dtype
        shifted = z - z.max(axis=1, keepdims=True)  # (M, C)
        p = np.exp(shifted)
        row_sum = p.sum(axis=1, keepdims=True)
        logp = np.subtract(shifted, np.log(row_sum), out=shifted)  # log_softmax(z)
        p /= row_sum  # softmax(z), cached for backward
        weight = None if self.weight is None else self.weight.astype(dtype, copy=False)
        if probs:
            t, _ = _rows(target)
            if eps > 0:
                t = t * (1 - eps) + eps / c
            a = t * weight if weight is not None else t  # (M, C): coefficient of -logp
            per_row = -np.einsum("mc,mc->m", a, logp)
            denom = float(z.shape[0])
            a_sum = a.sum(axis=1)
            cache = (a, a_sum, None, None)
        else:
            t_safe, valid, w_t = self._indices(target, dtype)
            picked = np.take_along_axis(logp, t_safe[:, None], axis=1)[:, 0]  # (M,)
            per_row = -(1 - eps) * w_t * picked if eps > 0 else -w_t * picked
            # per-row sum of the coefficients a[i, k] (see the class docstring)
            a_sum = (1 - eps) * w_t if eps > 0 else w_t
            if eps > 0:
                if weight is None:
                    smooth = -logp.sum(axis=1)
                    a_sum = a_sum + eps * valid.astype(dtype)
                else:
                    smooth = -(logp @ weight)
                    a_sum = a_sum + (eps / c) * float(weight.sum()) * valid.astype(dtype)
                per_row += (eps / c) * smooth * valid
            denom = float(w_t.sum())
            cache = (t_safe, valid, w_t, weight)
        self._cache = (("general", p) + cache + (a_sum, probs, in_shape, row_shape, unbatched,
                       denom)) if self.caching else None
        return self._finish(per_row, row_shape, unbatched, denom)

    def _forward_fused(self, x: NDArray, target: NDArray, unbatched: bool,
                       ignored: bool) -> Any:
        """Class indices without class weights: one exp pass (see ``_softmax_ce``), whose
        result backward overwrites with the gradient."""
        z, row_shape = _rows(x)
        z = np.ascontiguousarray(z)  # (M, C), C order for the flat index
        m, c = z.shape
        t = target.reshape(-1)
        valid, count = None, m
        if ignored:
            kept = t != self.ignore_index
            t, valid, count = np.where(kept, t, 0), kept.astype(z.dtype), int(kept.sum())
        index = np.arange(m) * c + t  # (M,) flat index of z[i, t_i]
        if self.reduction == "mean":  # every target ignored: NaN loss, zero gradient
            unit = 1.0 / count if count else 0.0
        else:
            unit = 1.0
        eps = self.label_smoothing
        # z is ours to overwrite when _rows made a copy (spatial inputs)
        out = softmax_ce_forward(z, index, not np.may_share_memory(z, x),
                                 unit if self.caching else None, eps, valid)
        if out is None:  # not finite
            self._check_finite_pred(x)  # raises the error naming the loss
        per_row, probs = out  # probs = u v_i (softmax(z) - eps / C)
        target_coef = (1.0 - eps) * unit if valid is None else ((1.0 - eps) * unit) * valid
        self._cache = ("fused", probs, index, unit, eps, valid, target_coef, x, row_shape,
                       unbatched) if self.caching else None
        return self._finish(per_row, row_shape, unbatched, float(count))

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        cache = self._saved(self._cache)
        if cache[0] == "fused":
            return self._backward_fused(cache, grad_output)
        (_, p, first, second, w_t, weight, a_sum, probs, in_shape, row_shape, unbatched,
         denom) = cache
        scale = self._scale(grad_output, row_shape, unbatched, denom, p.dtype)
        grad = np.multiply(p, a_sum[:, None], order="C")  # (M, C), C order for the flat view
        if probs:
            grad -= first  # a[i, c]
        else:
            t_safe, valid = first, second
            eps, c = self.label_smoothing, p.shape[1]
            rows = np.arange(p.shape[0])
            # the target term: one unique element per row, so a plain indexed update
            grad.reshape(-1)[rows * c + t_safe] -= (1 - eps) * w_t
            if eps > 0:
                if weight is None:
                    grad -= (eps / c) * valid[:, None].astype(p.dtype)
                else:
                    grad -= (eps / c) * (valid[:, None] * weight)
        grad *= scale
        return _unrows(grad, (p.shape[1],) if unbatched else in_shape)

    def _backward_fused(self, cache: tuple, grad_output: Any) -> NDArray:
        _, probs, index, unit, eps, valid, target_coef, x, row_shape, unbatched = cache
        if probs is None:  # a second backward of the same forward: probs was overwritten
            z = np.ascontiguousarray(_rows(x)[0])
            _, probs = softmax_ce_forward(z, index, not np.may_share_memory(z, x), unit, eps,
                                          valid)
        else:
            self._cache = cache[:1] + (None,) + cache[2:]  # probs becomes the gradient
        g = upstream_scale(self, grad_output, () if unbatched else row_shape, 1, probs.dtype)
        if isinstance(g, np.ndarray):
            g = g.reshape(-1)
        grad = softmax_ce_backward(probs, index, target_coef, g)  # (M, C)
        return _unrows(grad, (grad.shape[1],) if unbatched else x.shape)

    def extra_repr(self) -> str:
        parts = [super().extra_repr()]
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(s for s in parts if s)


class NLLLoss(_ClassIndexLoss):
    """Negative log-likelihood of log-probabilities: ``l_i = -w[y_i] x[i, y_i]``.

    Rows whose target is ``ignore_index`` contribute 0; ``'mean'`` divides the sum by
    ``sum_i w[y_i]`` over the rows not ignored (as PyTorch). ``dl_i/dx[i, c] = -w[y_i]``
    for ``c = y_i``, else 0.

    Args:
        weight: per-class weights, shape ``(C,)`` (a buffer; default None = all ones).
        ignore_index: a target value that contributes neither loss nor gradient.
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: input ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; target integer ``(N,)``,
    ``(N, d1, ...)`` or ``()``; output a float, or the target's shape for ``'none'``.
    Forward caches the flat targets and their weights.
    """

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        x, target, unbatched, _, _ = self._check(pred, target, allow_probs=False)
        z, row_shape = _rows(x)
        t_safe, valid, w_t = self._indices(target, z.dtype)
        per_row = -w_t * np.take_along_axis(z, t_safe[:, None], axis=1)[:, 0]
        denom = float(w_t.sum())
        self._cache = (t_safe, w_t, x.shape, row_shape, unbatched, denom, z.dtype) \
            if self.caching else None
        return self._finish(per_row, row_shape, unbatched, denom)

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        t_safe, w_t, in_shape, row_shape, unbatched, denom, dtype = self._saved(self._cache)
        scale = self._scale(grad_output, row_shape, unbatched, denom, dtype)
        m, c = t_safe.shape[0], in_shape[1]
        grad = np.zeros((m, c), dtype=dtype)
        coef = -w_t * (scale[:, 0] if isinstance(scale, np.ndarray) else scale)
        grad.reshape(-1)[np.arange(m) * c + t_safe] = coef  # one unique element per row
        return _unrows(grad, (c,) if unbatched else in_shape)


class _BinaryLoss(Loss):
    """Shared checks of the binary losses: target of the input's shape, broadcastable weights."""

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 reduce: bool | None = None,
                 reduction: str = "mean"):
        super().__init__(reduction, size_average=size_average, reduce=reduce)
        self.register_buffer("weight", _weight_buffer(self, "weight", weight))
        self._cache = None

    def _buffer(self, name: str, x: NDArray) -> NDArray | None:
        value = getattr(self, name)
        if value is None:
            return None
        try:
            shape = np.broadcast_shapes(value.shape, x.shape)
        except ValueError:
            shape = None
        if shape != x.shape:
            raise ValueError(
                f"{type(self).__name__}: {name} of shape {value.shape} does not broadcast to "
                f"the input's shape {x.shape}"
            )
        return value.astype(x.dtype, copy=False)

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        cache = self._saved(self._cache)
        x = cache[0]
        grad = self._grad(*cache)
        grad *= upstream_scale(self, grad_output, x.shape, x.size, x.dtype)
        return grad


class BCEWithLogitsLoss(_BinaryLoss):
    """Binary cross entropy on logits, stable for any logit size.

    ``l = w [pw y softplus(-x) + (1 - y) softplus(x)]
       = w [(1 - y) x + (1 + (pw - 1) y) softplus(-x)]`` with
    ``softplus(-x) = max(-x, 0) + log1p(exp(-|x|))`` (never overflows);
    ``dl/dx = w [(1 - y) - (1 + (pw - 1) y) sigmoid(-x)]`` (``= w (sigmoid(x) - y)`` when
    ``pw = 1``).

    Args:
        weight: rescales each element's loss; broadcast to the input's shape (a buffer).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.
        pos_weight: weight of positive examples, broadcast to the input's shape, usually
            shape ``(C,)`` for input ``(N, C)`` (a buffer).

    Shape: input ``(*)``, target ``(*)`` (same shape, values in [0, 1]); output a float, or
    ``(*)`` for ``'none'``. Forward caches the input, target, the broadcast weights and
    ``exp(-|x|)`` with ``1 + exp(-|x|)`` (backward's sigmoid needs no second ``exp``).
    """

    refused_target_kinds = "bi"  # as PyTorch: integer and bool targets fail there

    def __init__(self, weight: Any = None, size_average: bool | None = None,
                 reduce: bool | None = None,
                 reduction: str = "mean", pos_weight: Any = None):
        super().__init__(weight, size_average, reduce, reduction)
        self.register_buffer("pos_weight", _weight_buffer(self, "pos_weight", pos_weight))

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        x = check_pred(self, pred)
        y = check_same_shape_target(self, x, target)
        weight = self._buffer("weight", x)
        pos_weight = self._buffer("pos_weight", x)
        log_weight = None if pos_weight is None else 1 + (pos_weight - 1) * y
        t = np.abs(x)
        t = np.exp(np.negative(t, out=t), out=t)  # exp(-|x|) in (0, 1], never overflows
        u = t + 1
        softplus_neg = _log1p(t, u)
        softplus_neg -= np.minimum(x, 0)  # + max(-x, 0)
        if log_weight is not None:
            softplus_neg *= log_weight
        per = np.subtract(1, y, dtype=x.dtype)
        per *= x
        per += softplus_neg
        if weight is not None:
            per *= weight
        self._cache = (x, y, weight, log_weight, t, u) if self.caching else None
        return self._reduce(per)

    def _grad(self, x, y, weight, log_weight, t, u):
        # sigmoid(-x) from forward's t = exp(-|x|) and u = 1 + t: t / u for x >= 0, else
        # 1 / u (fmax with the mask picks t or 1: t <= 1)
        sigmoid_neg = np.fmax(t, x < 0)
        sigmoid_neg /= u
        if log_weight is not None:
            sigmoid_neg *= log_weight
        grad = np.subtract(1, y, dtype=x.dtype)
        grad -= sigmoid_neg
        if weight is not None:
            grad *= weight
        return grad

    def extra_repr(self) -> str:
        parts = [super().extra_repr()]
        if self.pos_weight is not None:
            parts.append(f"pos_weight={np.array2string(self.pos_weight, precision=4)}")
        return ", ".join(s for s in parts if s)


def _log1p(t: NDArray, u: NDArray) -> NDArray:
    """``log(1 + t)`` accurate to about an ulp for ``t >= 0``, given ``u = 1 + t`` (rounded):
    ``log u - ((u - 1) - t) / u`` corrects the rounding of ``u`` (NumPy's float32 ``log1p``
    is unvectorised here, ~7x slower than ``log``)."""
    out = np.log(u)
    correction = u - 1
    correction -= t
    correction /= u
    out -= correction
    return out


class BCELoss(_BinaryLoss):
    """Binary cross entropy on probabilities: ``l = -w [y log x + (1 - y) log(1 - x)]``.

    As in PyTorch, each log is clamped to be >= -100 and the gradient is
    ``w (x - y) / max(x (1 - x), 1e-12)``. Prefer ``BCEWithLogitsLoss`` (stable) on logits.

    Args:
        weight: rescales each element's loss; broadcast to the input's shape (a buffer).
        reduction: ``'mean'`` (default), ``'sum'`` or ``'none'``.

    Shape: input ``(*)`` with values in [0, 1], target ``(*)``; output a float, or ``(*)``
    for ``'none'``. Forward caches the input, target and weight.
    """

    refused_target_kinds = "bi"  # as PyTorch: integer and bool targets fail there

    def forward(self, pred: NDArray, target: NDArray) -> Any:
        x = check_pred(self, pred)
        outside = (x < 0) | (x > 1)
        if outside.any():
            raise ValueError(
                f"BCELoss: expected input probabilities in [0, 1], got {int(outside.sum())} "
                f"value(s) outside, e.g. {float(x[outside].flat[0])!r}; use BCEWithLogitsLoss "
                f"on logits"
            )
        y = check_same_shape_target(self, x, target)
        outside = ~((y >= 0) & (y <= 1))  # NaN counts as outside, as in PyTorch
        if outside.any():
            raise ValueError(
                f"BCELoss: expected target probabilities in [0, 1], got {int(outside.sum())} "
                f"value(s) outside, e.g. {float(y[outside].flat[0])!r}"
            )
        weight = self._buffer("weight", x)
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(x), -100)
            log_1mx = np.maximum(np.log1p(-x), -100)
        per = -(y * log_x + (1 - y) * log_1mx)
        if weight is not None:
            per *= weight
        self._cache = (x, y, weight) if self.caching else None
        return self._reduce(per)

    def _grad(self, x, y, weight):
        grad = (x - y) / np.maximum(x * (1 - x), 1e-12)
        if weight is not None:
            grad *= weight
        return grad
