"""Gradient-check one small instance of every public layer and loss (``handgrad gradcheck``).

``check_all()`` builds each layer listed in ``handgrad.layers.__all__`` and each loss in
``handgrad.losses.__all__`` from a recipe below (small shapes, float64, inputs kept away
from kinks), runs ``handgrad.gradcheck`` on it and returns the reports. A public class with
no recipe is reported as not covered, so a new layer cannot be skipped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import layers as L
from . import losses as losses_module
from .gradcheck import GradcheckReport, gradcheck
from .layer import Layer


@dataclass
class Check:
    """One gradient check: a label, the layer and its forward arguments."""

    label: str
    layer: Layer
    x: np.ndarray
    args: tuple = ()


def _normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def _off_kink(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Normal values moved at least 0.1 away from zero (ReLU-like kinks)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.1, np.sign(x + 1e-12) * 0.1, x)


def _distinct(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """A shuffled grid of well-separated values: no ties for max-pooling."""
    n = int(np.prod(shape))
    return rng.permutation(np.linspace(-2.0, 2.0, n)).reshape(shape)


class _Indices(Layer):
    """Feeds fixed integer indices to an index-taking layer (Embedding): checks its weight.

    The float input ``x`` is ignored (its gradient is zero on both sides of the check).
    """

    def __init__(self, inner: Layer, indices: np.ndarray):
        super().__init__()
        self.inner = inner
        self.indices = indices

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return self.inner(self.indices)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        self.inner.backward(grad_out)
        return np.zeros(self._shape)

    def describe(self) -> str:
        return f"{self.inner.describe()} on integer indices"


class _HiddenAndCell(Layer):
    """``[h', c']`` of an LSTMCell concatenated on the last axis: checks both outputs."""

    def __init__(self, cell: Layer):
        super().__init__()
        self.cell = cell

    def forward(self, x: np.ndarray) -> np.ndarray:
        h, c = self.cell(x)
        return np.concatenate([h, c], axis=-1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        grad_h, grad_c = np.split(grad_out, 2, axis=-1)
        return self.cell.backward(grad_h, grad_c)

    def describe(self) -> str:
        return f"{self.cell.describe()} (outputs h and c)"


def _layer_recipes(rng: np.random.Generator) -> dict[str, list[Callable[[], Check]]]:
    r = rng
    elementwise = {
        name: [lambda name=name: Check(name, getattr(L, name)(), _off_kink(r, 3, 4))]
        for name in ("ReLU", "Sigmoid", "Tanh", "SiLU", "Identity")
    }
    recipes: dict[str, list[Callable[[], Check]]] = {
        **elementwise,
        "LeakyReLU": [lambda: Check("LeakyReLU(0.1)", L.LeakyReLU(0.1), _off_kink(r, 3, 4))],
        "ELU": [lambda: Check("ELU(alpha=0.7)", L.ELU(0.7), _off_kink(r, 3, 4))],
        "GELU": [lambda: Check("GELU", L.GELU(), _normal(r, 3, 4)),
                 lambda: Check("GELU(tanh)", L.GELU(approximate="tanh"), _normal(r, 3, 4))],
        "Softmax": [lambda: Check("Softmax(dim=1)", L.Softmax(dim=1), _normal(r, 3, 4))],
        "LogSoftmax": [lambda: Check("LogSoftmax(dim=-1)", L.LogSoftmax(dim=-1),
                                     _normal(r, 2, 3, 4))],
        "Linear": [lambda: Check("Linear(4, 3)", L.Linear(4, 3, rng=r), _normal(r, 5, 4))],
        "Flatten": [lambda: Check("Flatten", L.Flatten(), _normal(r, 2, 3, 2, 2))],
        "Unflatten": [lambda: Check("Unflatten", L.Unflatten(1, (2, 3)), _normal(r, 2, 6))],
        "Dropout": [lambda: Check("Dropout(0.3)", L.Dropout(0.3, rng=0), _normal(r, 4, 5))],
        "Sequential": [lambda: Check(
            "Sequential(Linear, Tanh, Linear)",
            L.Sequential(L.Linear(4, 5, rng=r), L.Tanh(), L.Linear(5, 2, rng=r)),
            _normal(r, 3, 4))],
        "Residual": [lambda: Check(
            "Residual(Linear, Tanh)", L.Residual(L.Sequential(L.Linear(4, 4, rng=r), L.Tanh())),
            _normal(r, 3, 4)),
            lambda: Check(
            "Residual with Linear shortcut",
            L.Residual(L.Linear(4, 3, rng=r), L.Linear(4, 3, bias=False, rng=r)),
            _normal(r, 3, 4))],
        "BatchNorm1d": [lambda: Check("BatchNorm1d(3)", L.BatchNorm1d(3), _normal(r, 5, 3))],
        "BatchNorm2d": [lambda: Check("BatchNorm2d(2)", L.BatchNorm2d(2), _normal(r, 3, 2, 3, 3))],
        "LayerNorm": [lambda: Check("LayerNorm(4)", L.LayerNorm(4), _normal(r, 3, 4))],
        "GroupNorm": [lambda: Check("GroupNorm(2, 4)", L.GroupNorm(2, 4), _normal(r, 2, 4, 2, 3))],
        "Conv2d": [
            lambda: Check("Conv2d(2, 3, 3, padding=1)",
                          L.Conv2d(2, 3, 3, padding=1, rng=r), _normal(r, 2, 2, 5, 5)),
            lambda: Check("Conv2d(4, 2, 3, stride=2, groups=2, bias=False)",
                          L.Conv2d(4, 2, 3, stride=2, groups=2, bias=False, rng=r),
                          _normal(r, 1, 4, 6, 6)),
        ],
    }
    optional = {
        "MaxPool2d": lambda: Check("MaxPool2d(3, stride=2, padding=1)",
                                   L.MaxPool2d(3, stride=2, padding=1), _distinct(r, 2, 2, 5, 5)),
        "AvgPool2d": lambda: Check("AvgPool2d(2)", L.AvgPool2d(2), _normal(r, 2, 2, 4, 4)),
        "AdaptiveMaxPool2d": lambda: Check("AdaptiveMaxPool2d((2, 1))", L.AdaptiveMaxPool2d((2, 1)),
                                           _distinct(r, 2, 2, 5, 3)),
        "AdaptiveAvgPool2d": lambda: Check("AdaptiveAvgPool2d(2)", L.AdaptiveAvgPool2d(2),
                                           _normal(r, 2, 3, 3, 3)),
        "GlobalAvgPool2d": lambda: Check("GlobalAvgPool2d", L.GlobalAvgPool2d(),
                                         _normal(r, 2, 3, 3, 3)),
        "Embedding": lambda: Check("Embedding(7, 3)", _Indices(
            L.Embedding(7, 3, rng=r), np.array([[1, 4, 6], [0, 4, 2]])), _normal(r, 2, 3)),
        "RNN": lambda: Check("RNN(3, 4)", L.RNN(3, 4, rng=r), _normal(r, 3, 2, 3)),
        "LSTM": lambda: Check("LSTM(3, 4)", L.LSTM(3, 4, rng=r), _normal(r, 3, 2, 3)),
        "GRU": lambda: Check("GRU(3, 4)", L.GRU(3, 4, rng=r), _normal(r, 3, 2, 3)),
        "RNNCell": lambda: Check("RNNCell(3, 4)", L.RNNCell(3, 4, rng=r), _normal(r, 2, 3)),
        "GRUCell": lambda: Check("GRUCell(3, 4)", L.GRUCell(3, 4, rng=r), _normal(r, 2, 3)),
        "LSTMCell": lambda: Check("LSTMCell(3, 4)", _HiddenAndCell(L.LSTMCell(3, 4, rng=r)),
                                  _normal(r, 2, 3)),
        "Dropout2d": lambda: Check("Dropout2d(0.3)", L.Dropout2d(0.3, rng=0),
                                   _normal(r, 2, 3, 2, 2)),
    }
    for name, make in optional.items():
        if hasattr(L, name):
            recipes[name] = [make]
    recipes.update(_conv_family_recipes(r))
    return recipes


def _conv_family_recipes(r: np.random.Generator) -> dict[str, list[Callable[[], Check]]]:
    """Convolution, pooling, padding and upsampling layers beyond Conv2d and the 2-d pools."""
    def one(label: str, make: Callable[[], Layer], x: Callable[[], np.ndarray],
            args: Callable[[], tuple] = tuple) -> list[Callable[[], Check]]:
        return [lambda: Check(label, make(), x(), args())]

    def padding(kind: str, d: int) -> list[Callable[[], Check]]:
        args = (1, 2.0) if kind == "ConstantPad" else (1,)
        return one(f"{kind}{d}d", lambda: getattr(L, f"{kind}{d}d")(*args),
                   lambda: _normal(r, 2, 2, *(4 if d < 3 else 3,) * d))

    pad = {f"{kind}{d}d": padding(kind, d) for d in (1, 2, 3) for kind in (
        "ZeroPad", "ConstantPad", "ReflectionPad", "ReplicationPad", "CircularPad")}
    pooled = L.MaxPool2d(2, return_indices=True)(_distinct(r, 1, 2, 4, 4))[1]
    pooled1 = L.MaxPool1d(2, return_indices=True)(_distinct(r, 1, 2, 6))[1]
    pooled3 = L.MaxPool3d(2, return_indices=True)(_distinct(r, 1, 2, 2, 2, 2))[1]
    recipes = {
        **pad,
        "Conv1d": one("Conv1d(2, 3, 3, padding=1, padding_mode='reflect')",
                      lambda: L.Conv1d(2, 3, 3, padding=1, padding_mode="reflect", rng=r),
                      lambda: _normal(r, 2, 2, 6)),
        "ConvTranspose2d": one("ConvTranspose2d(2, 4, 3, stride=2, groups=2)",
                               lambda: L.ConvTranspose2d(2, 4, 3, stride=2, groups=2, rng=r),
                               lambda: _normal(r, 2, 2, 3, 3)),
        "ConvTranspose1d": one("ConvTranspose1d(2, 3, 3, stride=2, output_padding=1)",
                               lambda: L.ConvTranspose1d(2, 3, 3, stride=2, output_padding=1,
                                                         rng=r),
                               lambda: _normal(r, 2, 2, 4)),
        "MaxPool1d": one("MaxPool1d(3, stride=2, padding=1)", lambda: L.MaxPool1d(3, 2, 1),
                         lambda: _distinct(r, 2, 2, 7)),
        "AvgPool1d": one("AvgPool1d(3, 2, ceil_mode=True)",
                         lambda: L.AvgPool1d(3, 2, ceil_mode=True), lambda: _normal(r, 2, 2, 6)),
        "AdaptiveAvgPool1d": one("AdaptiveAvgPool1d(3)", lambda: L.AdaptiveAvgPool1d(3),
                                 lambda: _normal(r, 2, 2, 7)),
        "AdaptiveMaxPool1d": one("AdaptiveMaxPool1d(3)", lambda: L.AdaptiveMaxPool1d(3),
                                 lambda: _distinct(r, 2, 2, 7)),
        "MaxUnpool2d": one("MaxUnpool2d(2)", lambda: L.MaxUnpool2d(2),
                           lambda: _normal(r, 1, 2, 2, 2), lambda: (pooled,)),
        "MaxUnpool1d": one("MaxUnpool1d(2)", lambda: L.MaxUnpool1d(2),
                           lambda: _normal(r, 1, 2, 3), lambda: (pooled1,)),
        "Conv3d": one("Conv3d(2, 2, 2, padding=1, groups=2)",
                      lambda: L.Conv3d(2, 2, 2, padding=1, groups=2, rng=r),
                      lambda: _normal(r, 1, 2, 3, 3, 3)),
        "ConvTranspose3d": one("ConvTranspose3d(2, 2, 2, stride=2, groups=2)",
                               lambda: L.ConvTranspose3d(2, 2, 2, stride=2, groups=2, rng=r),
                               lambda: _normal(r, 1, 2, 2, 2, 2)),
        "AdaptiveAvgPool3d": one("AdaptiveAvgPool3d((2, None, 3))",
                                 lambda: L.AdaptiveAvgPool3d((2, None, 3)),
                                 lambda: _normal(r, 1, 2, 3, 2, 4)),
        "AdaptiveMaxPool3d": one("AdaptiveMaxPool3d(2)", lambda: L.AdaptiveMaxPool3d(2),
                                 lambda: _distinct(r, 1, 2, 3, 3, 3)),
        "MaxUnpool3d": one("MaxUnpool3d(2)", lambda: L.MaxUnpool3d(2),
                           lambda: _normal(r, 1, 2, 1, 1, 1), lambda: (pooled3,)),
        "MaxPool3d": one("MaxPool3d(2, stride=1)", lambda: L.MaxPool3d(2, stride=1),
                         lambda: _distinct(r, 1, 2, 3, 3, 3)),
        "AvgPool3d": one("AvgPool3d(2, padding=1, count_include_pad=False)",
                         lambda: L.AvgPool3d(2, padding=1, count_include_pad=False),
                         lambda: _normal(r, 1, 2, 3, 3, 3)),
        "Unfold": one("Unfold(2, padding=1, stride=2)", lambda: L.Unfold(2, padding=1, stride=2),
                      lambda: _normal(r, 2, 2, 4, 3)),
        "Fold": one("Fold((4, 3), 2, padding=1, stride=2)",
                    lambda: L.Fold((4, 3), 2, padding=1, stride=2),
                    lambda: _normal(r, 2, 8, 6)),
        "ChannelShuffle": one("ChannelShuffle(2)", lambda: L.ChannelShuffle(2),
                              lambda: _normal(r, 2, 6, 2)),
        "PixelShuffle": one("PixelShuffle(2)", lambda: L.PixelShuffle(2),
                            lambda: _normal(r, 1, 8, 2, 3)),
        "PixelUnshuffle": one("PixelUnshuffle(2)", lambda: L.PixelUnshuffle(2),
                              lambda: _normal(r, 1, 2, 4, 6)),
        "LPPool1d": one("LPPool1d(2, 3, stride=2)", lambda: L.LPPool1d(2, 3, stride=2),
                        lambda: r.uniform(0.5, 2.0, (2, 2, 7))),
        "LPPool2d": one("LPPool2d(1.5, 2)", lambda: L.LPPool2d(1.5, 2),
                        lambda: r.uniform(0.5, 2.0, (2, 2, 4, 5))),
        "LPPool3d": one("LPPool3d(3, 2, ceil_mode=True)",
                        lambda: L.LPPool3d(3, 2, ceil_mode=True),
                        lambda: r.uniform(0.5, 2.0, (1, 2, 3, 3, 3))),
        "Upsample": one("Upsample(scale_factor=1.5, mode='bilinear')",
                        lambda: L.Upsample(scale_factor=1.5, mode="bilinear"),
                        lambda: _normal(r, 1, 2, 3, 4)),
        "UpsamplingNearest2d": one("UpsamplingNearest2d(size=(5, 3))",
                                   lambda: L.UpsamplingNearest2d(size=(5, 3)),
                                   lambda: _normal(r, 1, 2, 3, 2)),
        "UpsamplingBilinear2d": one("UpsamplingBilinear2d(scale_factor=2)",
                                    lambda: L.UpsamplingBilinear2d(scale_factor=2),
                                    lambda: _normal(r, 1, 2, 3, 2)),
    }
    return {name: makers for name, makers in recipes.items() if hasattr(L, name)}


def _loss_recipes(rng: np.random.Generator) -> dict[str, list[Callable[[], Check]]]:
    r = rng
    M = losses_module

    def regression(name: str, **kwargs: Any) -> Callable[[], Check]:
        return lambda: Check(name, getattr(M, name)(**kwargs), _normal(r, 3, 4),
                             (_normal(r, 3, 4),))

    def class_index(name: str) -> Callable[[], Check]:
        return lambda: Check(name, getattr(M, name)(), _normal(r, 4, 5),
                             (r.integers(0, 5, size=4),))

    recipes = {
        "MSELoss": [regression("MSELoss")],
        "L1Loss": [regression("L1Loss")],
        "HuberLoss": [regression("HuberLoss", delta=0.5)],
        "SmoothL1Loss": [regression("SmoothL1Loss", beta=0.5)],
        "CrossEntropyLoss": [class_index("CrossEntropyLoss"),
                             lambda: Check("CrossEntropyLoss(label_smoothing=0.1)",
                                           M.CrossEntropyLoss(label_smoothing=0.1),
                                           _normal(r, 4, 5), (r.integers(0, 5, size=4),))],
        "NLLLoss": [class_index("NLLLoss")],
        "BCEWithLogitsLoss": [lambda: Check("BCEWithLogitsLoss", M.BCEWithLogitsLoss(),
                                            _normal(r, 3, 4), (r.uniform(0, 1, (3, 4)),))],
        "BCELoss": [lambda: Check("BCELoss", M.BCELoss(), r.uniform(0.1, 0.9, (3, 4)),
                                  (r.uniform(0, 1, (3, 4)),))],
        "KLDivLoss": [lambda: Check("KLDivLoss", M.KLDivLoss(reduction="batchmean"),
                                    _normal(r, 3, 4), (r.uniform(0.1, 1, (3, 4)),))],
    }
    return {name: makers for name, makers in recipes.items() if hasattr(M, name)}


def _public(module: Any) -> list[str]:
    names = getattr(module, "__all__", [])
    out = []
    for name in names:
        obj = getattr(module, name, None)
        if isinstance(obj, type) and issubclass(obj, Layer) and not name.startswith("_"):
            out.append(name)
    return out


def check_all(rng: int = 0) -> tuple[list[tuple[str, GradcheckReport | Exception]], list[str]]:
    """Run every recipe; return ``([(label, report or the error it raised)], uncovered)``.

    ``uncovered`` lists public layer and loss classes without a recipe (abstract bases such
    as ``Loss`` are not counted).
    """
    generator = np.random.default_rng(rng)
    results: list[tuple[str, GradcheckReport | Exception]] = []
    uncovered = []
    for module, recipes in ((L, _layer_recipes(generator)),
                            (losses_module, _loss_recipes(generator))):
        for name in _public(module):
            if name not in recipes:
                if name != "Loss":
                    uncovered.append(name)
                continue
            for make in recipes[name]:
                label = name
                try:
                    check = make()
                    label = check.label
                    report = gradcheck(check.layer, check.x, *check.args)
                except Exception as error:  # a crash is reported as a failure, not raised
                    report = error
                results.append((label, report))
    return results, uncovered


__all__ = ["check_all", "Check"]
