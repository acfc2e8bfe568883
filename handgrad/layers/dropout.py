"""Dropout."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .._validation import as_float_input, check_grad, check_probability
from ..layer import Layer
from ..random import spawn_rng


class Dropout(Layer):
    """Zero each element with probability ``p`` in training and scale the rest by 1/(1-p).

    In eval mode it is the identity. The mask is drawn from the layer's own generator
    ``rng`` (a child of the default generator when none is given), so a seeded run repeats
    exactly; backward multiplies ``grad_out`` by the same mask.

    Args:
        p: the probability of zeroing an element (default 0.5).
        inplace: accepted for PyTorch compatibility (the output is a new array).
        rng: the generator for the masks (default: a child of ``handgrad.random``'s).

    ``shard``: ``None``, or ``(rows, index)`` set by
    ``handgrad.distributed.DistributedDataParallel`` before each training forward: the mask
    is drawn for the whole global batch of ``rows`` samples (axis 0) and this process keeps
    the rows ``index``, so K processes draw exactly the masks one process would.

    Shape: input ``(*)``, output ``(*)``. Caches the scaled mask (training only).
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, rng=None):
        super().__init__()
        self.p = check_probability("Dropout", "p", p)
        self.inplace = bool(inplace)
        self.rng = spawn_rng(rng)
        self.shard = None
        self._mask = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if not self.training or self.p == 0.0:  # the identity: no mask to draw
            self._mask = np.ones((), dtype=x.dtype) if self.caching else None
            self._shape = x.shape
            return x
        if self.p == 1.0:
            mask = np.zeros(x.shape, dtype=x.dtype)
        else:
            dtype = np.float32 if x.dtype == np.float32 else np.float64
            if self.shard is None or x.ndim == 0:
                mask = self.rng.random(x.shape, dtype=dtype) >= self.p
            else:
                rows, index = self.shard
                mask = self.rng.random((rows, *x.shape[1:]), dtype=dtype)[index] >= self.p
            mask = mask.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.p))
        self._mask = mask
        self._shape = x.shape
        return x * mask

    def backward(self, grad_out: NDArray) -> NDArray:
        mask = self._saved(self._mask)
        grad_out = check_grad(self, grad_out, self._shape)
        return grad_out * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace=True" if self.inplace else f"p={self.p}"
