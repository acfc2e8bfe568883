"""Tests for handgrad.inspect.plot: PNG files from a History."""

from __future__ import annotations

import sys

import pytest

from handgrad.training.fit import History

pytest.importorskip("matplotlib")

from handgrad.inspect.plot import plot_grad_norms, plot_history  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_history(epochs=4, with_val=True):
    history = History()
    for e in range(1, epochs + 1):
        logs = {"loss": 1.0 / e, "accuracy": 1 - 0.5 / e, "lr": 0.1, "time": 0.5}
        if with_val:
            logs.update(val_loss=1.2 / e, val_accuracy=1 - 0.6 / e)
        history.append(e, logs, {"0": 10.0 ** -e, "2": 0.5, "4": 2.0 * e})
    return history


def test_plot_history_writes_a_png(tmp_path):
    path = plot_history(make_history(), tmp_path / "sub" / "history.png", title="run")
    data = path.read_bytes()
    assert path == tmp_path / "sub" / "history.png"
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_plot_history_accepts_a_dict_and_skips_missing_panels(tmp_path):
    path = plot_history({"loss": [3.0, 2.0, 1.5]}, tmp_path / "loss.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="no loss or accuracy"):
        plot_history({"lr": [0.1]}, tmp_path / "nothing.png")
    with pytest.raises(TypeError, match="History or a dict"):
        plot_history([1, 2], tmp_path / "bad.png")


def test_plot_grad_norms_writes_a_png(tmp_path):
    path = plot_grad_norms(make_history(), tmp_path / "norms.png")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_plot_grad_norms_needs_norms(tmp_path):
    with pytest.raises(ValueError, match="no gradient norms"):
        plot_grad_norms(History(), tmp_path / "x.png")


def test_missing_matplotlib_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_history(make_history(), tmp_path / "h.png")
