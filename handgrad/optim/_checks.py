"""The argument and gradient checks of the optimizers: every message names the optimizer,
the argument, what was expected and what came (issue 21)."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

from ..parameter import Parameter

# Group keys a checkpoint may lack (added to the groups after it was written): loading
# fills them with the optimizer's defaults, as torch's ``__setstate__`` does.
_OPTIONAL_GROUP_KEYS = ("foreach", "capturable", "differentiable", "fused",
                        "decoupled_weight_decay")

# torch.optim's implementation switches and why handgrad refuses the ones it cannot honour
# (``foreach`` and ``fused`` only choose an implementation: accepted, no effect here).
_REFUSED_FLAGS = {
    "capturable": "it makes the step capturable in CUDA graphs, and handgrad runs on NumPy",
    "differentiable": "handgrad has no autograd to differentiate through the step",
}


def _check_backend(name: str, group: dict[str, Any]) -> None:
    """Check torch's implementation switches in a group (those the optimizer has)."""
    for key, reason in _REFUSED_FLAGS.items():
        if group.get(key, False) is not False:
            raise ValueError(f"{name}: {key}={group[key]!r} is not supported ({reason}); "
                             f"expected {key}=False")
    for key in ("foreach", "fused"):
        if group.get(key) not in (None, True, False):
            raise TypeError(f"{name}: invalid {key}={group[key]!r} (expected None, True or "
                            "False)")
    if group.get("foreach") and group.get("fused"):
        raise ValueError(f"{name}: fused=True and foreach=True cannot be set together")


def _check_flag(name: str, group: dict[str, Any], key: str) -> None:
    """Raise TypeError unless group[key] is a bool."""
    if not isinstance(group[key], (bool, np.bool_)):
        raise TypeError(f"{name}: invalid {key}={group[key]!r} (expected True or False)")


def _check_real(name: str, group: dict[str, Any], key: str, label: str) -> float:
    """group[key] as a float, or TypeError naming the optimizer and the argument."""
    value = group[key]
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}: invalid {label} {key}={value!r} (expected a real number, "
                        f"got {type(value).__name__})")
    return float(value)


def _check_nonnegative(name: str, group: dict[str, Any], key: str, label: str) -> None:
    """Raise ValueError('<name>: invalid <label> <key>=<value> (expected >= 0)') unless
    group[key] is a real number >= 0."""
    value = _check_real(name, group, key, label)
    if not value >= 0.0:  # also catches NaN
        raise ValueError(f"{name}: invalid {label} {key}={group[key]!r} (expected >= 0)")


def _check_betas(name: str, group: dict[str, Any]) -> None:
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{name}: invalid betas={betas!r} (expected a pair (beta1, beta2))")
    for i, beta in enumerate(betas):
        if isinstance(beta, bool) or not isinstance(beta, Real) or not 0.0 <= beta < 1.0:
            raise ValueError(f"{name}: invalid beta parameter at index {i}: "
                             f"betas[{i}]={beta!r} (expected 0 <= beta < 1)")


def _raise_bad_grad(name: str, g: int, i: int, p: Parameter) -> None:
    """The error for a gradient that is not an array of ``p``'s shape and dtype."""
    label = f"parameter {i}" + (f" ({p.name!r})" if p.name else "") + f" of param group {g}"
    grad = p.grad
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"{name}.step: the gradient of {label} is a {type(grad).__name__}, "
                        f"expected a NumPy array of shape {p.data.shape} and dtype "
                        f"{p.data.dtype}")
    if grad.shape != p.data.shape:
        raise ValueError(f"{name}.step: the gradient of {label} has shape {grad.shape}, "
                         f"expected the parameter's shape {p.data.shape}")
    if grad.dtype != p.data.dtype:
        raise TypeError(f"{name}.step: the gradient of {label} has dtype {grad.dtype}, "
                        f"expected the parameter's dtype {p.data.dtype} (convert it with "
                        "p.grad = p.grad.astype(p.data.dtype))")
