"""Gradient-check every layer of a real model where it sits: ``check_model``.

    report = check_model(model, x[:2])
    print(report)            # one row per layer, in forward order
    report.first_failure     # the first layer whose backward disagrees (or None)

One forward of the model records the input each layer receives (forward pre-hooks); then
each layer is checked by central differences on a float64 copy of itself and of that input
(at up to ``max_checks`` random elements per tensor, so that big layers stay cheap):
leaves (and layers with parameters of their own) check the input gradient and every
parameter; containers check only their input gradient, which tests how they compose their
children (their children's parameters are checked at the children).

A disagreement at an input sitting on a kink (ReLU at 0, a max-pool tie, ...) is not a bug:
there the left and right slopes differ and central differences average them. Every
disagreeing element is therefore looked at with one-sided differences too; if the two slopes
differ and the analytic value matches one of them, the row says ``kink`` instead of ``FAIL``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..layer import Layer
from .monitor import watched_layers


@dataclass
class ModelCheckRow:
    layer: str
    type: str
    input_shape: tuple[int, ...]
    status: str  # 'ok', 'FAIL', 'kink' or 'skipped'
    max_rel_err: float = 0.0
    tensor: str = ""  # the worst tensor ('input' or a parameter name)
    detail: str = ""


@dataclass
class ModelCheckReport:
    """``check_model``'s result: ``rows`` (forward order), ``passed``, ``first_failure``."""

    rows: list[ModelCheckRow] = field(default_factory=list)
    first_failure: str | None = None

    @property
    def passed(self) -> bool:
        return all(r.status != "FAIL" for r in self.rows)

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, layer: str) -> ModelCheckRow:
        for row in self.rows:
            if row.layer == layer:
                return row
        raise KeyError(layer)

    def __str__(self) -> str:
        head = f"{'layer':<20s} {'type':<14s} {'input':<16s} {'result':<7s} {'rel err':>9s}  note"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.layer[:20]:<20s} {r.type[:14]:<14s} {str(r.input_shape):<16s} "
                         f"{r.status:<7s} {r.max_rel_err:>9.1e}  {r.detail}")
        lines.append("first layer whose backward disagrees: "
                     + (self.first_failure or "none"))
        return "\n".join(lines)


def check_model(model: Layer, x: Any, *args: Any, samples: int | None = 2, max_checks: int = 64,
                eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0,
                **kwargs: Any) -> ModelCheckReport:
    """Gradient-check every layer of ``model`` on the input it receives inside the model.

    Args:
        model: any handgrad model; it is not changed (each layer is checked on a copy).
        x, args, kwargs: what ``model(x, *args, **kwargs)`` takes.
        samples: use only the first ``samples`` items of ``x`` (finite differences cost two
            forwards per input element and parameter); None: all of them.
        max_checks: elements checked per tensor (input or parameter), drawn at random
            with ``seed`` when the tensor is larger; the upstream gradient is random too.
        eps, atol, rtol: as in ``gradcheck`` (an element passes when
            ``|analytic - numeric| <= atol + rtol |numeric|``).
    """
    if not isinstance(model, Layer):
        raise TypeError(f"check_model: expected a Layer, got {type(model).__name__}")
    x = np.asarray(x)
    if samples is not None:
        x = x[:samples]
    if np.issubdtype(x.dtype, np.floating) and model.dtype is not None:
        x = x.astype(model.dtype, copy=False)  # the model's own dtype; the checks run in float64
    names = {id(m): (name or "(model)") for name, m in model.named_modules()}
    leaves = {id(m) for _, m in watched_layers(model)}
    seen: list[tuple[Layer, tuple, dict]] = []
    handles = []

    def capture(layer: Layer, layer_args: tuple) -> None:
        if all(layer is not s[0] for s in seen):
            seen.append((layer, copy.deepcopy(layer_args), {}))

    modules = list(model.modules())
    for m in modules:
        handles.append(m.register_forward_pre_hook(capture))
    modes = [(m, m.training, m._eval_backward) for m in modules]
    rng_states = [copy.deepcopy(g.bit_generator.state) for g in _generators(model)]
    try:
        model(x, *args, **kwargs)
    finally:
        for h in handles:
            h.remove()
        for g, state in zip(_generators(model), rng_states):
            g.bit_generator.state = state
        for m, training, eval_backward in modes:
            object.__setattr__(m, "training", training)
            object.__setattr__(m, "_eval_backward", eval_backward)

    report = ModelCheckReport()
    rng = np.random.default_rng(seed)
    for layer, layer_args, layer_kwargs in seen:
        name = names.get(id(layer), "?")
        first, rest = (layer_args[0], layer_args[1:]) if layer_args else (None, ())
        shape = tuple(np.shape(first)) if first is not None else ()
        row = ModelCheckRow(name, type(layer).__name__, shape, "ok")
        report.rows.append(row)
        if not isinstance(first, np.ndarray) or not np.issubdtype(first.dtype, np.floating):
            row.status, row.detail = "skipped", "input is not a float array (ids?)"
            continue
        _check_layer(row, layer, first, rest, layer_kwargs, id(layer) in leaves,
                     eps, atol, rtol, max_checks, rng)
    failing = [r.layer for r in report.rows if r.status == "FAIL"]
    for name in failing:  # the first whose descendants all agree
        if not any(other != name and (name == "(model)" or other.startswith(name + "."))
                   for other in failing):
            report.first_failure = name
            break
    return report


def _generators(model: Layer) -> list[np.random.Generator]:
    return [v for m in model.modules() for v in vars(m).values()
            if isinstance(v, np.random.Generator)]


def _check_layer(row: ModelCheckRow, layer: Layer, x: np.ndarray, rest: tuple, kwargs: dict,
                 with_params: bool, eps: float, atol: float, rtol: float, max_checks: int,
                 rng: np.random.Generator) -> None:
    """Fill ``row``: central differences at up to ``max_checks`` elements per tensor (all
    of a smaller tensor), with the one-sided slopes that tell a kink from a bug."""
    model = copy.deepcopy(layer).double()
    model.needs_input_grad = True
    if not model.training:
        model.eval(backward=True)
    # C order: the elements are perturbed through a flat view (a transposed input, e.g. a
    # batch_first LSTM's output, would otherwise be perturbed in a copy)
    x64 = np.array(x, dtype=np.float64, order="C", copy=True)
    for p in model.parameters():
        p.data = np.ascontiguousarray(p.data)
    gens = _generators(model)
    states = [copy.deepcopy(g.bit_generator.state) for g in gens]

    def objective() -> float:
        for gen, state in zip(gens, states):
            gen.bit_generator.state = copy.deepcopy(state)
        return float(np.sum(np.asarray(model(x64, *rest, **kwargs), dtype=np.float64) * g))

    for gen, state in zip(gens, states):
        gen.bit_generator.state = copy.deepcopy(state)
    y = model(x64, *rest, **kwargs)
    g = rng.standard_normal(np.shape(y))
    model.zero_grad()
    grad_x = model.backward(float(g) if np.ndim(y) == 0 else g)
    tensors = [("input", x64, grad_x)]
    if with_params:
        tensors += [(n, p.data, np.zeros_like(p.data) if p.grad is None else p.grad)
                    for n, p in model.named_parameters() if p.requires_grad]
    f0 = objective()
    fails, kinks = [], []
    for tname, target, analytic in tensors:
        if analytic is None:
            fails.append(f"{tname}: backward returned None")
            continue
        flat, grad = target.reshape(-1), np.asarray(analytic, dtype=np.float64).reshape(-1)
        picks = np.arange(flat.size) if flat.size <= max_checks else rng.choice(
            flat.size, max_checks, replace=False)
        for i in picks:
            original = flat[i]
            flat[i] = original + eps
            f_plus = objective()
            flat[i] = original - eps
            f_minus = objective()
            flat[i] = original
            central = (f_plus - f_minus) / (2 * eps)
            a = float(grad[i])
            err = abs(a - central) / max(abs(a), abs(central), 1e-300)
            if err > row.max_rel_err:
                row.max_rel_err, row.tensor = err, tname
            if abs(a - central) <= atol + rtol * abs(central):
                continue
            right, left = (f_plus - f0) / eps, (f0 - f_minus) / eps
            where = f"{tname}{[int(j) for j in np.unravel_index(i, target.shape)]}"
            scale = max(abs(left), abs(right), 1.0)
            if abs(left - right) > 100 * eps * scale and any(
                    abs(a - s) <= atol + rtol * abs(s) + 10 * eps * scale for s in (left, right)):
                kinks.append(f"{where} at a kink (left slope {left:.3g}, right {right:.3g}, "
                             f"backward {a:.3g})")
            else:
                fails.append(f"{where}: backward {a:.4g}, central difference {central:.4g}")
    if fails:
        row.status = "FAIL"
        row.detail = "; ".join(fails[:2]) + (f" (+{len(fails) - 2} more)" if len(fails) > 2
                                              else "")
    elif kinks:
        row.status = "kink"
        row.detail = kinks[0] + (f" (+{len(kinks) - 1} more)" if len(kinks) > 1 else "")


__all__ = ["check_model", "ModelCheckReport", "ModelCheckRow"]
