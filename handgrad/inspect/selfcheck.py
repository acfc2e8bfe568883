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

from .. import layers as L
from .. import losses as losses_module
from ..layer import Layer
from .gradcheck import GradcheckReport, gradcheck


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


class _SplitInput(Layer):
    """A two-input layer (Bilinear, a decoder) on two parts of one input, cut at ``split``
    along ``axis``: checks both input gradients."""

    def __init__(self, inner: Layer, split: int, axis: int = -1):
        super().__init__()
        self.inner = inner
        self.split = split
        self.axis = axis

    def forward(self, x: np.ndarray) -> np.ndarray:
        first, second = np.split(x, [self.split], axis=self.axis)
        return self.inner(first, second)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return np.concatenate(self.inner.backward(grad_out), axis=self.axis)

    def describe(self) -> str:
        return f"{self.inner.describe()} (both inputs)"


class _BagWeights(Layer):
    """EmbeddingBag(mode='sum') with the float input as its per_sample_weights."""

    def __init__(self, bag: Layer, ids: np.ndarray, offsets: np.ndarray):
        super().__init__()
        self.bag = bag
        self.ids = ids
        self.offsets = offsets

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.bag(self.ids, self.offsets, per_sample_weights=x)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        self.bag.backward(grad_out)
        return self.bag.grad_per_sample_weights

    def describe(self) -> str:
        return f"{self.bag.describe()} with per_sample_weights"


class _SelfAttention(Layer):
    """MultiheadAttention with query = key = value = x, its output only (the three input
    gradients summed)."""

    def __init__(self, attention: Layer):
        super().__init__()
        self.attention = attention

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.attention(x, x, x)[0]

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return sum(self.attention.backward(grad_out))

    def describe(self) -> str:
        return f"{self.attention.describe()} (self-attention)"


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
        "BatchNorm3d": [lambda: Check("BatchNorm3d(2)", L.BatchNorm3d(2),
                                      _normal(r, 2, 2, 2, 2, 2))],
        "InstanceNorm1d": [lambda: Check("InstanceNorm1d(3, affine=True)",
                                         L.InstanceNorm1d(3, affine=True), _normal(r, 2, 3, 4))],
        "InstanceNorm2d": [lambda: Check("InstanceNorm2d(2)", L.InstanceNorm2d(2),
                                         _normal(r, 2, 2, 3, 3))],
        "InstanceNorm3d": [lambda: Check("InstanceNorm3d(2)", L.InstanceNorm3d(2),
                                         _normal(r, 1, 2, 2, 2, 3))],
        "RMSNorm": [lambda: Check("RMSNorm(4)", L.RMSNorm(4), _normal(r, 3, 4))],
        "LocalResponseNorm": [lambda: Check("LocalResponseNorm(3)", L.LocalResponseNorm(3),
                                            _normal(r, 2, 5, 2))],
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
        "MultiheadAttention": lambda: Check(
            "MultiheadAttention(4, 2)", _SelfAttention(L.MultiheadAttention(4, 2, rng=r)),
            _normal(r, 3, 2, 4)),
        "TransformerEncoderLayer": lambda: Check(
            "TransformerEncoderLayer(4, 2, 6, dropout=0)",
            L.TransformerEncoderLayer(4, 2, 6, dropout=0.0, rng=r), _off_kink(r, 3, 2, 4)),
        "TransformerEncoder": lambda: Check(
            "TransformerEncoder(2 layers)", L.TransformerEncoder(
                L.TransformerEncoderLayer(4, 2, 6, dropout=0.0, activation="gelu", rng=r), 2),
            _normal(r, 3, 2, 4)),
        "TransformerDecoderLayer": lambda: Check(
            "TransformerDecoderLayer(4, 2, 6, dropout=0) on (tgt, memory)", _SplitInput(
                L.TransformerDecoderLayer(4, 2, 6, dropout=0.0, activation="gelu", rng=r), 2,
                axis=0), _normal(r, 5, 2, 4)),
        "TransformerDecoder": lambda: Check(
            "TransformerDecoder(1 layer) on (tgt, memory)", _SplitInput(L.TransformerDecoder(
                L.TransformerDecoderLayer(4, 2, 6, dropout=0.0, activation="gelu", rng=r), 1),
                2, axis=0), _normal(r, 5, 2, 4)),
        "Transformer": lambda: Check(
            "Transformer(4, 2, 1 + 1 layers) on (src, tgt)", _SplitInput(L.Transformer(
                4, 2, 1, 1, 6, dropout=0.0, activation="gelu", rng=r), 3, axis=0),
            _normal(r, 5, 2, 4)),
        "Bilinear": lambda: Check("Bilinear(3, 2, 4)", _SplitInput(L.Bilinear(3, 2, 4, rng=r), 3),
                                  _normal(r, 5, 5)),
        "EmbeddingBag": lambda: Check("EmbeddingBag(6, 3, mode='sum')", _BagWeights(
            L.EmbeddingBag(6, 3, mode="sum", rng=r), np.array([1, 4, 4, 0, 5]),
            np.array([0, 2, 2])), _normal(r, 5)),
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
        "Dropout1d": lambda: Check("Dropout1d(0.4)", L.Dropout1d(0.4, rng=0),
                                   _normal(r, 2, 3, 4)),
        "Dropout3d": lambda: Check("Dropout3d(0.4)", L.Dropout3d(0.4, rng=0),
                                   _normal(r, 2, 3, 2, 2, 2)),
        "AlphaDropout": lambda: Check("AlphaDropout(0.2)", L.AlphaDropout(0.2, rng=0),
                                      _normal(r, 3, 4)),
        "FeatureAlphaDropout": lambda: Check("FeatureAlphaDropout(0.3)",
                                             L.FeatureAlphaDropout(0.3, rng=0),
                                             _normal(r, 2, 3, 4)),
        "PixelShuffle": lambda: Check("PixelShuffle(2)", L.PixelShuffle(2),
                                      _normal(r, 2, 8, 2, 3)),
        "PixelUnshuffle": lambda: Check("PixelUnshuffle(2)", L.PixelUnshuffle(2),
                                        _normal(r, 2, 2, 4, 2)),
        "ChannelShuffle": lambda: Check("ChannelShuffle(2)", L.ChannelShuffle(2),
                                        _normal(r, 2, 6, 2)),
        "CosineSimilarity": lambda: Check("CosineSimilarity(dim=-1)", _SplitInput(
            L.CosineSimilarity(dim=-1), 3), _normal(r, 4, 6)),
        "PairwiseDistance": lambda: Check("PairwiseDistance(p=3)", _SplitInput(
            L.PairwiseDistance(p=3.0), 3), _normal(r, 4, 6)),
    }
    for name, make in optional.items():
        if hasattr(L, name):
            recipes[name] = [make]
    recipes.update(_activation_recipes(r))
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


def _off_points(rng: np.random.Generator, shape: tuple[int, ...], points: tuple[float, ...],
                scale: float = 3.0) -> np.ndarray:
    """Uniform values in ``(-scale, scale)`` moved at least 0.1 away from each of ``points``."""
    x = rng.uniform(-scale, scale, shape)
    for p in points:
        near = np.abs(x - p) < 0.1
        x[near] = p + np.where(x[near] >= p, 0.1, -0.1)
    return x


def _activation_recipes(r: np.random.Generator) -> dict[str, list[Callable[[], Check]]]:
    """The activations of ``activation_piecewise``, ``activation_smooth``, ``activation_dim``."""
    kinks = {"ReLU6": (0.0, 6.0), "Hardtanh": (-1.0, 1.0), "Hardswish": (-3.0, 3.0),
             "Hardsigmoid": (-3.0, 3.0), "Softshrink": (-0.5, 0.5), "Hardshrink": (-0.5, 0.5),
             "Softplus": (), "Softsign": (0.0,), "Mish": (), "SELU": (0.0,), "CELU": (0.0,),
             "LogSigmoid": (), "Tanhshrink": ()}
    recipes: dict[str, list[Callable[[], Check]]] = {
        name: [lambda name=name, points=points: Check(
            name, getattr(L, name)(), _off_points(r, (3, 4), points, 7.0))]
        for name, points in kinks.items()
    }
    recipes.update({
        "Threshold": [lambda: Check("Threshold(0.2, -1.0)", L.Threshold(0.2, -1.0),
                                    _off_points(r, (3, 4), (0.2,)))],
        "PReLU": [lambda: Check("PReLU(3)", L.PReLU(3, dtype=np.float64),
                                _off_kink(r, 2, 3, 4))],
        "GLU": [lambda: Check("GLU(dim=1)", L.GLU(dim=1), _normal(r, 3, 4))],
        "Softmin": [lambda: Check("Softmin(dim=1)", L.Softmin(dim=1), _normal(r, 3, 4))],
        "Softmax2d": [lambda: Check("Softmax2d", L.Softmax2d(), _normal(r, 2, 3, 2, 2))],
    })
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
    recipes.update({k: v for k, v in _extra_loss_recipes(r).items() if k not in recipes})
    return {name: makers for name, makers in recipes.items() if hasattr(M, name)}


# Containers that hold layers for a model's own forward and compute nothing themselves.
_NO_FORWARD = {"ModuleList", "ModuleDict"}


def _extra_loss_recipes(r: np.random.Generator) -> dict[str, list[Callable[[], Check]]]:
    """The losses of ``probabilistic``, ``margin``, ``similarity`` and ``ctc`` (the gradient
    of the first input; the tests check every input's)."""
    M = losses_module
    sign = r.choice([-1.0, 1.0], (3, 4))
    logits = r.standard_normal((5, 2, 4))
    log_probs = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    return {
        "PoissonNLLLoss": [lambda: Check("PoissonNLLLoss", M.PoissonNLLLoss(),
                                         _normal(r, 3, 4), (r.poisson(2.0, (3, 4)) * 1.0,))],
        "GaussianNLLLoss": [lambda: Check("GaussianNLLLoss", M.GaussianNLLLoss(),
                                          _normal(r, 3, 4),
                                          (_normal(r, 3, 4), r.uniform(0.5, 2, (3, 1))))],
        "MarginRankingLoss": [lambda: Check("MarginRankingLoss(0.1)", M.MarginRankingLoss(0.1),
                                            _normal(r, 3, 4), (_normal(r, 3, 4) + 5.0, sign))],
        "HingeEmbeddingLoss": [lambda: Check("HingeEmbeddingLoss", M.HingeEmbeddingLoss(),
                                             _off_points(r, (3, 4), (1.0,)), (sign,))],
        "SoftMarginLoss": [lambda: Check("SoftMarginLoss", M.SoftMarginLoss(),
                                         _normal(r, 3, 4), (sign,))],
        "MultiLabelSoftMarginLoss": [lambda: Check(
            "MultiLabelSoftMarginLoss", M.MultiLabelSoftMarginLoss(), _normal(r, 3, 4),
            ((sign > 0) * 1.0,))],
        "MultiMarginLoss": [lambda: Check("MultiMarginLoss(p=2)", M.MultiMarginLoss(p=2),
                                          _distinct(r, 3, 4) * 0.37, (np.array([0, 3, 1]),))],
        "CosineEmbeddingLoss": [lambda: Check(
            "CosineEmbeddingLoss(margin=-1)", M.CosineEmbeddingLoss(margin=-1.0),
            _normal(r, 3, 4), (_normal(r, 3, 4), np.array([1.0, -1.0, 1.0])))],
        "TripletMarginLoss": [lambda: Check(
            "TripletMarginLoss(margin=5)", M.TripletMarginLoss(margin=5.0), _normal(r, 3, 4),
            (_normal(r, 3, 4), _normal(r, 3, 4)))],
        "CTCLoss": [lambda: Check("CTCLoss", M.CTCLoss(), log_probs,
                                  (np.array([[1, 1], [2, 3]]), [5, 4], [2, 1]))],
    }


def _public(module: Any) -> list[str]:
    names = getattr(module, "__all__", [])
    out = []
    for name in names:
        obj = getattr(module, name, None)
        if name in _NO_FORWARD:
            continue
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
