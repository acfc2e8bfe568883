"""Watching gradients layer by layer: ``GradientMonitor`` and ``gradient_flow``.

    monitor = GradientMonitor(model, every=10)       # hooks on every layer
    hg.fit(model, loss_fn, opt, data, callbacks=[monitor])
    print(monitor.table())                           # the last recorded step, per layer

    print(gradient_flow(model, loss_fn, x, y))       # one forward/backward, no update

Everything is measured with the hooks of ``handgrad.hooks``; ``detach()`` removes them, so a
model that is no longer watched runs at full speed again.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..layer import Layer
from ..training.callbacks import Callback
from .flow import FlowRow, FlowTable
from .plot import _pyplot, _save

CURES = {
    "vanishing": "usual cures: ReLU-family activations with He (Kaiming) init, BatchNorm or "
                 "LayerNorm, residual connections, an LSTM/GRU instead of a plain RNN",
    "exploding": "usual cures: gradient clipping (clip_grad_norm=...), a lower learning rate, "
                 "normalization layers, smaller initial weights",
}


class GradientWarning(UserWarning):
    """Gradients that vanish or explode (``GradientMonitor``)."""


def _norm(a: Any) -> float:
    if not isinstance(a, np.ndarray) or a.size == 0:
        return math.nan
    return float(np.sqrt(np.vdot(a, a).real))


def watched_layers(model: Layer) -> list[tuple[str, Layer]]:
    """The layers a monitor watches: leaves and layers with parameters of their own."""
    out = []
    for name, module in model.named_modules():
        leaf = not any(True for _ in module.children())
        own = any(p is not None for p in module._parameters.values())
        if leaf or own:
            out.append((name or "(model)", module))
    return out


def _norm_or_none(a: Any) -> float | None:
    return _norm(a) if isinstance(a, np.ndarray) and a.size else None


class GradientMonitor(Callback):
    """Records per-layer activations and gradients every ``every`` steps; warns on trouble.

    Per watched layer (leaves and layers with parameters; see ``watched_layers``) and
    recorded step: activation mean, std and share of exact zeros; the norm of the gradient
    arriving at the layer (dL/d output) and leaving it (dL/d input); per parameter the
    gradient norm and the update-to-weight ratio ``||w_after - w_before|| / ||w_before||``
    (the change the optimizer step made, i.e. ``||lr * update|| / ||w||``; healthy training
    is often near 1e-3); histograms of activations and parameter gradients.

    Warnings (a ``GradientWarning``, each kind once, naming the layer): *vanishing* when the
    first trainable layer's gradient norm is below ``vanish_ratio`` times the last one's;
    *exploding* when any gradient norm exceeds ``explode_threshold`` or is not finite.

    Use it as a ``fit`` callback (it closes a step at every ``on_batch_end`` and removes its
    hooks at the end of training), or by hand: construct it (hooks go on), run forward,
    backward and the optimizer step, call ``monitor.end_step()``; ``detach()`` when done.

    Attributes:
        records: dicts ``step, layer, type, act_mean, act_std, zeros, grad_out_norm,
            grad_in_norm`` (one per layer and recorded step).
        param_records: dicts ``step, param, layer, grad_norm, weight_norm, update_ratio``.
        histograms: dicts ``step, tag, counts, edges, min, max, num, sum, sum_squares``
            (tags ``activation/<layer>`` and ``grad/<param>``).
        warnings: the messages issued.
    """

    def __init__(self, model: Layer, every: int = 1, *, bins: int = 30,
                 vanish_ratio: float = 1e-3, explode_threshold: float = 1e3,
                 warn: bool = True):
        if not isinstance(model, Layer):
            raise TypeError(f"GradientMonitor: expected a Layer, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"GradientMonitor: expected every >= 1, got {every!r}")
        self.model, self.every, self.bins = model, every, int(bins)
        self.vanish_ratio, self.explode_threshold = float(vanish_ratio), float(explode_threshold)
        self.warn = warn
        self.step = 0
        self.records: list[dict] = []
        self.param_records: list[dict] = []
        self.histograms: list[dict] = []
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._handles: list[Any] = []
        self._reset_step()
        self.attach()

    # ------------------------------------------------------------------ hooks
    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def attach(self) -> GradientMonitor:
        """Put the hooks on (done by the constructor; again after ``detach``)."""
        if self._handles:
            return self
        layers = watched_layers(self.model)
        self._layer_of = {}
        self._handles.append(self.model.register_forward_pre_hook(self._begin))
        for name, layer in layers:
            self._handles.append(layer.register_forward_hook(self._forward_hook(name)))
            self._handles.append(layer.register_full_backward_hook(self._backward_hook(name)))
            for pname, param in layer.named_parameters(recurse=False):
                full = pname if name == "(model)" else f"{name}.{pname}"
                self._layer_of[full] = name
                self._handles.append(param.register_hook(self._param_hook(full)))
        self._params = {n: p for n, p in self.model.named_parameters() if n in self._layer_of}
        self._types = {name: type(layer).__name__ for name, layer in layers}
        return self

    def detach(self) -> None:
        """Remove every hook: the model runs as if never watched."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _reset_step(self) -> None:
        self._begun = False
        self._recording = self.step % self.every == 0
        self._acts: dict[str, dict] = {}
        self._grads_out: dict[str, tuple[float, float]] = {}
        self._param_grads: dict[str, np.ndarray] = {}
        self._before: dict[str, np.ndarray] = {}

    def _begin(self, model: Layer, args: tuple) -> None:
        if self._begun or not self._recording or not model.caching:
            return
        self._begun = True
        self._before = {n: p.data.copy() for n, p in self._params.items()}

    def _forward_hook(self, name: str):
        def hook(layer: Layer, args: tuple, output: Any) -> None:
            if not self._recording or not layer.caching or not isinstance(output, np.ndarray):
                return
            y = output
            self._acts[name] = {"act_mean": float(y.mean()), "act_std": float(y.std()),
                                "zeros": float(np.count_nonzero(y == 0)) / max(y.size, 1)}
            self._histogram(f"activation/{name}", y)
        return hook

    def _backward_hook(self, name: str):
        def hook(layer: Layer, grad_input: tuple, grad_output: tuple) -> None:
            if self._recording:
                self._grads_out[name] = (_norm_or_none(grad_output[0]),
                                         _norm_or_none(grad_input[0]))
        return hook

    def _param_hook(self, full: str):
        def hook(grad: np.ndarray) -> None:
            if not self._recording:
                return
            seen = self._param_grads.get(full)
            if seen is None:
                self._param_grads[full] = np.array(grad, dtype=np.float64, copy=True)
            else:
                seen += grad
        return hook

    def _histogram(self, tag: str, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        if v.size == 0:
            return
        try:
            counts, edges = np.histogram(v, bins=self.bins)
        except ValueError:  # a range too wide for finite bins (values near overflow)
            return
        self.histograms.append({"step": self.step, "tag": tag, "counts": counts, "edges": edges,
                                "min": float(v.min()), "max": float(v.max()), "num": v.size,
                                "sum": float(v.sum()), "sum_squares": float(v @ v)})

    # ------------------------------------------------------------------ steps
    def end_step(self) -> None:
        """Close the current step: store its numbers, check for trouble, count it."""
        if self._recording and (self._acts or self._grads_out or self._param_grads):
            self._store()
        self.step += 1
        self._reset_step()

    def _store(self) -> None:
        step = self.step
        for name, _type in self._types.items():
            if name not in self._acts and name not in self._grads_out:
                continue
            grad_out, grad_in = (math.nan if v is None else v
                                 for v in self._grads_out.get(name, (None, None)))
            row = {"step": step, "layer": name, "type": _type, "act_mean": math.nan,
                   "act_std": math.nan, "zeros": math.nan, **self._acts.get(name, {}),
                   "grad_out_norm": grad_out, "grad_in_norm": grad_in}
            self.records.append(row)
        for pname, param in self._params.items():
            grad = self._param_grads.get(pname)
            if grad is None:
                continue
            before = self._before.get(pname)
            w_norm = _norm(before if before is not None else param.data)
            ratio = math.nan
            if before is not None and w_norm > 0:
                ratio = _norm(param.data - before) / w_norm
            self.param_records.append({"step": step, "param": pname,
                                       "layer": self._layer_of[pname], "grad_norm": _norm(grad),
                                       "weight_norm": w_norm, "update_ratio": ratio})
            self._histogram(f"grad/{pname}", grad)
        self._check(step)

    def _check(self, step: int) -> None:
        # exploding: every norm actually measured this step (missing gradients are None)
        measured = [(name, "gradient arriving at", go) for name, (go, _) in
                    self._grads_out.items() if go is not None]
        measured += [(self._layer_of[p], f"gradient of parameter '{p}' in", _norm(g))
                     for p, g in self._param_grads.items()]
        for name, what, value in measured:
            if not math.isfinite(value) or value > self.explode_threshold:
                self._warn("exploding", f"exploding gradient: the {what} layer '{name}' "
                           f"({self._types[name]}) has norm {value:.3g} (threshold "
                           f"{self.explode_threshold:g}) at step {step}")
                break
        table = self.table(step)
        ratio = table.first_to_last
        if math.isfinite(ratio) and ratio < self.vanish_ratio:
            trainable = [r for r in table.rows if math.isfinite(r.param_grad_norm)]
            first, last = trainable[0], trainable[-1]
            self._warn("vanishing", f"vanishing gradient: the first layer '{first.layer}' "
                       f"({first.type}) gets a gradient of norm {first.param_grad_norm:.3g}, "
                       f"{ratio:.2g} times that of the last layer '{last.layer}' "
                       f"({last.param_grad_norm:.3g}) at step {step}")

    def _warn(self, kind: str, message: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        message = f"GradientMonitor: {message}; {CURES[kind]}"
        self.warnings.append(message)
        if self.warn:
            warnings.warn(message, GradientWarning, stacklevel=3)

    # ------------------------------------------------------------------ reading
    @property
    def steps(self) -> list[int]:
        return sorted({r["step"] for r in self.records})

    def table(self, step: int | None = None) -> FlowTable:
        """The per-layer ``FlowTable`` of a recorded step (default: the last one)."""
        if step is None:
            if not self.records:
                raise ValueError("GradientMonitor.table: nothing recorded yet (run a forward "
                                 "and backward, then end_step())")
            step = self.records[-1]["step"]
        rows = [FlowRow(**{k: v for k, v in r.items() if k != "step"})
                for r in self.records if r["step"] == step]
        by_layer = {row.layer: row for row in rows}
        squares: dict[str, list[float]] = {}
        for r in self.param_records:
            if r["step"] == step and r["layer"] in by_layer:
                squares.setdefault(r["layer"], []).append(r)
        for layer, params in squares.items():
            row = by_layer[layer]
            row.param_grad_norm = math.sqrt(sum(p["grad_norm"] ** 2 for p in params))
            row.weight_norm = math.sqrt(sum(p["weight_norm"] ** 2 for p in params))
            ratios = [p["update_ratio"] for p in params if math.isfinite(p["update_ratio"])]
            row.update_ratio = max(ratios) if ratios else math.nan
        return FlowTable(rows, step, [w for w in self.warnings if f"at step {step}" in w])

    def series(self, layer_or_param: str, key: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of one quantity (a ``records`` or ``param_records`` key)."""
        source = self.param_records if key in ("grad_norm", "weight_norm", "update_ratio") \
            else self.records
        field_name = "param" if source is self.param_records else "layer"
        pairs = [(r["step"], r[key]) for r in source if r[field_name] == layer_or_param]
        return [s for s, _ in pairs], [v for _, v in pairs]

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """Each parameter's gradient norm (left) and update-to-weight ratio (right) over the
        recorded steps, log scale: the training-time picture of the gradient flow."""
        plt = _pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        names = list(dict.fromkeys(r["param"] for r in self.param_records))
        for ax, key, label in ((axes[0], "grad_norm", "|dL/dW|"),
                               (axes[1], "update_ratio", "|update| / |W|")):
            for name in names:
                steps, values = self.series(name, key)
                ok = [(s, v) for s, v in zip(steps, values) if math.isfinite(v) and v > 0]
                if ok:
                    ax.semilogy(*zip(*ok), label=name)
            ax.set_xlabel("step")
            ax.set_ylabel(label)
        axes[0].legend(fontsize="x-small", ncol=2 if len(names) > 8 else 1)
        fig.suptitle(title or "gradient monitor")
        fig.tight_layout()
        return _save(fig, plt, path)

    # ------------------------------------------------------------------ Callback
    def on_train_begin(self, logs: dict | None = None) -> None:
        self.attach()

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.end_step()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.detach()


def gradient_flow(model: Layer, loss_fn: Any, x: Any, y: Any) -> FlowTable:
    """One forward and backward of ``loss_fn(model(x), y)``; the per-layer ``FlowTable``.

    Nothing in the model changes: its parameter gradients and buffers (BatchNorm running
    statistics) are restored afterwards, and a model in plain eval mode runs as
    ``eval(backward=True)`` (its mode is restored too). No warning is issued; the table's
    ``warnings`` lists what a ``GradientMonitor`` would have said.
    """
    grads = {id(p): p.grad for p in model.parameters()}
    buffers = {name: buf.copy() for name, buf in model.named_buffers()}
    modes = [(m, m.training, m._eval_backward) for m in model.modules()]
    if not model.caching:
        model.eval(backward=True)
    monitor = GradientMonitor(model, warn=False)
    try:
        model.zero_grad()
        pred = model(x)
        loss_fn(pred, y)
        model.backward(loss_fn.backward())
        monitor._before = {}  # no optimizer step: no update ratio
        monitor.end_step()
    finally:
        monitor.detach()
        for p in model.parameters():
            p.grad = grads[id(p)]
        for name, module in model.named_modules():
            for bname in list(module._buffers):
                key = f"{name}.{bname}" if name else bname
                if key in buffers:
                    module._buffers[bname] = buffers[key]
        for m, training, eval_backward in modes:
            object.__setattr__(m, "training", training)
            object.__setattr__(m, "_eval_backward", eval_backward)
    table = monitor.table()
    table.warnings = list(monitor.warnings)
    return table


__all__ = ["GradientMonitor", "GradientWarning", "FlowTable", "FlowRow", "gradient_flow",
           "watched_layers"]
