"""An exploding gradient, seen by GradientMonitor, cured by gradient clipping.

A 6-layer ReLU MLP whose weights start 3x too large (He init times 3): the gradient norm
grows by about 3x per layer, the monitor warns, and plain SGD diverges to NaN. The same
start with ``clip_grad_norm_(params, 1.0)`` before each step trains normally. The table
shows the loss and the gradient norm before clipping per step; the plot the loss curves.

Run: python examples/05_exploding_gradients.py [OUTPUT_DIR]
"""

import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib
import numpy as np

import handgrad as hg
from handgrad.inspect import GradientMonitor, GradientWarning

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def big_net(seed=0):
    rng = np.random.default_rng(seed)
    layers, width_in = [], 8
    for _ in range(5):
        linear = hg.Linear(width_in, 32, dtype=np.float64, rng=rng)
        hg.init.kaiming_normal_(linear.weight, nonlinearity="relu", rng=rng)
        linear.weight.data *= 3.0
        layers += [linear, hg.ReLU()]
        width_in = 32
    layers.append(hg.Linear(32, 1, dtype=np.float64, rng=rng))
    return hg.Sequential(*layers)


def train(clip, steps=30):
    model = big_net()
    monitor = GradientMonitor(model, explode_threshold=1e3, warn=False)
    opt = hg.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = hg.losses.MSELoss()
    losses, norms = [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            pred = model(x)
            if not np.all(np.isfinite(pred)):  # diverged: the loss would be NaN
                losses.append(float("inf"))
                norms.append(float("inf"))
                break
            loss = loss_fn(pred, y)
            model.backward(loss_fn.backward())
            grads = [p.grad for p in model.parameters()]
            norms.append(float(np.sqrt(sum(np.vdot(g, g) for g in grads))))
            if clip:
                hg.optim.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            monitor.end_step()
            losses.append(loss)
    monitor.detach()
    return losses, norms, monitor.warnings


out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
out_dir.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(1)
x = rng.standard_normal((64, 8))
y = x[:, :1] - 0.5 * x[:, 1:2]

warnings.simplefilter("ignore", GradientWarning)
runs = {"plain SGD": train(clip=False), "SGD + clip_grad_norm_(1.0)": train(clip=True)}
for name, (losses, norms, said) in runs.items():
    print(f"{name}: final loss {losses[-1]:.4g} after {len(losses)} steps")
    print(f"  {'step':>4s} {'loss':>11s} {'|grad|':>11s}")
    for i in (0, 1, 2, len(losses) - 1):
        print(f"  {i:>4d} {losses[i]:>11.4g} {norms[i]:>11.4g}")
    print(f"  monitor: {said[0].split(';')[0] if said else 'no warning'}")

fig, ax = plt.subplots(figsize=(5.5, 3.4))
for name, (losses, _, _) in runs.items():
    finite = [v if np.isfinite(v) else np.nan for v in losses]
    ax.semilogy(range(len(finite)), finite, marker="o", label=name)
ax.set_xlabel("step")
ax.set_ylabel("MSE loss")
ax.set_title("exploding gradients, and clipping")
ax.legend(fontsize="small")
fig.tight_layout()
path = out_dir / "exploding_gradients.png"
fig.savefig(path, dpi=80)
print(f"plot: {path}")
