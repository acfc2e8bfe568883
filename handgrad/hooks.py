"""Hook dispatch for ``Layer`` and ``Parameter``, with PyTorch's semantics.

A layer without hooks has no ``forward``/``backward`` of its own in its instance ``__dict__``:
``layer(x)`` and ``layer.backward(g)`` find the class's methods and run them directly, so
unused hooks cost nothing. Registering the first forward (or backward) hook installs a
``_Dispatch`` object as the instance attribute ``forward`` (or ``backward``); it shadows the
class method, so every caller -- ``layer(x)``, a container's ``child(x)``, a model's
``self.rnn.backward(g, gs)``, user code -- runs the hooks. Removing the last hook of that
kind deletes the attribute again. The dispatch refers to its layer as an attribute (not a
closure), so ``copy.deepcopy`` of a hooked model gives a copy whose hooks run on the copy.

Order of one forward: pre-hooks (may replace the positional args), the class's
``forward``, forward hooks (may replace the output). Order of one backward: backward
pre-hooks (may replace ``grad_output``), the class's ``backward`` (during which parameter
hooks run, as the gradients are accumulated), backward hooks (may replace ``grad_input``).
This is the order PyTorch's autograd fires them in for a layer whose input needs a gradient.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any

KINDS = ("forward_pre", "forward", "backward_pre", "backward")
_ids = itertools.count()


class RemovableHandle:
    """Returned by every ``register_*hook``; ``handle.remove()`` unregisters the hook.

    Usable as a context manager: the hook is removed on leaving the ``with`` block.
    Removing twice is harmless.
    """

    __slots__ = ("_remove", "id")

    def __init__(self, remove: Any, hook_id: int):
        self._remove = remove
        self.id = hook_id

    def remove(self) -> None:
        if self._remove is not None:
            self._remove(self.id)
            self._remove = None

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _check_callable(owner: str, hook: Any) -> None:
    if not callable(hook):
        raise TypeError(f"{owner}: expected a callable hook, got {type(hook).__name__}")


def add_hook(table: OrderedDict, hook: Any, prepend: bool) -> int:
    hook_id = next(_ids)
    table[hook_id] = hook
    if prepend:
        table.move_to_end(hook_id, last=False)
    return hook_id


# ---------------------------------------------------------------------------- layers
class _Dispatch:
    """Stands in for a hooked layer's ``forward`` or ``backward`` (see the module docstring)."""

    __slots__ = ("layer", "kind")

    def __init__(self, layer: Any, kind: str):
        self.layer = layer
        self.kind = kind

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.kind == "forward":
            return run_forward(self.layer, args, kwargs)
        return run_backward(self.layer, args, kwargs)


def layer_hooks(layer: Any) -> dict[str, OrderedDict]:
    hooks = layer.__dict__.get("_hooks")
    if hooks is None:
        hooks = {kind: OrderedDict() for kind in KINDS}
        object.__setattr__(layer, "_hooks", hooks)
    return hooks


def add_layer_hook(layer: Any, kind: str, hook: Any, prepend: bool = False) -> RemovableHandle:
    _check_callable(f"{layer.describe()}.register_{kind}_hook", hook)
    hooks = layer_hooks(layer)
    hook_id = add_hook(hooks[kind], hook, prepend)
    method = "forward" if kind.startswith("forward") else "backward"
    if not isinstance(layer.__dict__.get(method), _Dispatch):
        object.__setattr__(layer, method, _Dispatch(layer, method))

    def remove(hid: int) -> None:
        hooks[kind].pop(hid, None)
        pair = ("forward_pre", "forward") if method == "forward" else ("backward_pre", "backward")
        if not any(hooks[k] for k in pair) and isinstance(layer.__dict__.get(method), _Dispatch):
            del layer.__dict__[method]

    return RemovableHandle(remove, hook_id)


class HookMethods:
    """The hook registration methods of ``Layer`` (PyTorch's names and semantics).

    Each returns a ``RemovableHandle``; ``prepend=True`` runs the hook before the others.
    """

    def register_forward_pre_hook(self, hook: Any, *, prepend: bool = False) -> RemovableHandle:
        """``hook(layer, args)`` before forward; may return new args (a value or tuple)."""
        return add_layer_hook(self, "forward_pre", hook, prepend)

    def register_forward_hook(self, hook: Any, *, prepend: bool = False) -> RemovableHandle:
        """``hook(layer, args, output)`` after forward; may return a replacement output."""
        return add_layer_hook(self, "forward", hook, prepend)

    def register_full_backward_pre_hook(self, hook: Any, *,
                                        prepend: bool = False) -> RemovableHandle:
        """``hook(layer, grad_output)`` before backward; may return a new grad_output."""
        return add_layer_hook(self, "backward_pre", hook, prepend)

    def register_full_backward_hook(self, hook: Any, *, prepend: bool = False) -> RemovableHandle:
        """``hook(layer, grad_input, grad_output)`` after backward (parameter gradients
        already accumulated); may return a replacement grad_input tuple of the same length.

        ``grad_output``: the tuple of gradients arriving at the layer (backward's positional
        arguments, e.g. ``(grad_out, grad_final_state)`` for a recurrent layer);
        ``grad_input``: the tuple of what backward returns (``(None,)`` when not needed).
        """
        return add_layer_hook(self, "backward", hook, prepend)


def run_forward(layer: Any, args: tuple, kwargs: dict) -> Any:
    hooks = layer._hooks
    for hook in list(hooks["forward_pre"].values()):
        result = hook(layer, args)
        if result is not None:
            args = result if isinstance(result, tuple) else (result,)
    output = type(layer).forward(layer, *args, **kwargs)
    for hook in list(hooks["forward"].values()):
        result = hook(layer, args, output)
        if result is not None:
            output = result
    return output


def run_backward(layer: Any, args: tuple, kwargs: dict) -> Any:
    hooks = layer._hooks
    grad_output = args
    for hook in list(hooks["backward_pre"].values()):
        result = hook(layer, grad_output)
        if result is not None:
            grad_output = _same_length(layer, "backward pre-hook", "grad_output", result,
                                       len(grad_output))
    grad = type(layer).backward(layer, *grad_output, **kwargs)
    as_tuple = isinstance(grad, tuple)
    grad_input = grad if as_tuple else (grad,)
    for hook in list(hooks["backward"].values()):
        result = hook(layer, grad_input, grad_output)
        if result is not None:
            grad_input = _same_length(layer, "backward hook", "grad_input", result,
                                      len(grad_input))
    return grad_input if as_tuple else grad_input[0]


def _same_length(layer: Any, who: str, what: str, result: Any, n: int) -> tuple:
    result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    if len(result) != n:
        raise ValueError(f"{layer.describe()}: a {who} returned {len(result)} values for "
                         f"{what}, expected {n} (one per entry of {what})")
    return result


# ---------------------------------------------------------------------------- parameters
def run_parameter_hooks(param: Any, grad: Any) -> Any:
    """The gradient after every hook of ``param`` (each may return a replacement)."""
    for hook in list(param._hooks.values()):
        result = hook(grad)
        if result is not None:
            grad = result
    return grad
