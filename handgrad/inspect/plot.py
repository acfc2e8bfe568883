"""Plots of a training run, saved as PNG files (matplotlib, the optional ``plot`` extra).

    from handgrad.inspect import plot_history, plot_grad_norms
    plot_history(history, "curves.png")        # loss and accuracy per epoch, train and val
    plot_grad_norms(history, "grad_norms.png") # per-layer gradient norms, log scale

Both take the ``History`` that ``handgrad.fit`` returns (or its ``.history`` dict for
``plot_history``) and use matplotlib's non-interactive Agg backend, so they work on a
machine without a display.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "handgrad.inspect.plot needs matplotlib, which is not installed; install it with "
            "`pip install matplotlib` (or `pip install -e \".[plot]\"`)"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _series(history: Any) -> tuple[list[int], dict[str, list[float]]]:
    data = getattr(history, "history", history)
    if not isinstance(data, dict):
        raise TypeError(
            f"plot: expected a History or a dict of lists, got {type(history).__name__}"
        )
    n = max((len(v) for v in data.values()), default=0)
    epochs = list(getattr(history, "epoch", None) or range(1, n + 1))
    return epochs, data


def _finite(values: list[float]) -> bool:
    return any(math.isfinite(v) for v in values)


def plot_history(history: Any, path: str | os.PathLike, title: str | None = None) -> Path:
    """Loss (left) and accuracy (right) per epoch, training and validation, to a PNG file.

    Panels without data are left out (no accuracy panel for a regression run). Returns the
    path written.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs, data = _series(history)
    panels = [(key, label) for key, label in (("loss", "loss"), ("accuracy", "accuracy"))
              if _finite(data.get(key, [])) or _finite(data.get("val_" + key, []))]
    if not panels:
        raise ValueError("plot_history: the history has no loss or accuracy values to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for prefix, name, style in (("", "train", "-o"), ("val_", "validation", "--s")):
            values = data.get(prefix + key)
            if values and _finite(values):
                ax.plot(epochs[:len(values)], values, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, plt, path)


def plot_grad_norms(history: Any, path: str | os.PathLike, title: str | None = None) -> Path:
    """Per-layer gradient norms per epoch on a log scale, to a PNG file.

    One line per layer (the L2 norm of that layer's parameter gradients, averaged over the
    epoch's optimizer steps): a layer whose line falls by orders of magnitude towards the
    input is a vanishing gradient; one that climbs is exploding. Returns the path written.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    norms = getattr(history, "grad_norms", None)
    if not norms:
        raise ValueError(
            "plot_grad_norms: the history has no gradient norms (pass the History returned "
            "by handgrad.fit)"
        )
    epochs = list(getattr(history, "epoch", None) or range(1, len(next(iter(norms.values()))) + 1))
    fig, ax = plt.subplots(figsize=(8, 5))
    names = list(norms)
    if len(names) <= 10:
        colors = [plt.get_cmap("tab10")(i) for i in range(len(names))]
    else:  # input layers dark, output layers light
        colors = [plt.get_cmap("viridis")(i / (len(names) - 1)) for i in range(len(names))]
    types = getattr(history, "layer_types", {}) or {}
    for name, color in zip(names, colors):
        values = [v if v > 0 else math.nan for v in norms[name]]
        label = f"{name} ({types[name]})" if name in types else name
        ax.plot(epochs[:len(values)], values, "-o", markersize=3, label=label, color=color)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient L2 norm (mean over steps)")
    ax.set_title(title or "per-layer gradient norms")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", ncol=2 if len(names) > 8 else 1, loc="best")
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


__all__ = ["plot_history", "plot_grad_norms"]
