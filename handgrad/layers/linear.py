"""Linear (fully connected), Bilinear and Identity layers."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validation import as_float_input, check_grad, check_positive_int
from ..init import default_weight_init_, uniform_
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

    def forward(self, input: NDArray) -> NDArray:  # PyTorch's name: linear(input=x) works
        x = as_float_input(self, input)
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


class Bilinear(Layer):
    """Bilinear map ``y = x1^T A x2 + b``, as ``torch.nn.Bilinear``.

    ``y[n, o] = sum_{i, j} x1[n, i] W[o, i, j] x2[n, j] + b[o]``. Backward, for upstream
    ``g``: ``grad_W[o, i, j] = sum_n g[n, o] x1[n, i] x2[n, j]``, ``grad_b = sum_n g``,
    ``grad_x1[n, i] = sum_{o, j} g[n, o] W[o, i, j] x2[n, j]`` and
    ``grad_x2[n, j] = sum_{o, i} g[n, o] x1[n, i] W[o, i, j]``; ``backward`` returns the pair
    ``(grad_x1, grad_x2)``.

    Args:
        in1_features, in2_features: sizes of the two inputs.
        out_features: size of the output.
        bias: learn an additive bias (default True).
        dtype: parameter dtype (float32 by default).
        rng: generator for the initial weights.

    Shape:
        - input1: ``(*, in1_features)``; input2: ``(*, in2_features)`` (same leading dims)
        - output: ``(*, out_features)``
        - weight: ``(out_features, in1_features, in2_features)``; bias: ``(out_features,)``;
          both ~ U(-1/sqrt(in1_features), 1/sqrt(in1_features)) as PyTorch

    Forward caches both inputs and ``x1 W`` (``(M, out, in2)``).
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, dtype: DTypeLike = np.float32, rng=None):
        super().__init__()
        self.in1_features = check_positive_int("Bilinear", "in1_features", in1_features)
        self.in2_features = check_positive_int("Bilinear", "in2_features", in2_features)
        self.out_features = check_positive_int("Bilinear", "out_features", out_features)
        self.weight = Parameter(np.empty((out_features, in1_features, in2_features), dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(rng)
        self._cache = None

    def reset_parameters(self, rng=None) -> None:
        bound = 1.0 / math.sqrt(self.in1_features)
        gen = resolve_rng(rng)
        uniform_(self.weight, -bound, bound, gen)
        if self.bias is not None:
            uniform_(self.bias, -bound, bound, gen)

    def forward(self, input1: NDArray, input2: NDArray) -> NDArray:  # PyTorch's names
        x1 = as_float_input(self, input1, "input1")
        x2 = as_float_input(self, input2, "input2")
        if x1.shape[-1:] != (self.in1_features,) or x2.shape[-1:] != (self.in2_features,) \
                or x1.shape[:-1] != x2.shape[:-1]:
            raise ValueError(f"{self.describe()}: expected inputs of shapes (*, "
                             f"{self.in1_features}) and (*, {self.in2_features}) with the same "
                             f"leading dimensions, got {x1.shape} and {x2.shape}")
        lead = x1.shape[:-1]
        a = x1.reshape(-1, self.in1_features)  # (M, I)
        b = x2.reshape(-1, self.in2_features)  # (M, J)
        O, I, J = self.weight.shape
        # u[m, o, j] = sum_i a[m, i] W[o, i, j]: one (M, I) x (I, O*J) multiply
        u = (a @ self.weight.data.transpose(1, 0, 2).reshape(I, O * J)).reshape(-1, O, J)
        y = np.einsum("moj,mj->mo", u, b)
        if self.bias is not None:
            y += self.bias.data
        self._cache = (a, b, u, lead) if self.caching else None
        return y.reshape(*lead, O)

    def backward(self, grad_out: NDArray) -> tuple[NDArray, NDArray]:
        a, b, u, lead = self._saved(self._cache)
        O, I, J = self.weight.shape
        grad_out = check_grad(self, grad_out, (*lead, O))
        g = grad_out.reshape(-1, O)  # (M, O)
        gb = (g[:, :, None] * b[:, None, :]).reshape(-1, O * J)  # (M, O*J): g[m, o] b[m, j]
        if self.weight.requires_grad:
            # grad_W[o, i, j] = sum_m a[m, i] gb[m, (o, j)]: one (I, M) x (M, O*J) multiply
            grad_w = (a.T @ gb).reshape(I, O, J).transpose(1, 0, 2)
            self.weight.accumulate_grad(np.ascontiguousarray(grad_w), fresh=True)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate_grad(g.sum(axis=0), fresh=True)
        # grad_x2[m, j] = sum_o g[m, o] u[m, o, j]
        grad_x2 = np.einsum("mo,moj->mj", g, u)
        # grad_x1[m, i] = sum_{o, j} gb[m, (o, j)] W[o, i, j]
        grad_x1 = gb @ self.weight.data.transpose(0, 2, 1).reshape(O * J, I)
        return grad_x1.reshape(*lead, I), grad_x2.reshape(*lead, J)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
