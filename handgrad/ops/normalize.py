"""Normalising rows: the forward and backward shared by LayerNorm, GroupNorm, InstanceNorm.

Each of those layers views its input as a ``(R, K)`` array whose rows are normalisation
groups (a sample for LayerNorm, a sample's group of channels for GroupNorm, one channel of
one sample for InstanceNorm) and computes, per row,

    xhat = (x - mean) / sqrt(var + eps)          (biased variance over the K values)

whose backward, for an upstream ``dxhat``, is the closed form

    grad_x = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).

Row sums are matrix-vector products with a ones vector (BLAS), much faster in NumPy than
``sum`` over a short axis.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .parallel import ones

__all__ = ["row_sum", "row_dot", "normalize_rows", "backprop_normalize_rows"]


def row_sum(a: NDArray) -> NDArray:
    """Row sums of a contiguous 2-d array as one matrix-vector product."""
    return a @ ones(a.shape[1], a.dtype)


def row_dot(a: NDArray, b: NDArray) -> NDArray:
    """``sum(a * b, axis=1)`` of two 2-d arrays without a temporary."""
    return np.einsum("ij,ij->i", a, b)


def normalize_rows(x2: NDArray, eps: float) -> tuple[NDArray, NDArray, NDArray]:
    """``(xhat, mean, invstd)`` of the rows of ``x2`` ``(R, K)``; ``xhat`` is a new array."""
    k = x2.shape[1]
    mean = row_sum(x2)
    mean *= 1.0 / k
    xhat = np.subtract(x2, mean[:, None])
    var = row_dot(xhat, xhat)
    var *= 1.0 / k
    invstd = var + eps
    np.sqrt(invstd, out=invstd)
    np.reciprocal(invstd, out=invstd)
    xhat *= invstd[:, None]
    return xhat, mean, invstd


def backprop_normalize_rows(dxhat: NDArray, xhat: NDArray, invstd: NDArray) -> NDArray:
    """``grad_x`` ``(R, K)`` of :func:`normalize_rows` for the upstream ``dxhat``."""
    k = xhat.shape[1]
    mean_d = row_sum(dxhat) * (1.0 / k)
    mean_dx = row_dot(dxhat, xhat) * (1.0 / k)
    grad_x = np.multiply(xhat, -mean_dx[:, None])
    grad_x += dxhat
    grad_x -= mean_d[:, None]
    grad_x *= invstd[:, None]
    return grad_x
