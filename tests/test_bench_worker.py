"""The benchmark worker's timed rounds (benchmarks/worker.py)."""

from __future__ import annotations

import os

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


def test_no_worker_calibrates_while_another_is_still_starting():
    # Both workers are started at once; a worker's warm-up (which sets its steps per round)
    # must not run beside the other's start-up (importing torch takes a second or more).
    harness = pytest.importorskip("benchmarks.harness")
    events = []

    class FakeWorker:
        def __init__(self, name):
            self.name, self.started = name, False

        def ready(self):
            if not self.started:
                events.append(("ready", self.name))
                self.started = True

        def request(self, cmd, **kwargs):
            self.ready()
            events.append((cmd, self.name))
            if cmd == "setup":
                return {"status": "ok", "steps": 3}
            return {"times": [1e-3] * 3, "faults_per_step": 0.0, "peak_rss_mb": 1.0}

    class Opts:
        warmup, round_time, max_steps, rounds, pause = 2, 0.2, 100, 2, 0.0

    workers = {"handgrad": FakeWorker("handgrad"), "torch": FakeWorker("torch")}
    point = harness.measure_point(workers, "mlp", {"batch": 4}, Opts())
    first_setup = events.index(("setup", "handgrad"))
    assert {("ready", "handgrad"), ("ready", "torch")} <= set(events[:first_setup])
    assert point["variants"]["torch"]["steps"] == 6


def test_setup_reports_first_step_and_backend():
    import handgrad

    session = worker.Session("handgrad", 1)
    reply = session.setup("Linear", {"batch": 4, "in_features": 8, "out_features": 8},
                          warmup=1, round_time=1e-9, max_steps=400)
    if reply["status"] != "ok":
        pytest.skip(reply["detail"])
    assert reply["backend"] == handgrad.backend()
    assert reply["first_step_ms"] > 0


def test_backend_option_gives_one_column_per_backend():
    harness = pytest.importorskip("benchmarks.harness")
    assert harness.parse_args(["mlp", "--backend", "both"]).backend == "both"
    assert harness.VARIANTS["handgrad-numba"][1] == {"HANDGRAD_BACKEND": "numba"}
    assert harness.VARIANTS["handgrad-numpy"][1] == {"HANDGRAD_BACKEND": "numpy"}
    points = [{"kind": "main", "workload": "mlp", "variants": {
        "handgrad-numba": {"first_step_ms": 812.4, "backend": "numba"},
        "torch": {"first_step_ms": 3.0}}}]
    text = harness.format_first_steps(points, ["handgrad-numba", "torch"])
    assert text == "first step ms, handgrad-numba (backend numba): mlp 812"
    cache = harness._cache_env(harness.parse_args(["--cold-cache"]))["NUMBA_CACHE_DIR"]
    assert os.path.isdir(cache) and not os.listdir(cache)  # a fresh, empty directory
    os.rmdir(cache)
    assert harness._cache_env(harness.parse_args([])) == {}
