"""The benchmark harness: handgrad and PyTorch side by side, interleaved, in one run.

For every workload one worker process per framework (``benchmarks.worker``) imports its
framework with the thread count pinned, builds the workload from the same seed and shapes
(float32), warms up, and then the harness alternates timed rounds between the workers
(handgrad, torch, handgrad, torch, ...), so slow drifts of a shared machine hit both sides.
Reported per workload: median step time and its spread, the ratio handgrad / PyTorch,
GFLOP/s and share of the machine's measured float32 matmul peak, peak resident memory of
each worker above its post-import baseline, and minor page faults per step.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import fnmatch
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TORCH_HINT = "PyTorch is not installed: `pip install torch==2.13.0` (CPU build) to compare."

VARIANTS = {  # name -> (framework, extra environment)
    "handgrad": ("handgrad", {}),
    "handgrad-nomallopt": ("handgrad", {"HANDGRAD_NO_MALLOPT": "1"}),
    "handgrad-numba": ("handgrad", {"HANDGRAD_BACKEND": "numba"}),  # --backend
    "handgrad-numpy": ("handgrad", {"HANDGRAD_BACKEND": "numpy"}),
    "torch": ("torch", {}),
}


class WorkerError(RuntimeError):
    pass


class Worker:
    """A running ``benchmarks.worker`` process and its JSON-lines protocol."""

    def __init__(self, variant: str, threads: int, source: Path | None = None,
                 environment: dict | None = None):
        framework, extra = VARIANTS[variant]
        self.variant = variant
        env = dict(os.environ, **(environment or {}))
        if source is not None:
            env["HANDGRAD_BENCH_SOURCE"] = str(Path(source).resolve())
        env.update(extra)
        if "HANDGRAD_NO_MALLOPT" not in extra:
            env.pop("HANDGRAD_NO_MALLOPT", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", framework, str(threads)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, bufsize=1)
        self._ready = None

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self._stderr.seek(0)
                tail = self._stderr.read()[-1500:]
                raise WorkerError(f"{self.variant} worker exited: {tail}")
            if line.startswith("@@"):
                return json.loads(line[2:])

    def ready(self) -> dict:
        if self._ready is None:
            self._ready = self._read()
        return self._ready

    def request(self, cmd: str, **kwargs) -> dict:
        self.ready()
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


# ----------------------------------------------------------------------------- measuring
def _stats(times: list[float]) -> dict:
    a = np.asarray(times) * 1e3
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3),
            "min_ms": float(a.min()), "max_ms": float(a.max()), "steps": int(a.size)}


def measure_point(workers, name, params, opts, record_memory=True) -> dict:
    """Set up ``name`` at ``params`` in every worker, then interleave timed rounds."""
    out = {"workload": name, "params": params, "variants": {}}
    live = []
    # Every worker must have finished starting (importing its framework: a second or more
    # of CPU) before any of them calibrates: otherwise the first worker's warm-up steps run
    # beside the other's start-up, its step estimate comes out several times too long and
    # its rounds get only a handful of steps (measured: handgrad's lenet 4 steps per round
    # instead of ~30 and a ratio of 1.35, against 0.92-0.96 in runs without the overlap).
    for worker in workers.values():
        worker.ready()
    for variant, worker in workers.items():
        time.sleep(opts.pause)  # as before each round: the other worker's threads go idle
        reply = worker.request("setup", name=name, params=params, warmup=opts.warmup,
                               round_time=opts.round_time, max_steps=opts.max_steps)
        entry = {"status": reply["status"], "detail": reply.get("detail", ""),
                 "notes": reply.get("notes", [])}
        out["variants"][variant] = entry
        if reply["status"] == "ok":
            entry["steps_per_round"] = reply["steps"]
            for key in ("first_step_ms", "backend"):  # first step: compiles or loads kernels
                if key in reply:
                    entry[key] = reply[key]
            live.append(variant)
        elif variant.startswith("handgrad"):
            break  # nothing to compare against; skip the other side
    rounds = {v: [] for v in live}
    faults = {v: [] for v in live}
    rss = {v: 0.0 for v in live}
    for _ in range(opts.rounds):
        for variant in live:
            entry = out["variants"][variant]
            time.sleep(opts.pause)  # let the other worker's BLAS/OpenMP threads stop spinning
            reply = workers[variant].request("run", steps=entry["steps_per_round"])
            rounds[variant].append(reply["times"])
            faults[variant].append(reply["faults_per_step"])
            rss[variant] = reply["peak_rss_mb"]
    for variant in live:
        entry = out["variants"][variant]
        entry.update(_stats([t for r in rounds[variant] for t in r]))
        entry["round_medians_ms"] = [float(np.median(r) * 1e3) for r in rounds[variant]]
        entry["faults_per_step"] = float(np.median(faults[variant]))
        if record_memory:
            entry["peak_rss_mb"] = float(rss[variant])
    return out


def _add_derived(point: dict, flops: float | None, peak_gflops: float | None) -> None:
    variants = point["variants"]
    torch_entry = variants.get("torch", {})
    for variant, entry in variants.items():
        if entry.get("status") != "ok":
            continue
        if flops:
            entry["gflops"] = flops / (entry["median_ms"] * 1e-3) / 1e9
            if peak_gflops:
                entry["peak_share"] = entry["gflops"] / peak_gflops
        if variant != "torch" and torch_entry.get("status") == "ok":
            entry["ratio"] = entry["median_ms"] / torch_entry["median_ms"]
            per_round = [a / b for a, b in zip(entry["round_medians_ms"],
                                               torch_entry["round_medians_ms"])]
            entry["ratio_min"], entry["ratio_max"] = min(per_round), max(per_round)
            entry["ratio_best"] = entry["min_ms"] / torch_entry["min_ms"]
    if flops:
        point["flops"] = flops


def run_workload(workload, variants, opts, peak_gflops) -> list[dict]:
    workers = {v: Worker(v, opts.threads, opts.handgrad_source, _cache_env(opts))
               for v in variants}
    points = []
    try:
        main = measure_point(workers, workload.name, dict(workload.params), opts)
        main["kind"] = "main"
        for variant, worker in workers.items():
            if worker.ready().get("kernels_ms") and variant in main["variants"]:
                main["variants"][variant]["kernels_ms"] = worker.ready()["kernels_ms"]
        points.append(main)
        hg_ok = main["variants"].get(variants[0], {}).get("status") == "ok"
        if opts.sweep and hg_ok:
            for key, values in workload.sweep.items():
                for value in values:
                    params = dict(workload.params, **{key: value})
                    if params == workload.params:
                        continue
                    point = measure_point(workers, workload.name, params, opts,
                                          record_memory=False)
                    point["kind"] = f"sweep:{key}"
                    points.append(point)
    except WorkerError as err:
        points.append({"workload": workload.name, "params": workload.params, "kind": "main",
                       "variants": {v: {"status": "error", "detail": str(err)[-300:]}
                                    for v in variants}})
    finally:
        for worker in workers.values():
            worker.close()
    for point in points:
        flops = workload.flops(point["params"]) if workload.flops else None
        _add_derived(point, flops, peak_gflops)
        point["group"] = workload.group
        point["doc"] = workload.doc
    return points


def _cache_env(opts) -> dict:
    """``--cold-cache``: every worker gets a fresh, empty Numba cache directory, so the first
    step of each workload includes compiling its kernels (else they load from the cache)."""
    if not getattr(opts, "cold_cache", False):
        return {}
    return {"NUMBA_CACHE_DIR": tempfile.mkdtemp(prefix="handgrad-numba-cache-")}


def machine_info(variants, threads, source=None) -> dict:
    info = {"date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "platform": platform.platform(), "machine": platform.machine(),
            "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "threads": threads,
            "load_avg_start": _loadavg()}
    framework_variants = ["handgrad"] + [v for v in variants if v == "torch"]
    for variant in framework_variants:
        worker = Worker(variant, threads, source)
        try:
            info[variant] = worker.request("info")
            if variant == framework_variants[-1]:
                info["peak"] = worker.request("peak")
        finally:
            worker.close()
    return info


def _measure_peak(threads, source) -> float | None:
    worker = Worker("handgrad", threads, source)
    try:
        return worker.request("peak").get("numpy_gflops")
    except WorkerError:
        return None
    finally:
        worker.close()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


# ----------------------------------------------------------------------------- output
def _fmt_ms(entry) -> str:
    if entry.get("status") != "ok":
        return entry.get("status", "-")
    return f"{entry['median_ms']:.3g} [{entry['q1_ms']:.3g}-{entry['q3_ms']:.3g}]"


def _fmt_gf(entry) -> str:
    if entry.get("status") != "ok" or "gflops" not in entry:
        return "-"
    share = entry.get("peak_share")
    return f"{entry['gflops']:.1f} ({share * 100:.0f}%)" if share else f"{entry['gflops']:.1f}"


NOISY_IQR = 0.25  # (q3 - q1) / median above this on either side marks a ratio as noisy


def _noisy(entry) -> bool:
    return entry.get("status") == "ok" and (
        entry["q3_ms"] - entry["q1_ms"]) > NOISY_IQR * entry["median_ms"]


def _fmt_ratio(entry, torch_entry=None) -> str:
    if "ratio" not in entry:
        return "-"
    flag = " !" if _noisy(entry) or _noisy(torch_entry or {}) else ""
    return (f"{entry['ratio']:.2f} ({entry['ratio_min']:.2f}-{entry['ratio_max']:.2f}) "
            f"{entry['ratio_best']:.2f}{flag}")


def format_table(points, variants, markdown=False) -> str:
    hg = [v for v in variants if v != "torch"]
    cols = ["workload"]
    for v in hg:
        cols += [f"{v} ms [IQR]", f"ratio {v}/torch (rounds) best" if len(hg) > 1 else
                 "ratio (rounds) best"]
    if "torch" in variants:
        cols.append("torch ms [IQR]")
    who = "/".join(v.replace("handgrad", "hg") if v != "torch" else "torch"
                   for v in variants)
    cols += ["GFLOP/s hg (peak%)", "GFLOP/s torch", f"RSS MB {who}", f"faults/step {who}"]
    rows = []
    for point in points:
        if point["kind"] != "main":
            continue
        var = point["variants"]
        row = [point["workload"]]
        for v in hg:
            entry = var.get(v, {})
            cell = _fmt_ms(entry)
            if entry.get("status") in ("missing", "error"):
                cell = f"{entry['status']}: {entry.get('detail', '')}"[:60]
            row += [cell, _fmt_ratio(entry, var.get("torch"))]
        torch_entry = var.get("torch", {})
        if "torch" in variants:
            row.append(_fmt_ms(torch_entry) if torch_entry else "-")
        first = var.get(hg[0], {})
        row += [_fmt_gf(first), _fmt_gf(torch_entry)]
        row.append("/".join(f"{var.get(v, {}).get('peak_rss_mb', float('nan')):.0f}"
                            for v in variants if v in var))
        row.append("/".join(f"{var.get(v, {}).get('faults_per_step', float('nan')):.0f}"
                            for v in variants if v in var))
        rows.append(row)
    return _render(cols, rows, markdown)


def format_first_steps(points, variants) -> str:
    """One line per handgrad variant: its backend and each workload's first step in ms (it
    compiles the Numba kernels, or loads them from the on-disk cache, and warms up)."""
    lines = []
    for v in (v for v in variants if v != "torch"):
        cells, backend = [], None
        for point in points:
            entry = point["variants"].get(v, {})
            if point["kind"] == "main" and "first_step_ms" in entry:
                backend = entry.get("backend", backend)
                cells.append(f"{point['workload']} {entry['first_step_ms']:.0f}")
        if cells:
            lines.append(f"first step ms, {v} (backend {backend}): " + ", ".join(cells))
    return "\n".join(lines)


def format_sweeps(points, variants, markdown=False) -> str:
    hg = [v for v in variants if v != "torch"][0]
    cols = ["workload", "param", f"{hg} ms", "torch ms", "ratio", f"{hg} ms per unit",
            "torch ms per unit"]
    rows = []
    for point in points:
        sweep_keys = [k for k in ("batch", "T") if point["kind"] in ("main", f"sweep:{k}")]
        if not any(p["kind"].startswith("sweep") and p["workload"] == point["workload"]
                   for p in points):
            continue
        for key in sweep_keys:
            if point["kind"] == "main" and not any(
                    p["kind"] == f"sweep:{key}" and p["workload"] == point["workload"]
                    for p in points):
                continue
            value = point["params"][key]
            h, t = point["variants"].get(hg, {}), point["variants"].get("torch", {})
            hm = h.get("median_ms")
            tm = t.get("median_ms")
            rows.append((point["workload"], key, value, [
                f"{key}={value}", f"{hm:.3g}" if hm else "-", f"{tm:.3g}" if tm else "-",
                f"{hm / tm:.2f}" if hm and tm else "-",
                f"{hm / value:.3g}" if hm else "-", f"{tm / value:.3g}" if tm else "-"]))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return _render(cols, [[r[0], *r[3]] for r in rows], markdown)


def _render(cols, rows, markdown) -> str:
    if not rows:
        return ""
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in col) for col in zip(cols, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*cols), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*[str(c) for c in row]) for row in rows]
    return "\n".join(lines)


def write_results(result: dict, json_path: Path, csv_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1, default=str))
    fields = ["workload", "group", "kind", "params", "variant", "status", "median_ms", "q1_ms",
              "q3_ms", "min_ms", "max_ms", "steps", "ratio", "ratio_min", "ratio_max",
              "ratio_best",
              "gflops", "peak_share", "peak_rss_mb", "faults_per_step", "detail", "notes"]
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for point in result["points"]:
            for variant, entry in point["variants"].items():
                row = {"workload": point["workload"], "group": point.get("group"),
                       "kind": point["kind"], "params": json.dumps(point["params"]),
                       "variant": variant, **entry}
                row["notes"] = "; ".join(entry.get("notes", []))
                writer.writerow(row)


# ----------------------------------------------------------------------------- CLI
def select(patterns: list[str] | None, registry) -> list:
    if not patterns:
        return list(registry.values())
    groups = {"models": ("train", "eval"), "train": ("train",), "eval": ("eval",),
              "layers": ("layer",)}
    chosen = []
    for pattern in patterns:
        if pattern in groups:
            hits = [w for w in registry.values() if w.group in groups[pattern]]
        else:
            hits = [w for n, w in registry.items() if fnmatch.fnmatchcase(n.lower(),
                                                                           pattern.lower())]
        if not hits:
            raise SystemExit(f"no workload matches {pattern!r}; see --list")
        chosen += [w for w in hits if w not in chosen]
    return chosen


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="handgrad vs PyTorch (CPU, float32), interleaved in one run.")
    p.add_argument("workloads", nargs="*", help="names, glob patterns (Conv2d*) or groups: "
                   "models, train, eval, layers (default: all)")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    p.add_argument("--quick", action="store_true",
                   help="2 rounds of ~0.1 s, no sweeps (about a minute for everything)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    p.add_argument("--round-time", type=float, default=None,
                   help="seconds per framework per round (default 0.2)")
    p.add_argument("--warmup", type=int, default=2, help="minimum warm-up steps (default 2)")
    p.add_argument("--max-steps", type=int, default=400, help="cap on steps per round")
    p.add_argument("--pause", type=float, default=0.1,
                   help="idle seconds before each round so the other worker's spinning "
                   "threads go to sleep (default 0.1)")
    p.add_argument("--threads", type=int, default=2, help="threads per framework (default 2)")
    p.add_argument("--sweep", action="store_true",
                   help="also time each workload's batch-size / sequence-length sweep")
    p.add_argument("--no-torch", action="store_true", help="handgrad only")
    p.add_argument("--backend", choices=["numpy", "numba", "both"], default=None,
                   help="handgrad's kernels (default: handgrad's own default, numba when "
                        "installed); both: two handgrad columns, numba and numpy")
    p.add_argument("--cold-cache", action="store_true",
                   help="empty Numba cache per worker: the first step includes compiling")
    p.add_argument("--compare-mallopt", action="store_true",
                   help="also run handgrad with HANDGRAD_NO_MALLOPT=1 (glibc defaults)")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="where results go")
    p.add_argument("--json", type=Path, default=None, help="JSON path (default in --out-dir)")
    p.add_argument("--csv", type=Path, default=None, help="CSV path (default in --out-dir)")
    p.add_argument("--handgrad-source", type=Path, default=None,
                   help="directory holding the handgrad package to time (default: this "
                   "checkout), e.g. a `git archive` snapshot of a commit")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    opts = p.parse_args(argv)
    if opts.rounds is None:
        opts.rounds = 2 if opts.quick else 3
    if opts.round_time is None:
        opts.round_time = 0.1 if opts.quick else 0.2
    if opts.quick:
        opts.sweep = False
    return opts


def main(argv=None) -> int:
    opts = parse_args(argv)
    from . import workloads as wl
    if opts.list:
        for w in wl.REGISTRY.values():
            sweep = ", ".join(f"{k} in {v}" for k, v in w.sweep.items())
            print(f"{w.name:<22} {w.group:<6} {w.doc}" + (f"  [sweep {sweep}]" if sweep else ""))
        return 0
    chosen = select(opts.workloads, wl.REGISTRY)
    handgrad_variants = {None: ["handgrad"], "numpy": ["handgrad-numpy"],
                         "numba": ["handgrad-numba"],
                         "both": ["handgrad-numba", "handgrad-numpy"]}[opts.backend]
    variants = handgrad_variants + (["handgrad-nomallopt"] if opts.compare_mallopt else [])
    if opts.no_torch:
        pass
    elif importlib.util.find_spec("torch") is None:
        print(TORCH_HINT)
        print("Running handgrad-only timings.\n")
    else:
        variants.append("torch")
    t0 = time.perf_counter()
    info = machine_info(variants, opts.threads, opts.handgrad_source)
    peak = info.get("peak", {}).get("numpy_gflops")
    print(f"{info['date_utc']}  {info['cpu']}  ({info['cpu_count']} CPUs, {opts.threads} "
          f"threads per framework)  load avg {info['load_avg_start']}")
    print(f"numpy {info['handgrad']['numpy']}, torch {info.get('torch', {}).get('torch', '-')}"
          f", float32 matmul peak {peak:.0f} GFLOP/s (np.matmul 2048^3)"
          f"; handgrad malloc: {info['handgrad'].get('malloc', {}).get('reason')}"
          f"; OPENBLAS_THREAD_TIMEOUT: "
          f"{info['handgrad'].get('blas_env', {}).get('thread_timeout') or 'default'}")
    points = []
    for workload in chosen:
        print(f"  {workload.name} ...", end="", flush=True, file=sys.stderr)
        t_w = time.perf_counter()
        points += run_workload(workload, variants, opts, peak)
        print(f" {time.perf_counter() - t_w:.1f}s", file=sys.stderr)
    info["load_avg_end"] = _loadavg()
    end_peak = _measure_peak(opts.threads, opts.handgrad_source)
    info["peak_end"] = end_peak
    if end_peak and (not peak or end_peak > peak):  # a busy moment at the start lowers it
        peak = end_peak
        for point in points:
            flops = point.get("flops")
            for entry in point["variants"].values():
                if flops and "gflops" in entry:
                    entry["peak_share"] = entry["gflops"] / peak
    info["peak_used_gflops"] = peak
    info["elapsed_s"] = time.perf_counter() - t0
    info["options"] = {k: str(v) for k, v in vars(opts).items()}
    info["note"] = ("timings on a shared machine are noisy; frameworks were interleaved "
                    "round by round to spread the noise over both")
    table = format_table(points, variants, opts.markdown)
    print()
    print(table)
    first = format_first_steps(points, variants)
    kernels = sorted(round(e["kernels_ms"]) for p in points for e in p["variants"].values()
                     if e.get("kernels_ms"))
    if kernels:
        cache = "compiled: empty cache" if opts.cold_cache else "loaded from Numba's cache " \
            "(compiled on a first run)"
        first = (f"numba kernels ready in {kernels[0]}-{kernels[-1]} ms per worker start "
                 f"(import numba, all float32 kernels {cache})\n" + first)
    if first:
        print("\n" + first)
    sweeps = format_sweeps(points, variants, opts.markdown)
    if sweeps and "torch" in variants:
        print("\nScaling (ms per unit = per sample for batch, per time step for T):")
        print(sweeps)
    notes = sorted({n for p in points for e in p["variants"].values()
                    for n in e.get("notes", [])})
    for note in notes:
        print(f"note: {note}")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = opts.json or opts.out_dir / f"bench-{stamp}.json"
    csv_path = opts.csv or opts.out_dir / f"bench-{stamp}.csv"
    write_results({"info": info, "points": points}, json_path, csv_path)
    print(f"\npeak% uses the best float32 matmul peak of the run: {peak:.0f} GFLOP/s")
    if any(_noisy(e) for p in points if p["kind"] == "main" for e in p["variants"].values()):
        print(f"!: noisy (interquartile range > {NOISY_IQR:.0%} of the median; the CPU was "
              f"busy with other work); re-run, or compare with --threads 1")
    print(f"ratio = handgrad / PyTorch median step time (< 1: handgrad faster), "
          f"(rounds) = range of per-round ratios, best = ratio of the fastest steps. "
          f"{info['elapsed_s']:.0f} s. Results: {json_path}, {csv_path}")
    return 0
