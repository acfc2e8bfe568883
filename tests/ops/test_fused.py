"""The Numba backend's kernels against the NumPy path (the reference) and finite differences.

Every fused kernel is run through the layer or optimizer that dispatches to it, once per
backend on the same inputs: the optimizers' updates must be bit-identical; BatchNorm
(float64 sums in the kernels, float32 ones in NumPy's BLAS) and the recurrent gates agree to
float rounding: ``FLOAT_TOL``. Then float64 gradient checks with the Numba backend active.
Shapes stay few and small: every dtype and array layout is one more compiled signature.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import handgrad
from handgrad import GRU, LSTM, BatchNorm1d, BatchNorm2d
from handgrad.layers.activation import backprop_relu
from handgrad.models import BasicBlock
from handgrad.optim import SGD, Adam, AdamW
from tests.helpers import arrays

pytest.importorskip("numba")

# Rounding of a few operations in the dtype (float32: 2^-24 ~ 6e-8 per operation; sums of
# up to ~100 values and cancellations in BatchNorm's backward give a few 1e-6 at worst).
FLOAT_TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}
dtypes = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


@contextlib.contextmanager
def using(name: str):
    before = handgrad.backend()
    handgrad.set_backend(name)
    try:
        yield
    finally:
        handgrad.set_backend(before)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def both_backends(run):
    """``run()`` under the NumPy and the Numba backend: (reference, fused)."""
    with using("numpy"):
        reference = run()
    with using("numba"):
        fused = run()
    return reference, fused


def assert_close(reference, fused, dtype):
    for a, b in zip(reference, fused, strict=True):
        assert b.dtype == a.dtype == dtype
        np.testing.assert_allclose(b, a, **FLOAT_TOL[dtype])


# --------------------------------------------------------------------------- BatchNorm
def _batchnorm_run(make, x, g, mode, seed=0):
    def run():
        layer = make().to(x.dtype)
        rng = np.random.default_rng(seed)
        if layer.affine:
            for p in layer.parameters():
                p.data[...] = rng.uniform(0.5, 1.5, p.shape)
        layer(x * 2.0 + 0.5)  # running statistics away from their defaults
        if mode == "eval":
            layer.eval(backward=True)
        y = layer(x)
        grad_x = layer.backward(g)
        out = [y, grad_x] + [p.grad for p in layer.parameters()]
        return out + [b for b in (layer.running_mean, layer.running_var) if b is not None]
    return run


@dtypes
@pytest.mark.parametrize("mode", ["train", "eval"])
@given(n=st.integers(2, 4), c=st.integers(1, 5), h=st.integers(1, 6), w=st.integers(1, 6),
       affine=st.booleans(), track=st.booleans(), momentum=st.sampled_from([0.1, None]),
       data=st.data())
def test_batchnorm2d_equals_numpy_path(dtype, mode, n, c, h, w, affine, track, momentum, data):
    x = data.draw(arrays((n, c, h, w))).astype(dtype)
    g = data.draw(arrays((n, c, h, w))).astype(dtype)
    make = lambda: BatchNorm2d(c, momentum=momentum, affine=affine,  # noqa: E731
                               track_running_stats=track)
    reference, fused = both_backends(_batchnorm_run(make, x, g, mode))
    assert_close(reference, fused, dtype)


@dtypes
@given(n=st.integers(2, 6), c=st.integers(1, 4), length=st.sampled_from([None, 1, 5]),
       data=st.data())
def test_batchnorm1d_equals_numpy_path(dtype, n, c, length, data):
    shape = (n, c) if length is None else (n, c, length)
    x = data.draw(arrays(shape)).astype(dtype)
    g = data.draw(arrays(shape)).astype(dtype)
    reference, fused = both_backends(_batchnorm_run(lambda: BatchNorm1d(c), x, g, "train"))
    assert_close(reference, fused, dtype)


def test_batchnorm_threads_share_channels_equally(monkeypatch):
    """Channel blocks on several threads give the same numbers as one block."""
    from handgrad.ops import numba_norm

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 5, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    run = _batchnorm_run(lambda: BatchNorm2d(6), x, g, "train")
    with using("numba"):
        one = run()
        monkeypatch.setattr(numba_norm, "FUSED_PARALLEL_BYTES", 0)
        with handgrad_threads(2):
            split = run()
    for a, b in zip(one, split):
        np.testing.assert_array_equal(a, b)


@contextlib.contextmanager
def handgrad_threads(n):
    before = handgrad.ops.parallel._requested
    handgrad.set_num_threads(n)
    try:
        yield
    finally:
        handgrad.set_num_threads(before)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batchnorm2d_gradients_with_numba(check_gradients, mode, rng):
    layer = BatchNorm2d(3, dtype=np.float64)
    layer.weight.data[...] = [0.7, -1.2, 1.5]
    layer.bias.data[...] = [0.1, -0.3, 0.2]
    x = rng.standard_normal((3, 3, 2, 4))
    with using("numba"):
        layer(x * 1.5 + 0.2)
        if mode == "eval":
            layer.eval(backward=True)
        check_gradients(layer, x)


# --------------------------------------------------------------------------- LSTM / GRU
def _recurrent_run(cls, x, g, g_final, **kwargs):
    def run():
        layer = cls(x.shape[-1], g.shape[-1] // (2 if kwargs.get("bidirectional") else 1),
                    rng=7, dtype=x.dtype, **kwargs)
        y = layer(x)
        finals = layer.final_state if isinstance(layer.final_state, tuple) \
            else (layer.final_state,)
        grad_x = layer.backward(g, tuple(gf[:f.shape[0]] for gf, f in zip(g_final, finals))
                                if cls is LSTM else g_final[0])
        initial = layer.grad_initial_state
        initial = initial if isinstance(initial, tuple) else (initial,)
        return [y, *finals, grad_x, *initial] + [p.grad for p in layer.parameters()]
    return run


@dtypes
@pytest.mark.parametrize("cls", [LSTM, GRU], ids=["lstm", "gru"])
@given(T=st.integers(1, 5), n=st.integers(1, 4), features=st.integers(1, 4),
       hidden=st.integers(1, 5), bias=st.booleans(), data=st.data())
def test_recurrent_equals_numpy_path(dtype, cls, T, n, features, hidden, bias, data):
    x = data.draw(arrays((T, n, features))).astype(dtype)
    g = data.draw(arrays((T, n, hidden))).astype(dtype)
    g_final = [data.draw(arrays((1, n, hidden))).astype(dtype) for _ in range(2)]
    reference, fused = both_backends(_recurrent_run(cls, x, g, g_final, bias=bias))
    assert_close(reference, fused, dtype)


@pytest.mark.parametrize("cls", [LSTM, GRU], ids=["lstm", "gru"])
def test_recurrent_layouts_equal_numpy_path(cls):
    """Two layers, both directions, batch-first (non-contiguous per-step views) and batches
    large enough for the threads' row blocks."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((24, 6, 3)).astype(np.float32)  # batch_first: (N, T, F)
    g = rng.standard_normal((24, 6, 8)).astype(np.float32)
    g_final = [rng.standard_normal((4, 24, 4)).astype(np.float32) for _ in range(2)]
    kwargs = dict(num_layers=2, bidirectional=True, batch_first=True)
    with handgrad_threads(2):
        reference, fused = both_backends(_recurrent_run(cls, x, g, g_final, **kwargs))
    assert_close(reference, fused, np.float32)


@pytest.mark.parametrize("cls", [LSTM, GRU], ids=["lstm", "gru"])
def test_recurrent_gradients_with_numba(check_gradients, cls, rng):
    layer = cls(3, 4, dtype=np.float64, rng=2)
    x = rng.standard_normal((4, 2, 3))
    with using("numba"):
        check_gradients(layer, x)


# --------------------------------------------------------------------------- optimizers
@dtypes
@pytest.mark.parametrize("cls,kwargs", [
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)),
    (AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    (AdamW, dict(lr=0.0)),
    (SGD, dict(lr=0.01, momentum=0.9)),
    (SGD, dict(lr=0.01, momentum=0.5, dampening=0.2, nesterov=False, weight_decay=0.1)),
    (SGD, dict(lr=0.01, momentum=0.9, nesterov=True, maximize=True)),
], ids=["adam", "adam-ams-l2-max", "adamw-ams", "adamw-lr0", "sgd-m", "sgd-damp", "sgd-nest"])
def test_optimizer_updates_are_bit_identical(dtype, cls, kwargs):
    """Flat buckets (small tensors), chunked large tensors and one lone tensor."""
    def run():
        rng = np.random.default_rng(5)
        shapes = [(3, 4), (7,), (5, 5, 2), (300, 70)]  # the last is chunked (> 16384)
        params = [handgrad.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
        opt = cls(params, **kwargs)
        for _ in range(4):
            for p in params:
                p.grad = rng.standard_normal(p.shape).astype(dtype)
            opt.step()
        return [p.data for p in params]

    reference, fused = both_backends(run)
    for a, b in zip(reference, fused):
        assert b.dtype == dtype
        np.testing.assert_array_equal(b, a)


# --------------------------------------------------------------------------- ReLU, ResNet
@dtypes
@given(shape=st.sampled_from([(7,), (3, 5), (2, 3, 4, 4)]), data=st.data())
def test_relu_backward_equals_numpy_path(dtype, shape, data):
    y = np.maximum(data.draw(arrays(shape)), 0).astype(dtype)
    g = data.draw(arrays(shape)).astype(dtype)
    g.reshape(-1)[:2] = [np.nan, np.inf]  # exactly 0 where y <= 0, as PyTorch
    reference, fused = both_backends(lambda: [backprop_relu(g, y)])
    np.testing.assert_array_equal(fused[0], reference[0])
    assert fused[0].dtype == dtype


@dtypes
def test_basic_block_equals_numpy_path(dtype):
    """The residual add + ReLU (one pass), its ReLU backward and the BatchNorms inside."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 6, 6)).astype(dtype)

    def run():
        block = BasicBlock(4, 6, stride=2, rng=1, dtype=dtype)
        y = block(x)
        grad_x = block.backward(np.ones_like(y) - y)
        return [y, grad_x] + [p.grad for p in block.parameters()]

    reference, fused = both_backends(run)
    assert_close(reference, fused, dtype)
