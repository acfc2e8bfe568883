"""The benchmark worker's timed rounds (benchmarks/worker.py)."""

from __future__ import annotations

import pytest

worker = pytest.importorskip("benchmarks.worker")


def test_round_starts_with_one_untimed_step():
    # After the pause between rounds the first step wakes threads and refills caches; it
    # is run but not timed, so every timed step is a steady-state step.
    calls = []
    session = worker.Session("handgrad", 1)
    session.step = lambda: calls.append(len(calls))
    reply = session.run(steps=3)
    assert len(calls) == 4 and len(reply["times"]) == 3


def test_setup_times_at_least_a_few_steps_per_round():
    session = worker.Session("handgrad", 1)
    reply = session.setup("Linear", {"batch": 4, "in_features": 8, "out_features": 8},
                          warmup=1, round_time=1e-9, max_steps=400)
    if reply["status"] != "ok":
        pytest.skip(reply["detail"])
    assert reply["steps"] == worker.MIN_ROUND_STEPS
