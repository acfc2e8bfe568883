"""Layer: the base class of every layer and model.

The contract (see DESIGN.md):

* ``y = layer(x)`` runs ``forward``. In training mode (and in ``eval(backward=True)``)
  forward caches what backward needs; in plain eval mode it caches nothing.
* ``grad_x = layer.backward(grad_out)`` returns the gradient with respect to the input and
  *adds* the parameter gradients into ``p.grad``. Without a cached forward it raises
  ``RuntimeError``.
* ``layer.needs_input_grad = False`` says the caller does not want that input gradient
  (the input is data, as a tensor without ``requires_grad`` in PyTorch): layers that can
  save work then skip it and their backward returns ``None``; parameter gradients are
  computed as always.
* Parameters, buffers and child layers are registered by attribute assignment, as in
  ``torch.nn.Module``, and get PyTorch's dotted names.
* Hooks (``register_forward_pre_hook``, ``register_forward_hook``,
  ``register_full_backward_pre_hook``, ``register_full_backward_hook``) follow PyTorch's
  semantics; the dispatch lives in ``hooks.py``. A layer without hooks runs its own
  ``forward``/``backward`` directly: no wrapper, no check.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .hooks import HookMethods
from .parameter import Parameter


def _castable(source: np.dtype, target: np.dtype) -> bool:
    """Whether ``load_state_dict`` may copy ``source`` values into a ``target`` array: any
    real number into a float or integer buffer, bools too; never strings, objects, or
    complex values into a real array (that would drop the imaginary part)."""
    if source.kind in "OUSVMm":
        return False
    if source.kind == "c":
        return target.kind == "c"
    return True


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class Layer(HookMethods):
    """Base class: holds parameters, buffers and child layers.

    Subclasses implement ``forward`` and ``backward`` and, where useful, ``extra_repr``.
    The hook registration methods come from ``hooks.HookMethods``.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_children", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_eval_backward", False)
        object.__setattr__(self, "_needs_input_grad", True)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        if isinstance(value, (Parameter, Layer)):
            self.__dict__.pop(name, None)
            self._parameters.pop(name, None)
            self._children.pop(name, None)
            self._buffers.pop(name, None)
            registry = self._parameters if isinstance(value, Parameter) else self._children
            registry[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        elif name in self._parameters or name in self._children:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} to "
                    f"'{name}' (expected a Parameter, a Layer or None)"
                )
            registry = self._parameters if name in self._parameters else self._children
            registry[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails.
        for registry in ("_parameters", "_buffers", "_children"):
            d = self.__dict__.get(registry)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._children):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
            return
        if not isinstance(param, Parameter):
            raise TypeError(
                f"{type(self).__name__}.register_parameter: expected a Parameter for "
                f"'{name}', got {type(param).__name__}"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, array: NDArray | None) -> None:
        """Register an array that is saved in ``state_dict`` but never optimized."""
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(
                f"{type(self).__name__}.register_buffer: expected a numpy array for "
                f"'{name}', got {type(array).__name__}"
            )
        self.__dict__.pop(name, None)
        self._buffers[name] = array

    def add_module(self, name: str, layer: Layer | None) -> None:
        if layer is not None and not isinstance(layer, Layer):
            raise TypeError(
                f"{type(self).__name__}.add_module: expected a Layer for '{name}', "
                f"got {type(layer).__name__}"
            )
        self._children[name] = layer

    # ------------------------------------------------------------------ forward/backward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_out: NDArray) -> NDArray:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    @property
    def needs_input_grad(self) -> bool:
        """Whether ``backward`` must return the gradient with respect to the input.

        True by default. Set it to False on a model whose input is data (nothing upstream
        to train): layers that can then skip work (``Linear``, ``Conv2d`` and containers
        holding them first) return ``None`` from backward instead of an input gradient
        nobody reads; parameter gradients are unchanged. Containers pass the setting on:
        a ``Sequential`` to its leading children up to and including the first one with
        trainable parameters (later children must still propagate gradients to it).
        ``fit`` sets it for the duration of training.
        """
        return self.__dict__.get("_needs_input_grad", True)

    @needs_input_grad.setter
    def needs_input_grad(self, needed: bool) -> None:
        self._set_needs_input_grad(bool(needed))

    def _set_needs_input_grad(self, needed: bool) -> None:
        """Record the setting; containers override this to pass it on to their children."""
        object.__setattr__(self, "_needs_input_grad", needed)

    @property
    def caching(self) -> bool:
        """Whether forward keeps what backward needs (training, or ``eval(backward=True)``)."""
        return self.training or self._eval_backward

    def _saved(self, cache: Any) -> Any:
        """Return ``cache``, or raise the contract's RuntimeError when there is none."""
        if cache is None:
            if self.caching:
                hint = "call forward first"
            else:
                hint = (
                    "the last forward ran in eval mode, which caches nothing; use "
                    "layer.train() or layer.eval(backward=True) to backpropagate"
                )
            raise RuntimeError(
                f"{self.describe()}: backward called with no forward cached ({hint})"
            )
        return cache

    # ------------------------------------------------------------------ traversal
    def children(self) -> Iterator[Layer]:
        for _, child in self.named_children():
            yield child

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        for name, child in self._children.items():
            if child is not None:
                yield name, child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Layer]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[
        tuple[str, Parameter]
    ]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for module_prefix, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_prefix}.{name}" if module_prefix else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[
        tuple[str, NDArray]
    ]:
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for module_prefix, module in modules:
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_prefix}.{name}" if module_prefix else name), buf

    def buffers(self, recurse: bool = True) -> Iterator[NDArray]:
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def apply(self, fn: Any) -> Layer:
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, NDArray]:
        """Copies of every parameter and buffer, under PyTorch's dotted names."""
        state: OrderedDict[str, NDArray] = OrderedDict()
        for module_prefix, module in self.named_modules():
            for name, param in module._parameters.items():
                if param is not None:
                    key = f"{module_prefix}.{name}" if module_prefix else name
                    state[key] = param.data.copy()
            for name, buf in module._buffers.items():
                if buf is not None:
                    key = f"{module_prefix}.{name}" if module_prefix else name
                    state[key] = buf.copy()
        return state

    def _state_slots(self) -> OrderedDict[str, tuple[Layer, str, bool]]:
        slots: OrderedDict[str, tuple[Layer, str, bool]] = OrderedDict()
        for module_prefix, module in self.named_modules():
            for name, param in module._parameters.items():
                if param is not None:
                    key = f"{module_prefix}.{name}" if module_prefix else name
                    slots[key] = (module, name, True)
            for name, buf in module._buffers.items():
                if buf is not None:
                    key = f"{module_prefix}.{name}" if module_prefix else name
                    slots[key] = (module, name, False)
        return slots

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> IncompatibleKeys:
        """Copy values from ``state_dict`` into this model's own arrays and dtypes.

        Raises ``ValueError`` naming every wrongly shaped entry, and (when ``strict``) every
        missing and unexpected key. Nothing is changed unless the whole load can succeed.
        Returns ``(missing_keys, unexpected_keys)`` as PyTorch does.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(
                f"{self.describe()}.load_state_dict: expected a mapping of names to arrays, "
                f"got {type(state_dict).__name__}"
            )
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [str(k) for k in state_dict.keys() if k not in slots]
        mismatched = []
        values = {}
        for key, (module, name, is_param) in slots.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            current = module._parameters[name].data if is_param else module._buffers[name]
            if value.shape != current.shape:
                mismatched.append(
                    f"{key}: expected shape {tuple(current.shape)}, got {tuple(value.shape)}"
                )
            elif not _castable(value.dtype, current.dtype):
                mismatched.append(f"{key}: expected {current.dtype} values, got {value.dtype}")
            else:
                values[key] = value
        problems = []
        if mismatched:
            problems.append("wrongly shaped or typed: " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: " + " | ".join(problems)
            )
        for key, value in values.items():
            module, name, is_param = slots[key]
            if is_param:
                target = module._parameters[name].data
            else:
                target = module._buffers[name]
            target[...] = value.astype(target.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Layer:
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
            object.__setattr__(module, "_eval_backward", False)
        return self

    def eval(self, *, backward: bool = False) -> Layer:
        """Evaluation mode. With ``backward=True`` forward still caches for backward.

        Evaluation behaviour (dropout off, BatchNorm on running statistics) is unchanged
        by ``backward``; it only decides whether a backward pass is possible afterwards.
        """
        for module in self.modules():
            object.__setattr__(module, "training", False)
            object.__setattr__(module, "_eval_backward", bool(backward))
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            param.zero_grad(set_to_none)

    def requires_grad_(self, requires_grad: bool = True) -> Layer:
        for param in self.parameters():
            param.requires_grad = bool(requires_grad)
        return self

    # ------------------------------------------------------------------ dtype
    def to(self, dtype: DTypeLike) -> Layer:
        """Cast every floating parameter, gradient and buffer to ``dtype`` (in place)."""
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{type(self).__name__}.to: expected a floating dtype, got {dtype}")
        for module in self.modules():
            for param in module._parameters.values():
                if param is None:
                    continue
                param.data = param.data.astype(dtype, copy=False)
                if param.grad is not None:
                    param.grad = param.grad.astype(dtype, copy=False)
            for name, buf in module._buffers.items():
                if buf is not None and np.issubdtype(buf.dtype, np.floating):
                    module._buffers[name] = buf.astype(dtype, copy=False)
            module._on_dtype_change(dtype)
        return self

    def _on_dtype_change(self, dtype: np.dtype) -> None:
        """Hook for layers holding dtype-dependent state besides parameters and buffers."""

    def float(self) -> Layer:
        return self.to(np.float32)

    def double(self) -> Layer:
        return self.to(np.float64)

    @property
    def dtype(self) -> np.dtype | None:
        """The dtype of the first parameter (None for a layer without parameters)."""
        # the order of parameters(): own parameters first, then each child's, depth first
        for param in self._parameters.values():
            if param is not None:
                return param.data.dtype
        for child in self._children.values():
            if child is not None and (dtype := child.dtype) is not None:
                return dtype
        return None

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        return ""

    def describe(self) -> str:
        """Short name used in error messages, e.g. ``Linear(in_features=4, ...)``."""
        return f"{type(self).__name__}({self.extra_repr()})"

    def __repr__(self) -> str:
        lines = []
        for name, child in self._children.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
