"""Input checks shared by every layer: clear TypeError/ValueError naming the layer."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def as_float_input(layer: Any, x: Any, what: str = "input") -> NDArray:
    """``x`` as an ndarray of floating dtype, matching the layer's parameter dtype if any."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind != "f":  # np.issubdtype(x.dtype, np.floating), 20x cheaper
        raise TypeError(
            f"{layer.describe()}: expected a floating-point {what}, got dtype {x.dtype}"
        )
    dtype = layer.dtype
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{layer.describe()}: expected {what} of dtype {dtype} (the layer's dtype), got "
            f"{x.dtype}; convert the input with .astype(np.{dtype}) or the layer with "
            f".to(np.{x.dtype})"
        )
    return x


def check_grad(layer: Any, grad_out: Any, expected_shape: tuple[int, ...]) -> NDArray:
    """``grad_out`` as an ndarray of the forward output's shape."""
    if not isinstance(grad_out, np.ndarray):
        grad_out = np.asarray(grad_out)
    if grad_out.shape != tuple(expected_shape):
        raise ValueError(
            f"{layer.describe()}: expected grad_out of shape {tuple(expected_shape)} (the "
            f"forward output's), got {grad_out.shape}"
        )
    return grad_out


def check_positive_int(layer_name: str, arg: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{layer_name}: expected a positive integer {arg}, got {value!r}")
    return int(value)


def check_probability(layer_name: str, arg: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (
        0.0 <= value <= 1.0
    ):
        raise ValueError(f"{layer_name}: expected {arg} in [0, 1], got {value!r}")
    return float(value)
