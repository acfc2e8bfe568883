"""How far back does the gradient reach? A plain RNN against an LSTM over 100 time steps.

``handgrad.inspect.bptt_profile`` puts a loss on the last output and measures |dL/dh_t| for
every earlier step with the layers' own hand-written BPTT. The plain tanh RNN multiplies
the gradient by W_hh^T diag(1 - h^2) at every step, so it dies geometrically; the LSTM's
cell state carries it through the forget gate, which (here with the common forget-bias
trick, bias 3: f = sigmoid(3) ~ 0.95) stays open. The LSTM with the default init is shown
too: without an open forget gate it forgets almost as fast. The second panel asks how much
truncated BPTT (k steps) changes the parameter gradient.

Run: python examples/06_rnn_vs_lstm.py [OUTPUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

import handgrad as hg
from handgrad.inspect import bptt_profile, plot_bptt

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
T, N, F, H = 100, 4, 8, 32
x = np.random.default_rng(0).standard_normal((T, N, F))

rnn = hg.RNN(F, H, dtype=np.float64, rng=1)
lstm_default = hg.LSTM(F, H, dtype=np.float64, rng=1)
lstm = hg.LSTM(F, H, dtype=np.float64, rng=1)
lstm.bias_ih_l0.data[H:2 * H] = 3.0  # gate order i, f, g, o: the forget gate's bias
lstm.bias_hh_l0.data[H:2 * H] = 0.0

profiles = {name: bptt_profile(layer, x, truncations=(1, 5, 10, 25, 50))
            for name, layer in (("RNN", rnn), ("LSTM (default init)", lstm_default),
                                ("LSTM (forget bias 3)", lstm))}
print(f"{'steps back':>10s} " + " ".join(f"{name:>21s}" for name in profiles))
for back in (0, 1, 5, 10, 25, 50, 99):
    print(f"{back:>10d} " + " ".join(f"{p.grad_norms[T - 1 - back]:>21.3e}"
                                     for p in profiles.values()))
print(f"{'reach':>10s} " + " ".join(f"{p.reach():>15d} steps" for p in profiles.values()))
print(f"{'cos k=10':>10s} " + " ".join(f"{dict(p.truncation)[10]:>21.4f}"
                                       for p in profiles.values()))
f_sat = profiles["LSTM (forget bias 3)"].saturation["f"].mean()
print(f"share of saturated forget gates (forget bias 3): {f_sat:.2f}")
path = plot_bptt(profiles, out_dir / "rnn_vs_lstm.png")
print(f"plot: {path}")
