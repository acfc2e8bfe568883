"""Where did it go NaN? Re-run one batch with every layer traced (used by ``fit``).

``find_non_finite(model, loss_fn, x, y)`` checks the parameters and the input, then runs
the batch forward and backward with each layer's ``forward``/``backward`` wrapped on the
instance (removed again afterwards), and describes the first layer whose output or
gradient is NaN or infinite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..layer import Layer


def _non_finite(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_non_finite(v) for v in value)
    if isinstance(value, np.ndarray):
        return np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all()
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(value)
    return False


def _describe(name: str, module: Layer) -> str:
    label = f"'{name}' " if name else "(the model itself) "
    return f"layer {label}{module.describe()}"


def _traced_pass(model: Layer, loss_fn: Any, x: Any, y: Any, found: list[str]) -> str | None:
    model.zero_grad()
    pred = model(x)
    if found:
        return found[0]
    loss = loss_fn(pred, y)
    if _non_finite(loss):
        return (f"the loss {loss_fn.describe()} is {loss} for finite predictions (check "
                f"the targets and the loss's input range)")
    grad = loss_fn.backward()
    if _non_finite(grad):
        return f"the gradient returned by the loss {loss_fn.describe()}"
    model.backward(grad)
    return found[0] if found else None


def find_non_finite(model: Layer, loss_fn: Any, x: Any, y: Any) -> str:
    """Re-run one batch with every layer traced; describe where values first go non-finite.

    Checks, in order: the parameters, the input batch, each layer's output in the order the
    layers finish their forward (so the innermost, earliest layer is found first), the loss,
    then each layer's input gradient and parameter gradients in backward order. The model's
    parameter gradients are overwritten by this pass. Each traced ``forward``/``backward`` is
    a wrapper stored on the layer instance for this one pass and removed afterwards.
    """
    for name, param in model.named_parameters():
        if _non_finite(param.data):
            return (f"parameter '{name}' holds non-finite values before the batch "
                    f"(an earlier optimizer step diverged, or it was set so)")
    if _non_finite(x):
        return "the input batch itself contains NaN or infinite values"

    found: list[str] = []
    modules = list(model.named_modules())

    def traced_forward(name: str, module: Layer, forward: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> Any:
            out = forward(*args, **kwargs)
            if not found and _non_finite(out):
                found.append(f"the output of {_describe(name, module)} (its input was finite)")
            return out
        return run

    def traced_backward(name: str, module: Layer, backward: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> Any:
            grad = backward(*args, **kwargs)
            if not found:
                for pname, param in module.named_parameters(recurse=False):
                    if param.grad is not None and _non_finite(param.grad):
                        where = f"{name}.{pname}" if name else pname
                        found.append(f"the gradient of parameter '{where}' in backward of "
                                     f"{_describe(name, module)}")
                        break
            if not found and grad is not None and _non_finite(grad):
                found.append(f"the input gradient returned by backward of "
                             f"{_describe(name, module)} (its upstream gradient was finite)")
            return grad
        return run

    # a hooked layer has its hook dispatch in the same slots: put it back afterwards
    previous = [{k: module.__dict__[k] for k in ("forward", "backward") if k in module.__dict__}
                for _, module in modules]
    for name, module in modules:
        object.__setattr__(module, "forward", traced_forward(name, module, module.forward))
        object.__setattr__(module, "backward", traced_backward(name, module, module.backward))
    try:
        with np.errstate(all="ignore"):
            message = _traced_pass(model, loss_fn, x, y, found)
    except Exception as error:  # the diagnosis must not hide the original problem
        return f"(the diagnostic re-run itself failed: {type(error).__name__}: {error})"
    finally:
        for (_, module), saved in zip(modules, previous):
            module.__dict__.pop("forward", None)
            module.__dict__.pop("backward", None)
            module.__dict__.update(saved)
    if message is not None:
        return message
    return "no layer produced a non-finite value when the batch was re-run"


__all__ = ["find_non_finite"]
