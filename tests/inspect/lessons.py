"""Small networks of the gradient lessons, shared by the inspect tests."""

from __future__ import annotations

import numpy as np

import handgrad as hg


def deep_net(kind: str, depth: int = 10, width: int = 32, inputs: int = 16, outputs: int = 4,
             seed: int = 0) -> hg.Sequential:
    """``depth`` Linear layers: 'sigmoid' (default init), 'relu_he' (ReLU, He init),
    'batchnorm' (sigmoid with BatchNorm1d before it), 'residual' (sigmoid blocks with
    identity shortcuts)."""
    rng = np.random.default_rng(seed)
    layers: list[hg.Layer] = []
    width_in = inputs
    for i in range(depth - 1):
        linear = hg.Linear(width_in, width, dtype=np.float64, rng=rng)
        if kind == "sigmoid":
            layers += [linear, hg.Sigmoid()]
        elif kind == "relu_he":
            hg.init.kaiming_normal_(linear.weight, nonlinearity="relu", rng=rng)
            hg.init.zeros_(linear.bias)
            layers += [linear, hg.ReLU()]
        elif kind == "batchnorm":
            layers += [linear, hg.BatchNorm1d(width, dtype=np.float64), hg.Sigmoid()]
        elif kind == "residual":
            block = hg.Sequential(linear, hg.Sigmoid())
            layers.append(block if i == 0 else hg.Residual(block))
        else:
            raise ValueError(kind)
        width_in = width
    layers.append(hg.Linear(width_in, outputs, dtype=np.float64, rng=rng))
    return hg.Sequential(*layers)


def batch(n: int = 64, inputs: int = 16, classes: int = 4, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, inputs)), rng.integers(0, classes, n)
