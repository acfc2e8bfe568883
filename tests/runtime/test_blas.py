"""``import handgrad`` shortens OpenBLAS's idle spinning (OPENBLAS_THREAD_TIMEOUT) when it can."""

import json
import os
import subprocess
import sys

import handgrad
from handgrad._runtime import blas as _blas_env

# Prints blas_settings() and the timeout OpenBLAS itself read (None without OpenBLAS).
PROBE = """
import json, ctypes
{imports}
import threadpoolctl
seen = None
for pool in threadpoolctl.threadpool_info():
    if pool.get("internal_api") == "openblas":
        lib = ctypes.CDLL(pool["filepath"])
        if hasattr(lib, "openblas_thread_timeout"):
            seen = lib.openblas_thread_timeout()
print(json.dumps({{"settings": handgrad.blas_settings(), "openblas": seen}}))
"""


def _probe(env_updates=None, imports="import handgrad"):
    env = {k: v for k, v in os.environ.items()
           if k not in (_blas_env.VARIABLE, _blas_env.ENV_VAR)}
    env.update(env_updates or {})
    out = subprocess.run([sys.executable, "-c", PROBE.format(imports=imports)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_settings_report_has_documented_keys():
    settings = handgrad.blas_settings()
    assert set(settings) == {"applied", "how", "reason", "thread_timeout"}
    settings["applied"] = "changed"
    assert handgrad.blas_settings()["applied"] != "changed"  # a copy is returned


def test_set_when_handgrad_comes_first():
    result = _probe()
    assert result["settings"] == {"applied": True, "how": "environment", "reason": "ok",
                                  "thread_timeout": str(_blas_env.THREAD_TIMEOUT)}
    if result["openblas"] is not None:  # OpenBLAS read the value handgrad set
        assert result["openblas"] == _blas_env.THREAD_TIMEOUT


def test_a_value_set_by_the_user_wins():
    result = _probe({_blas_env.VARIABLE: "22"})
    assert result["settings"]["applied"] is False
    assert result["settings"]["thread_timeout"] == "22"
    assert _blas_env.VARIABLE in result["settings"]["reason"]
    if result["openblas"] is not None:
        assert result["openblas"] == 22


def test_off_switch():
    result = _probe({_blas_env.ENV_VAR: "1"})
    assert result["settings"]["applied"] is False
    assert result["settings"]["thread_timeout"] is None
    assert _blas_env.ENV_VAR in result["settings"]["reason"]
    if result["openblas"] is not None:
        assert result["openblas"] == 0  # OpenBLAS's own default


def test_after_numpy_the_running_openblas_is_restarted_with_the_timeout():
    # NumPy first, and a threaded multiply so that OpenBLAS's threads are running
    result = _probe(imports="import numpy\n(numpy.ones((300, 300)) @ numpy.ones((300, 300)))\n"
                            "import handgrad\n"
                            "assert (numpy.ones((300, 300)) @ numpy.ones((300, 300)) == 300).all()")
    settings = result["settings"]
    if result["openblas"] is None:  # another BLAS: nothing to do, and it says so
        assert settings["applied"] is False and "NumPy was imported before" in settings["reason"]
        return
    if settings["applied"]:
        assert settings["how"] == "runtime"
        assert settings["thread_timeout"] == str(_blas_env.THREAD_TIMEOUT)
        assert result["openblas"] == _blas_env.THREAD_TIMEOUT
    else:  # an OpenBLAS without the needed functions: unchanged, and the reason says how
        assert f"{_blas_env.VARIABLE}={_blas_env.THREAD_TIMEOUT}" in settings["reason"]
        assert result["openblas"] == 0


def test_runtime_path_is_off_with_the_switch_too():
    result = _probe({_blas_env.ENV_VAR: "1"}, imports="import numpy\nimport handgrad")
    assert result["settings"]["applied"] is False
    if result["openblas"] is not None:
        assert result["openblas"] == 0
