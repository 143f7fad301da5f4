"""The steps of ``benchmarks/gpu_proof.sh``: the evidence docs/gpu.md records.

Each step is one subcommand, run by the shell script in its own time box, writing
``<work>/<step>.json``; ``summary`` gathers them into the files the script leaves.
``--rehearse`` (CPU only, small sizes) runs the same code: the workflows on the CPU
backend, and the CuPy steps on the CuPy stand-in of tests/cupy_standin (NumPy
underneath, CuPy's API), so CI catches a broken step before a GPU host is lent.

    python benchmarks/gpu_proof.py env|workflows|bandwidth|handwritten|semantics|summary WORK
        [--rehearse]

(``doctor``, ``tests`` and ``wftests`` are run by the shell script itself.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from beyond_memory import FROM_DISK  # noqa: E402 - the spectrum of an array file
STEPS = ("env", "doctor", "tests", "wftests", "workflows", "bandwidth", "handwritten",
         "semantics")
GIB = 2**30
# float32 FFT and reduction order differ between cuFFT / CuPy and pocketfft / NumPy
RTOL, ATOL = 1e-4, 1e-6



def sizes(rehearse: bool) -> dict:
    """Rows x 4096 float32 for the spectra (4 GiB, and 2 GiB read from a file), and
    option_pricing at its own 4 GiB default; a few MiB in a rehearsal."""
    if rehearse:
        return {"spectrum_rows": 2048, "cols": 256, "file_rows": 4096,
                "option_pricing": ["stages.shock.shape=[200000]", "stages.shock.chunks=[50000]",
                                   "stages.path_shock.shape=[4000,252]",
                                   "stages.path_shock.chunks=[1000,-1]"]}
    return {"spectrum_rows": 262144, "cols": 4096, "file_rows": 131072, "option_pricing": []}


def save(work: Path, step: str, doc: dict) -> None:
    (work / f"{step}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")


# -- env ---------------------------------------------------------------------------------

def step_env(work: Path, rehearse: bool) -> dict:
    smi = shutil.which("nvidia-smi")
    gpus = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout \
        .strip() if smi else "nvidia-smi not found"
    versions = {"python": platform.python_version()}
    for dist in ("pipeline", "numpy", "pandas", "dask", "distributed", "dask-cuda",
                 "cupy-cuda12x", "cupy-cuda13x", "cudf-cu12", "cudf-cu13", "cuda-core",
                 "nvidia-ml-py", "zarr", "bokeh"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    cupy = _cupy(rehearse)
    runtime = cupy.cuda.runtime if hasattr(cupy.cuda, "runtime") else None
    device = {"rehearsal": "CuPy stand-in, no GPU"} if rehearse else {
        "cuda_runtime": runtime.runtimeGetVersion(), "cuda_driver": runtime.driverGetVersion(),
        "name": runtime.getDeviceProperties(0)["name"].decode(),
        "memory_bytes": cupy.cuda.Device(0).mem_info[1]}
    return {"nvidia_smi_L": gpus, "cores": os.cpu_count(), "versions": versions,
            "cupy": getattr(cupy, "__version__", None), "device": device,
            "rehearsal": rehearse}


def _cupy(rehearse: bool):
    if rehearse:  # the stand-in: CuPy's API on NumPy (tests/cupy_standin)
        sys.path.insert(0, str(ROOT / "tests" / "cupy_standin" / "site"))
    import cupy

    return cupy


# -- workflows ---------------------------------------------------------------------------

def run_pipeline(name: str, workflow: Path, out: Path, backend: str, sets: list[str],
                 timeout: float, address: str | None = None, flags: tuple = ()) -> dict:
    """One whole ``python -m pipeline run`` process: wall time, report.json figures."""
    cmd = [sys.executable, "-m", "pipeline", "run", str(workflow), "--backend", backend,
           "--no-dashboard", "--quiet", "--output-dir", str(out), *flags]
    cmd += ["--address", address] if address else []
    for item in sets:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": name, "ok": False, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:  # the whole stderr to the log: the first GPU run is read there
        print(f"--- {name} failed, exit {proc.returncode}:\n{proc.stderr[-4000:]}", flush=True)
        return {"name": name, "ok": False, "wall_s": wall,
                "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    report = json.loads((out / "report.json").read_text())
    t = report["totals"]
    out_bytes = {st["id"]: (st.get("output") or {}).get("bytes") or 0
                 for st in report["stages"]}
    # each array stage's compute time and the bytes it must read (its inputs) and write
    # (its output) at least once: its memory-bound floor, judged against the copy ceiling
    stages = {st["id"]: {"op": st["op"], "compute_s": st["compute_s"],
                         "bytes": out_bytes[st["id"]]
                         + sum(out_bytes.get(u, 0) for u in st["upstream"])}
              for st in report["stages"]
              if (st.get("output") or {}).get("kind") == "array" and st["compute_s"] > 0}
    return {"name": name, "ok": True, "backend": report["backend"], "wall_s": wall,
            "stages": stages,
            "run_s": t["wall_s"], "compute_s": t["compute_s"], "h2d_bytes": t["h2d_bytes"],
            "d2h_bytes": t["d2h_bytes"], "spilled_bytes": t.get("spilled_bytes"),
            "peak_device_bytes": t.get("peak_device_bytes"),
            "chunk_bytes": report["cluster"].get("array_chunk_bytes"),
            "performance_report": report.get("performance_report"),
            "workers": report["cluster"]["n_workers"]}


def _outputs_equal(a: Path, b: Path, exact: bool) -> dict:
    x, y = np.load(a / "mean_power.npy"), np.load(b / "mean_power.npy")
    if x.shape != y.shape:
        return {"ok": False, "max_diff": float("inf")}
    if exact:
        return {"ok": bool(np.array_equal(x, y)),
                "max_diff": float(np.max(np.abs(x - y), initial=0.0))}
    rel = float(np.max(np.abs(x - y) / np.maximum(np.abs(y), ATOL), initial=0.0))
    return {"ok": bool(np.allclose(x, y, rtol=RTOL, atol=ATOL)), "max_diff": rel}


def step_workflows(work: Path, rehearse: bool, budget: float) -> dict:
    """The spectrum and option_pricing at 4 GiB on GPU and CPU (ratio); a 2 GiB spectrum
    read from a .npy file on GPU twice (1 and 2 threads per worker: bitwise equal, or a
    race) and on CPU (equal within float32 rounding); then the spectrum twice more on
    one GPU cluster kept up, for the warm figures. Each run is a whole process that
    starts its own cluster (but those two); a rehearsal runs them all on one cluster
    started here (and on the CPU backend: it has no GPU to pick), to save the start-ups."""
    if rehearse:
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                          scheduler_kwargs={"dashboard": False,
                                            "dashboard_address": "127.0.0.1:0"}) as cluster:
            return _workflows(work, rehearse, budget, cluster.scheduler_address)
    return _workflows(work, rehearse, budget, None)


def _workflows(work: Path, rehearse: bool, budget: float, address: str | None) -> dict:
    gpu = "cpu" if rehearse else "gpu"
    size = sizes(rehearse)
    deadline = time.monotonic() + budget
    rows, cols = size["spectrum_rows"], size["cols"]
    spectrum = [f"stages.signal.shape=[{rows},{cols}]"]
    wf = ROOT / "workflows"
    plan = [("spectrum", wf / "spectrum.yaml", spectrum),
            ("option_pricing", wf / "option_pricing.yaml", size["option_pricing"])]
    runs, checks = [], {}

    def run(name, workflow, backend, sets, out, on=address, flags=()):
        left = deadline - time.monotonic()
        if left < 10:
            runs.append({"name": name, "ok": False, "error": "no time left in the box"})
            return runs[-1]
        runs.append(run_pipeline(name, workflow, out, backend, sets, left, on, flags))
        save(work, "workflows", {"runs": runs, "checks": checks, "ratios": {}})  # if cut short
        print(f"  {name:<28} {'ok' if runs[-1]['ok'] else 'FAILED'} "
              f"{runs[-1].get('wall_s', 0):7.1f} s  {runs[-1].get('error', '')}", flush=True)
        return runs[-1]

    # first a file read, for value checks: the same input on both backends
    data = work / "signal.npy"
    rng = np.random.default_rng(0)
    arr = np.lib.format.open_memmap(data, mode="w+", dtype=np.float32,
                                    shape=(size["file_rows"], cols))
    for start in range(0, size["file_rows"], 8192):
        block = arr[start:start + 8192]
        block[...] = rng.standard_normal(block.shape, dtype=np.float32)
    arr.flush()
    del arr
    from_file = work / "spectrum_from_file.yaml"
    from_file.write_text(FROM_DISK.format(store=data))
    outs = {}
    for label, backend, threads in (("gpu-1thread", gpu, 1), ("gpu-2threads", gpu, 2),
                                    ("cpu", "cpu", "auto")):
        outs[label] = work / f"file-{label}"
        run(f"spectrum_from_file-{label}", from_file, backend,
            [f"cluster.threads_per_worker={threads}"], outs[label])
    if len(runs) == 3 and all(r["ok"] for r in runs):
        checks["gpu_vs_cpu"] = _outputs_equal(outs["gpu-1thread"], outs["cpu"], exact=False)
        checks["gpu_repeat_bitwise"] = _outputs_equal(outs["gpu-1thread"],
                                                      outs["gpu-2threads"], exact=True)
    data.unlink()
    # then the speed: the value checks above come first, should the box run out
    for name, workflow, sets in plan:
        for role, backend in (("gpu", gpu), ("cpu", "cpu")):
            run(f"{name}-{role}", workflow, backend, sets, work / f"{name}-{role}")
    # warm: the spectrum twice on one cluster that stays up; the second run is the
    # pipeline's warm figure (CUDA context, cuFFT plans, kernels and imports already in
    # the workers), the one to hold against the hand-written CuPy loop, timed warm too;
    # without Dask's performance report, whose 0.5-1 s of Bokeh rendering on the host
    # would dwarf a GPU run of a few tenths of a second (its cost is measured on the CPU)
    try:
        with _warm_cluster(gpu, address) as warm:
            for i in (1, 2):
                run(f"spectrum-gpu-warm{i}", wf / "spectrum.yaml", gpu, spectrum,
                    work / f"spectrum-gpu-warm{i}", on=warm,
                    flags=("--no-performance-report",))
    except Exception as e:  # noqa: BLE001 - recorded; the runs above stand
        runs.append({"name": "spectrum-gpu-warm", "ok": False,
                     "error": f"cluster: {type(e).__name__}: {e}"})
    ratios = {}
    by = {r["name"]: r for r in runs if r["ok"]}
    for name, _, _ in plan:
        g, c = by.get(f"{name}-gpu"), by.get(f"{name}-cpu")
        if g and c:
            ratios[name] = {"whole_process_cpu_over_gpu": c["wall_s"] / g["wall_s"],
                            "compute_cpu_over_gpu": c["compute_s"] / max(g["compute_s"], 1e-9)}
    return {"runs": runs, "checks": checks,
            "ratios": ratios, "spectrum_bytes": rows * cols * 4,
            "file_bytes": size["file_rows"] * cols * 4, "rehearsal": rehearse}


@contextlib.contextmanager
def _warm_cluster(backend: str, address: str | None):
    """The address of a cluster kept up for several runs: ``address`` (a rehearsal's), or
    one started here as ``pipeline run`` starts its own (the workflow's cluster settings,
    so the same workers and `chunks: auto` size)."""
    if address:
        yield address
        return
    from pipeline import cluster, spec

    settings = spec.load(ROOT / "workflows" / "spectrum.yaml").cluster
    with cluster.connect(settings, backend, dashboard_address=None) as session:
        yield session.address


# -- bandwidth ---------------------------------------------------------------------------

def _timed(cupy, fn, repeats: int) -> float:
    """Median seconds of ``fn()`` between CUDA events, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1000.0)
    return float(np.median(times))


def step_bandwidth(work: Path, rehearse: bool) -> dict:
    """Host<->device copies from pageable and pinned memory, and device-to-device: the
    ceilings the pipeline's transfers and memory-bound stages are judged against."""
    cupy = _cupy(rehearse)
    import cupyx

    nbytes = (64 if rehearse else 1024) * 2**20
    n = nbytes // 4
    rng = np.random.default_rng(1)  # never time on zeros
    pageable = rng.standard_normal(n, dtype=np.float32)
    pinned = cupyx.empty_pinned((n,), dtype=np.float32)
    pinned[...] = pageable
    dev = cupy.empty(n, dtype=np.float32)
    dev2 = cupy.empty(n, dtype=np.float32)
    out = {}
    for name, fn in (("h2d_pageable", lambda: dev.set(pageable)),
                     ("h2d_pinned", lambda: dev.set(pinned)),
                     ("d2h_pageable", lambda: dev.get(out=pageable)),
                     ("d2h_pinned", lambda: dev.get(out=pinned)),
                     ("d2d_copy", lambda: cupy.copyto(dev2, dev))):
        s = _timed(cupy, fn, 5)
        moved = 2 * nbytes if name == "d2d_copy" else nbytes  # a copy reads and writes
        out[name] = {"seconds": s, "gb_per_s": moved / s / 1e9}
    assert np.array_equal(dev2.get(), pinned), "the device copy does not match"
    return {"bytes": nbytes, "copies": out, "rehearsal": rehearse}


# -- handwritten ---------------------------------------------------------------------------

def step_handwritten(work: Path, rehearse: bool) -> dict:
    """The spectrum of the same size written by hand in CuPy, block by block on one GPU:
    the yardstick for the pipeline's GPU run (pipeline / hand-written)."""
    cupy = _cupy(rehearse)
    size = sizes(rehearse)
    rows, cols = size["spectrum_rows"], size["cols"]
    block_bytes = 2**18 if rehearse else GIB  # as the pipeline's GPU chunks: at most 1 GiB
    block = min(rows, max(1, block_bytes // (cols * 4)))
    rng = cupy.random.default_rng(0)

    def spectrum():
        acc = cupy.zeros(cols // 2 + 1, dtype=np.float32)
        for start in range(0, rows, block):
            x = rng.standard_normal((min(block, rows - start), cols), dtype=np.float32)
            z = cupy.fft.rfft(x, axis=1)
            acc += (z.real ** 2 + z.imag ** 2).sum(axis=0)
        return acc / rows

    result = spectrum()  # warm-up: cuFFT plans, kernels compiled
    t = _timed(cupy, spectrum, 3)
    mean = float(result.mean())
    return {"seconds": t, "rows": rows, "cols": cols, "block_rows": block,
            "mean_power": mean,  # white noise: about `cols` per bin
            "power_ok": abs(mean / cols - 1) < 0.05, "rehearsal": rehearse}


# -- semantics -----------------------------------------------------------------------------

# expressions whose values at inf, NaN, 0 and -0.0 may follow CUDA rather than NumPy
SEMANTICS = ("a // b", "a % b", "a / b", "a ** b", "a ** 0.5", "a ** -1", "a ** 2",
             "clip(a, b, 1)", "angle(a)", "maximum(a, b)", "minimum(a, b)", "round(a)",
             "arctan2(a, b)", "sqrt(a)", "log(a)", "where(a > b, a, b)")
EDGES = (0.0, -0.0, 1.5, -1.5, 2.0, np.inf, -np.inf, np.nan)


def step_semantics(work: Path, rehearse: bool) -> dict:
    """Each expression of SEMANTICS on every pair of EDGES (float64), three ways: NumPy
    (the CPU backend), CuPy's own functions one call each (the GPU backend's unfused
    path, through Dask) and the pipeline's fused kernel (pipeline/kernels/cupy_gpu).
    Where the GPU differs from NumPy, the pairs are listed: docs/gpu.md records them."""
    cupy = _cupy(rehearse)
    from pipeline import expr as expr_lang
    from pipeline.kernels import blocked, cupy_gpu

    a, b = (x.ravel() for x in np.meshgrid(np.array(EDGES), np.array(EDGES), indexing="ij"))
    raw = {name: getattr(cupy, attr) for name, attr in cupy_gpu.CUPY_NAMES.items()}
    rows = {}
    for text in SEMANTICS:
        parsed = expr_lang.parse(text, ["a", "b"])
        values = {n: v for n, v in {"a": a, "b": b}.items() if n in parsed.names}
        with np.errstate(all="ignore"):
            want = np.asarray(parsed(blocked.NUMPY_FUNCTIONS, values))
            dev = {n: cupy.asarray(v) for n, v in values.items()}
            unfused = cupy.asnumpy(parsed(raw, dev))
            fused = cupy.asnumpy(cupy_gpu.evaluate(parsed, tuple(dev), {}, list(dev.values()),
                                                   want.dtype))
        rows[text] = {"cupy_calls": _differences(values, want, unfused),
                      "fused_kernel": _differences(values, want, fused)}
    return {"edges": [repr(float(x)) for x in EDGES], "rows": rows,
            "fusion_failed": sorted(k[0] for k in cupy_gpu._FAILED), "rehearsal": rehearse}


def _differences(values: dict, want: np.ndarray, got: np.ndarray) -> list[str]:
    """'a=-inf b=0.5: numpy nan, gpu inf' for each element where ``got`` is not ``want``
    (NaN equals NaN; the sign of a zero counts)."""
    same = (want == got) & (np.signbit(want) == np.signbit(got)) | (
        np.isnan(want) & np.isnan(got))
    out = []
    for i in np.flatnonzero(~same):
        where = " ".join(f"{n}={v[i]!r}" for n, v in values.items())
        out.append(f"{where}: numpy {want[i]!r}, gpu {got[i]!r}")
    return out


# -- summary -------------------------------------------------------------------------------

def step_summary(work: Path, rehearse: bool, out: Path) -> str:
    status = dict(line.split() for line in (work / "status").read_text().splitlines()
                  if line.strip())
    results = {s: json.loads((work / f"{s}.json").read_text())
               for s in STEPS if (work / f"{s}.json").exists()}
    lines = [f"GPU proof ({'REHEARSAL on the CPU: no GPU code ran' if rehearse else 'GPU host'})"
             f", {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"]
    env = results.get("env", {})
    lines.append(f"nvidia-smi -L: {env.get('nvidia_smi_L', '?')}")
    lines.append(f"cupy {env.get('cupy')}; device {env.get('device')}")
    lines.append("")
    lines.append(f"{'step':<12} {'status':<8} {'seconds':>8}  figure")
    for step in STEPS:
        st, secs = status.get(step, "not-run:0").split(":")
        lines.append(f"{step:<12} {st:<8} {float(secs):8.1f}  {_figure(step, results, out)}")
    wf = results.get("workflows", {})
    for r in wf.get("runs", []):
        extra = (f"{r['wall_s']:6.1f} s whole, {r['compute_s']:6.2f} s compute, "
                 f"H2D {r['h2d_bytes'] / GIB:.2f} GiB, D2H {r['d2h_bytes'] / GIB:.3f} GiB"
                 if r["ok"] else r.get("error", ""))
        lines.append(f"  {r['name']:<30} {'ok' if r['ok'] else 'FAILED':<6} {extra}")
    for name, check in wf.get("checks", {}).items():
        lines.append(f"  check {name:<24} {'ok' if check['ok'] else 'FAILED'} "
                     f"(max difference {check['max_diff']:.3g})")
    lines += _stage_bandwidth(results)
    text = "\n".join(lines) + "\n"
    (out / "summary.txt").write_text(text)
    (out / "proof.json").write_text(json.dumps({"status": status, **results}, indent=1,
                                               default=str) + "\n")
    return text


def _stage_bandwidth(results: dict) -> list[str]:
    """Lines for the spectrum's GPU run: each array stage's bytes read and written over its
    compute time, against the device-to-device copy measured in the same proof (issue 13's
    target for element-wise and FFT stages: 70% of it or more)."""
    copy = results.get("bandwidth", {}).get("copies", {}).get("d2d_copy")
    runs = {r["name"]: r for r in results.get("workflows", {}).get("runs", []) if r["ok"]}
    name = next((n for n in ("spectrum-gpu-warm2", "spectrum-gpu") if n in runs), None)
    if not copy or not name or not runs[name].get("stages"):
        return []
    ceiling = copy["gb_per_s"]
    rates = {sid: (st["op"], st["bytes"] / st["compute_s"] / 1e9)
             for sid, st in runs[name]["stages"].items()}
    parts = [f"{sid} ({op}) {gbps:.1f} GB/s = {gbps / ceiling:.0%}"
             for sid, (op, gbps) in rates.items()]
    return [f"  stage bandwidth, {name}, of d2d copy {ceiling:.1f} GB/s: " + ", ".join(parts)]


def _last_line(path: Path, words: tuple[str, ...] = ()) -> str:
    if not path.exists():
        return ""
    lines = [ln for ln in path.read_text().splitlines()
             if ln.strip() and (not words or any(w in ln for w in words))]
    return lines[-1].strip() if lines else ""


def _pytest_counts(path: Path) -> str:
    """pytest's last line (N passed, M skipped...), or, where its box cut it short, the
    outcomes counted from its -v lines."""
    last = _last_line(path, ("passed", "failed", "error", "no tests"))
    if last.startswith("=") or not path.exists():
        return last
    text = path.read_text()
    counts = {w: text.count(f" {w.upper()}") for w in ("passed", "failed", "error", "skipped")}
    return "cut short: " + ", ".join(f"{n} {w}" for w, n in counts.items())


def _figure(step: str, results: dict, out: Path) -> str:
    if step in ("tests", "wftests"):
        return _pytest_counts(out / f"{step}.txt")
    if step == "doctor":
        return _last_line(out / "doctor.txt")[:100]
    r = results.get(step)
    if r is None:
        return ""
    if step == "bandwidth":
        c = r["copies"]
        return ", ".join(f"{k} {v['gb_per_s']:.1f} GB/s" for k, v in c.items())
    if step == "handwritten":
        wf = {x["name"]: x for x in results.get("workflows", {}).get("runs", []) if x["ok"]}
        g, w = wf.get("spectrum-gpu"), wf.get("spectrum-gpu-warm2")
        ratio = f", pipeline compute / hand-written {g['compute_s'] / r['seconds']:.2f}" \
            if g else ""
        if w:  # issue 13's target: <= 1.15, warm
            ratio += (f"; warm pipeline run / hand-written {w['run_s'] / r['seconds']:.2f}, "
                      f"compute {w['compute_s'] / r['seconds']:.2f}")
        return f"{r['seconds']:.2f} s, power ok: {r['power_ok']}{ratio}"
    if step == "workflows":
        return "; ".join(f"{k} cpu/gpu whole {v['whole_process_cpu_over_gpu']:.2f}, "
                         f"compute {v['compute_cpu_over_gpu']:.2f}"
                         for k, v in r.get("ratios", {}).items())
    if step == "env":
        return f"{r.get('cores')} cores, python {r['versions'].get('python')}"
    if step == "semantics":
        differ = [t for t, row in r["rows"].items() if row["cupy_calls"] or row["fused_kernel"]]
        return (f"{len(differ)} of {len(r['rows'])} differ from NumPy at edge values"
                f"{': ' + ', '.join(differ) if differ else ''}")[:150]
    return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=(*STEPS, "summary"))
    p.add_argument("work", type=Path)
    p.add_argument("--rehearse", action="store_true")
    p.add_argument("--budget", type=float, default=240, help="seconds (workflows)")
    p.add_argument("--out", type=Path, help="summary: where its files go")
    args = p.parse_args(argv)
    if args.step == "summary":
        print(step_summary(args.work, args.rehearse, args.out))
        return 0
    if args.step == "workflows":
        doc = step_workflows(args.work, args.rehearse, args.budget)
    else:
        doc = {"env": step_env, "bandwidth": step_bandwidth, "handwritten": step_handwritten,
               "semantics": step_semantics}[args.step](args.work, args.rehearse)
    save(args.work, args.step, doc)
    failed = args.step == "workflows" and (not all(r["ok"] for r in doc["runs"]) or not all(
        c["ok"] for c in doc["checks"].values()))
    failed = failed or (args.step == "handwritten" and not doc["power_ok"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
