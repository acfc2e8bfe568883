"""Shared test setup: hypothesis profiles and the one gradient-check fixture.

Profiles: ``quick`` (default, keeps the suite under a few minutes on 2 cores) and
``thorough`` (many more examples), chosen with ``HANDGRAD_HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import handgrad

settings.register_profile(
    "quick", max_examples=12, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HANDGRAD_HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture
def check_gradients():
    """The shared gradient check: float64 central differences, random upstream gradient.

    It holds no state, so it is safe inside ``@given`` tests (the profiles suppress
    hypothesis's function-scoped-fixture health check for that reason).

    ``check_gradients(layer, x, *args, **kwargs)`` runs ``handgrad.gradcheck`` with its
    default tolerances and fails the test with the report table if any tensor disagrees.
    Returns the report.
    """

    def check(layer, x, *args, **kwargs):
        kwargs.setdefault("raise_exception", True)
        report = handgrad.gradcheck(layer, x, *args, **kwargs)
        assert report.passed, str(report)
        return report

    return check


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
