"""One benchmark worker: a single framework in its own process, driven by the harness.

Usage (by the harness): ``python -m benchmarks.worker FRAMEWORK THREADS``. The thread count
is put into the BLAS/OpenMP environment variables *before* NumPy or torch is imported.
Commands arrive as JSON lines on stdin; each answer is one stdout line starting with ``@@``
(anything else a library prints is ignored by the harness).
"""

from __future__ import annotations

import json
import os
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS")


def _reply(obj) -> None:
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _usage():
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_maxrss / 1024.0, r.ru_minflt  # MiB (ru_maxrss is KiB on Linux), faults


def _matmul_peak(threads: int, framework: str) -> dict:
    import numpy as np
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    result = {}

    def best(fn, reps=7):
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 2 * n ** 3 / min(times) / 1e9

    result["numpy_gflops"] = best(lambda: np.matmul(a, b, out=c))
    if framework == "torch":
        import torch
        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        result["torch_gflops"] = best(lambda: torch.matmul(ta, tb, out=tc))
    return result


def _info(framework: str) -> dict:
    import numpy as np
    info = {"numpy": np.__version__, "python": sys.version.split()[0]}
    try:
        config = np.show_config(mode="dicts")
        info["numpy_blas"] = config.get("Build Dependencies", {}).get("blas", {})
    except TypeError:  # NumPy < 1.25
        info["numpy_blas"] = {}
    try:
        import threadpoolctl
        info["threadpools"] = threadpoolctl.threadpool_info()
    except ImportError:
        info["threadpools"] = []
    import handgrad
    info["handgrad"] = handgrad.__version__
    if hasattr(handgrad, "malloc_settings"):
        info["malloc"] = handgrad.malloc_settings()
    if hasattr(handgrad, "blas_settings"):
        info["blas_env"] = handgrad.blas_settings()
    if hasattr(handgrad, "get_num_threads"):
        info["handgrad_threads"] = handgrad.get_num_threads()
    if framework == "torch":
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_parallel"] = torch.__config__.parallel_info()
    return info


def _touch(framework: str) -> float | None:
    """Run tiny operations once so lazily loaded kernels count in the RSS baseline.

    With handgrad's Numba backend this imports Numba and compiles (or loads from the
    on-disk cache) every float32 kernel, as torch's warm-up below loads its kernels: the
    JIT runtime (LLVM, ~100 MB) is then in the baseline like torch's libraries. Returns the
    milliseconds that took (None without the Numba backend)."""
    import numpy as np
    a = np.ones((64, 64), np.float32)
    a @ a
    if framework == "handgrad":
        try:
            from handgrad.ops.backend import kernels
        except ImportError:  # a handgrad without backends (--handgrad-source)
            return None
        t0 = time.perf_counter()
        fused = kernels()
        if fused is None:
            return None
        fused.warm_up(np.float32)
        return (time.perf_counter() - t0) * 1e3
    if framework == "torch":
        import torch
        x = torch.ones(2, 3, 8, 8, requires_grad=True)
        conv = torch.nn.Conv2d(3, 4, 3)
        lin = torch.nn.Linear(8, 4)
        opt = torch.optim.Adam([*conv.parameters(), *lin.parameters()])
        (conv(x).sum() + lin(x).sum()).backward()
        opt.step()
    return None


MIN_ROUND_STEPS = 3


class Session:
    def __init__(self, framework: str, threads: int):
        self.framework, self.threads = framework, threads
        self.step = None
        self.baseline_rss = _usage()[0]

    def setup(self, name, params, warmup, round_time, max_steps):
        import gc

        from . import workloads
        self.step = None
        gc.collect()
        workloads.NOTES.clear()
        try:
            step = workloads.REGISTRY[name].make(self.framework, params)
            times = []
            t_start = time.perf_counter()
            # at least `warmup` steps, then more until about one round's time has passed,
            # but never more than ~3 round times when steps are slow
            while len(times) < warmup or time.perf_counter() - t_start < round_time:
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
                if len(times) >= 2 and time.perf_counter() - t_start > 3 * round_time:
                    break
        except workloads.Missing as err:
            return {"status": "missing", "detail": str(err)}
        except Exception as err:  # noqa: BLE001 - reported, the run goes on
            kind = type(err).__name__
            if kind == "NoTwin":
                return {"status": "missing", "detail": f"torch side: {err}"}
            return {"status": "error", "detail": f"{kind}: {err}"[:300]}
        self.step = step
        import handgrad
        backend = handgrad.backend() if hasattr(handgrad, "backend") else "numpy"
        estimate = sorted(times[len(times) // 2:])[len(times[len(times) // 2:]) // 2]
        # at least MIN_ROUND_STEPS timed steps per round, so that a slow workload's median is
        # not one step's time
        steps = max(MIN_ROUND_STEPS, min(max_steps, round(round_time / max(estimate, 1e-6))))
        return {"status": "ok", "steps": steps, "estimate": estimate,
                "first_step_ms": times[0] * 1e3,
                **({"backend": backend} if self.framework == "handgrad" else {}),
                "notes": sorted(set(workloads.NOTES))}

    def run(self, steps):
        import gc
        gc.collect()
        step = self.step
        # One untimed step first: the round starts after a pause in which this worker's
        # threads went to sleep and the other framework ran, and its first step pays for
        # waking threads and refilling caches. The timed steps are steady-state steps, as
        # in a training loop.
        step()
        times = []
        _, faults0 = _usage()
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        rss, faults1 = _usage()
        return {"times": times, "faults_per_step": (faults1 - faults0) / steps,
                "peak_rss_mb": rss - self.baseline_rss, "baseline_rss_mb": self.baseline_rss}


def main() -> None:
    framework, threads = sys.argv[1], int(sys.argv[2])
    source = os.environ.get("HANDGRAD_BENCH_SOURCE")
    if source:  # time another checkout of handgrad (e.g. a snapshot of a commit)
        sys.path.insert(0, source)
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    if framework == "handgrad":
        # before NumPy: handgrad then sets OpenBLAS's idle timeout through the environment
        # (the plain way of the two in handgrad/_blas_env.py)
        import handgrad  # noqa: F401
    import numpy  # noqa: F401  (imported after the thread variables are set)
    if framework == "torch":
        import torch
        torch.set_num_threads(threads)
    import handgrad  # noqa: F401  (both sides: the torch side ports handgrad models)

    from . import workloads  # noqa: F401

    kernels_ms = _touch(framework)
    session = Session(framework, threads)
    _reply({"status": "ready", "baseline_rss_mb": session.baseline_rss,
            "kernels_ms": kernels_ms})
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("cmd")
        if op == "quit":
            break
        if op == "setup":
            _reply(session.setup(**cmd))
        elif op == "run":
            _reply(session.run(**cmd))
        elif op == "peak":
            _reply(_matmul_peak(threads, framework))
        elif op == "info":
            _reply(_info(framework))
        else:
            _reply({"status": "error", "detail": f"unknown command {op}"})


if __name__ == "__main__":
    main()
