"""What a training run measured: ``History``, and the metrics ``fit`` and ``evaluate`` compute.

``accuracy_counts(pred, target)`` understands class-index targets (``(N,)``, ``(N, T)``,
``(N, d1, ...)``), one-hot/probability targets and binary labels against one logit.
Losses and metrics are averaged over samples (a mean-reduced loss is weighted by the number
of target elements of each batch, so unequal batches average correctly).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray


class History:
    """What ``fit`` measured, one entry per epoch.

    Attributes:
        history: dict of lists, as in Keras: ``loss``, one list per metric (``accuracy``),
            ``val_loss`` and ``val_<metric>`` when there is validation data, ``lr`` (the
            learning rate the epoch started with) and ``time`` (seconds).
        epoch: the epoch numbers (1-based).
        grad_norms: layer name -> list of per-epoch gradient norms (the L2 norm of all the
            layer's own parameter gradients at each optimizer step, averaged over the
            epoch, before clipping).
        layer_types: layer name -> class name (``'Conv2d'``), for plot legends.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.grad_norms: dict[str, list[float]] = {}
        self.layer_types: dict[str, str] = {}

    def append(self, epoch: int, logs: dict[str, float],
               grad_norms: dict[str, float] | None = None) -> None:
        n = len(self.epoch)
        for key, value in logs.items():
            self.history.setdefault(key, [math.nan] * n).append(float(value))
        for key, values in self.history.items():
            if key not in logs:
                values.append(math.nan)
        for name, value in (grad_norms or {}).items():
            self.grad_norms.setdefault(name, [math.nan] * n).append(float(value))
        for values in self.grad_norms.values():
            if len(values) == n:
                values.append(math.nan)
        self.epoch.append(int(epoch))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def last(self) -> dict[str, float]:
        """The last epoch's numbers."""
        return {key: values[-1] for key, values in self.history.items()} if self.epoch else {}

    def to_json(self) -> str:
        return json.dumps({"epoch": self.epoch, "history": self.history,
                           "grad_norms": self.grad_norms, "layer_types": self.layer_types})

    @classmethod
    def from_json(cls, text: str) -> History:
        data = json.loads(text)
        history = cls()
        history.epoch = [int(e) for e in data["epoch"]]
        history.history = {k: [float(v) for v in vs] for k, vs in data["history"].items()}
        history.grad_norms = {k: [float(v) for v in vs] for k, vs in data["grad_norms"].items()}
        history.layer_types = dict(data.get("layer_types", {}))
        return history

    def __repr__(self) -> str:
        keys = ", ".join(self.history)
        return f"History(epochs={len(self.epoch)}, keys=[{keys}])"


def _num_samples(x: Any) -> int:
    return int(np.shape(x)[0]) if np.ndim(x) else 1


def _loss_weight(y: Any) -> int:
    """How many elements a mean-reduced loss averages over (up to a constant per problem)."""
    return int(np.size(y)) if isinstance(y, np.ndarray) else 1


# ---------------------------------------------------------------------------- metrics
def accuracy_counts(pred: NDArray, target: NDArray) -> tuple[int, int] | None:
    """(correct, total) for classification outputs, or None when ``pred`` is not that.

    Integer targets are class indices: the class axis of ``pred`` is the last one when
    ``pred.shape[:-1] == target.shape`` (e.g. (N, C) or (N, T, C)), else axis 1 ((N, C, d1, ...)).
    Float targets of ``pred``'s shape with a single output are binary labels against logits
    (``pred > 0``); float targets of ``pred``'s shape otherwise are one-hot or probabilities.
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if np.issubdtype(target.dtype, np.integer) and pred.ndim == target.ndim + 1:
        if pred.shape[:-1] == target.shape:
            guess = pred.argmax(axis=-1)
        elif pred.shape[:1] + pred.shape[2:] == target.shape:
            guess = pred.argmax(axis=1)
        else:
            return None
        return int(np.count_nonzero(guess == target)), int(target.size)
    if pred.shape == target.shape and pred.ndim >= 1:
        if pred.ndim == 1 or pred.shape[-1] == 1:
            return int(np.count_nonzero((pred > 0) == (target > 0.5))), int(target.size)
        guess, truth = pred.argmax(axis=-1), target.argmax(axis=-1)
        return int(np.count_nonzero(guess == truth)), int(truth.size)
    return None


class _MetricAccumulator:
    """Running sample-weighted means of the loss and the metrics over one pass."""

    def __init__(self, metrics: Sequence[str | Callable]):
        self.metrics = list(metrics)
        self.names = [_metric_name(m) for m in self.metrics]
        self.loss_sum = 0.0
        self.loss_weight = 0
        self.sums = dict.fromkeys(self.names, 0.0)
        self.counts = dict.fromkeys(self.names, 0)
        self.samples = 0

    def update(self, pred: NDArray, y: Any, loss: float | None, n: int) -> None:
        self.samples += n
        if loss is not None:
            w = _loss_weight(y)
            self.loss_sum += loss * w
            self.loss_weight += w
        for metric, name in zip(self.metrics, self.names):
            if metric == "accuracy":
                counts = accuracy_counts(pred, y)
                if counts is not None:
                    self.sums[name] += counts[0]
                    self.counts[name] += counts[1]
            else:
                self.sums[name] += float(metric(pred, y)) * n
                self.counts[name] += n

    def reduce(self, all_sum: Callable[[np.ndarray], np.ndarray]) -> None:
        """Replace every sum and count by its total over the processes of a data-parallel
        run (``all_sum``: element-wise sum of a float64 array over the ranks)."""
        packed = np.array([self.loss_sum, self.loss_weight, self.samples,
                           *(self.sums[n] for n in self.names),
                           *(self.counts[n] for n in self.names)], dtype=np.float64)
        total = all_sum(packed)
        k = len(self.names)
        self.loss_sum, self.loss_weight = float(total[0]), float(total[1])
        self.samples = int(round(total[2]))
        for i, name in enumerate(self.names):
            self.sums[name] = float(total[3 + i])
            self.counts[name] = int(round(total[3 + k + i]))

    def result(self, prefix: str = "") -> dict[str, float]:
        out = {}
        if self.loss_weight:
            out[prefix + "loss"] = self.loss_sum / self.loss_weight
        for name in self.names:
            if self.counts[name]:
                out[prefix + name] = self.sums[name] / self.counts[name]
        return out


def _metric_name(metric: str | Callable) -> str:
    if isinstance(metric, str):
        if metric not in ("accuracy", "acc"):
            raise ValueError(
                f"fit: unknown metric {metric!r}; use 'accuracy' or a function "
                f"f(pred, target) -> float"
            )
        return "accuracy"
    if callable(metric):
        return getattr(metric, "__name__", type(metric).__name__)
    raise TypeError(f"fit: expected a metric name or function, got {type(metric).__name__}")


__all__ = ["History", "accuracy_counts"]
