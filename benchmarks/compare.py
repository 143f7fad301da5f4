"""Whole-process benchmarks: the pipeline vs the same job hand-written with dask.array.

    python benchmarks/compare.py                           # spectrum, 1 GiB, 3 repeats
    python benchmarks/compare.py --size 512 1024 4096 --repeats 5
    python benchmarks/compare.py --job arithmetic --size 1024 --repeats 5
    python benchmarks/compare.py --no-doc                  # print only; leave the docs

Jobs: ``spectrum`` (workflows/spectrum.yaml: random -> rfft -> power -> mean -> .npy +
PNG) and ``arithmetic`` (benchmarks/arithmetic.yaml: random -> a 13-operator polynomial
-> sum -> .json). Each size gets its own section of docs/benchmarks.md.

Both sides run as whole processes and are timed by wall clock from launch to exit, so
interpreter start, imports, cluster start and shutdown count for both:

(a) ``python -m pipeline run workflows/spectrum.yaml --set stages.signal.shape=[R,C]
    --dashboard-address 127.0.0.1:0 --quiet --output-dir <tmp>``
(b) ``python benchmarks/handwritten_spectrum.py --shape R C --out <tmp>/mean_power.npy``:
    a LocalCluster like the pipeline's (one single-threaded worker per core, dashboard on),
    the same random input, rfft, ``real**2 + imag**2``, mean over axis 0, ``np.save``, and
    the same line plot to PNG as the workflow's ``plot`` stage (``--job arithmetic``:
    the polynomial written with array operators, its sum, a JSON file).

The two alternate (a b, b a, a b, ...) so drift on a shared host hits both alike. Each
run's result is checked against the other side's (``np.allclose``, rtol 1e-4). The table,
the machine, the versions, the last pipeline run's per-stage times (its report.json)
and, with ``--phases``, a phase-by-phase breakdown of one more run of each side, are
printed and written into docs/benchmarks.md between this benchmark's marker comments
(other sections of that file are left alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANDWRITTEN = "benchmarks/handwritten_spectrum.py"
PHASES = "benchmarks/pipeline_phases.py"
DOC = ROOT / "docs" / "benchmarks.md"
# job -> (workflow, its source stage, the output file both sides write, what it computes)
JOBS = {
    "spectrum": ("workflows/spectrum.yaml", "signal", "mean_power.npy",
                 "random -> rfft -> real**2 + imag**2 -> mean over axis 0 -> .npy + PNG"),
    "arithmetic": ("benchmarks/arithmetic.yaml", "x", "total.json",
                   "random -> a 13-operator polynomial -> sum -> .json"),
}
WORKFLOW = JOBS["spectrum"][0]
COLUMNS = 4096  # samples per record, as in the workflows
RTOL = 1e-4


def target(job: str, size_mib: float) -> float:
    """pipeline / hand-written (medians) to reach (issue 13)."""
    if job == "arithmetic":
        return 0.90
    return 1.05 if size_mib < 1024 else 1.00


def marks(job: str, size_mib: float) -> tuple[str, str]:
    """The marker comments of this job and size's section of docs/benchmarks.md."""
    return (f"<!-- bench:{job}-{size_mib:g}:start -->", f"<!-- bench:{job}-{size_mib:g}:end -->")
DOC_HEAD = """# Benchmarks

Measured results. Each section is written by the script it names, between its own marker
comments; re-running a script replaces its section only.
"""


def shape_for(size_mib: float) -> tuple[int, int]:
    rows = max(1, round(size_mib * 2**20 / (4 * COLUMNS)))
    return rows, COLUMNS


def pipeline_cmd(shape, out: Path, job: str = "spectrum") -> list[str]:
    workflow, source, _, _ = JOBS[job]
    return [sys.executable, "-m", "pipeline", "run", workflow,
            "--set", f"stages.{source}.shape=[{shape[0]},{shape[1]}]",
            "--dashboard-address", "127.0.0.1:0", "--quiet", "--output-dir", str(out)]


def handwritten_cmd(shape, out: Path, timings: Path | None = None,
                    job: str = "spectrum") -> list[str]:
    cmd = [sys.executable, HANDWRITTEN, "--job", job, "--shape", str(shape[0]),
           str(shape[1]), "--out", str(out / JOBS[job][2])]
    return cmd + (["--timings", str(timings)] if timings else [])


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` from the repository root; (wall seconds, CPU seconds of its process
    tree as far as the children were waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"failed (exit {proc.returncode}): {shlex.join(cmd)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for name in ("dask", "distributed", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {"cores": os.cpu_count(), "memory_bytes": mem, "cpu": model,
            "platform": platform.platform(), "versions": versions}


def source_state() -> str:
    """The commit measured, and whether the pipeline's code differed from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "pipeline", "workflows"],
                               cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {head}" + (f", with uncommitted changes in {len(dirty)} file(s) under "
                               "pipeline/ and workflows/" if dirty else "")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _load(path: Path):
    import numpy as np

    if path.suffix == ".json":
        return np.asarray(json.loads(path.read_text())["value"])
    return np.load(path)


def check(a: Path, b: Path) -> tuple[bool, float]:
    import numpy as np

    x, y = _load(a), _load(b)
    if x.shape != y.shape:
        return False, float("inf")
    rel = float(np.max(np.abs(x - y) / np.maximum(np.abs(y), np.finfo(y.dtype).tiny)))
    return bool(np.allclose(x, y, rtol=RTOL)), rel


def fmt_s(v: float) -> str:
    return f"{v:.2f}"


def summarize(results: dict) -> dict:
    out = {}
    for side, runs in results.items():
        walls = [r["wall_s"] for r in runs]
        cpus = [r["cpu_s"] for r in runs]
        out[side] = {"median": statistics.median(walls), "min": min(walls), "max": max(walls),
                     "runs": walls, "cpu_median": statistics.median(cpus)}
    return out


def render(args, job, size, shape, info, summary, agree, stages, totals, phases,
           loads) -> str:
    pl, hw = summary["pipeline"], summary["hand-written"]
    ratio, ratio_min = pl["median"] / hw["median"], pl["min"] / hw["min"]
    goal = target(job, size)
    verdict = "met" if ratio <= goal else \
        f"NOT met, by {ratio - goal:.3f} ({(ratio / goal - 1) * 100:+.1f}%)"
    nbytes = shape[0] * shape[1] * 4
    v = info["versions"]
    cmd = f"python benchmarks/compare.py --job {job} --size {size:g} " \
        f"--repeats {args.repeats}" + (" --phases" if args.phases else "")
    start, end = marks(job, size)
    lines = [
        start,
        f"## {job.capitalize()} at {size:g} MiB: pipeline vs hand-written dask.array",
        "",
        f"Job: {JOBS[job][3]}.",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `{cmd}`.",
        "",
        f"- Machine: {info['cores']} cores, "
        f"{info['memory_bytes'] / 2**30:.1f} GiB memory, {info['cpu']} ({info['platform']})",
        f"- Versions: python {v['python']}, dask {v['dask']}, distributed {v['distributed']}, "
        f"numpy {v['numpy']}",
        f"- Pipeline: {info['source']}",
        f"- Input: {shape[0]} x {shape[1]} float32 = {nbytes / 2**20:.0f} MiB; backend cpu "
        "(`auto` on this host); LocalCluster with one single-threaded worker per core on "
        "both sides",
        f"- Load average before / after: {loads[0]} / {loads[1]}",
        "",
        "Each side is one whole process, timed from launch to exit (interpreter start, "
        "imports, cluster start, compute, output, shutdown):",
        "",
        "```",
        "(a) " + shlex.join(["python", *pipeline_cmd(shape, Path("<tmp>"), job)[1:]]),
        "(b) " + shlex.join(["python", *handwritten_cmd(shape, Path("<tmp>"), job=job)[1:]]),
        "```",
        "",
        f"Alternating a/b for {args.repeats} repeats (a b, b a, ...). Wall seconds:",
        "",
        "| | median | min | max | runs | CPU s (median) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for side, s in (("pipeline", pl), ("hand-written dask.array", hw)):
        lines.append(f"| {side} | {fmt_s(s['median'])} | {fmt_s(s['min'])} | "
                     f"{fmt_s(s['max'])} | {', '.join(fmt_s(r) for r in s['runs'])} | "
                     f"{fmt_s(s['cpu_median'])} |")
    lines += [
        "",
        f"**Ratio pipeline / hand-written: {ratio:.3f} (medians), {ratio_min:.3f} (mins). "
        f"Target: pipeline / hand-written <= {goal:.2f} (medians): {verdict}.**",
        "",
        f"Results agree: {'yes' if agree['ok'] else 'NO'} (np.allclose, rtol {RTOL:g}, "
        f"every repeat; largest relative difference {agree['max_rel']:.2e}).",
        "",
        "Per-stage times from the last pipeline run's report.json (stage spans overlap: "
        "Dask runs the stages' tasks concurrently):",
        "",
        "| stage | op | wall s | compute s | tasks |",
        "|---|---|---:|---:|---:|",
    ]
    for s in stages:
        lines.append(f"| {s['id']} | {s['op']} | {fmt_s(s['wall_s'] or 0)} | "
                     f"{fmt_s(s['compute_s'] or 0)} | {s.get('tasks', '')} |")
    lines.append(f"| total (runner) | | {totals['wall_s']:.2f} | {totals['compute_s']:.2f} | |")
    if phases:
        lines += ["", "Phase breakdown of one more run of each side, in seconds "
                  f"(`{PHASES}` times the pipeline's own functions in-process, exclusive "
                  "of nested timed calls; the hand-written script times its steps). "
                  "CPU is the main process's, all threads (the scheduler and the nannies "
                  "live there); the workers' CPU is the last row:", "",
                  "| phase | pipeline wall | pipeline CPU | hand-written wall | "
                  "hand-written CPU |", "|---|---:|---:|---:|---:|"]

        def cell(pair, i):
            return "" if pair is None or pair[i] is None else f"{pair[i]:.2f}"
        for name, (a, b) in phases.items():
            lines.append(f"| {name} | {cell(a, 0)} | {cell(a, 1)} | {cell(b, 0)} | "
                         f"{cell(b, 1)} |")
        lines += ["", "Where the wall-clock difference of that run goes (pipeline minus "
                  "hand-written, phases differing by 0.1 s or more):", ""]
        lines += [f"- {name}: {diff:+.2f} s" for name, diff in gap(phases)]
    lines.append(end)
    return "\n".join(lines)


def write_section(marks: tuple[str, str], section: str, path: Path = DOC) -> None:
    """Replace the text between ``marks`` in ``path`` (or append it), atomically; the rest
    of the file is left alone, so each benchmark owns only its section."""
    start, end = marks
    text = path.read_text() if path.exists() else DOC_HEAD
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_phases(shape, tmp: Path, job: str = "spectrum") -> dict:
    """One more run of each side with its phases timed.

    ``{phase: (pipeline [wall, CPU] or None, hand-written [wall, CPU] or None)}``; CPU is
    the main process's (its threads include the scheduler and the nannies)."""
    pj, hj = tmp / "pipeline-phases.json", tmp / "handwritten-phases.json"
    out_p, out_h = tmp / "phases-pipeline", tmp / "phases-handwritten"
    out_h.mkdir()
    wall_p, cpu_p = timed([sys.executable, PHASES, "--json", str(pj), "--",
                           *pipeline_cmd(shape, out_p, job)[3:]])
    wall_h, cpu_h = timed(handwritten_cmd(shape, out_h, timings=hj, job=job))
    p = json.loads(pj.read_text())["phases"]
    h = json.loads(hj.read_text())
    p_total, h_total = p.pop("(in-process total)"), h.pop("(in-process total)")
    # the hand-written script's phases under the pipeline's names, where they match
    same = {"interpreter start": "interpreter_start_s",
            "imports (pipeline, dask, distributed)": "import_s",
            "cluster start": "cluster_start_s", "graph build (ops called)": "graph_s",
            "compute (submit + wait)": "compute_s", "cluster close": "cluster_close_s",
            "other (cli, run folder, staging)": "script_setup_s"}
    rows: dict[str, tuple] = {}
    for name, value in p.items():
        rows[name] = (value, h.pop(same.get(name, ""), None))
    for name, value in h.items():
        rows[{"save_s": "np.save (hand-written)"}.get(name, f"{name} (hand-written)")] = \
            (None, value)
    rows["interpreter exit + unaccounted"] = (
        [max(wall_p - p_total[0], 0.0), None], [max(wall_h - h_total[0], 0.0), None])
    rows["whole process: wall; CPU of main process"] = (
        [wall_p, p_total[1]], [wall_h, h_total[1]])
    rows["CPU of the workers (process tree - main)"] = (
        [None, max(cpu_p - p_total[1], 0.0)], [None, max(cpu_h - h_total[1], 0.0)])
    return rows


def gap(phases: dict) -> list[tuple[str, float]]:
    """(phase, pipeline wall - hand-written wall) for the phases of ``run_phases`` that
    differ by 0.1 s or more, largest first, then the whole-process difference."""
    whole = "whole process: wall; CPU of main process"
    out = []
    for name, (a, b) in phases.items():
        wall_a = (a[0] if a else None) or 0.0
        wall_b = (b[0] if b else None) or 0.0
        if name != whole and abs(wall_a - wall_b) >= 0.1:
            out.append((name, wall_a - wall_b))
    out.sort(key=lambda item: -item[1])
    a, b = phases[whole]
    return out + [("whole process", a[0] - b[0])]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Whole processes: pipeline vs hand-written "
                                            "dask.array")
    p.add_argument("--job", choices=list(JOBS), default="spectrum")
    p.add_argument("--size", type=float, nargs="+", default=[1024],
                   help="input sizes in MiB (float32, 4096 columns); default 1024 = 1 GiB")
    p.add_argument("--repeats", type=int, default=3, help="runs of each side (default 3)")
    p.add_argument("--phases", action="store_true",
                   help="also time the phases of one more run of each side")
    p.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    p.add_argument("--doc", type=Path, default=DOC, help="the markdown file to update")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    ok = True
    for size in args.size:
        ok &= compare(args, args.job, size)
    return 0 if ok else 1


def compare(args, job: str, size: float) -> bool:
    """Run both sides of ``job`` at ``size`` MiB, print and (unless --no-doc) write the
    section; whether the results agreed."""
    shape = shape_for(size)
    if size < 512:
        print(f"note: {size:g} MiB is below the 512 MiB this benchmark is meant for",
              file=sys.stderr)
    info = machine()
    info["source"] = source_state()
    loads = [loadavg()]
    print(f"{job} {shape[0]}x{shape[1]} float32 ({shape[0] * shape[1] * 4 / 2**20:.0f} MiB), "
          f"{args.repeats} repeats, {info['cores']} cores, {info['cpu']}, load {loads[0]}")
    results: dict[str, list] = {"pipeline": [], "hand-written": []}
    agree = {"ok": True, "max_rel": 0.0}
    output = JOBS[job][2]
    with tempfile.TemporaryDirectory(prefix=f"bench-{job}-") as tmpname:
        tmp = Path(tmpname)
        last_report = None
        for i in range(args.repeats):
            out_p, out_h = tmp / f"pipeline-{i}", tmp / f"handwritten-{i}"
            out_h.mkdir()
            order = ["pipeline", "hand-written"] if i % 2 == 0 else ["hand-written", "pipeline"]
            for side in order:
                cmd = pipeline_cmd(shape, out_p, job) if side == "pipeline" \
                    else handwritten_cmd(shape, out_h, job=job)
                wall, cpu = timed(cmd)
                results[side].append({"wall_s": wall, "cpu_s": cpu})
                print(f"  run {i + 1} {side:<12} {wall:7.2f} s wall  {cpu:7.2f} s CPU",
                      flush=True)
            ok, rel = check(out_p / output, out_h / output)
            agree["ok"] &= ok
            agree["max_rel"] = max(agree["max_rel"], rel)
            last_report = json.loads((out_p / "report.json").read_text())
        phases = run_phases(shape, tmp, job) if args.phases else None
    loads.append(loadavg())
    summary = summarize(results)
    section = render(args, job, size, shape, info, summary, agree, last_report["stages"],
                     last_report["totals"], phases, loads)
    start, end = marks(job, size)
    print()
    print(section.replace(start + "\n", "").replace("\n" + end, ""))
    if not args.no_doc:
        write_section((start, end), section, args.doc)
        print(f"\nwritten: {args.doc}")
    return agree["ok"]


if __name__ == "__main__":
    raise SystemExit(main())
