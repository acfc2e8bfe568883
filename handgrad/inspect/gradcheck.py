"""Numerical gradients and the gradient-check report.

``gradcheck(layer, x, ...)`` compares a layer's hand-written backward with central
differences, in float64, on a copy of the layer (the caller's layer is not touched):

    objective(x, params) = sum(layer(x) * g)        g: a random upstream gradient

For a loss (a layer whose forward returns a scalar) the objective is ``g * loss``.
Randomness inside the layer (dropout masks) is replayed identically in every perturbed
forward by restoring every ``numpy.random.Generator`` the layer holds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..layer import Layer


class GradcheckError(AssertionError):
    """Raised by ``gradcheck(..., raise_exception=True)``; its message is the report table."""


def numerical_gradient(f: Callable[[NDArray], float], x: NDArray, eps: float = 1e-6) -> NDArray:
    """Central-difference gradient of the scalar function ``f`` at ``x``.

    ``x`` is perturbed in place, one element at a time (``f(x)`` is called with the
    perturbed array), and restored afterwards: ``grad[i] = (f(x + eps e_i) - f(x - eps e_i))
    / (2 eps)``. Use a float64 ``x``; float32 is too coarse for small ``eps``.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"numerical_gradient: expected a floating-point numpy array x, got "
            f"{type(x).__name__}{'' if not isinstance(x, np.ndarray) else ' of ' + str(x.dtype)}"
        )
    if not eps > 0:
        raise ValueError(f"numerical_gradient: expected eps > 0, got {eps!r}")
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)  # a view when x is contiguous
    if not np.shares_memory(flat, x) and x.size > 0:
        raise ValueError(
            "numerical_gradient: x must be a contiguous array (it is perturbed in place)"
        )
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        f_plus = float(f(x))
        flat[i] = original - eps
        f_minus = float(f(x))
        flat[i] = original
        grad.flat[i] = (f_plus - f_minus) / (2 * eps)
    return grad


@dataclass
class GradcheckRow:
    name: str
    shape: tuple[int, ...]
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple[int, ...]
    atol: float
    rtol: float
    passed: bool


@dataclass
class GradcheckReport:
    """Per tensor: the largest absolute and relative errors, where, the tolerance, pass/fail.

    A tensor passes when every element has ``|analytic - numeric| <= atol + rtol |numeric|``.
    ``str(report)`` is a table; ``report.passed`` is True when every tensor passed.
    """

    layer: str
    eps: float
    rows: list[GradcheckRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, name: str) -> GradcheckRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def __str__(self) -> str:
        header = ("tensor", "shape", "max abs err", "max rel err", "worst index", "tolerance",
                  "result")
        body = [
            (
                row.name,
                str(row.shape),
                f"{row.max_abs_err:.2e}",
                f"{row.max_rel_err:.2e}",
                str(row.worst_index),
                f"atol={row.atol:.0e} rtol={row.rtol:.0e}",
                "ok" if row.passed else "FAIL",
            )
            for row in self.rows
        ]
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        status = "passed" if self.passed else "FAILED"
        lines = [f"gradcheck {self.layer}: {status} (central differences, eps={self.eps:g})",
                 fmt.format(*header)]
        lines += [fmt.format(*r) for r in body]
        return "\n".join(lines)

    __repr__ = __str__


def _generators(layer: Layer) -> list[tuple[Layer, str, np.random.Generator]]:
    found = []
    for module in layer.modules():
        for name, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found.append((module, name, value))
    return found


def _compare(name, analytic, numeric, atol, rtol) -> GradcheckRow:
    analytic = np.asarray(analytic, dtype=np.float64)
    diff = np.abs(analytic - numeric)
    allowed = atol + rtol * np.abs(numeric)
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-300)
    if diff.size:
        worst = np.unravel_index(int(np.argmax(diff - allowed)), diff.shape)
        max_abs = float(diff.max())
        max_rel = float((diff / scale).max())
        passed = bool(np.all(diff <= allowed))
    else:
        worst, max_abs, max_rel, passed = (), 0.0, 0.0, True
    return GradcheckRow(name, tuple(numeric.shape), max_abs, max_rel,
                        tuple(int(i) for i in worst), atol, rtol, passed)


def gradcheck(
    layer: Layer,
    x: Any,
    *args: Any,
    grad_output: Any = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    check_params: bool = True,
    raise_exception: bool = False,
    rng: np.random.Generator | int | None = 0,
    **kwargs: Any,
) -> GradcheckReport:
    """Check ``layer.backward`` against central differences in float64.

    Args:
        layer: the layer, model or loss to check (a float64 copy is checked; the layer
            itself is left as it was).
        x: the input whose gradient is checked; ``args``/``kwargs`` are passed to forward
            unchanged (targets of a loss, for example).
        grad_output: the upstream gradient ``g``; by default drawn from N(0, 1) with ``rng``
            (never all ones, which hides transposition mistakes).
        eps, atol, rtol: finite-difference step and tolerance (see ``GradcheckReport``).
        check_params: also check every parameter that requires a gradient.
        raise_exception: raise ``GradcheckError`` with the report table if any check fails.

    Returns a ``GradcheckReport`` with one row for the input and one per parameter.
    """
    if not isinstance(layer, Layer):
        raise TypeError(f"gradcheck: expected a Layer, got {type(layer).__name__}")
    x64 = np.array(x, dtype=np.float64, copy=True)
    if not np.issubdtype(np.asarray(x).dtype, np.floating):
        raise TypeError(
            f"gradcheck: expected a floating-point input, got dtype {np.asarray(x).dtype}"
        )
    model = copy.deepcopy(layer).double()
    model.needs_input_grad = True  # the input gradient is one of the things checked
    if not model.training:
        model.eval(backward=True)
    generators = _generators(model)
    states = [copy.deepcopy(g.bit_generator.state) for _, _, g in generators]

    def replay() -> None:
        for (_, _, g), state in zip(generators, states):
            g.bit_generator.state = copy.deepcopy(state)

    replay()
    y = model(x64, *args, **kwargs)
    scalar = np.ndim(y) == 0
    if grad_output is None:
        draw = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        g = draw.standard_normal(np.shape(y))
    else:
        g = np.asarray(grad_output, dtype=np.float64)
        if g.shape != np.shape(y):
            raise ValueError(
                f"gradcheck: grad_output of shape {g.shape} does not match the output shape "
                f"{np.shape(y)}"
            )
    model.zero_grad()
    analytic_x = model.backward(float(g) if scalar else g)
    params = (
        [(n, p) for n, p in model.named_parameters() if p.requires_grad] if check_params else []
    )
    analytic = [("input", analytic_x)] + [
        (n, p.grad if p.grad is not None else np.zeros_like(p.data)) for n, p in params
    ]

    def objective(_: NDArray) -> float:
        replay()
        out = model(x64, *args, **kwargs)
        return float(np.sum(np.asarray(out, dtype=np.float64) * g))

    report = GradcheckReport(layer.describe(), eps)
    report.rows.append(_compare("input", analytic[0][1], numerical_gradient(objective, x64, eps),
                                atol, rtol))
    for (name, param), (_, grad) in zip(params, analytic[1:]):
        numeric = numerical_gradient(objective, param.data, eps)
        report.rows.append(_compare(name, grad, numeric, atol, rtol))
    if raise_exception and not report.passed:
        raise GradcheckError("\n" + str(report))
    return report
