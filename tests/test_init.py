"""Initialisers: statistics, fan computation, reproducibility, manual_seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import handgrad as hg
from handgrad import Parameter, init
from handgrad.init import fan_in_and_fan_out

SHAPE = (200, 300)  # 60k draws: standard errors well below the tolerances used here


def _param(shape=SHAPE, dtype=np.float64):
    return Parameter(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("shape,fans", [((4, 3), (3, 4)), ((16, 3, 5, 5), (75, 400)),
                                        ((8, 2, 3), (6, 24))])
def test_fan_in_and_fan_out(shape, fans):
    assert fan_in_and_fan_out(shape) == fans


def test_fan_needs_two_dimensions():
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got shape \(5,\)"):
        fan_in_and_fan_out((5,))


def _check_uniform(values, bound):
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.98 * bound and values.max() > 0.98 * bound
    assert abs(values.mean()) < 0.02 * bound
    assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def _check_normal(values, std, mean=0.0):
    assert values.mean() == pytest.approx(mean, abs=0.02 * std)
    assert values.std() == pytest.approx(std, rel=0.02)


def test_uniform_and_normal():
    p = init.uniform_(_param(), -2.0, 3.0, rng=0)
    assert p.data.min() >= -2 and p.data.max() <= 3
    assert p.data.mean() == pytest.approx(0.5, abs=0.03)
    _check_normal(init.normal_(_param(), 1.5, 0.7, rng=1).data, 0.7, mean=1.5)


def test_constant_zeros_ones_also_on_arrays():
    a = np.empty((2, 2))
    assert init.constant_(a, 3.0) is a and np.all(a == 3.0)
    assert np.all(init.zeros_(_param((3,))).data == 0)
    assert np.all(init.ones_(_param((3,))).data == 1)
    with pytest.raises(TypeError, match="expected a Parameter or numpy array"):
        init.zeros_([1.0, 2.0])


def test_xavier():
    fan_in, fan_out = SHAPE[1], SHAPE[0]
    _check_uniform(init.xavier_uniform_(_param(), gain=2.0, rng=2).data,
                   2.0 * math.sqrt(6 / (fan_in + fan_out)))
    _check_normal(init.xavier_normal_(_param(), rng=3).data, math.sqrt(2 / (fan_in + fan_out)))
    assert init.glorot_uniform_ is init.xavier_uniform_


def test_kaiming():
    fan_in, fan_out = SHAPE[1], SHAPE[0]
    _check_uniform(init.kaiming_uniform_(_param(), nonlinearity="relu", rng=4).data,
                   math.sqrt(2) * math.sqrt(3 / fan_in))
    _check_normal(init.kaiming_normal_(_param(), mode="fan_out", nonlinearity="relu",
                                       rng=5).data, math.sqrt(2 / fan_out))
    _check_normal(init.he_normal_(_param(), a=0.2, rng=6).data,
                  math.sqrt(2 / (1 + 0.04)) / math.sqrt(fan_in))
    with pytest.raises(ValueError, match="expected mode 'fan_in' or 'fan_out'"):
        init.kaiming_uniform_(_param(), mode="fan_avg")


def test_calculate_gain():
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("leaky_relu", 0.1) == pytest.approx(math.sqrt(2 / 1.01))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def test_linear_default_init_is_pytorchs():
    layer = hg.Linear(400, 300, rng=0)
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=sqrt 5) gives exactly 1/sqrt(fan_in)
    _check_uniform(layer.weight.data.astype(np.float64), bound)
    assert np.abs(layer.bias.data).max() <= bound
    assert layer.weight.data.dtype == np.float32


def test_values_are_stored_in_the_parameter_dtype():
    p = init.normal_(_param((10, 10), np.float32), rng=0)
    assert p.data.dtype == np.float32


def test_same_seed_same_values_and_generators_are_explicit():
    a = init.normal_(_param((5, 5)), rng=np.random.default_rng(42)).data
    b = init.normal_(_param((5, 5)), rng=42).data
    np.testing.assert_array_equal(a, b)
    c = init.normal_(_param((5, 5)), rng=43).data
    assert not np.array_equal(a, c)
    with pytest.raises(TypeError, match="expected a numpy.random.Generator"):
        init.normal_(_param((2, 2)), rng="seed")


def test_manual_seed_makes_default_draws_reproducible():
    hg.manual_seed(123)
    first = hg.Linear(4, 3).weight.data.copy()
    hg.manual_seed(123)
    second = hg.Linear(4, 3).weight.data.copy()
    np.testing.assert_array_equal(first, second)
    generator = hg.manual_seed(5)
    assert hg.default_generator() is generator
    with pytest.raises(ValueError, match="non-negative integer seed"):
        hg.manual_seed(-1)
