"""Input checks shared by every layer: clear TypeError/ValueError naming the layer."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def as_array(layer: Any, x: Any, what: str = "input", kinds: str = "biufc") -> NDArray:
    """``x`` as an ndarray whose dtype kind is one of ``kinds`` (numeric by default).

    Junk (None, strings, dicts, ragged nested lists) raises a TypeError naming the layer
    rather than a NumPy error or a silent object array.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as error:  # ragged nested lists and the like
            raise TypeError(f"{layer.describe()}: expected {what} as an array, got "
                            f"{type(x).__name__} that is not one ({error})") from None
    if x.dtype.kind not in kinds:
        raise TypeError(f"{layer.describe()}: expected {what} as a numeric array, got "
                        f"{type(x).__name__ if x.ndim == 0 else 'an array'} of dtype {x.dtype}")
    return x


def as_float_input(layer: Any, x: Any, what: str = "input") -> NDArray:
    """``x`` as an ndarray of floating dtype, matching the layer's parameter dtype if any."""
    if not isinstance(x, np.ndarray):
        x = as_array(layer, x, what, kinds="biufcOUSV")  # the dtype check follows
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
    """``grad_out`` as a numeric ndarray of the forward output's shape."""
    if not isinstance(grad_out, np.ndarray) or grad_out.dtype.kind not in "biuf":
        grad_out = as_array(layer, grad_out, "grad_out", kinds="biuf")
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


def check_int(layer_name: str, arg: str, value: Any) -> int:
    """``value`` as an int (negative allowed, e.g. a dim); TypeError for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer_name}: expected an integer {arg}, got {value!r}")
    return int(value)


def check_real(layer_name: str, arg: str, value: Any) -> float:
    """``value`` as a float; TypeError unless a real number (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{layer_name}: expected a real number {arg}, got {value!r}")
    return float(value)
