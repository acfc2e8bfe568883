"""``FlowTable``: per-layer gradient statistics of one step (``gradient_flow``,
``GradientMonitor.table``), printable and plottable."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .plot import _pyplot, _save


@dataclass
class FlowRow:
    """One layer of one step (see ``FlowTable``)."""

    layer: str
    type: str
    act_mean: float = math.nan
    act_std: float = math.nan
    zeros: float = math.nan  # share of exact zeros in the output (dead ReLUs)
    grad_out_norm: float = math.nan  # gradient arriving at the layer (dL/d output)
    grad_in_norm: float = math.nan  # gradient leaving it (dL/d input)
    param_grad_norm: float = math.nan  # norm over all the layer's own parameter gradients
    weight_norm: float = math.nan
    update_ratio: float = math.nan  # ||w_after - w_before|| / ||w_before|| (optimizer step)


@dataclass
class FlowTable:
    """Per-layer gradient statistics of one step, in forward order.

    ``str(table)`` prints it; ``table.rows`` holds ``FlowRow`` objects; ``table.plot(path)``
    saves a bar chart (log scale) of the gradient norms per layer.
    """

    rows: list[FlowRow]
    step: int = 0
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, layer: str) -> FlowRow:
        for row in self.rows:
            if row.layer == layer:
                return row
        raise KeyError(f"FlowTable: no layer {layer!r} (layers: "
                       f"{', '.join(r.layer for r in self.rows)})")

    @property
    def first_to_last(self) -> float:
        """Parameter-gradient norm of the first trainable layer over that of the last."""
        norms = [r.param_grad_norm for r in self.rows if math.isfinite(r.param_grad_norm)]
        if len(norms) < 2 or norms[-1] == 0:
            return math.nan
        return norms[0] / norms[-1]

    def __str__(self) -> str:
        head = (f"{'layer':<16s} {'type':<12s} {'act mean':>9s} {'act std':>9s} {'zeros':>6s} "
                f"{'|dL/dout|':>10s} {'|dL/din|':>10s} {'|dL/dW|':>10s} {'update/W':>9s}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.layer[:16]:<16s} {r.type[:12]:<12s} {_fmt(r.act_mean, 9)} "
                         f"{_fmt(r.act_std, 9)} {_fmt(r.zeros, 6, '.2f')} "
                         f"{_fmt(r.grad_out_norm, 10)} {_fmt(r.grad_in_norm, 10)} "
                         f"{_fmt(r.param_grad_norm, 10)} {_fmt(r.update_ratio, 9)}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """Gradient norms per layer (arriving gradient and parameter gradient), log scale."""
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(self.rows) + 2), 3.4))
        xs = np.arange(len(self.rows))
        for offset, key, label in ((-0.2, "grad_out_norm", "|dL/d output|"),
                                   (0.2, "param_grad_norm", "|dL/d weights|")):
            values = np.array([getattr(r, key) for r in self.rows], dtype=float)
            ok = np.isfinite(values) & (values > 0)
            ax.bar(xs[ok] + offset, values[ok], width=0.4, label=label)
        ax.set_yscale("log")
        ax.set_xticks(xs, [r.layer for r in self.rows], rotation=60, fontsize="small")
        ax.set_ylabel("gradient norm")
        ax.set_title(title or "gradient flow (input left, output right)")
        ax.legend(fontsize="small")
        fig.tight_layout()
        return _save(fig, plt, path)


def _fmt(value: float, width: int, spec: str = ".2e") -> str:
    return f"{'-':>{width}s}" if not math.isfinite(value) and not math.isinf(value) \
        else f"{value:>{width}{spec}}"


__all__ = ["FlowRow", "FlowTable"]
