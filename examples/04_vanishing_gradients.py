"""Vanishing gradients in a 10-layer sigmoid MLP, and the three cures.

The same 10-layer network four ways: sigmoid with the default init (the gradient reaching
the first layer is ~1e-8 of the last layer's: it barely learns), ReLU with He init,
sigmoid with BatchNorm before every activation, and sigmoid blocks with residual
connections. For each, one forward/backward with ``handgrad.inspect.gradient_flow`` prints
the first layer's gradient norm and its ratio to the last layer's, and the per-layer
gradient norms go into one plot.

Run: python examples/04_vanishing_gradients.py [OUTPUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import matplotlib
import numpy as np

import handgrad as hg
from handgrad.inspect import gradient_flow

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def deep_net(kind, depth=10, width=32, inputs=16, outputs=4, seed=0):
    rng = np.random.default_rng(seed)
    layers, width_in = [], inputs
    for i in range(depth - 1):
        linear = hg.Linear(width_in, width, dtype=np.float64, rng=rng)
        if kind == "sigmoid":
            layers += [linear, hg.Sigmoid()]
        elif kind == "relu + He init":
            hg.init.kaiming_normal_(linear.weight, nonlinearity="relu", rng=rng)
            hg.init.zeros_(linear.bias)
            layers += [linear, hg.ReLU()]
        elif kind == "sigmoid + BatchNorm":
            layers += [linear, hg.BatchNorm1d(width, dtype=np.float64), hg.Sigmoid()]
        else:  # residual: x + sigmoid(W x + b)
            block = hg.Sequential(linear, hg.Sigmoid())
            layers.append(block if i == 0 else hg.Residual(block))
        width_in = width
    layers.append(hg.Linear(width_in, outputs, dtype=np.float64, rng=rng))
    return hg.Sequential(*layers)


out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
out_dir.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(1)
x, y = rng.standard_normal((64, 16)), rng.integers(0, 4, 64)
loss_fn = hg.losses.CrossEntropyLoss()

print(f"{'network':<22s} {'|dL/dW| first':>14s} {'|dL/dW| last':>13s} {'first/last':>11s}  "
      f"warning")
tables = {}
for kind in ("sigmoid", "relu + He init", "sigmoid + BatchNorm", "sigmoid + residual"):
    table = gradient_flow(deep_net(kind), loss_fn, x, y)
    tables[kind] = table
    trainable = [r for r in table.rows if np.isfinite(r.param_grad_norm)]
    warned = "vanishing" if any("vanishing" in w for w in table.warnings) else "-"
    print(f"{kind:<22s} {trainable[0].param_grad_norm:>14.3e} "
          f"{trainable[-1].param_grad_norm:>13.3e} {table.first_to_last:>11.2e}  {warned}")

fig, ax = plt.subplots(figsize=(6, 3.6))
for kind, table in tables.items():
    norms = [r.param_grad_norm for r in table.rows if r.type == "Linear"]
    ax.semilogy(range(1, len(norms) + 1), norms, marker="o", label=kind)
ax.set_xlabel("Linear layer (input side left)")
ax.set_ylabel("|dL/dW|")
ax.set_title("gradient reaching each layer of a 10-layer MLP")
ax.legend(fontsize="small")
fig.tight_layout()
path = out_dir / "vanishing_gradients.png"
fig.savefig(path, dpi=80)
print(f"plot: {path}")
