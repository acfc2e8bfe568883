"""Run every example as a script and check the numbers it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import handgrad as hg

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in:\n{text}"
    return float(match.group(1))


def test_one_neuron_gradients_equal_the_hand_computation():
    out = run_example("01_one_neuron.py")
    # chain rule: z = 0 (+ rounding) > 0, y = z, dL/dz = 2 (y - 1) = -2
    expected = {"dL/dw[0]": -2.0, "dL/dw[1]": -4.0, "dL/db": -2.0, "dL/dx[0]": -1.0,
                "dL/dx[1]": 0.6}
    for name, value in expected.items():
        match = re.search(rf"{re.escape(name)}\s+(\S+)\s+(\S+)", out)
        assert match, name
        assert float(match.group(1)) == pytest.approx(value, abs=1e-6), name
        assert float(match.group(2)) == pytest.approx(value, abs=1e-6), name
    assert "by hand == handgrad: True" in out
    assert number(r"L = \(y - 1.0\)\^2\s+=\s+(\S+)", out) == pytest.approx(1.0)
    # at the kink the numerical slope is the average of the one-sided ones
    assert number(r"numerical dL/dw = (\S+)", out) == pytest.approx(-1.0, abs=1e-5)
    reports = out.split("gradcheck with b = 0.15")
    assert "FAILED" in reports[0]
    assert "passed" in reports[1] and "FAIL" not in reports[1]


def test_two_layer_sgd_step_matches_a_numpy_computation():
    out = run_example("02_two_layer_sgd.py")
    before = number(r"loss before: (\S+)", out)
    after = number(r"loss after:\s+(\S+)", out)
    assert "loss decreased: True" in out and after < before

    # The same seeded model, recomputed here with plain NumPy (float64).
    rng = np.random.default_rng(0)
    l1, l2 = hg.Linear(2, 4, rng=rng), hg.Linear(4, 1, rng=rng)
    w1, b1 = l1.weight.data.astype(np.float64), l1.bias.data.astype(np.float64)
    w2, b2 = l2.weight.data.astype(np.float64), l2.bias.data.astype(np.float64)
    x, t = np.array([[1.0, 2.0]]), np.array([[3.0]])

    def forward(w1, b1, w2, b2):
        h = np.maximum(x @ w1.T + b1, 0)
        return h, h @ w2.T + b2

    h, y = forward(w1, b1, w2, b2)
    assert before == pytest.approx(float(((y - t) ** 2).mean()), rel=1e-5)
    dy = 2 * (y - t)
    dw2, db2 = dy.T @ h, dy.sum(0)
    dz = (dy @ w2) * (h > 0)
    dw1, db1 = dz.T @ x, dz.sum(0)
    grad_line = re.search(r"2\.bias\s+shape \(1,\)\s+grad \[(\S+)\]", out)
    assert float(grad_line.group(1)) == pytest.approx(db2[0], rel=1e-5)
    _, y_new = forward(w1 - 0.1 * dw1, b1 - 0.1 * db1, w2 - 0.1 * dw2, b2 - 0.1 * db2)
    assert after == pytest.approx(float(((y_new - t) ** 2).mean()), rel=1e-4)


def test_fit_line_reaches_the_least_squares_error():
    out = run_example("03_fit_line.py")
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
        assert re.search(rf"{re.escape(name)}\s+value \[.*\]\s+grad \[.*\]", out), name
    best = number(r"its MSE (\S+);", out)
    final = number(r"final loss after \d+ steps: (\S+)", out)
    assert final < 1.1 * best
    rows = re.findall(r"^\s*(-?\d\.\d\d)\s+(\S+)\s+(\S+)\s+(\S+)$", out, flags=re.M)
    assert len(rows) == 10
    for x, _, prediction, line in rows:
        assert float(prediction) == pytest.approx(2 * float(x) + 3, abs=0.1)
        assert float(line) == pytest.approx(2 * float(x) + 3, abs=0.02)  # x printed rounded


def test_char_transformer_loss_falls_and_it_samples_text():
    out = run_example("char_transformer.py", "--steps", "60")  # the full run takes 300
    entropy = number(r"unigram entropy (\S+) nats", out)
    first = number(r"loss fell from (\S+) to", out)
    last = number(r"loss fell from \S+ to (\S+) ", out)
    assert first > 0.9 * entropy  # it starts knowing nothing
    assert last < 0.6 * entropy  # and after 60 steps uses the context
    steps = re.findall(r"^step\s+(\d+)\s+loss (\S+)", out, flags=re.M)
    assert [int(s) for s, _ in steps] == [1, 25, 50, 60]
    sample = re.search(r"^sample: (.*)$", out, flags=re.M).group(1)
    assert len(sample) == 124 and sample.startswith("the ")


def run_lesson(name: str, out_dir: Path) -> str:
    return run_example(name, str(out_dir))


def test_vanishing_gradients_lesson(tmp_path):
    out = run_lesson("04_vanishing_gradients.py", tmp_path)
    rows = dict(re.findall(r"^(\S.*?)\s+\S+\s+\S+\s+(\S+)\s+(?:vanishing|-)$", out, flags=re.M))
    assert float(rows["sigmoid"]) < 1e-6
    for cure in ("relu + He init", "sigmoid + BatchNorm", "sigmoid + residual"):
        assert float(rows[cure]) > 1e-3, cure
    assert re.search(r"^sigmoid .* vanishing$", out, flags=re.M)
    assert (tmp_path / "vanishing_gradients.png").stat().st_size > 1000


def test_exploding_gradients_lesson(tmp_path):
    out = run_lesson("05_exploding_gradients.py", tmp_path)
    assert "plain SGD: final loss inf" in out
    clipped = number(r"clip_grad_norm_\(1\.0\): final loss (\S+)", out)
    first = number(r"clip_grad_norm_\(1\.0\).*?\n.*?\n\s+0\s+(\S+)", out)
    assert np.isfinite(clipped) and clipped < first
    assert "exploding gradient" in out
    assert (tmp_path / "exploding_gradients.png").stat().st_size > 1000


def test_rnn_vs_lstm_lesson(tmp_path):
    out = run_lesson("06_rnn_vs_lstm.py", tmp_path)
    row = re.search(r"^\s+99\s+(\S+)\s+(\S+)\s+(\S+)$", out, flags=re.M)
    rnn, _, lstm = (float(v) for v in row.groups())
    assert rnn < 1e-15 and lstm > 1e-2
    assert (tmp_path / "rnn_vs_lstm.png").stat().st_size > 1000


def test_saliency_digits_lesson(tmp_path):
    out = run_lesson("07_saliency_digits.py", tmp_path)
    assert number(r"test accuracy after 2 epochs: (\S+)", out) > 0.85
    assert number(r"completeness error \(max \|delta\|\): (\S+)", out) < 0.2
    assert (tmp_path / "saliency_digits.png").stat().st_size > 1000
