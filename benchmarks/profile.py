"""Where a handgrad workload spends its time: cProfile over a few steps.

``python -m benchmarks.profile resnet20 --steps 5 --threads 2 --top 25``

Prints the functions with the most own time (``tottime``) and the most cumulative time,
with paths shortened to the package. Use ``py-spy record`` on the same command for a
sampling profile that also sees inside NumPy calls.
"""

from __future__ import annotations

import argparse
import os
import sys

from .worker import THREAD_VARS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    p.add_argument("workload")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--framework", default="handgrad", choices=["handgrad", "torch"])
    opts = p.parse_args(argv)
    for var in THREAD_VARS:
        os.environ[var] = str(opts.threads)
    import cProfile
    import io
    import pstats
    import resource
    import time

    if opts.framework == "torch":
        import torch
        torch.set_num_threads(opts.threads)
    from . import workloads

    wl = workloads.REGISTRY[opts.workload]
    step = wl.make(opts.framework, dict(wl.params))
    for _ in range(2):
        step()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(opts.steps):
        step()
    profiler.disable()
    elapsed = time.perf_counter() - t0
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / opts.steps
    print(f"{opts.workload} ({opts.framework}, {opts.threads} threads): "
          f"{elapsed / opts.steps * 1e3:.2f} ms/step under the profiler, "
          f"{faults:.0f} page faults/step")
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs() if key == "tottime" else None
        stats.sort_stats(key).print_stats(opts.top)
        text = out.getvalue()
        start = text.find("ncalls")
        print(f"\n--- by {key} ---")
        print(text[start:] if start >= 0 else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
