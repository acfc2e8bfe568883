"""Data parallel with real MPI processes: ``mpiexec -n 2`` and ``-n 3`` started from pytest.

Each test runs ``mpi_worker.py`` (or ``handgrad train``) under mpiexec with a timeout and
asserts on what rank 0 reports. Skipped when mpi4py or mpiexec is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mpi4py")
MPIEXEC = shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec is not on PATH")

WORKER = Path(__file__).with_name("mpi_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def launch(n, *args, timeout=60, env=None, module=False):
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    environment.update(env or {})
    target = ["-m", "handgrad.cli"] if module else [str(WORKER)]
    started = time.perf_counter()
    done = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, *target, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=environment)
    return done, time.perf_counter() - started


def result(done):
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and len(lines) == 1, done.stdout + done.stderr
    return json.loads(lines[0][len("RESULT "):])


@pytest.mark.parametrize("ranks, dtype, model, n, batch, rtol", [
    (2, "float64", "cnn", 40, 8, 1e-10),
    (3, "float64", "cnn", 46, 12, 1e-10),  # shards of 16, 15, 15: the last batch is uneven
    (2, "float32", "cnn", 40, 8, 1e-5),  # float32: summation-order noise only (~3e-7)
    (3, "float64", "lstm", 46, 12, 1e-10),
])
def test_ranks_train_to_the_parameters_of_one_process(ranks, dtype, model, n, batch, rtol,
                                                      tmp_path):
    report = result(launch(ranks, "train", dtype, model, n, batch, tmp_path)[0])
    assert report["written"] == ["ckpt0", "log0.csv"]  # logs and checkpoints: rank 0 only
    assert max(report["diffs"].values()) < rtol, report["diffs"]
    assert report["loss_diff"] < rtol  # the epoch losses reduced over ranks, val included
    assert report["moved"] > 1e-3  # training changed the weights (rank 0's, broadcast)
    assert dtype in report["dtypes"]  # float32 stays float32
    assert sum(report["shards"]) == n
    if n % ranks:
        assert len(set(report["shards"])) == 2


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 5e-3)])
def test_sync_batchnorm_equals_batchnorm_on_the_whole_batch(dtype, tol):
    # 7 samples on 3 ranks (3, 2, 2), values around 1e4: float32 can hold them to ~1e-3,
    # which bounds the outputs' agreement; the merged variance stays accurate and positive.
    report = result(launch(3, "syncbn", dtype, 7)[0])
    assert report["dtype"] == dtype
    for key in ("y", "gx", "weight", "bias"):
        assert report[key] < tol, (key, report)
    assert report["running_mean"] < 1e-6
    assert report["running_var"] < (1e-10 if dtype == "float64" else 1e-4)
    assert report["var_positive"]


def test_a_rank_that_raises_ends_every_rank():
    done, seconds = launch(2, "raise")
    assert done.returncode != 0
    assert "rank 1 fails on purpose" in done.stderr
    assert "rank 1 of 2 raised RuntimeError; aborting every rank" in done.stderr
    assert "RESULT" not in done.stdout
    assert seconds < 30


def test_a_non_finite_loss_on_one_rank_ends_every_rank():
    done, seconds = launch(2, "nan")
    assert done.returncode != 0
    # the non-finite values reach every rank through the reductions: whichever rank notices
    # first aborts the job
    assert re.search(r"rank [01] of 2 raised FloatingPointError", done.stderr)
    assert "not searched in a data-parallel run" in done.stderr
    assert seconds < 30


def test_a_rank_that_hangs_times_out_the_others():
    done, seconds = launch(2, "hang", env={"HANDGRAD_MPI_TIMEOUT": "2"})
    assert done.returncode != 0
    assert "rank 0 waited more than 2 s in" in done.stderr
    assert seconds < 30


def test_mismatched_models_give_a_clear_error():
    done, _ = launch(2, "mismatch")
    assert done.returncode != 0
    assert ("the ranks built different models (rank 0 has 'parameter 0.weight (4, 1, 3, 3) "
            "float32 requires_grad=True', rank 1 has 'parameter 0.weight (5, 1, 3, 3)") \
        in done.stderr


def test_handgrad_train_under_mpiexec_and_resume_on_other_rank_counts(tmp_path):
    common = ["train", "--model", "mlp", "--max-samples", "400", "--scheduler", "cosine",
              "--checkpoint-dir", tmp_path]
    done, _ = launch(2, *common, "--epochs", "1", module=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert sum("test accuracy" in line for line in lines) == 1  # rank 0 alone prints
    assert "(2 ranks x 32 samples, 1 thread(s) each)" in lines[0]
    assert sum(line.startswith("epoch 1/1") for line in lines) == 1
    assert (tmp_path / "last.npz").is_file()
    done, _ = launch(3, *common, "--epochs", "2", "--batch-size", "63", "--resume", tmp_path,
                     "--quiet", module=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "after 2 epochs" in done.stdout and done.stdout.count("test accuracy") == 1
