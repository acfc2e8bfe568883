"""Which pixels does the digits CNN look at? Saliency and integrated gradients.

``handgrad.models.digits_cnn`` is trained for two epochs on scikit-learn's 8x8 digits, then
for a few test digits ``saliency`` (|d logit / d pixel|) and ``integrated_gradients`` (from
a black image; their sums match logit(x) - logit(black) up to the printed completeness
error) show where the evidence for the predicted class lies. The plot shows each digit
over its saliency map.

Run: python examples/07_saliency_digits.py [OUTPUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

import handgrad as hg
from handgrad.inspect import integrated_gradients, saliency

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
x, y = hg.data.load_digits()
x = x.astype(np.float32)
(x_train, y_train), (x_test, y_test) = hg.data.train_val_split(x, y, 0.2, rng=0, stratify=True)
mean, std = x_train.mean(), x_train.std()
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

model = hg.models.digits_cnn(rng=0)
hg.fit(model, hg.losses.CrossEntropyLoss(), hg.optim.Adam(model.parameters(), lr=3e-3),
       (x_train, y_train), epochs=2, batch_size=64, rng=0, progress=False)
model.eval()
accuracy = float((model(x_test).argmax(axis=1) == y_test).mean())
print(f"test accuracy after 2 epochs: {accuracy:.3f}")

digits = x_test[:6]
black = (0.0 - mean) / std  # the baseline: an all-black image, normalized
s = saliency(model, digits)
ig = integrated_gradients(model, digits, baseline=black, steps=32)
print(f"{'digit':>5s} {'label':>5s} {'pred':>4s} {'logit':>8s} {'sum IG':>8s} "
      f"{'logit(x)-logit(black)':>22s} {'error':>9s}")
for i in range(len(digits)):
    gap = ig.output[i] - ig.baseline_output[i]
    print(f"{i:>5d} {y_test[i]:>5d} {s.target[i]:>4d} {ig.output[i]:>8.3f} "
          f"{ig.values[i].sum():>8.3f} {gap:>22.3f} {ig.delta[i]:>9.1e}")
print(f"completeness error (max |delta|): {ig.completeness_error:.2e}")
path = s.plot(out_dir / "saliency_digits.png", title="digits CNN: saliency of the predicted class")
ig.plot(out_dir / "integrated_gradients_digits.png", title="integrated gradients")
print(f"plot: {path}")
