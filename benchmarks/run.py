"""Workload benchmark and scaling benchmark: the pipeline side by side with hand-written
Dask and single-process NumPy / pandas, in one invocation.

    python -m pipeline bench                          # every workload at 1 GiB, 3 repeats
    python -m pipeline bench --size 256 --workloads fft,join --no-doc
    python -m pipeline bench --scaling                # spectrum: time vs size, vs workers
    python benchmarks/run.py ...                      # the same, without the CLI

Workloads (see ``workloads.py``): the inputs are generated once per workload by the
pipeline's own source ops and persisted on one warm LocalCluster (one single-threaded
worker per core, as ``pipeline run`` starts on this host); then each side computes the
workload's result from those persisted inputs and keeps it where it was made, so the
timings hold the ops only: no data generation, no file I/O, no gathering, no process or
cluster start. Each side runs once as a warm-up, then ``--repeats`` times in rotating
order; each entry is the median.

GPU (untested: no GPU was available when this was written): when ``backends.detect()``
finds a usable GPU with CuPy and dask-cuda, the same three sides run as single-GPU CuPy /
cuDF, hand-written Dask on a LocalCUDACluster, and the pipeline with the gpu backend.

Scaling runs whole ``python -m pipeline run workflows/spectrum.yaml`` processes (data
generation is the workload there) at doubling sizes and at 1..cores workers, and reads
each run's report.json for its compute time and peak host memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from compare import (loadavg, machine, pipeline_cmd, shape_for, source_state,  # noqa: E402
                     write_section)
from workloads import WORKLOADS  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
WL_MARKS = ("<!-- bench:workloads:start -->", "<!-- bench:workloads:end -->")
SC_MARKS = ("<!-- bench:scaling:start -->", "<!-- bench:scaling:end -->")
TARGET = 1.00  # pipeline / hand-written Dask, medians (issue 13)
TARGETS = {"arithmetic": 0.50}  # where the pipeline must beat it by more


def target(name: str) -> float:
    return TARGETS.get(name, TARGET)
RTOL = 1e-3


# --------------------------------------------------------------------------- workloads

def _const(value):
    def source(ctx, *args, **params):
        return value
    return source


def _plan(stages: list[dict], result_is_frame: bool, folder: Path):
    """The workload as a workflow file -> Plan (a write sink is added; it is never
    computed, it only makes the workflow valid)."""
    import yaml

    from pipeline import plan, spec

    sink = {"id": "save", "op": "write", "input": stages[-1]["id"],
            "path": "out.parquet" if result_is_frame else "out.npy"}
    doc = {"name": "bench", "backend": "cpu", "output_dir": str(folder / "out"),
           "stages": stages + [sink]}
    path = folder / "wf.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return plan.build(spec.load(path))


def _release(client, held: dict, name: str) -> None:
    """Drop ``held[name]`` and wait until the scheduler has forgotten its keys: the
    pipeline's and dask's keys are deterministic, so a result still held would be reused
    by the next run instead of computed."""
    from distributed import futures_of

    value = held.pop(name, None)
    keys = [f.key for f in futures_of(value)] if value is not None else []
    del value
    deadline = time.monotonic() + 30
    while keys and time.monotonic() < deadline:
        left = client.run_on_scheduler(
            lambda dask_scheduler, keys=keys: sum(k in dask_scheduler.tasks for k in keys))
        if not left:
            return
        time.sleep(0.01)


def _summary(r, client) -> float:
    """A scalar to compare the sides' results: the sum of |values| (frames: of every
    numeric column, keys included)."""
    if hasattr(r, "columns"):
        if r.index.name is not None:
            r = r.reset_index()
        s = r.select_dtypes("number").astype("float64").abs().sum().sum()
    else:
        s = abs(r).astype("float64").sum()
    if hasattr(s, "dask") or hasattr(s, "__dask_graph__"):
        s = client.compute(s).result()
    return float(s)


def _gpu_available() -> bool:
    try:
        from pipeline import backends

        det = backends.detect()
        return not det.problem and not det.missing_libs
    except Exception:  # noqa: BLE001 - any failure: no GPU run
        return False


def run_workloads(size: float, repeats: int, names: list[str], gpu: bool = False,
                  say=print) -> list[dict]:
    import dask
    import numpy as np
    from distributed import Client, LocalCluster, wait

    from pipeline import backends, runner, settings

    if gpu:  # UNTESTED: written without a GPU to run it on
        import cupy as xp
        from dask_cuda import LocalCUDACluster

        backend = backends.GPU
        cluster_cm = LocalCUDACluster(dashboard_address=None, silence_logs=logging.ERROR)
        labels = ("CuPy/cuDF (1 GPU)", "Dask on LocalCUDACluster", "pipeline (gpu)")

        def to_local(v):
            import cudf

            out = v
            return cudf.from_pandas(out) if hasattr(out, "columns") and \
                not isinstance(out, cudf.DataFrame) else xp.asarray(out)

        def sync():
            xp.cuda.Device().synchronize()
    else:
        xp = np
        backend = backends.CPU
        cluster_cm = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1,
                                  processes=True, dashboard_address=None,
                                  scheduler_kwargs={"dashboard": False},
                                  silence_logs=logging.ERROR)
        labels = ("NumPy/pandas (1 process)", "hand-written Dask", "pipeline")

        def to_local(v):
            return v

        def sync():
            pass

    rows = []
    with cluster_cm as cluster, Client(cluster) as client:
        for name in names:
            wl = WORKLOADS[name]
            folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            try:
                stages = wl.stages(size)
                frame = any(s["op"] in ("random_table", "join", "groupby") for s in stages)
                planned = _plan(stages, frame, folder)
                built0 = runner.build(planned, backend, folder / "staging")
                src = [ps.id for ps in planned.stages if ps.info.family == "source"]
                inputs = {sid: client.persist(built0.values[sid]) for sid in src}
                wait(list(inputs.values()))
                in_bytes = sum(
                    int(client.compute(v.memory_usage(deep=True).sum()).result())
                    if hasattr(v, "columns") else int(v.nbytes) for v in inputs.values())
                local_inputs = {k: to_local(client.compute(v).result())
                                for k, v in inputs.items()}
                seeded = dataclasses.replace(planned, stages=tuple(
                    dataclasses.replace(ps, info=dataclasses.replace(
                        ps.info, fn=_const(inputs[ps.id]))) if ps.id in inputs else ps
                    for ps in planned.stages))
                # fused or not as `pipeline run` is by default (the per-callable meter
                # a run adds is left out: about 14 us a call, docs/benchmarks.md)
                config = {**backend.dask_config,
                          "optimization.fuse.active": settings.flag("fuse")}

                def pipeline_side():
                    built = runner.build(seeded, backend, folder / "staging")
                    with dask.config.set(config):
                        r = client.persist(built.values[wl.result])
                    wait(r)
                    return r

                def hand_side():
                    r = client.persist(wl.hand(inputs))
                    wait(r)
                    return r

                def local_side():
                    r = wl.local(local_inputs, xp)
                    sync()
                    return r

                sides = {labels[0]: local_side, labels[1]: hand_side,
                         labels[2]: pipeline_side}
                times: dict[str, list[float]] = {k: [] for k in sides}
                last: dict = {}
                sums: dict[str, float] = {}
                order = list(sides)
                for k, fn in sides.items():  # warm-up
                    last[k] = fn()
                    _release(client, last, k)
                assert not last
                for i in range(repeats):
                    rot = order[i % len(order):] + order[:i % len(order)]
                    for k in rot:
                        for held in list(last):  # identical graphs share keys
                            _release(client, last, held)
                        t0 = time.perf_counter()
                        last[k] = sides[k]()
                        times[k].append(time.perf_counter() - t0)
                        if i == repeats - 1:  # not timed
                            sums[k] = _summary(last[k], client)
                for held in list(last):
                    _release(client, last, held)
                ref = sums[labels[1]]
                agree = all(abs(s - ref) <= RTOL * max(abs(ref), 1e-30)
                            for s in sums.values())
                med = {k: statistics.median(v) for k, v in times.items()}
                row = {"workload": name, "what": wl.what, "input_bytes": in_bytes,
                       "labels": list(labels), "median_s": med, "runs_s": times,
                       "agree": agree, "sums": sums}
                best = min(med[labels[0]], med[labels[1]])
                row["pipeline_vs_dask"] = med[labels[2]] / med[labels[1]]
                row["pipeline_vs_best"] = med[labels[2]] / best
                row["best"] = labels[0] if med[labels[0]] <= med[labels[1]] else labels[1]
                rows.append(row)
                say(f"{name:<14} " + "  ".join(f"{k}: {med[k]:.3f}s" for k in labels)
                    + f"  pipeline/dask {row['pipeline_vs_dask']:.2f}"
                    + f"  pipeline/best {row['pipeline_vs_best']:.2f}"
                    + ("" if agree else "  RESULTS DISAGREE"))
                del inputs, local_inputs, built0
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    return rows


def table(rows: list[dict]) -> str:
    if not rows:
        return ""
    labels = rows[0]["labels"]
    head = ("| workload | input | " + " | ".join(f"{l} s" for l in labels)
            + " | pipeline / Dask | pipeline / Dask (mins) | pipeline / best "
            "| host<->device bytes | agree |")
    lines = [head, "|---|---:|" + "---:|" * len(labels) + "---:|---:|---:|---|---|"]
    for r in rows:
        moved = "n/a (cpu)" if "pipeline" == r["labels"][2] else "not measured"
        lines.append(f"| {r['workload']} | {r['input_bytes'] / 2**20:.0f} MiB | "
                     + " | ".join(f"{r['median_s'][l]:.4g}" for l in labels)
                     + f" | {r['pipeline_vs_dask']:.2f} | "
                     f"{min(r['runs_s'][labels[2]]) / min(r['runs_s'][labels[1]]):.2f} | "
                     f"{r['pipeline_vs_best']:.2f} | "
                     f"{moved} | {'yes' if r['agree'] else 'NO'} |")
    return "\n".join(lines)


def chart_workloads(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = rows[0]["labels"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.27
    for j, l in enumerate(labels):
        vals = [r["median_s"][l] / r["median_s"][labels[1]] for r in rows]
        ax.bar([i + (j - 1) * width for i in range(len(rows))], vals, width, label=l)
    ax.axhline(TARGET, color="k", ls="--", lw=0.8, label=f"target {TARGET:.2f}")
    ax.set_xticks(range(len(rows)), [r["workload"] for r in rows], rotation=20)
    ax.set_ylabel("time / hand-written Dask (median)")
    ax.set_title("Workloads: time relative to hand-written Dask (lower is faster)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- scaling

def _pipeline_run(size: float, workers: int | None, out: Path) -> dict:
    cmd = pipeline_cmd(shape_for(size), out)
    if workers:
        cmd += ["--set", f"cluster.n_workers={workers}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"pipeline run failed:\n{proc.stdout}{proc.stderr}")
    rep = json.loads((out / "report.json").read_text())
    tot = rep["totals"]
    peaks = [s.get("peak_host_bytes") for s in rep["stages"] if s.get("peak_host_bytes")]
    return {"process_s": wall, "runner_s": tot["wall_s"],
            "peak_host_bytes": tot.get("peak_host_bytes") or (max(peaks) if peaks else None)}


def run_scaling(sizes: list[float], workers_size: float, repeats: int, limit_s: float,
                say=print) -> dict:
    res = {"sizes": [], "workers": [], "stopped_at": None}
    cores = os.cpu_count() or 1

    def measure(size, workers):
        runs = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
                runs.append(_pipeline_run(size, workers, Path(tmp) / "run"))
        return {"size_mib": size, "workers": workers or cores,
                "process_s": statistics.median(r["process_s"] for r in runs),
                "runner_s": statistics.median(r["runner_s"] for r in runs),
                "peak_host_bytes": max((r["peak_host_bytes"] or 0) for r in runs) or None,
                "runs": runs}

    for size in sizes:
        m = measure(size, None)
        res["sizes"].append(m)
        say(f"size {size:g} MiB: process {m['process_s']:.2f}s runner {m['runner_s']:.2f}s "
            f"peak host {(m['peak_host_bytes'] or 0) / 2**30:.2f} GiB")
        if m["process_s"] > limit_s and size != sizes[-1]:
            res["stopped_at"] = size
            break
    for n in range(1, cores + 1):
        m = measure(workers_size, n)
        res["workers"].append(m)
        say(f"workers {n} at {workers_size:g} MiB: process {m['process_s']:.2f}s "
            f"runner {m['runner_s']:.2f}s")
    return res


def chart_scaling(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [m["size_mib"] for m in res["sizes"]]
    a.plot(xs, [m["runner_s"] for m in res["sizes"]], "o-", label="compute (runner)")
    a.plot(xs, [m["process_s"] for m in res["sizes"]], "s-", label="whole process")
    if xs:
        k = res["sizes"][-1]["runner_s"] / xs[-1]
        a.plot(xs, [k * x for x in xs], ":", color="gray", label="linear")
    a.set_xscale("log", base=2)
    a.set_yscale("log", base=2)
    a.set_xlabel("input MiB")
    a.set_ylabel("seconds")
    a.set_title("spectrum: time vs input size")
    a.legend(fontsize=8)
    ws = [m["workers"] for m in res["workers"]]
    b.plot(ws, [m["runner_s"] for m in res["workers"]], "o-", label="compute (runner)")
    b.plot(ws, [m["process_s"] for m in res["workers"]], "s-", label="whole process")
    b.set_xticks(ws)
    b.set_xlabel("workers (1 thread each)")
    b.set_title("spectrum: time vs workers")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- doc

def _header(info: dict, cmd: str, loads: tuple[str, str]) -> list[str]:
    v = info["versions"]
    extra = []
    for name in ("pandas", "scipy"):
        try:
            from importlib import metadata

            extra.append(f"{name} {metadata.version(name)}")
        except Exception:  # noqa: BLE001
            pass
    return [f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `{cmd}`.", "",
            f"- Machine: {info['cores']} cores, {info['memory_bytes'] / 2**30:.1f} GiB "
            f"memory, {info['cpu']} ({info['platform']}); no GPU",
            f"- Versions: python {v['python']}, dask {v['dask']}, distributed "
            f"{v['distributed']}, numpy {v['numpy']}, " + ", ".join(extra),
            f"- Pipeline: {info['source']}",
            f"- Load average before / after: {loads[0]} / {loads[1]} (shared host)"]


def render_workloads(rows, args, info, loads, chart: str | None) -> str:
    cmd = f"python -m pipeline bench --size {args.size:g} --repeats {args.repeats}" + \
        (f" --workloads {args.workloads}" if args.workloads else "")
    missed = [r for r in rows if r["pipeline_vs_dask"] > target(r["workload"])]
    lines = [WL_MARKS[0], "## Workloads: pipeline vs hand-written Dask vs single process",
             "", *_header(info, cmd, loads), "",
             "What is timed: the ops only. Each workload's inputs are generated once by the "
             "pipeline's source ops (`random`, `random_table`) and persisted on one warm "
             "LocalCluster (one single-threaded worker per core); every side then starts "
             "from those same inputs and keeps its result where it made it (nothing "
             "gathered, nothing written). The pipeline side is `pipeline.runner.build` of "
             "the workload's workflow, with the source stages returning the persisted "
             "inputs, persisted with Dask's low-level fusion on or off as `pipeline run` "
             "has it by default (on; the per-task meter a run adds, about 14 us a call, "
             "is left out); hand-written "
             "Dask is the same computation written with dask.array / dask.dataframe on "
             "the same cluster; NumPy/pandas runs in the benchmark's own process on the "
             "inputs gathered there (NumPy's matmul may use more than one BLAS thread). "
             "One warm-up of each side, then "
             f"{args.repeats} repeats in rotating order; medians in seconds. `best` is "
             "the faster of NumPy/pandas and hand-written Dask. `agree`: the sum of "
             f"|result| of the three sides agrees within rtol {RTOL:g}.", "",
             "| workload | what |", "|---|---|",
             *[f"| {r['workload']} | {r['what']} |" for r in rows], "",
             table(rows), ""]
    if chart:
        lines += [f"![time relative to hand-written Dask]({chart})", ""]
    if missed:
        lines.append(f"**Target pipeline / hand-written Dask <= {TARGET:.2f} "
                     "(arithmetic <= 0.50): NOT met on "
                     + ", ".join(f"{r['workload']} ({r['pipeline_vs_dask']:.2f} against "
                                 f"{target(r['workload']):.2f})" for r in missed)
                     + "; met on the others.**")
    else:
        lines.append(f"**Target pipeline / hand-written Dask <= {TARGET:.2f} (arithmetic "
                     "<= 0.50): met on every workload.**")
    if args.size < 1024:
        lines += ["", f"Note: {args.size:g} MiB is below the 1 GiB the target is stated for."]
    lines.append(WL_MARKS[1])
    return "\n".join(lines)


def render_scaling(res, args, info, loads, chart: str | None) -> str:
    cmd = "python -m pipeline bench --scaling" + \
        f" --scaling-max {args.scaling_max:g} --repeats {args.repeats}"
    lines = [SC_MARKS[0], "## Scaling: spectrum vs input size and vs workers", "",
             *_header(info, cmd, loads), "",
             "Whole `python -m pipeline run workflows/spectrum.yaml --set "
             "stages.signal.shape=[R,4096] --dashboard-address 127.0.0.1:0 --quiet` "
             "processes (random -> rfft -> |z|^2 -> mean -> write + plot; data generation "
             "is part of the workload here), medians of "
             f"{args.repeats}. `compute` is report.json's `totals.wall_s` (the runner: "
             "build, compute, outputs); `process` is launch to exit. Peak host memory is "
             "report.json's largest sampled host memory of the workers over the run.", "",
             "| input MiB | workers | compute s | process s | compute s per GiB | "
             "peak host memory GiB |", "|---:|---:|---:|---:|---:|---:|"]
    for m in res["sizes"] + res["workers"]:
        peak = f"{m['peak_host_bytes'] / 2**30:.2f}" if m["peak_host_bytes"] else "n/a"
        lines.append(f"| {m['size_mib']:g} | {m['workers']} | {m['runner_s']:.2f} | "
                     f"{m['process_s']:.2f} | {m['runner_s'] / (m['size_mib'] / 1024):.2f} | "
                     f"{peak} |")
    if res["stopped_at"]:
        lines += ["", f"Stopped after {res['stopped_at']:g} MiB: a run took longer than "
                  f"{args.scaling_limit:g} s."]
    if chart:
        lines += ["", f"![spectrum scaling]({chart})"]
    lines += ["", "Larger than memory: see the next section (`benchmarks/beyond_memory.py`), "
              "32 GiB through disk.", SC_MARKS[1]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline bench",
                                description="pipeline vs hand-written Dask vs single "
                                            "process, per workload; or --scaling")
    p.add_argument("--size", type=float, default=1024, help="input MiB per workload (1024)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side (3)")
    p.add_argument("--workloads", default="", help=f"comma list of: {','.join(WORKLOADS)}")
    p.add_argument("--no-doc", action="store_true", help="print only; no docs, no charts")
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--scaling", action="store_true",
                   help="run the scaling benchmark (spectrum) instead of the workloads")
    p.add_argument("--scaling-max", type=float, default=4096, help="largest size MiB (4096)")
    p.add_argument("--scaling-limit", type=float, default=60,
                   help="stop growing once a run takes longer than this many seconds")
    p.add_argument("--gpu", choices=("auto", "yes", "no"), default="auto",
                   help="also run the GPU sides (auto: when a usable GPU is found)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    names = [n.strip() for n in args.workloads.split(",") if n.strip()] or list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    info = machine()
    info["source"] = source_state()
    before = loadavg()
    docs = args.doc.parent
    raw: dict = {"machine": info}
    if args.scaling:
        sizes, s = [], 256.0
        while s <= args.scaling_max:
            sizes.append(s)
            s *= 2
        res = run_scaling(sizes, 1024, args.repeats, args.scaling_limit)
        raw["scaling"] = res
        if not args.no_doc:
            chart_scaling(res, docs / "bench-scaling.png")
            write_section(SC_MARKS, render_scaling(res, args, info, (before, loadavg()),
                                                   "bench-scaling.png"), args.doc)
    else:
        print(f"{len(names)} workload(s) at {args.size:g} MiB, {args.repeats} repeats, "
              f"{info['cores']} cores, load {before}")
        rows = run_workloads(args.size, args.repeats, names)
        raw["workloads"] = rows
        gpu = args.gpu == "yes" or (args.gpu == "auto" and _gpu_available())
        if gpu:  # UNTESTED branch
            raw["workloads_gpu"] = run_workloads(args.size, args.repeats, names, gpu=True)
        print()
        print(table(rows))
        if gpu:
            print()
            print(table(raw["workloads_gpu"]))
        if not args.no_doc:
            chart_workloads(rows, docs / "bench-workloads.png")
            section = render_workloads(rows, args, info, (before, loadavg()),
                                       "bench-workloads.png")
            if gpu:
                section = section.replace(WL_MARKS[1], "\nGPU (untested code path):\n\n"
                                          + table(raw["workloads_gpu"]) + "\n" + WL_MARKS[1])
            write_section(WL_MARKS, section, args.doc)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    return 0 if all(r["agree"] for r in raw.get("workloads", [])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
