"""One SGD step on a two-layer network: Linear(2, 4) -> ReLU -> Linear(4, 1), MSE loss.

Forward, loss, backward (each layer's hand-written gradient), then the plain SGD update
``p.data -= lr * p.grad`` written out by hand, and the loss again.

Run: python examples/02_two_layer_sgd.py
"""

import numpy as np

import handgrad as hg

rng = np.random.default_rng(0)  # seeded: the same weights, so the same numbers, every run
model = hg.Sequential(hg.Linear(2, 4, rng=rng), hg.ReLU(), hg.Linear(4, 1, rng=rng))
criterion = hg.losses.MSELoss()
x = np.array([[1.0, 2.0]], dtype=np.float32)
target = np.array([[3.0]], dtype=np.float32)
lr = 0.1

print(model)
prediction = model(x)
loss_before = criterion(prediction, target)
print(f"\nprediction before: {prediction[0, 0]:.6f}   loss before: {loss_before:.6f}")

model.zero_grad()
model.backward(criterion.backward())  # dL/dprediction, then back through every layer

print("\nparameter gradients:")
for name, p in model.named_parameters():
    grad = np.array2string(p.grad.ravel(), precision=6, max_line_width=200)
    print(f"  {name:<9} shape {str(p.shape):<7} grad {grad}")

for p in model.parameters():  # one plain SGD step
    p.data -= lr * p.grad

prediction = model(x)
loss_after = criterion(prediction, target)
print(f"\nprediction after:  {prediction[0, 0]:.6f}   loss after:  {loss_after:.6f}")
print(f"loss decreased: {loss_after < loss_before}")
