"""Gradient clipping: by global norm and by value (PyTorch's ``torch.nn.utils`` semantics)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..parameter import Parameter


def _grads(parameters: Parameter | Iterable[Parameter], owner: str) -> list[np.ndarray]:
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    if not hasattr(parameters, "__iter__") or isinstance(parameters, (str, bytes)):
        raise TypeError(f"{owner}: expected a Parameter or an iterable of Parameters, got "
                        f"{type(parameters).__name__}")
    grads = []
    for p in parameters:
        if not isinstance(p, Parameter):
            raise TypeError(f"{owner}: expected Parameters, got {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _real(owner: str, arg: str, value) -> float:
    """``value`` as a float (``"inf"`` allowed, as ``float("inf")``), else TypeError."""
    if isinstance(value, str) and value.lower() in ("inf", "+inf"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: expected a real number {arg}, got {value!r}")
    return float(value)


def clip_grad_norm_(parameters: Parameter | Iterable[Parameter], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    r"""Scale all gradients in place so that their joint norm is at most ``max_norm``.

    ``total = ||(||g_1||, ..., ||g_n||)||_p`` over the parameters that have a gradient
    (p = ``norm_type``; ``inf`` gives the largest absolute entry). Every gradient is then
    multiplied by ``min(max_norm / (total + 1e-6), 1)`` (PyTorch's ``clip_coef``).

    Args:
        parameters: a Parameter or an iterable of Parameters (those without grad are ignored).
        max_norm: the largest allowed norm.
        norm_type: the p of the p-norm (``float('inf')`` for the max norm).
        error_if_nonfinite: raise RuntimeError if the total norm is NaN or infinite.

    Returns:
        The total norm of the gradients before clipping, as a Python float.
    """
    grads = _grads(parameters, "clip_grad_norm_")
    max_norm = _real("clip_grad_norm_", "max_norm", max_norm)
    norm_type = _real("clip_grad_norm_", "norm_type", norm_type)
    if not max_norm >= 0:  # a negative max_norm would flip every gradient's sign
        raise ValueError(f"clip_grad_norm_: expected max_norm >= 0, got {max_norm}")
    if not norm_type > 0 and norm_type != 0:
        raise ValueError(f"clip_grad_norm_: invalid norm_type {norm_type}")
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        # sum of squares per tensor via a dot product (no temporary of the gradient's size)
        total = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    else:
        norms = [float(np.linalg.norm(g.ravel(), ord=norm_type)) for g in grads]
        total = float(np.linalg.norm(np.array(norms), ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    clip_coef = max_norm / (total + 1e-6)
    if clip_coef < 1.0 or math.isnan(clip_coef):
        with np.errstate(invalid="ignore"):  # inf * 0 -> nan, as in PyTorch
            for g in grads:
                g *= clip_coef
    return total


def clip_grad_value_(parameters: Parameter | Iterable[Parameter], clip_value: float) -> None:
    """Clamp every gradient entry in place to ``[-clip_value, clip_value]``."""
    clip_value = _real("clip_grad_value_", "clip_value", clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for g in _grads(parameters, "clip_grad_value_"):
        np.clip(g, -clip_value, clip_value, out=g)
