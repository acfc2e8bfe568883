"""Linear (fully connected) and Identity layers."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import default_weight_init_
from ..layer import Layer
from ..parameter import Parameter
from ..random import resolve_rng


class Linear(Layer):
    """Affine map ``y = x W^T + b``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).
        dtype: parameter dtype (float32 by default).
        rng: generator for the initial weights (default: ``handgrad.random``'s).

    Shape:
        - input: ``(*, in_features)``
        - output: ``(*, out_features)``
        - weight: ``(out_features, in_features)``, initialised U(-1/sqrt(in), 1/sqrt(in))
        - bias: ``(out_features,)``, same distribution

    Forward caches the input.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        self.in_features = check_positive_int("Linear", "in_features", in_features)
        self.out_features = check_positive_int("Linear", "out_features", out_features)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)
        self._x = None

    def reset_parameters(self, rng=None) -> None:
        default_weight_init_(self.weight, self.bias, resolve_rng(rng))

    def forward(self, x: NDArray) -> NDArray:
        x = as_float_input(self, x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{self.describe()}: expected input of shape (*, {self.in_features}), "
                f"got {x.shape}"
            )
        y = x @ self.weight.data.T  # (*, out)
        if self.bias is not None:
            y += self.bias.data
        self._x = x if self.caching else None
        return y

    def backward(self, grad_out: NDArray) -> NDArray | None:
        x = self._saved(self._x)
        grad_out = check_grad(self, grad_out, x.shape[:-1] + (self.out_features,))
        g2 = grad_out.reshape(-1, self.out_features)  # (M, out)
        x2 = x.reshape(-1, self.in_features)  # (M, in)
        if self.weight.requires_grad:
            self.weight.accumulate_grad(g2.T @ x2, fresh=True)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate_grad(g2.sum(axis=0), fresh=True)
        if not self.needs_input_grad:
            return None
        return grad_out @ self.weight.data  # (*, in)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Layer):
    """Returns its input unchanged; backward returns ``grad_out``. Caches nothing.

    Shape: input ``(*)``, output ``(*)``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        self._shape = None

    def forward(self, x: NDArray) -> NDArray:
        x = np.asarray(x)
        self._shape = x.shape if self.caching else None
        return x

    def backward(self, grad_out: NDArray) -> NDArray:
        shape = self._saved(self._shape)
        return check_grad(self, grad_out, shape)
