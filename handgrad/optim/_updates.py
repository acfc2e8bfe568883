"""Element-wise helpers the optimizers' update paths share: the effective gradient
(maximize, L2 weight decay) and the batching of small tensors for the flat path."""

from __future__ import annotations

import numpy as np

from ..parameter import Parameter
from . import _flat
from ._flat import FlatBucket


def _effective_grad(data: np.ndarray | None, grad: np.ndarray, out: np.ndarray,
                    weight_decay: float, maximize: bool) -> np.ndarray:
    """``(-grad if maximize else grad) + weight_decay * data`` (PyTorch's order), written
    into ``out`` when it differs from ``grad``; ``data`` may be ``out`` itself."""
    if weight_decay != 0:
        np.multiply(data, weight_decay, out=out)
        if maximize:
            out -= grad
        else:
            out += grad
        return out
    if maximize:
        return np.negative(grad, out=out)
    return grad


def _flat_effective_grad(bucket: FlatBucket, params: list[Parameter], i: int, j: int,
                         weight_decay: float, maximize: bool) -> np.ndarray:
    """:func:`_effective_grad` of ``params[i:j]`` of a flat bucket, from their gathered
    gradients (and values, with weight decay), computed in those gathered buffers."""
    grad = bucket.gather_grads(params, i, j)
    if weight_decay == 0:
        return _effective_grad(None, grad, grad, 0.0, maximize)
    data = bucket.gather_params(params, i, j)
    return _effective_grad(data, grad, data, weight_decay, maximize)


def _batch_by_step(params: list[Parameter], states: list[dict],
                   keys: tuple[str, ...] = ("step",)) -> tuple[list, list[list]]:
    """Split into (large tensors, batches of small tensors sharing a dtype and the values of
    the scalar states ``keys``, by default the step count)."""
    large, batches = [], {}
    for p, state in zip(params, states):
        if p.data.size <= _flat.FLAT_MAX_SIZE:
            key = (p.data.dtype, *(state[k] for k in keys))
            batches.setdefault(key, []).append(p)
        else:
            large.append(p)
    flat = []
    for batch in batches.values():
        if len(batch) == 1:
            large.extend(batch)
        else:
            flat.append(batch)
    return large, flat

