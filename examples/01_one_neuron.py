"""One neuron by hand: y = relu(w . x + b), loss = (y - target)^2.

The gradients are worked out with the chain rule in plain Python, then computed by
handgrad's hand-written backward passes, then checked with ``handgrad.gradcheck``.

Run: python examples/01_one_neuron.py
"""

import numpy as np

import handgrad as hg

x = [1.0, 2.0]
w = [0.5, -0.3]
b = 0.1
target = 1.0

# ---------------------------------------------------------------- by hand, plain Python
z = w[0] * x[0] + w[1] * x[1] + b          # pre-activation
y = max(z, 0.0)                            # ReLU
loss = (y - target) ** 2                   # squared error
dloss_dy = 2 * (y - target)                # d(y - t)^2 / dy
dy_dz = 1.0 if z > 0 else 0.0              # ReLU slope (0 at z <= 0, as in PyTorch)
dloss_dz = dloss_dy * dy_dz
hand = {
    "dL/dw[0]": dloss_dz * x[0], "dL/dw[1]": dloss_dz * x[1], "dL/db": dloss_dz,
    "dL/dx[0]": dloss_dz * w[0], "dL/dx[1]": dloss_dz * w[1],
}

print("forward, by hand:")
print(f"  z = w.x + b       = {z:.6g}")
print(f"  y = relu(z)       = {y:.6g}")
print(f"  L = (y - {target})^2  = {loss:.6f}")
z32 = np.float32(0.5) * np.float32(1.0) + np.float32(-0.3) * np.float32(2.0) + np.float32(0.1)
print("  note: in exact arithmetic z = 0.5 - 0.6 + 0.1 = 0, exactly ReLU's kink. float64")
print(f"  rounds it to {z:.3g} > 0, so the ReLU slope is 1; float32 rounds it to {z32:.3g}")
print("  (a dead neuron, all gradients 0).")

# ---------------------------------------------------------------- with handgrad
neuron = hg.Sequential(hg.Linear(2, 1, dtype=np.float64), hg.ReLU())
neuron[0].weight.data[...] = [w]
neuron[0].bias.data[...] = [b]
criterion = hg.losses.MSELoss()

x_batch = np.array([x])                     # (1, 2): a batch of one sample
y_hg = neuron(x_batch)
loss_hg = criterion(y_hg, np.array([[target]]))
grad_y = criterion.backward()               # dL/dy, shape (1, 1)
grad_x = neuron.backward(grad_y)            # dL/dx; adds dL/dw, dL/db into .grad
ours = {
    "dL/dw[0]": neuron[0].weight.grad[0, 0], "dL/dw[1]": neuron[0].weight.grad[0, 1],
    "dL/db": neuron[0].bias.grad[0], "dL/dx[0]": grad_x[0, 0], "dL/dx[1]": grad_x[0, 1],
}

print("\nforward, handgrad:")
print(f"  y = {y_hg[0, 0]:.6g}   L = {loss_hg:.6f}")
print("\ngradients:          by hand     handgrad")
for name in hand:
    print(f"  {name:<10}  {hand[name]:>12.6f} {ours[name]:>12.6f}")
same = all(hand[k] == ours[k] for k in hand)
print(f"by hand == handgrad: {same}")

# ---------------------------------------------------------------- gradcheck
# gradcheck compares backward with central differences of sum(neuron(x) * g). With g = dL/dy
# that objective has exactly the loss's gradient at this point.
print("\ngradcheck at the given point (z sits on ReLU's kink):")
report = hg.gradcheck(neuron, x_batch, grad_output=grad_y)
print(report)


def loss_of_weight(weight):
    neuron[0].weight.data[...] = weight
    return criterion(neuron(x_batch), np.array([[target]]))


numeric = hg.numerical_gradient(loss_of_weight, np.array([w]))
neuron[0].weight.data[...] = [w]
print(f"  numerical dL/dw = {numeric[0, 0]:.6f} {numeric[0, 1]:.6f}   analytic = "
      f"{ours['dL/dw[0]']:.6f} {ours['dL/dw[1]']:.6f}")
print("  central differences step over the kink: their slope is the average of the")
print("  one-sided slopes (-2 and 0 for dL/dw[0]), so this FAIL is the kink, not a bug.")

print("\ngradcheck with b = 0.15 (z = 0.05, away from the kink):")
off_kink = hg.Sequential(hg.Linear(2, 1, dtype=np.float64), hg.ReLU())
off_kink.load_state_dict({"0.weight": np.array([w]), "0.bias": np.array([0.15])})
y_off = off_kink(x_batch)
report = hg.gradcheck(off_kink, x_batch, grad_output=2 * (y_off - target))
print(report)
