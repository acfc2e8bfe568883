"""The backend switch: names, errors, the environment variable, numba never imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import handgrad
from handgrad.ops import backend as backend_module


def _run(code: str, **env) -> str:
    environment = {**os.environ, **env}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=environment, check=True)
    return result.stdout.strip()


def test_set_backend_switches_and_reports():
    before = handgrad.backend()
    try:
        handgrad.set_backend("numpy")
        assert handgrad.backend() == "numpy"
        assert backend_module.kernels() is None
        if backend_module.numba_available():
            handgrad.set_backend("NumBa ")
            assert handgrad.backend() == "numba"
            assert backend_module.kernels() is not None
    finally:
        handgrad.set_backend(before)


@pytest.mark.parametrize("name", ["torch", "", 3, None])
def test_bad_backend_names_raise(name):
    with pytest.raises(ValueError, match=r"set_backend: expected one of \('numpy', 'numba'\)"):
        handgrad.set_backend(name)


def test_numba_backend_without_numba_raises(monkeypatch):
    monkeypatch.setattr(backend_module, "numba_available", lambda: False)
    with pytest.raises(ImportError, match=r"pip install handgrad\[fast\]"):
        handgrad.set_backend("numba")


def test_numpy_backend_never_imports_numba():
    code = ("import sys, numpy as np, handgrad as hg\n"
            "bn = hg.BatchNorm2d(3); x = np.ones((2, 3, 4, 4), np.float32)\n"
            "bn.backward(bn(x)); print(hg.backend(), 'numba' in sys.modules)")
    assert _run(code, HANDGRAD_BACKEND="numpy") == "numpy False"


def test_environment_variable_picks_the_default():
    numba = backend_module.numba_available()
    expected = "numba" if numba else "numpy"
    code = "import handgrad; print(handgrad.backend())"
    assert _run(code, HANDGRAD_BACKEND="") == expected
    with pytest.raises(subprocess.CalledProcessError) as error:
        _run(code, HANDGRAD_BACKEND="fortran")
    assert "HANDGRAD_BACKEND: expected one of" in error.value.stderr
