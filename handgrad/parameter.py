"""Parameter: a trainable array with its gradient."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .hooks import RemovableHandle, add_hook, run_parameter_hooks


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

    ``register_hook(fn)`` adds a hook on the gradient, as on a PyTorch leaf tensor.
    """

    __slots__ = ("data", "grad", "requires_grad", "name", "_hooks")

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
        self._hooks = None

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
        if self._hooks:
            replaced = run_parameter_hooks(self, grad)
            fresh = fresh and replaced is grad
            grad = replaced
        if self.grad is None:
            if fresh and grad.dtype == self.data.dtype and grad.shape == self.data.shape:
                self.grad = grad
            else:
                self.grad = np.array(
                    np.broadcast_to(grad, self.data.shape), dtype=self.data.dtype, copy=True
                )
        else:
            self.grad += grad

    def register_hook(self, hook) -> RemovableHandle:
        """``hook(grad)`` runs on every gradient about to be added into ``self.grad``.

        It may return a replacement, which is added instead (the hooks run in order, each
        on the previous one's result). It does not run for a parameter with
        ``requires_grad=False``. A layer used several times in one backward (a cell in a
        loop) calls it once per use, where PyTorch calls it once with the sum.
        Returns a handle; ``handle.remove()`` unregisters the hook.
        """
        if not callable(hook):
            raise TypeError(f"Parameter.register_hook: expected a callable hook, got "
                            f"{type(hook).__name__}")
        if self._hooks is None:
            self._hooks = OrderedDict()
        hooks = self._hooks
        hook_id = add_hook(hooks, hook, False)
        return RemovableHandle(lambda hid: hooks.pop(hid, None), hook_id)

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
