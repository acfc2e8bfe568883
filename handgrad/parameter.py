"""Parameter: a trainable array with its gradient."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


class Parameter:
    """A trainable array.

    Attributes:
        data: the values (a NumPy array, float32 by default).
        grad: ``None`` until a backward pass adds into it, then an array of ``data``'s
            shape and dtype. Backward passes *add* to it (as in PyTorch); ``zero_grad``
            resets it.
        requires_grad: when False, layers skip accumulating into ``grad`` and optimizers
            leave the parameter alone.
        name: an optional label used in messages (the dotted name comes from the model).
    """

    __slots__ = ("data", "grad", "requires_grad", "name")

    def __init__(self, data: ArrayLike, requires_grad: bool = True, name: str | None = None):
        array = np.array(data, copy=True)
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(
                f"Parameter: expected floating-point data, got dtype {array.dtype}"
            )
        self.data: NDArray = array
        self.grad: NDArray | None = None
        self.requires_grad = bool(requires_grad)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def accumulate_grad(self, grad: NDArray, fresh: bool = False) -> None:
        """Add ``grad`` into ``self.grad`` (creating it on first use).

        On first use ``grad`` is copied, unless ``fresh`` says the caller just created it
        and keeps no reference, in which case it is stored as it is.
        """
        if not self.requires_grad:
            return
        if self.grad is None:
            if fresh and grad.dtype == self.data.dtype and grad.shape == self.data.shape:
                self.grad = grad
            else:
                self.grad = np.array(
                    np.broadcast_to(grad, self.data.shape), dtype=self.data.dtype, copy=True
                )
        else:
            self.grad += grad

    def zero_grad(self, set_to_none: bool = True) -> None:
        if set_to_none:
            self.grad = None
        elif self.grad is not None:
            self.grad.fill(0)

    def requires_grad_(self, requires_grad: bool = True) -> Parameter:
        self.requires_grad = bool(requires_grad)
        return self

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"
