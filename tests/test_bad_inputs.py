"""A bad-input fuzzer over the layers and losses: junk never reaches NumPy.

Every class gets a valid call from the table below; then each argument in turn is replaced by
junk (None, a string, a dict, a ragged list, complex numbers, the wrong dtype, rank or feature
size), and the gradient by junk of its own. Each must raise TypeError/ValueError/RuntimeError
whose message starts with the class name (or its ``describe()``) -- never an IndexError,
AxisError, broadcasting error or an error message from inside NumPy. Empty batches (N = 0)
must give empty outputs and gradients of the right shapes, float32 staying float32.
"""

from __future__ import annotations

import numpy as np
import pytest

import handgrad.layers as L
import handgrad.losses as S

F32 = np.float32
CLEAN = (TypeError, ValueError, RuntimeError)


def _x(*shape, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(F32)


# name: (factory, valid args, batch axis of each arg (None: not batched), junk kinds that
#        must raise for the first argument beyond the universal ones, unbatched arg shapes)
# Extra junk kinds: "int" (integer array), "f64" (float64 into a float32 layer), "rank"
# (one more dimension), "feat" (last axis one larger).
PARAM = ("int", "f64", "rank", "feat")
LAYERS = {
    "Linear": (lambda: L.Linear(4, 3), [_x(2, 4)], [0], ("int", "f64", "feat"), [(4,)]),
    "Bilinear": (lambda: L.Bilinear(3, 4, 2), [_x(2, 3), _x(2, 4)], [0, 0], PARAM, [(3,), (4,)]),
    "BatchNorm1d": (lambda: L.BatchNorm1d(3), [_x(4, 3)], [0], ("int", "f64", "feat"), None),
    "BatchNorm2d": (lambda: L.BatchNorm2d(3), [_x(2, 3, 2, 2)], [0], PARAM[:3], None),
    "GroupNorm": (lambda: L.GroupNorm(2, 4), [_x(2, 4, 3)], [0], ("int", "f64"), None),
    "LayerNorm": (lambda: L.LayerNorm(4), [_x(2, 4)], [0], ("int", "f64", "feat"), [(4,)]),
    "RMSNorm": (lambda: L.RMSNorm(4), [_x(2, 4)], [0], ("int", "f64", "feat"), [(4,)]),
    "InstanceNorm1d": (lambda: L.InstanceNorm1d(3, affine=True), [_x(2, 3, 5)], [0],
                       ("int", "f64", "rank"), [(3, 5)]),
    "LocalResponseNorm": (lambda: L.LocalResponseNorm(2), [_x(2, 3, 4, 4)], [0], ("int",), None),
    "RNN": (lambda: L.RNN(4, 3), [_x(5, 2, 4)], [1], PARAM, [(5, 4)]),
    "LSTM": (lambda: L.LSTM(4, 3), [_x(5, 2, 4)], [1], PARAM, [(5, 4)]),
    "GRU": (lambda: L.GRU(4, 3, batch_first=True), [_x(2, 5, 4)], [0], PARAM, [(5, 4)]),
    "RNNCell": (lambda: L.RNNCell(4, 3), [_x(2, 4)], [0], PARAM, [(4,)]),
    "LSTMCell": (lambda: L.LSTMCell(4, 3), [_x(2, 4)], [0], PARAM, [(4,)]),
    "GRUCell": (lambda: L.GRUCell(4, 3), [_x(2, 4)], [0], PARAM, [(4,)]),
    "Embedding": (lambda: L.Embedding(5, 3), [np.array([[0, 4, 1], [2, 2, 3]])], [0],
                  (), [(3,)]),
    "EmbeddingBag": (lambda: L.EmbeddingBag(5, 3), [np.array([[0, 4, 1], [2, 2, 3]])], [0],
                     (), None),
    "PReLU": (lambda: L.PReLU(3), [_x(2, 3)], [0], ("int", "f64"), None),
    "ReLU": (lambda: L.ReLU(), [_x(2, 4)], [0], ("int",), [(4,)]),
    "GELU": (lambda: L.GELU(), [_x(2, 4)], [0], ("int",), [(4,)]),
    "Softmax": (lambda: L.Softmax(1), [_x(2, 4)], [0], ("int",), None),
    "LogSoftmax": (lambda: L.LogSoftmax(-1), [_x(2, 4)], [0], ("int",), [(4,)]),
    "Softplus": (lambda: L.Softplus(), [_x(2, 4)], [0], ("int",), [(4,)]),
    "Hardtanh": (lambda: L.Hardtanh(), [_x(2, 4)], [0], ("int",), [(4,)]),
    "GLU": (lambda: L.GLU(), [_x(2, 4)], [0], ("int",), [(4,)]),
    "Softmax2d": (lambda: L.Softmax2d(), [_x(2, 3, 2, 2)], [0], ("int",), [(3, 2, 2)]),
    "Dropout": (lambda: L.Dropout(0.5, rng=0), [_x(2, 4)], [0], ("int",), [(4,)]),
    "Dropout2d": (lambda: L.Dropout2d(0.5, rng=0), [_x(2, 3, 2, 2)], [0], ("int",),
                  [(3, 2, 2)]),
    "AlphaDropout": (lambda: L.AlphaDropout(0.5, rng=0), [_x(2, 4)], [0], ("int",), [(4,)]),
    "Flatten": (lambda: L.Flatten(), [_x(2, 3, 4)], [0], (), None),
    "Unflatten": (lambda: L.Unflatten(1, (2, 3)), [_x(2, 6)], [0], ("feat",), None),
    "PixelShuffle": (lambda: L.PixelShuffle(2), [_x(2, 4, 3, 3)], [0], (), [(4, 3, 3)]),
    "ChannelShuffle": (lambda: L.ChannelShuffle(2), [_x(2, 4, 3, 3)], [0], (), None),
    "CosineSimilarity": (lambda: L.CosineSimilarity(), [_x(2, 4), _x(2, 4, seed=1)], [0, 0],
                         ("int", "feat"), None),
    "PairwiseDistance": (lambda: L.PairwiseDistance(), [_x(2, 4), _x(2, 4, seed=1)], [0, 0],
                         ("int", "feat"), [(4,), (4,)]),
    "MultiheadAttention": (lambda: L.MultiheadAttention(4, 2, rng=0),
                           [_x(3, 2, 4), _x(3, 2, 4, seed=1), _x(3, 2, 4, seed=2)], [1, 1, 1],
                           PARAM, [(3, 4)] * 3),
    "TransformerEncoderLayer": (lambda: L.TransformerEncoderLayer(4, 2, 8, 0.0, rng=0),
                                [_x(3, 2, 4)], [1], PARAM, [(3, 4)]),
    "TransformerDecoderLayer": (lambda: L.TransformerDecoderLayer(4, 2, 8, 0.0, rng=0),
                                [_x(3, 2, 4), _x(5, 2, 4, seed=1)], [1, 1], PARAM,
                                [(3, 4), (5, 4)]),
    "Transformer": (lambda: L.Transformer(4, 2, 1, 1, 8, 0.0, rng=0),
                    [_x(3, 2, 4), _x(5, 2, 4, seed=1)], [1, 1], PARAM, [(3, 4), (5, 4)]),
}


def _probs(*shape, seed=0):
    return _x(*shape, seed=seed, low=0.05, high=0.95)


LOSSES = {
    "MSELoss": (S.MSELoss, [_x(2, 3), _x(2, 3, seed=1)], ()),
    "L1Loss": (S.L1Loss, [_x(2, 3), _x(2, 3, seed=1)], ("bool",)),
    "HuberLoss": (S.HuberLoss, [_x(2, 3), _x(2, 3, seed=1)], ("int", "bool")),
    "SmoothL1Loss": (S.SmoothL1Loss, [_x(2, 3), _x(2, 3, seed=1)], ()),
    "CrossEntropyLoss": (S.CrossEntropyLoss, [_x(2, 3), np.array([0, 2])], ("bool",)),
    "NLLLoss": (S.NLLLoss, [_x(2, 3), np.array([0, 2])], ("f32", "bool")),
    "BCEWithLogitsLoss": (S.BCEWithLogitsLoss, [_x(2, 3), _probs(2, 3)], ("int", "bool")),
    "BCELoss": (S.BCELoss, [_probs(2, 3), _probs(2, 3, seed=1)], ("int", "bool")),
    "KLDivLoss": (S.KLDivLoss, [_x(2, 3), _probs(2, 3)], ("int", "bool")),
    "PoissonNLLLoss": (S.PoissonNLLLoss, [_x(2, 3), _probs(2, 3)], ()),
    "HingeEmbeddingLoss": (S.HingeEmbeddingLoss, [_x(2, 3), np.sign(_x(2, 3, seed=1))], ()),
    "SoftMarginLoss": (S.SoftMarginLoss, [_x(2, 3), np.sign(_x(2, 3, seed=1))], ("bool",)),
    "MultiLabelSoftMarginLoss": (S.MultiLabelSoftMarginLoss,
                                 [_x(2, 3), (_x(2, 3, seed=1) > 0).astype(F32)], ("bool",)),
    "MultiMarginLoss": (S.MultiMarginLoss, [_x(2, 3), np.array([0, 2])], ("f32",)),
    "TripletMarginLoss": (S.TripletMarginLoss, [_x(2, 3), _x(2, 3, seed=1), _x(2, 3, seed=2)],
                          ()),
    "CosineEmbeddingLoss": (S.CosineEmbeddingLoss,
                            [_x(2, 3), _x(2, 3, seed=1), np.array([1, -1], F32)], ()),
    "MarginRankingLoss": (S.MarginRankingLoss,
                          [_x(4), _x(4, seed=1), np.array([1, -1, 1, 1], F32)], ("bool",)),
}

UNIVERSAL = {
    "None": None, "str": "hello", "dict": {"x": 1}, "ragged": [[1.0], [1.0, 2.0]],
    "object": np.array([object(), object()]),
}
# layers that only move elements around accept any numeric dtype, complex too (as PyTorch)
SHAPE_ONLY = ("Flatten", "Unflatten", "PixelShuffle", "ChannelShuffle")


def _junk(kind, arg):
    if kind in UNIVERSAL:
        return UNIVERSAL[kind]
    a = np.asarray(arg)
    return {"int": a.astype(np.int64), "complex": a.astype(np.complex64),
            "f64": a.astype(np.float64), "f32": a.astype(F32),
            "bool": a > 0, "rank": a[None, None] if a.ndim < 3 else a[None],
            "feat": np.concatenate([a, a[..., :1]], axis=-1)}[kind]


def assert_clean_error(name, layer, call):
    """``call()`` raises a clean error whose message starts with the class's name."""
    with pytest.raises(CLEAN) as info:
        call()
    message = str(info.value)
    assert message.startswith((name, layer.describe())), (
        f"{name}: message does not name the class: {type(info.value).__name__}: {message}")


def _first(y):
    return y[0] if isinstance(y, tuple) else y


LAYER_CASES = [(n, *c) for n, c in LAYERS.items()]
IDS = list(LAYERS)


@pytest.mark.parametrize("name,make,args,axes,extra,unbatched", LAYER_CASES, ids=IDS)
def test_layer_junk_raises_clean_errors(name, make, args, axes, extra, unbatched):
    assert_clean_error(name, make(), lambda: make().backward(np.zeros((2, 4), F32)))
    for i in range(len(args)):
        kinds = list(UNIVERSAL) + (list(extra) if i == 0 else [])
        kinds += [] if name in SHAPE_ONLY or args[i].dtype.kind == "i" else ["complex"]
        for kind in kinds:
            bad = list(args)
            bad[i] = _junk(kind, args[i])
            layer = make()
            assert_clean_error(name, layer, lambda layer=layer, bad=bad: layer(*bad))
    layer = make()
    y = _first(layer(*args))
    for grad in (None, "x", np.zeros(y.shape + (1,), F32), np.zeros(y.shape[:-1] + (9,), F32),
                 np.ones(y.shape, np.complex64)):
        layer = make()
        layer(*args)
        if grad is None and name in ("RNN", "LSTM", "GRU"):
            continue  # documented: grad_out=None is a zero output gradient
        assert_clean_error(name, layer, lambda layer=layer, grad=grad: layer.backward(grad))


@pytest.mark.parametrize("name,make,args,axes,extra,unbatched", LAYER_CASES, ids=IDS)
def test_layer_empty_batch_and_unbatched(name, make, args, axes, extra, unbatched):
    layer = make()
    y = _first(layer(*args))
    assert y.dtype == F32  # float32 in, float32 out (never promoted)
    axis = axes[0]
    empty = [np.take(a, np.arange(0), axis=ax) for a, ax in zip(args, axes)]
    layer = make()
    y0 = _first(layer(*empty))
    expected = list(y.shape)
    expected[axis] = 0
    assert y0.shape == tuple(expected) and y0.dtype == y.dtype
    grads = layer.backward(np.zeros(y0.shape, y0.dtype))
    grads = grads if isinstance(grads, tuple) else (grads,)
    for g, a in zip(grads, empty):
        assert (g is None and a.dtype.kind == "i") or (g.shape == a.shape and g.dtype == F32)
    for p in layer.parameters():
        assert p.grad is None or (p.grad.shape == p.data.shape and not p.grad.any())
    if unbatched is None:
        return
    single = [np.take(a, 0, axis=ax) for a, ax in zip(args, axes)]
    assert [s.shape for s in single] == unbatched
    layer = make()
    y1 = _first(layer(*single))
    assert y1.shape == tuple(np.delete(y.shape, axis)) and y1.dtype == y.dtype
    grads = layer.backward(np.ones(y1.shape, y1.dtype))
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert all(g is None or g.shape == s.shape for g, s in zip(grads, single))
    layer.eval()  # the unbatched result is the batched one's first sample (no dropout)
    np.testing.assert_allclose(_first(layer(*single)),
                               np.take(_first(layer(*args)), 0, axis=axis), rtol=1e-5,
                               atol=1e-6)


LOSS_CASES = [(n, *c) for n, c in LOSSES.items()]


@pytest.mark.parametrize("name,make,args,target_kinds", LOSS_CASES, ids=list(LOSSES))
def test_loss_junk_raises_clean_errors(name, make, args, target_kinds):
    assert_clean_error(name, make(), lambda: make().backward())
    for i in range(len(args)):
        kinds = list(UNIVERSAL) + (["int", "complex"] if i == 0 else
                                   list(target_kinds) if i == 1 else [])
        for kind in kinds:
            bad = list(args)
            bad[i] = _junk(kind, args[i])
            loss = make()
            assert_clean_error(name, loss, lambda loss=loss, bad=bad: loss(*bad))
    for reduction, grads in (("mean", (None, "x", np.ones(3), {})),
                             ("none", (None, "x", np.ones(7), [[1.0], [1.0, 2.0]]))):
        for grad in grads:
            loss = make(reduction=reduction)
            loss(*args)
            assert_clean_error(name, loss, lambda loss=loss, grad=grad: loss.backward(grad))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,make,args,target_kinds", LOSS_CASES, ids=list(LOSSES))
def test_loss_empty_batch(name, make, args, target_kinds, reduction):
    """N = 0 as PyTorch: NaN for mean, 0 for sum, empty for none; empty gradients."""
    loss = make(reduction=reduction)
    empty = [a[:0] for a in args]
    value = loss(*empty)
    if reduction == "none":
        assert np.shape(value)[0] == 0
    elif reduction == "sum":
        assert value == 0.0
    else:
        assert np.isnan(value)
    grad = loss.backward()
    assert grad.shape == empty[0].shape and grad.dtype == F32


def test_the_fuzzer_catches_a_numpy_error():
    class Leaky(L.ReLU):
        def forward(self, x):
            return np.asarray(x)[5]  # IndexError from NumPy

    with pytest.raises(IndexError):
        assert_clean_error("Leaky", Leaky(), lambda: Leaky()(np.ones(2)))


@pytest.mark.parametrize("make,error,message", [
    (lambda: L.Flatten("a"), TypeError, "Flatten: expected an integer start_dim"),
    (lambda: L.Unflatten(1, (2, -1, -1)), ValueError, "Unflatten: expected unflattened_size"),
    (lambda: L.Unflatten(1, 6), TypeError, "Unflatten: expected unflattened_size as a tuple"),
    (lambda: L.LeakyReLU("x"), TypeError, "LeakyReLU: expected a real number negative_slope"),
    (lambda: L.ELU("x"), TypeError, "ELU: expected a real number alpha"),
    (lambda: L.CosineSimilarity("x"), TypeError, "CosineSimilarity: expected an integer dim"),
    (lambda: L.PairwiseDistance("x"), TypeError, "PairwiseDistance: expected a real number p"),
])
def test_constructor_junk_names_the_class(make, error, message):
    """These were ValueErrors from int()/float() or a TypeError from a comparison."""
    with pytest.raises(error, match=message):
        make()


def test_unflatten_infers_one_size_as_pytorch():
    layer = L.Unflatten(1, (2, -1))
    y = layer(_x(3, 6))
    assert y.shape == (3, 2, 3)  # was refused: "expected dimension 1 of size -2"
    assert layer.backward(np.ones(y.shape, F32)).shape == (3, 6)
    with pytest.raises(ValueError, match=r"Unflatten\(.*dimension 1 of size 5 is not divisible"):
        layer(_x(3, 5))


@pytest.mark.parametrize("value", [1.5, -0.5, np.nan])
def test_bce_target_outside_zero_one_is_refused_as_pytorch(value):
    """Was a silent (wrong) loss value; PyTorch raises."""
    with pytest.raises(ValueError, match="BCELoss: expected target probabilities in"):
        S.BCELoss()(np.full((2, 2), 0.5, F32), np.full((2, 2), value, F32))
