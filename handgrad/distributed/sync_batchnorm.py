"""SyncBatchNorm: batch normalization with the statistics of the global batch over MPI.

A plain ``BatchNorm`` on K ranks normalises each rank's shard with that shard's statistics
(and keeps per-rank running statistics), so training differs from one process on the whole
batch. ``SyncBatchNorm`` reduces the statistics over the ranks, forward and backward, so
that it computes exactly what ``BatchNorm`` computes on the concatenated global batch.

Forward: rank ``r`` with ``m_r`` values per channel computes its mean ``mu_r`` and
``q_r = sum (x - mu_r)^2``; one ``Allgather`` of ``(m_r, mu_r, q_r)`` lets every rank merge
them in rank order (Chan's parallel formula, weighted by the counts):

    M = sum_r m_r,   mu = sum_r m_r mu_r / M,   var = (sum_r q_r + sum_r m_r (mu_r - mu)^2) / M

(never ``E[x^2] - E[x]^2``, which cancels catastrophically: in float32 at a mean of 1e4 it
gives negative variances). The merge runs in float64 on these per-channel vectors.

Backward: with ``g`` the gradient of this rank's mean loss, the global loss is
``sum_r c_r L_r`` with ``c_r = m_r / M`` (what ``DistributedDataParallel`` weights by). One
``Allreduce`` gives ``S_g = sum_r c_r sum(g)`` and ``S_gx = sum_r c_r sum(g * xhat)``, and in
this rank's units

    grad_x = a * (g - S_g / m_r - xhat * S_gx / m_r),   a = w / sqrt(var + eps);

the weight and bias gradients are this rank's ``sum(g * xhat)`` and ``sum(g)``, which the
data-parallel reduction combines with the same weights ``c_r``. On one process
(``c_r = 1``) this is BatchNorm's backward.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ..layer import Layer
from ..layers.normalization import _BatchNorm, _channel_dot, _expand
from ..ops.parallel import channel_sum
from .comm import Communicator, world

__all__ = ["SyncBatchNorm", "convert_sync_batchnorm"]


class SyncBatchNorm(_BatchNorm):
    """Batch normalization over the global batch of all ranks (PyTorch's ``SyncBatchNorm``).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the mean and biased variance
    of each channel over the batch and spatial axes of *every* rank's input; the running
    statistics (unbiased variance of the global batch) are then the same on every rank.

    Args:
        num_features: C, the channels of the input.
        eps, momentum, affine, track_running_stats: as ``BatchNorm2d``.
        process_group: a ``handgrad.distributed.Communicator`` (default: the MPI world; on
            one process no communication happens).
        dtype: parameter dtype (float32 by default).

    Shape:
        - input: ``(N, C, *)`` (BatchNorm1d's and BatchNorm2d's shapes and more)
        - output: same as the input
        - weight, bias, running_mean, running_var: ``(C,)``

    Caches ``x - mean`` (global mean), ``1 / sqrt(var + eps)`` and the two counts ``m_r``,
    ``M``. Assumes a mean-reduced loss (see the module docstring for the weighting).
    """

    _ranks = (2, 3, 4, 5)
    _shape_text = "(N, {C}, *)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group: Communicator | None = None, dtype: DTypeLike = np.float32):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.process_group = process_group
        self._counts: tuple[int, int] | None = None

    def _comm(self) -> Communicator | None:
        return self.process_group if self.process_group is not None else world()

    # ------------------------------------------------------------------ forward
    def _forward_batch_stats(self, x3: NDArray, shape: tuple[int, ...]):
        n, c, s = x3.shape
        m = n * s
        comm = self._comm()
        if m < 1:
            raise ValueError(f"{self.describe()}: got an empty batch {shape}; every rank "
                             f"needs at least one sample")
        mean_r = channel_sum(x3).astype(np.float64) / m
        xc = self._xc_buffer
        if xc is None or xc.shape != x3.shape or xc.dtype != x3.dtype:
            xc = self._xc_buffer = np.empty_like(x3)
        np.subtract(x3, _expand(mean_r.astype(x3.dtype), s), out=xc)  # (N, C, S)
        q_r = _channel_dot(xc, xc).astype(np.float64)
        local = np.concatenate([[m], mean_r, q_r])  # (1 + 2C,) float64
        every = local[None] if comm is None else comm.allgather(
            local, name="Allgather(SyncBatchNorm statistics)")  # (K, 1 + 2C)
        counts, means, squares = every[:, 0], every[:, 1:1 + c], every[:, 1 + c:]
        total = float(counts.sum())
        if total <= 1:
            raise ValueError(
                f"{self.describe()}: expected more than 1 value per channel over all ranks "
                f"when training, got input size {shape} on {len(counts)} rank(s)")
        mean = counts @ means / total
        var = (squares.sum(axis=0) + counts @ (means - mean) ** 2) / total
        mean, var = mean.astype(x3.dtype), var.astype(x3.dtype)
        np.subtract(x3, _expand(mean, s), out=xc)  # centred on the global mean
        invstd = (1.0 / np.sqrt(var + self.eps)).astype(x3.dtype)
        scale = invstd * self.weight.data if self.affine else invstd
        y = np.multiply(xc, _expand(scale, s))
        if self.affine:
            y += _expand(self.bias.data, s)
        if self.track_running_stats and self.training:
            self._update_running_stats(mean, var, int(round(total)))
        self._counts = (m, int(round(total)))
        return y, ("batch", xc, invstd)

    # ------------------------------------------------------------------ backward
    def _backward_batch_stats(self, g3: NDArray, xc: NDArray, invstd: NDArray) -> NDArray:
        c, s = xc.shape[1], xc.shape[2]
        m, total = self._counts
        comm = self._comm()
        sum_g = channel_sum(g3)
        sum_g_xhat = _channel_dot(g3, xc) * invstd
        share = m / total  # c_r: this rank's weight in the global mean loss
        local = np.concatenate([sum_g, sum_g_xhat]).astype(np.float64) * share
        summed = local if comm is None else comm.allreduce_(
            local, name="Allreduce(SyncBatchNorm gradients)")
        s_g, s_gx = summed[:c].astype(xc.dtype), summed[c:].astype(xc.dtype)
        a = invstd * self.weight.data if self.affine else invstd
        # grad_x = a * g + xc * (-a * invstd * S_gx / m) - a * S_g / m
        coef_xc = -a * invstd * s_gx / m
        coef_const = -a * s_g / m
        grad_x = np.multiply(xc, _expand(coef_xc, s))
        grad_x += _expand(coef_const, s)
        grad_x += np.multiply(g3, _expand(a, s))
        self._param_grads(sum_g, sum_g_xhat)
        return grad_x

    @classmethod
    def convert_sync_batchnorm(cls, module: Layer,
                               process_group: Communicator | None = None) -> Layer:
        """``module`` with every BatchNorm1d/2d replaced by a SyncBatchNorm sharing its
        parameters and buffers (the same objects: an optimizer built before still works).
        A BatchNorm given directly is returned converted."""
        return convert_sync_batchnorm(module, process_group)


def _converted(bn: _BatchNorm, process_group: Communicator | None) -> SyncBatchNorm:
    dtype = bn.weight.data.dtype if bn.affine else (
        bn.running_mean.dtype if bn.track_running_stats else np.float32)
    sync = SyncBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine,
                         bn.track_running_stats, process_group=process_group, dtype=dtype)
    if bn.affine:
        sync.weight, sync.bias = bn.weight, bn.bias
    for name, buffer in bn._buffers.items():
        sync.register_buffer(name, buffer)
    sync.train(bn.training)
    return sync


def convert_sync_batchnorm(module: Layer, process_group: Communicator | None = None) -> Layer:
    """Replace every ``BatchNorm1d``/``BatchNorm2d`` inside ``module`` by a ``SyncBatchNorm``
    (in place, sharing parameters and buffers); returns the module (or the converted layer
    when ``module`` is a BatchNorm itself)."""
    if not isinstance(module, Layer):
        raise TypeError(f"convert_sync_batchnorm: expected a handgrad Layer, got "
                        f"{type(module).__name__}")
    if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
        return _converted(module, process_group)
    for m in list(module.modules()):
        for name, child in list(m._children.items()):
            if isinstance(child, _BatchNorm) and not isinstance(child, SyncBatchNorm):
                m._children[name] = _converted(child, process_group)
    return module
