"""Layers that only change an array's shape."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .._validation import as_array, check_grad, check_int
from ..layer import Layer


class Flatten(Layer):
    """Flattens dimensions ``start_dim`` to ``end_dim`` into one.

    Shape: input ``(N, *dims)``, output ``(N, prod(dims[start_dim-1:end_dim]), ...)``;
    with the defaults, ``(N, C, H, W) -> (N, C*H*W)``. Caches the input and output shapes.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = check_int("Flatten", "start_dim", start_dim)
        self.end_dim = check_int("Flatten", "end_dim", end_dim)
        self._shape = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_array(self, x)
        ndim = max(x.ndim, 1)
        start, end = self.start_dim, self.end_dim
        if not (-ndim <= start < ndim and -ndim <= end < ndim):
            raise ValueError(
                f"{self.describe()}: start_dim/end_dim out of range for an input of shape "
                f"{x.shape}"
            )
        start, end = start % ndim, end % ndim
        if start > end:
            raise ValueError(
                f"{self.describe()}: start_dim must not come after end_dim for an input of "
                f"shape {x.shape}"
            )
        new_shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
        self._shape = (x.shape, new_shape) if self.caching else None
        return x.reshape(new_shape)

    def backward(self, grad_out: NDArray) -> NDArray:
        shape, out_shape = self._saved(self._shape)
        return check_grad(self, grad_out, out_shape).reshape(shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Layer):
    """Expands dimension ``dim`` into ``unflattened_size``.

    Shape: input ``(*, S, *)`` with S = prod(unflattened_size), output ``(*, *sizes, *)``.
    Caches the input shape.
    """

    def __init__(self, dim: int, unflattened_size: tuple[int, ...]):
        super().__init__()
        self.dim = check_int("Unflatten", "dim", dim)
        if isinstance(unflattened_size, (int, np.integer)) or not hasattr(unflattened_size,
                                                                          "__iter__"):
            raise TypeError(f"Unflatten: expected unflattened_size as a tuple of ints, got "
                            f"{unflattened_size!r}")
        sizes = tuple(check_int("Unflatten", "unflattened_size entry", s)
                      for s in unflattened_size)
        if not sizes or any(s < 1 and s != -1 for s in sizes) or sizes.count(-1) > 1:
            raise ValueError(f"Unflatten: expected unflattened_size of positive sizes with at "
                             f"most one -1 (inferred), got {sizes}")
        self.unflattened_size = sizes
        self._shape = None

    def forward(self, x: NDArray) -> NDArray:
        x = as_array(self, x)
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"{self.describe()}: dim out of range for input shape {x.shape}")
        d = self.dim % x.ndim
        sizes = self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:  # one size inferred, as in PyTorch
            if x.shape[d] % known:
                raise ValueError(f"{self.describe()}: dimension {d} of size {x.shape[d]} is not "
                                 f"divisible by {known}, got input of shape {x.shape}")
            sizes = tuple(x.shape[d] // known if s == -1 else s for s in sizes)
        elif x.shape[d] != known:
            raise ValueError(
                f"{self.describe()}: expected dimension {d} of size {known}, got input of "
                f"shape {x.shape}"
            )
        out_shape = x.shape[:d] + sizes + x.shape[d + 1:]
        self._shape = (x.shape, out_shape) if self.caching else None
        return x.reshape(out_shape)

    def backward(self, grad_out: NDArray) -> NDArray:
        shape, out_shape = self._saved(self._shape)
        return check_grad(self, grad_out, out_shape).reshape(shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
