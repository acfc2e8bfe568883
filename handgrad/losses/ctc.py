"""Connectionist temporal classification: CTCLoss, by the forward-backward recursion in log
space (Graves et al. 2006).

A target ``l`` of length S is extended with blanks to ``l' = (blank, l_1, blank, ...,
l_S, blank)`` of length ``2S + 1``. An alignment is a path through ``l'`` that at each
step stays, moves one position on, or skips a blank between two different labels. With
``e_t(s) = log_probs[t, l'_s]``:

* ``alpha_t(s)`` (log-probability of every path prefix ending in ``s`` at t, emissions up
  to and including t): ``alpha_0(0) = e_0(0)``, ``alpha_0(1) = e_0(1)``, and
  ``alpha_t(s) = e_t(s) + logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2))``,
  the last term only where the skip is allowed (``l'_s`` not blank and ``!= l'_{s-2}``);
* ``log p(l | x) = logsumexp(alpha_{T-1}(2S), alpha_{T-1}(2S - 1))``;
* ``beta_t(s)`` (log-probability of every path suffix after t, from ``s`` at t, emissions
  after t): ``beta_{T-1}(2S) = beta_{T-1}(2S - 1) = 0``, and ``beta_t(s) =
  logsumexp(e_{t+1}(s') + beta_{t+1}(s'))`` over ``s' = s, s+1, s+2`` (skip as above);
* ``alpha_t(s) + beta_t(s) - log p`` is the log-probability that the path is at ``s`` at
  time t, so ``d(-log p) / d log_probs[t, c] = -sum_{s: l'_s = c} exp(alpha_t(s) +
  beta_t(s) - log p)``.

That last line is the exact derivative with respect to ``log_probs``. PyTorch's CPU kernel
returns ``exp(log_probs) + `` the same, i.e. the gradient of the logits under the
assumption that ``log_probs`` came out of a ``log_softmax`` (Graves's eq. 16): after a
``LogSoftmax`` both give the same logit gradient (the extra term sums to one over the
classes and ``LogSoftmax``'s backward removes it), but on raw ``log_probs`` they differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Loss
from .probabilistic import scale_for
from .regression import as_array, check_pred


def _lengths(name: str, value: Any, n: int, what: str) -> NDArray:
    try:
        lengths = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists
        raise TypeError(f"CTCLoss: expected integer {name}, got {value!r}") from None
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"CTCLoss: expected integer {name}, got {what} of dtype {lengths.dtype}")
    lengths = lengths.reshape(-1) if lengths.ndim == 0 or lengths.shape == (n,) else lengths
    if lengths.shape != (n,):
        raise ValueError(f"CTCLoss: expected {name} of shape ({n},) (one per sequence), got "
                         f"{np.shape(value)}")
    if np.any(lengths < 0):
        raise ValueError(f"CTCLoss: expected {name} >= 0, got {lengths.min()}")
    return lengths.astype(np.int64)


def _shift(a: NDArray, k: int, fill: float) -> NDArray:
    """``a`` moved ``k`` places along the last axis (right for k > 0), ``fill`` coming in."""
    out = np.full_like(a, fill)
    if k > 0:
        out[..., k:] = a[..., :-k]
    else:
        out[..., :k] = a[..., -k:]
    return out


class CTCLoss(Loss):
    """Connectionist temporal classification loss (see the module docstring for the
    recursion): ``l_n = -log p(target_n | log_probs[:, n])`` summed over every alignment.

    ``criterion(log_probs, targets, input_lengths, target_lengths)``; ``backward()`` returns
    the exact gradient with respect to ``log_probs`` (0 for ``t >= input_lengths[n]``).
    Impossible alignments (a target too long for its input) give an infinite loss and NaN
    gradients, or 0 for both with ``zero_infinity=True``, as in PyTorch.

    Args:
        blank: the blank class (default 0).
        reduction: ``'mean'`` (each loss divided by its target length, at least 1, then
            averaged over the batch, as PyTorch), ``'sum'`` or ``'none'``.
        zero_infinity: replace infinite losses and their gradients by 0 (default False).

    Shape:
        - log_probs: ``(T, N, C)`` or unbatched ``(T, C)`` (log-probabilities,
          e.g. ``LogSoftmax(dim=2)``'s output; ``-inf`` entries are allowed)
        - targets: ``(N, S)`` padded or the ``(sum(target_lengths),)`` concatenation; class
          indices, not the blank (unbatched: ``(S,)``)
        - input_lengths, target_lengths: ``(N,)`` integers (unbatched: an integer or
          ``(1,)``); ``input_lengths <= T``
        - output: a float, or ``(N,)`` (``()``) for ``'none'``

    Forward caches the emissions ``e``, ``alpha``, the extended labels and the
    log-likelihoods; backward runs the beta recursion.
    """

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__(reduction)
        if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or blank < 0:
            raise ValueError(f"CTCLoss: expected a non-negative integer blank, got {blank!r}")
        self.blank = int(blank)
        self.zero_infinity = bool(zero_infinity)
        self._cache = None

    def _inputs(self, log_probs, targets, input_lengths, target_lengths):
        lp = check_pred(self, log_probs, finite=False, allow_empty=True, what="log_probs")
        if lp.ndim not in (2, 3):
            raise ValueError(f"CTCLoss: expected log_probs of shape (T, N, C) or (T, C), got "
                             f"{lp.shape}")
        unbatched = lp.ndim == 2
        if unbatched:
            lp = lp[:, None]
        t_max, n, c = lp.shape
        if lp.size == 0:
            raise ValueError(f"CTCLoss: expected non-empty log_probs, got shape {lp.shape}")
        if np.any(np.isnan(lp) | (lp == np.inf)):
            raise ValueError("CTCLoss: log_probs contains NaN or +inf values")
        if self.blank >= c:
            raise ValueError(f"CTCLoss: expected blank in [0, {c}) (the class range), got "
                             f"{self.blank}")
        in_len = _lengths("input_lengths", input_lengths, n, "input lengths")
        tg_len = _lengths("target_lengths", target_lengths, n, "target lengths")
        if np.any(in_len > t_max):
            raise ValueError(f"CTCLoss: expected input_lengths <= {t_max} (log_probs' T), got "
                             f"{in_len.max()}")
        targets = as_array(self, targets, "targets")
        if targets.dtype.kind not in "iu":
            raise TypeError(f"CTCLoss: expected integer targets, got dtype {targets.dtype}")
        s_max = int(tg_len.max())
        if targets.ndim == 2 and not unbatched:
            if targets.shape[0] != n or targets.shape[1] < s_max:
                raise ValueError(f"CTCLoss: expected padded targets of shape ({n}, S) with S >= "
                                 f"{s_max} (the longest target), got {targets.shape}")
            padded = targets[:, :s_max]
        elif targets.ndim == 1:
            if targets.shape[0] != tg_len.sum():
                raise ValueError(f"CTCLoss: expected concatenated targets of length "
                                 f"{tg_len.sum()} (sum of target_lengths), got {targets.shape}")
            starts = np.concatenate([[0], np.cumsum(tg_len)[:-1]])  # (N,)
            idx = np.minimum(starts[:, None] + np.arange(s_max), max(targets.size - 1, 0))
            padded = targets[idx] if targets.size else np.zeros((n, s_max), np.int64)
        else:
            raise ValueError(f"CTCLoss: expected targets of shape ({n}, S) or (sum of "
                             f"target_lengths,), got {targets.shape}")
        used = np.arange(s_max) < tg_len[:, None]  # (N, S)
        padded = np.where(used, padded, self.blank).astype(np.int64)
        if np.any((padded < 0) | (padded >= c)):
            raise ValueError(f"CTCLoss: expected target classes in [0, {c}), got values from "
                             f"{padded.min()} to {padded.max()}")
        return lp, padded, in_len, tg_len, unbatched

    def forward(self, log_probs: NDArray, targets: NDArray, input_lengths: Any,
                target_lengths: Any) -> Any:
        lp, padded, in_len, tg_len, unbatched = self._inputs(log_probs, targets, input_lengths,
                                                             target_lengths)
        t_max, n, _ = lp.shape
        width = 2 * padded.shape[1] + 1  # L, the extended length
        ext = np.full((n, width), self.blank, np.int64)  # (N, L): l'
        ext[:, 1::2] = padded
        valid = np.arange(width) < (2 * tg_len + 1)[:, None]  # (N, L)
        skip = np.zeros((n, width), bool)  # alpha may come from s - 2
        skip[:, 2:] = (ext[:, 2:] != self.blank) & (ext[:, 2:] != ext[:, :-2])
        neg_inf = lp.dtype.type(-np.inf)
        e = np.take_along_axis(lp, ext[None], axis=2)  # (T, N, L): e_t(s)
        e = np.where(valid[None], e, neg_inf)
        alpha = np.full((t_max, n, width), neg_inf, lp.dtype)
        alpha[0, :, :2] = e[0, :, :2]
        for t in range(1, t_max):
            prev = alpha[t - 1]
            came = np.logaddexp(prev, _shift(prev, 1, neg_inf))
            came = np.logaddexp(came, np.where(skip, _shift(prev, 2, neg_inf), neg_inf))
            alpha[t] = e[t] + came
        rows = np.arange(n)
        last = alpha[np.maximum(in_len - 1, 0), rows]  # (N, L): alpha at t = T_n - 1
        end = 2 * tg_len
        ll = np.logaddexp(last[rows, end],
                          np.where(tg_len > 0, last[rows, np.maximum(end - 1, 0)], neg_inf))
        # an empty input explains only an empty target
        ll = np.where(in_len == 0, np.where(tg_len == 0, 0, neg_inf), ll).astype(lp.dtype)
        nll = -ll
        if self.zero_infinity:
            nll = np.where(np.isinf(nll), 0, nll).astype(lp.dtype)
        self._cache = (e, alpha, ext, valid, skip, ll, in_len, tg_len, lp.shape[2], unbatched) \
            if self.caching else None
        if self.reduction == "mean":
            return float(np.mean(nll / np.maximum(tg_len, 1)))
        return self._reduce(nll[0] if unbatched else nll)

    def backward(self, grad_output: Any = 1.0) -> NDArray:
        e, alpha, ext, valid, skip, ll, in_len, tg_len, classes, unbatched = \
            self._saved(self._cache)
        t_max, n, width = e.shape
        neg_inf = e.dtype.type(-np.inf)
        rows = np.arange(n)
        # beta_{T_n - 1}: 0 at the last blank and the last label
        init = np.full((n, width), neg_inf, e.dtype)
        init[rows, 2 * tg_len] = 0
        has_label = tg_len > 0
        init[rows[has_label], 2 * tg_len[has_label] - 1] = 0
        skip_from = _shift(skip, -2, False)  # beta may go on to s + 2
        beta = np.empty_like(alpha)
        nxt = np.full((n, width), neg_inf, e.dtype)  # e_{t+1} + beta_{t+1}
        for t in range(t_max - 1, -1, -1):
            go = np.logaddexp(nxt, _shift(nxt, -1, neg_inf))
            go = np.logaddexp(go, np.where(skip_from, _shift(nxt, -2, neg_inf), neg_inf))
            here = t == in_len - 1
            beta[t] = np.where(here[:, None], init,
                               np.where((t < in_len - 1)[:, None], go, neg_inf))
            nxt = e[t] + beta[t]
        with np.errstate(invalid="ignore"):
            gamma = np.exp(alpha + beta - ll[None, :, None])  # (T, N, L): occupation
        inside = np.arange(t_max)[:, None] < in_len  # (T, N): frames of each input
        drop = ~inside if not self.zero_infinity else ~inside | np.isinf(ll)
        gamma = np.where(drop[..., None], 0, gamma).astype(e.dtype)  # 0, not NaN, beyond
        onehot = (ext[:, :, None] == np.arange(classes)) & valid[:, :, None]  # (N, L, C)
        grad = -np.matmul(gamma.transpose(1, 0, 2), onehot.astype(e.dtype))  # (N, T, C)
        grad = grad.transpose(1, 0, 2)  # (T, N, C)
        if self.reduction == "mean":
            scale = scale_for(self, grad_output, (), e.dtype) / n / np.maximum(tg_len, 1)
        else:
            scale = scale_for(self, grad_output, () if unbatched else (n,), e.dtype)
            scale = np.broadcast_to(np.asarray(scale, e.dtype).reshape(-1), (n,))
        grad = grad * scale.astype(e.dtype)[None, :, None]
        return np.ascontiguousarray(grad[:, 0] if unbatched else grad)

    def extra_repr(self) -> str:
        parts = [f"blank={self.blank}" if self.blank else "", super().extra_repr(),
                 "zero_infinity=True" if self.zero_infinity else ""]
        return ", ".join(s for s in parts if s)
