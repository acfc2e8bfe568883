"""``handgrad bench``: runs ``python -m benchmarks`` (handgrad beside PyTorch) from the source
checkout; every option after ``bench`` goes to it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .common import TORCH_VERSION


def benchmarks_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "benchmarks"


def run_bench(extra: Sequence[str] = ()) -> int:
    if importlib.util.find_spec("torch") is None:
        print("handgrad bench compares handgrad with PyTorch, which is not installed.\n"
              f"Install PyTorch's CPU build with:  pip install torch=={TORCH_VERSION}")
        return 0
    folder = benchmarks_dir()
    if not (folder / "__main__.py").is_file():
        print(f"handgrad bench: the benchmarks folder is not here ({folder}); it ships with "
              f"the source checkout, not with a regular install. Clone the repository and "
              f"run `pip install -e .` there.")
        return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(folder.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.call([sys.executable, "-m", "benchmarks", *extra], cwd=folder.parent,
                           env=env)
