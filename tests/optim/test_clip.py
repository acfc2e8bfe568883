"""Gradient clipping by norm and by value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from handgrad import Parameter
from handgrad.optim import clip_grad_norm_, clip_grad_value_


def params_with_grads(grads, dtype=np.float64):
    params = []
    for g in grads:
        p = Parameter(np.zeros(np.shape(g), dtype=dtype))
        p.grad = np.array(g, dtype=dtype)
        params.append(p)
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_scales_to_max_norm(norm_type):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)) * 5, rng.standard_normal(6) * 5]
    params = params_with_grads(grads)
    flat = np.concatenate([g.ravel() for g in grads])
    expected = np.linalg.norm(flat, ord=norm_type)
    total = clip_grad_norm_(params, max_norm=1.0, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(expected, rel=1e-12)
    coef = 1.0 / (expected + 1e-6)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad, g * coef, rtol=1e-12)
    new_flat = np.concatenate([p.grad.ravel() for p in params])
    assert np.linalg.norm(new_flat, ord=norm_type) == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_leaves_small_grads_and_skips_none():
    params = params_with_grads([[0.3, 0.4]])
    params.append(Parameter(np.zeros(2)))  # no grad: ignored
    assert clip_grad_norm_(params, max_norm=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(params[0].grad, [0.3, 0.4])
    assert clip_grad_norm_([Parameter(np.zeros(2))], 1.0) == 0.0
    single = params_with_grads([[3.0, 4.0]])[0]
    assert clip_grad_norm_(single, 1.0) == pytest.approx(5.0)


def test_clip_grad_norm_float32_and_nonfinite():
    params = params_with_grads([np.full(4, 10.0)], dtype=np.float32)
    clip_grad_norm_(params, 1.0)
    assert params[0].grad.dtype == np.float32
    bad = params_with_grads([[np.inf, 1.0]])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_(bad, 1.0) == math.inf
    with pytest.raises(ValueError, match="norm_type -1.0"):
        clip_grad_norm_(params, 1.0, norm_type=-1)
    with pytest.raises(TypeError, match="expected Parameters, got ndarray"):
        clip_grad_norm_([np.zeros(2)], 1.0)


def test_clip_grad_value():
    params = params_with_grads([[-3.0, 0.5, 2.0]], dtype=np.float32)
    grad = params[0].grad
    clip_grad_value_(params, 1.0)
    assert params[0].grad is grad  # in place
    np.testing.assert_array_equal(grad, np.array([-1.0, 0.5, 1.0], dtype=np.float32))
    assert grad.dtype == np.float32
    with pytest.raises(ValueError, match="got -1.0"):
        clip_grad_value_(params, -1.0)


@pytest.mark.parametrize("norm_type", [2.0, 1.5, math.inf])
def test_clip_matches_torch(norm_type):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal((4, 3)), rng.standard_normal(5)]
    params = params_with_grads(grads)
    tparams = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g)
    total = clip_grad_norm_(params, 0.7, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, 0.7, norm_type=norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)
