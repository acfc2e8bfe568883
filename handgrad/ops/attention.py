"""Scaled dot-product attention, forward and backward, on batches of heads.

Pure array functions used by ``layers.attention.MultiheadAttention``. Shapes: ``q`` is
(B, H, L, D) (batch, heads, target positions, head size), ``k`` (B, H, S, D) and ``v``
(B, H, S, Dv) (S source positions); leading dimensions only need to broadcast in the
matmuls. The forward computes, per batch entry and head,

    Z = scale * q k^T + M            (L, S)   M: additive mask (0, a float, or -inf)
    P = softmax(Z) along S           (L, S)   rows that are -inf everywhere give P = 0
    A = P * R                        (L, S)   R: dropout mask (0 or 1/(1-p)), or 1
    y = A v                          (L, Dv)

and ``attention_backward`` goes back through the same four lines (see its comments).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["attention_forward", "attention_backward", "masked_softmax"]


def masked_softmax(z: NDArray) -> NDArray:
    """Softmax along the last axis, in place on ``z``; rows that are all -inf become 0.

    Shifted by each row's maximum so ``exp`` never overflows. A row whose every entry is
    masked (-inf) has no maximum to shift by: it gets weight 0 everywhere instead of the
    NaN a plain softmax gives (PyTorch's ``scaled_dot_product_attention`` does the same).
    With no keys at all (S = 0) there is nothing to normalise.
    """
    if z.shape[-1] == 0:
        return z
    m = z.max(axis=-1, keepdims=True)
    dead = np.isneginf(m)
    if dead.any():
        m[dead] = 0.0
    z -= m
    np.exp(z, out=z)
    s = z.sum(axis=-1, keepdims=True)
    if dead.any():
        s[dead] = 1.0  # the row is all zeros already
    z /= s
    return z


def attention_forward(q: NDArray, k: NDArray, v: NDArray, scale: float,
                      mask: NDArray | None = None, dropout_mask: NDArray | None = None,
                      keep: bool = True):
    """``y = (softmax(scale q k^T + mask) * dropout_mask) v``; returns ``(y, A, cache)``.

    ``A`` (B, H, L, S) are the attention weights as used (after dropout), ``cache`` what
    ``attention_backward`` needs (``None`` when ``keep`` is False): q, k, v, P, R, scale.
    """
    z = np.matmul(q, k.swapaxes(-1, -2))  # (B, H, L, S)
    z *= scale
    if mask is not None:
        z += mask
    p = masked_softmax(z)
    a = p if dropout_mask is None else p * dropout_mask
    y = np.matmul(a, v)  # (B, H, L, Dv)
    cache = (q, k, v, p, dropout_mask, scale) if keep else None
    return y, a, cache


def attention_backward(cache, grad_y: NDArray, grad_weights: NDArray | None = None):
    """Gradients ``(grad_q, grad_k, grad_v)`` of ``attention_forward``'s inputs.

    ``grad_y`` (B, H, L, Dv) is the gradient of ``y``; ``grad_weights`` (broadcastable to
    (B, H, L, S)), if given, the gradient arriving directly at the returned weights ``A``.
    The mask is a constant: it gets no gradient.
    """
    q, k, v, p, r, scale = cache
    a = p if r is None else p * r
    # y = A v:  dA = dy v^T (plus what reaches A directly),  dv = A^T dy
    grad_a = np.matmul(grad_y, v.swapaxes(-1, -2))  # (B, H, L, S)
    if grad_weights is not None:
        grad_a += grad_weights
    grad_v = np.matmul(a.swapaxes(-1, -2), grad_y)  # (B, H, S, Dv)
    # A = P * R:  dP = dA * R
    grad_p = grad_a if r is None else np.multiply(grad_a, r, out=grad_a)
    # P = softmax(Z) row by row; its Jacobian is diag(P) - P P^T, so the vector-Jacobian
    # product is  dZ = P * (dP - sum_j dP_j P_j). Masked entries have P = 0 and get dZ = 0;
    # a fully masked row (P = 0) gets 0 too.
    row_dot = np.einsum("...ls,...ls->...l", grad_p, p)[..., None]  # (B, H, L, 1)
    grad_z = grad_p - row_dot
    grad_z *= p
    # Z = scale q k^T + M:  dq = scale dZ k,  dk = scale dZ^T q  (M is a constant)
    grad_z *= scale
    grad_q = np.matmul(grad_z, k)  # (B, H, L, D)
    grad_k = np.matmul(grad_z.swapaxes(-1, -2), q)  # (B, H, S, D)
    return grad_q, grad_k, grad_v
