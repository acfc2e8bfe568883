"""Fit y = 2x + 3 (plus a little noise) with Linear(1, 2) -> ReLU -> Linear(2, 1).

First one forward/backward pass, printing every named parameter with its value and its
gradient; then full-batch gradient descent until the mean squared error is at the level of
the noise.

Run: python examples/03_fit_line.py
"""

import numpy as np

import handgrad as hg

rng = np.random.default_rng(0)
x = np.linspace(-1, 1, 10, dtype=np.float32).reshape(10, 1)                # (N, 1)
noise = (0.05 * rng.standard_normal((10, 1))).astype(np.float32)
y = 2 * x + 3 + noise

model = hg.Sequential(hg.Linear(1, 2, rng=rng), hg.ReLU(), hg.Linear(2, 1, rng=rng))
criterion = hg.losses.MSELoss()

loss = criterion(model(x), y)
model.backward(criterion.backward())
print(f"after one backward pass (loss {loss:.6f}):")
for name, p in model.named_parameters():
    print(f"  {name:<9} value {np.array2string(p.data.ravel(), precision=4):<22} "
          f"grad {np.array2string(p.grad.ravel(), precision=4)}")

# "good": within 10% of the error of the best straight line (least squares) through the data
slope, intercept = np.polyfit(x[:, 0].astype(np.float64), y[:, 0].astype(np.float64), 1)
best_line_loss = float(np.mean((slope * x[:, 0] + intercept - y[:, 0]) ** 2))
target_loss = 1.1 * best_line_loss
print(f"\nleast-squares line: y = {slope:.4f} x + {intercept:.4f}, its MSE {best_line_loss:.6f}; "
      f"training until the loss < {target_loss:.6f}")
lr = 0.05
for step in range(1, 20001):
    model.zero_grad()
    loss = criterion(model(x), y)
    model.backward(criterion.backward())
    for p in model.parameters():
        p.data -= lr * p.grad
    if step % 100 == 0:
        print(f"step {step:5d}  loss {loss:.6f}")
    if loss < target_loss:
        break

model.eval()
prediction = model(x)
final_loss = criterion(prediction, y)
print(f"\nfinal loss after {step} steps: {final_loss:.6f}")
print("     x    target  prediction  2x+3")
for xi, yi, pi in zip(x[:, 0], y[:, 0], prediction[:, 0]):
    print(f"{xi:6.2f}  {yi:8.4f}  {pi:10.4f}  {2 * xi + 3:5.2f}")
