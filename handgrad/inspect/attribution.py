"""Gradient attribution: which inputs a prediction depends on.

    a = saliency(model, x)                       # |d f_target / d x|, target = argmax
    a = integrated_gradients(model, x, target=3) # a.delta: completeness error per sample
    a.plot("saliency.png")                       # heat maps over images / bars per token

``f`` is the model's output for the ``target`` class (logit ``out[i, target[i]]``), one scalar
per sample. With ``layer=`` (e.g. ``model.embedding``) the attribution is with respect to that
layer's *output* instead of the model input -- what a sequence model with integer ids needs:
the result then also holds ``per_token`` scores (the attribution summed over the last axis,
or its norm for saliency). The model runs in eval mode with backward caches (dropout off,
BatchNorm on running statistics) and gets its mode, parameter gradients and
``needs_input_grad`` back afterwards.

Formulas (x the input or layer output, b the baseline, g(z) = d f / d z):

* saliency: ``|g(x)|`` (Simonyan et al. 2014);
* input × gradient: ``x * g(x)``;
* integrated gradients: ``(x - b) * mean_k g(b + a_k (x - b))`` with midpoints
  ``a_k = (k + 1/2) / steps`` (Sundararajan et al. 2017); completeness says the attributions
  of a sample sum to ``f(x) - f(b)``, and ``delta`` is the difference (the Riemann error);
* SmoothGrad: the mean saliency over ``n_samples`` copies of x with Gaussian noise of std
  ``noise_level * (max x - min x)`` (Smilkov et al. 2017).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..layer import Layer
from ..random import resolve_rng
from .plot import _pyplot, _save


@dataclass
class Attribution:
    """Attributions of one method for a batch.

    Attributes:
        values: same shape as the input (or the layer output with ``layer=``).
        target: the class index explained, per sample (N,).
        method: ``'saliency'``, ``'input_x_gradient'``, ``'integrated_gradients'`` or
            ``'smoothgrad'``.
        inputs: the input the attributions are for (or the layer output).
        output: f(x) per sample.
        delta: integrated gradients only: ``sum(values) - (f(x) - f(baseline))`` per sample.
        baseline_output: integrated gradients only: f(baseline) per sample.
    """

    values: NDArray
    target: NDArray
    method: str
    inputs: NDArray
    output: NDArray
    delta: NDArray | None = None
    baseline_output: NDArray | None = None

    @property
    def completeness_error(self) -> float:
        """Largest ``|delta|`` over the batch (integrated gradients), else NaN."""
        return float(np.max(np.abs(self.delta))) if self.delta is not None else float("nan")

    @property
    def per_token(self) -> NDArray:
        """One score per position of an (N, T, D) attribution: the sum over D (the norm
        over D for saliency and SmoothGrad, whose values are magnitudes)."""
        if self.values.ndim < 2:
            raise ValueError(f"Attribution.per_token: expected (N, T, D) values, got shape "
                             f"{self.values.shape}")
        if self.method in ("saliency", "smoothgrad"):
            return np.sqrt((self.values ** 2).sum(axis=-1))
        return self.values.sum(axis=-1)

    @property
    def heatmap(self) -> NDArray:
        """(N, H, W) map of an image attribution: |values| summed over channels."""
        v = np.abs(self.values)
        return v.sum(axis=1) if v.ndim == 4 else v

    def plot(self, path: str | os.PathLike, *, tokens: list[list[str]] | None = None,
             target_names: Any = None, max_samples: int = 6, title: str | None = None) -> Path:
        """Images (N, [C,] H, W): input over heat map per sample; sequences (N, T, D):
        bars per token (labelled with ``tokens`` when given). ``target_names[k]`` names
        class k in the labels."""
        plt = _pyplot()

        def label(i: int) -> str:
            k = int(self.target[i])
            return f"target {k if target_names is None else repr(target_names[k])}"

        n = min(len(self.values), max_samples)
        image = self.values.ndim == 4 or (self.values.ndim == 3 and tokens is None
                                          and self.values.shape[-1] == self.values.shape[-2])
        if image:
            fig, axes = plt.subplots(2, n, figsize=(1.8 * n + 0.4, 3.8), squeeze=False)
            pictures = self.inputs if self.inputs.ndim == 3 else self.inputs.mean(axis=1)
            for i in range(n):
                axes[0, i].imshow(pictures[i], cmap="gray")
                axes[0, i].set_title(label(i), fontsize="small")
                axes[1, i].imshow(self.heatmap[i], cmap="hot")
                for ax in axes[:, i]:
                    ax.set_axis_off()
        else:
            scores = self.per_token if self.values.ndim == 3 else self.values
            fig, axes = plt.subplots(n, 1, figsize=(max(4.0, 0.35 * scores.shape[1] + 1),
                                                    1.4 * n + 0.6), squeeze=False)
            for i in range(n):
                ax = axes[i, 0]
                ax.bar(np.arange(scores.shape[1]), scores[i], color="tab:red")
                if tokens is not None:
                    ax.set_xticks(np.arange(scores.shape[1]), tokens[i], fontsize="small")
                ax.set_ylabel(label(i), fontsize="small")
        fig.suptitle(title or self.method.replace("_", " "))
        fig.tight_layout()
        return _save(fig, plt, path)


class _Probe:
    """Runs ``f = model(.)[i, target_i]`` and its gradient at the input or a layer's output,
    with the model in eval(backward=True) and its parameters frozen; restores all on exit."""

    def __init__(self, model: Layer, layer: Layer | None):
        if not isinstance(model, Layer):
            raise TypeError(f"attribution: expected a Layer model, got {type(model).__name__}")
        if layer is not None and not any(m is layer for m in model.modules()):
            raise ValueError(f"attribution: layer {layer.describe()} is not part of the model")
        self.model, self.layer = model, layer

    def __enter__(self) -> _Probe:
        m = self.model
        self._modes = [(mod, mod.training, mod._eval_backward) for mod in m.modules()]
        self._frozen = [(p, p.requires_grad, p.grad) for p in m.parameters()]
        self._needed = m.needs_input_grad
        m.eval(backward=True)
        for p, _, _ in self._frozen:
            p.requires_grad = False
        m.needs_input_grad = True
        self._handles = []
        if self.layer is not None:
            self._handles.append(self.layer.register_forward_hook(self._at_layer))
            self._handles.append(self.layer.register_full_backward_pre_hook(self._grad_at_layer))
        self.transform: Callable | None = None
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        for p, requires, grad in self._frozen:
            p.requires_grad, p.grad = requires, grad
        for mod, training, eval_backward in self._modes:
            object.__setattr__(mod, "training", training)
            object.__setattr__(mod, "_eval_backward", eval_backward)
        self.model.needs_input_grad = self._needed

    def _at_layer(self, layer: Layer, args: tuple, output: NDArray) -> NDArray:
        self.activation = output
        return self.transform(output) if self.transform is not None else output

    def _grad_at_layer(self, layer: Layer, grad_output: tuple) -> None:
        self.layer_grad = np.array(grad_output[0], copy=True)

    def run(self, x: Any, target: NDArray | None, transform: Callable | None = None):
        """``(f, grad, z)``: f per sample, df/dz and z (the input, or the layer output,
        both after ``transform``)."""
        if self.layer is None:
            z = transform(x) if transform is not None else x
            out = self.model(z)
        else:
            self.transform = transform
            out = self.model(x)
            self.transform = None
            z = self.activation if transform is None else transform(self.activation)
        out = np.asarray(out)
        if out.ndim != 2:
            raise ValueError(f"attribution: expected model outputs of shape (N, classes), got "
                             f"{out.shape}")
        if target is None:
            target = out.argmax(axis=1)
        rows = np.arange(len(out))
        grad_out = np.zeros_like(out)
        grad_out[rows, target] = 1
        grad = self.model.backward(grad_out)
        if self.layer is not None:
            grad = self.layer_grad
        if grad is None:
            raise ValueError("attribution: the model returned no input gradient (integer "
                             "ids?); pass layer=model.embedding to attribute to the embedding")
        return out[rows, target].astype(np.float64), np.asarray(grad), z, target


def _targets(target: Any, n: int) -> NDArray | None:
    if target is None:
        return None
    t = np.asarray(target, dtype=np.int64).reshape(-1)
    if t.size == 1:
        t = np.full(n, int(t[0]))
    if t.shape != (n,):
        raise ValueError(f"attribution: expected target as an int or {n} ints, got shape "
                         f"{np.shape(target)}")
    return t


def _as_input(model: Layer, x: Any, layer: Layer | None) -> NDArray:
    x = np.asarray(x)
    if layer is None and not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"attribution: the input has dtype {x.dtype} (integer ids?), which has "
                         f"no gradient; pass layer=model.embedding to attribute to the "
                         f"embedding output")
    return x


def saliency(model: Layer, x: Any, target: Any = None, *, layer: Layer | None = None
             ) -> Attribution:
    """``|d f_target / d x|`` per input element (or per element of ``layer``'s output)."""
    x = _as_input(model, x, layer)
    with _Probe(model, layer) as probe:
        f, grad, z, t = probe.run(x, _targets(target, len(x)))
    return Attribution(np.abs(grad), t, "saliency", z, f)


def input_x_gradient(model: Layer, x: Any, target: Any = None, *,
                     layer: Layer | None = None) -> Attribution:
    """``x * d f_target / d x`` (or the same at ``layer``'s output)."""
    x = _as_input(model, x, layer)
    with _Probe(model, layer) as probe:
        f, grad, z, t = probe.run(x, _targets(target, len(x)))
    return Attribution(z * grad, t, "input_x_gradient", z, f)


def integrated_gradients(model: Layer, x: Any, target: Any = None, baseline: Any = None,
                         steps: int = 50, *, layer: Layer | None = None) -> Attribution:
    """Integrated gradients from ``baseline`` (zeros by default) to ``x`` in ``steps``
    midpoint steps; ``result.delta`` is the completeness error per sample.

    With ``layer=`` the path runs through that layer's output (baseline: zeros of its shape
    unless given), the rest of the model above it unchanged.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"integrated_gradients: expected steps >= 1, got {steps!r}")
    x = _as_input(model, x, layer)
    with _Probe(model, layer) as probe:
        f_x, _, z, t = probe.run(x, _targets(target, len(x)))
        b = np.zeros_like(z) if baseline is None else np.broadcast_to(
            np.asarray(baseline, dtype=z.dtype), z.shape)
        f_b = probe.run(x, t, lambda a: np.array(b, copy=True))[0]
        total = np.zeros(z.shape, dtype=np.float64)
        for k in range(steps):
            alpha = (k + 0.5) / steps
            total += probe.run(x, t, lambda a, alpha=alpha: (b + alpha * (a - b)).astype(
                a.dtype))[1]
    values = (z - b) * (total / steps)
    delta = values.reshape(len(z), -1).sum(axis=1) - (f_x - f_b)
    return Attribution(values, t, "integrated_gradients", z, f_x, delta, f_b)


def smoothgrad(model: Layer, x: Any, target: Any = None, n_samples: int = 25,
               noise_level: float = 0.15, rng: Any = None, *, layer: Layer | None = None
               ) -> Attribution:
    """Mean ``|gradient|`` over ``n_samples`` noisy copies of x (std ``noise_level`` times
    the range of x), drawn from ``rng``; the target is fixed at the clean input's."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"smoothgrad: expected n_samples >= 1, got {n_samples!r}")
    gen = resolve_rng(rng)
    x = _as_input(model, x, layer)
    with _Probe(model, layer) as probe:
        f, _, z, t = probe.run(x, _targets(target, len(x)))
        sigma = noise_level * float(np.ptp(z)) if z.size else 0.0
        total = np.zeros(z.shape, dtype=np.float64)
        for _ in range(n_samples):
            noise = gen.standard_normal(z.shape) * sigma
            total += np.abs(probe.run(x, t, lambda a, e=noise: (a + e).astype(a.dtype))[1])
    return Attribution(total / n_samples, t, "smoothgrad", z, f)


__all__ = ["Attribution", "saliency", "input_x_gradient", "integrated_gradients", "smoothgrad"]
