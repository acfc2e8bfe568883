"""The glibc allocator tuning done at ``import handgrad`` and its off switch."""

import json
import os
import subprocess
import sys

import pytest

import handgrad
from handgrad._runtime import malloc as _malloc

PROBE = "import json, handgrad; print(json.dumps(handgrad.malloc_settings()))"


def _settings_in_subprocess(env_value):
    env = dict(os.environ)
    env.pop(_malloc.ENV_VAR, None)
    if env_value is not None:
        env[_malloc.ENV_VAR] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_settings_report_has_documented_keys():
    settings = handgrad.malloc_settings()
    assert set(settings) == {"applied", "reason", "mmap_threshold", "trim_threshold"}
    assert isinstance(settings["applied"], bool)
    settings["applied"] = "changed"
    assert handgrad.malloc_settings()["applied"] != "changed"  # a copy is returned


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc-only")
def test_thresholds_raised_by_default_on_linux():
    settings = _settings_in_subprocess(None)
    if settings["reason"] in ("glibc not found", "libc is not glibc"):
        pytest.skip("not a glibc system")
    assert settings["applied"] is True
    assert settings["mmap_threshold"] == _malloc.MMAP_THRESHOLD
    assert settings["trim_threshold"] == _malloc.TRIM_THRESHOLD


@pytest.mark.parametrize("value", ["1", "yes"])
def test_env_var_turns_it_off(value):
    settings = _settings_in_subprocess(value)
    assert settings["applied"] is False
    assert settings["mmap_threshold"] is None and settings["trim_threshold"] is None
    assert _malloc.ENV_VAR in settings["reason"]


def test_env_var_zero_keeps_it_on():
    assert _settings_in_subprocess("0") == _settings_in_subprocess(None)
