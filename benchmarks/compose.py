"""The docker-compose deploy timed on this host (CPU workers): the local base image and
the image built, the deployment started, and workflows/spectrum.yaml run by the runner
service against the same workflow on a local cluster of the same shape.

    python benchmarks/compose.py                 # 256 MiB, 3 alternating repeats, writes docs/deploy.md
    python benchmarks/compose.py --fresh         # first removes the images: builds from nothing
    python benchmarks/compose.py --size 1024 --repeats 2 --no-doc

Needs what tests/test_docker.py needs (a Docker engine, docker-compose or the compose
plugin; root and debootstrap for the base image). Both sides have two single-threaded
workers. Each run is one whole command, timed from launch to exit: the deploy's
``docker compose run cpu-runner`` (container start, connect to the running cluster, run)
and the local ``python -m pipeline run`` (cluster start, run, shutdown); each one's
report.json total (the run alone) is given beside it, and the results must agree.
The section between this script's markers in docs/deploy.md is replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (HERE, ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from compare import loadavg, source_state, write_section  # noqa: E402

from tests import docker_stack  # noqa: E402

DOC = ROOT / "docs" / "deploy.md"
MARKS = ("<!-- bench:compose -->", "<!-- /bench:compose -->")
COLUMNS = 4096


def write_workflows(folder: Path, rows: int, repeats: int) -> None:
    """workflows/spectrum.yaml at ``rows`` records, one copy (and run folder) per run."""
    folder.mkdir(parents=True)
    folder.chmod(0o755)  # the image's user reads it
    wf = yaml.safe_load((ROOT / "workflows" / "spectrum.yaml").read_text())
    (signal,) = [s for s in wf["stages"] if s["id"] == "signal"]
    signal["shape"] = [rows, COLUMNS]
    for i in range(repeats):
        (folder / f"run{i}.yaml").write_text(
            yaml.safe_dump({**wf, "output_dir": f"runs/run{i}"}, sort_keys=False))


def total(run: Path) -> float:
    return json.loads((run / "report.json").read_text())["totals"]["wall_s"]


def deploy_run(stack, i: int) -> tuple[float, float, Path]:
    start = time.perf_counter()
    code, _, err = stack.wait(stack.run(settings={"WORKFLOW": f"workflows/run{i}.yaml"}))
    wall = time.perf_counter() - start
    if code:
        raise SystemExit(f"the runner service failed ({code}): {err.strip()}")
    run = stack.results / f"run{i}"
    return wall, total(run), run


def local_run(workflows: Path, i: int, out: Path) -> tuple[float, float, Path]:
    command = [sys.executable, "-m", "pipeline", "run", str(workflows / f"run{i}.yaml"),
               "--set", "cluster.n_workers=2", "--set", "cluster.threads_per_worker=1",
               "--output-dir", str(out), "--no-dashboard", "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start, total(out), out


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({', '.join(f'{v:.1f}' for v in values)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=256, help="input MiB (default 256)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fresh", action="store_true",
                        help="remove the images first, so both builds start from nothing")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args(argv)
    problem = docker_stack.engine_problem()
    if problem:
        raise SystemExit(f"error: {problem}")
    rows = int(args.size * 2**20 / (COLUMNS * 4))
    loads = [loadavg()]
    if args.fresh:
        subprocess.run(["docker", "rmi", "-f", docker_stack.IMAGE, docker_stack.BASE_IMAGE,
                        "pipeline-debian:bookworm-minbase"], capture_output=True)
    base_s, steps = docker_stack.build_base()
    times = {"base image (docker/cpu-base.sh)": base_s}
    # its steps, as the script logs them: "<image>: <step> in <n> s"
    times.update({f"... {line.split(': ', 1)[1].rsplit(' in ', 1)[0]}":
                  float(line.rsplit(" in ", 1)[1].split()[0])
                  for line in steps if " in " in line})
    with tempfile.TemporaryDirectory(prefix="bench-compose-") as tmp:
        tmp = Path(tmp)
        write_workflows(tmp / "workflows", rows, args.repeats)
        (tmp / "results").mkdir()
        stack = docker_stack.Stack(tmp / "results", tmp / "workflows")
        try:
            times["image (`compose build --no-cache`)"] = stack.build(cache=False)
            up = stack.up()
            times["`compose up -d` (scheduler healthy, workers started)"] = up
            start = time.perf_counter()
            stack.wait_for_workers(2)
            times["... until both workers joined"] = up + time.perf_counter() - start
            walls = {"deploy": [], "local": []}
            inner = {"deploy": [], "local": []}
            for i in range(args.repeats):
                order = ("deploy", "local") if i % 2 == 0 else ("local", "deploy")
                runs = {}
                for side in order:
                    wall, run_s, runs[side] = (deploy_run(stack, i) if side == "deploy" else
                                               local_run(tmp / "workflows", i, tmp / f"local{i}"))
                    walls[side].append(wall)
                    inner[side].append(run_s)
                # to rounding: at larger sizes the host (with numba) may compile the
                # expression where the image (without) does not
                if not np.allclose(*(np.load(runs[side] / "mean_power.npy")
                                     for side in ("deploy", "local")), rtol=1e-6, atol=0):
                    raise SystemExit(f"run {i}: the deploy's result differs from the local one")
        finally:
            times["`compose down`"] = stack.down()
    loads.append(loadavg())
    section = render(args, rows, times, walls, inner, loads)
    print(section)
    if not args.no_doc:
        write_section(MARKS, section, DOC)
    return 0


def render(args, rows, times, walls, inner, loads) -> str:
    cmd = f"python benchmarks/compose.py --size {args.size:g} --repeats {args.repeats}" + \
        (" --fresh" if args.fresh else "")
    lines = [
        MARKS[0],
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `{cmd}` ({source_state()}), "
        f"{os.cpu_count()} cores, load average before / after: {loads[0]} / {loads[1]}.",
        "",
        "| step | seconds |",
        "|---|---:|",
        *(f"| {step} | {s:.1f} |" for step, s in times.items()),
        "",
        f"workflows/spectrum.yaml at {rows} x {COLUMNS} float32 "
        f"({rows * COLUMNS * 4 / 2**20:.0f} MiB), two one-thread workers on each side, "
        f"{args.repeats} alternating runs; median (each run), seconds; the results agreed "
        "in every run (rtol 1e-6):",
        "",
        "| | whole command | run alone (report.json total) |",
        "|---|---:|---:|",
        f"| deploy: `compose run cpu-runner` | {fmt(walls['deploy'])} | "
        f"{fmt(inner['deploy'])} |",
        f"| local: `python -m pipeline run` | {fmt(walls['local'])} | {fmt(inner['local'])} |",
        MARKS[1],
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
