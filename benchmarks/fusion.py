"""Spectrum with Dask's task fusion on (the default) vs ``--no-fuse``, and hand-written.

    python benchmarks/fusion.py                          # 512 MiB, 5 repeats, writes docs
    python benchmarks/fusion.py --size 1024 --repeats 3 --no-doc

Two measurements, each alternating its sides (rotating order) so drift on a shared host
hits all alike:

- **warm cluster, compute only**: one LocalCluster (one single-threaded worker per core,
  ``pipeline.ops`` imported first); per repeat, the pipeline's path from built stages to
  gathered results (``StageMap`` + ``graph.prepare``: optimize, materialize, meter; then
  submit, wait, gather), fused and unfused, and the hand-written dask.array graph's
  ``client.compute``. The pipeline's report files are left out.
- **whole process**: ``python -m pipeline run workflows/spectrum.yaml --no-dashboard
  --quiet``, the same with ``--no-fuse``, and ``benchmarks/handwritten_spectrum.py``,
  launch to exit.

Prints the tables and writes them into docs/benchmarks.md between this script's marker
comments (the rest of the file is left alone).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MARKS = ("<!-- bench:fusion:start -->", "<!-- bench:fusion:end -->")
SIDES = ("fused", "--no-fuse", "hand-written")


def _cpu_of_this_process() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def warm(shape, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Compute-only (wall, workers' CPU) seconds per side on one warm cluster."""
    import dask.array as da
    import numpy as np
    from distributed import Client, LocalCluster, wait

    from pipeline import backends, plan, runner, spec
    from pipeline.accounting import graph
    from pipeline.accounting.stagemap import StageMap

    folder = Path(tempfile.mkdtemp(prefix="bench-fusion-"))
    wf = spec.load(ROOT / "workflows" / "spectrum.yaml",
                   [f"stages.signal.shape=[{shape[0]},{shape[1]}]"], output_dir=folder)
    planned = plan.build(wf)

    def pipeline(fuse: bool):
        (folder / "staging").mkdir(exist_ok=True)
        built = runner.build(planned, backends.CPU, folder / "staging")
        labels = built.span_ids
        prepared = graph.prepare(
            [s.collection for s in built.sinks.values()], [labels[s] for s in built.sinks],
            StageMap.from_build(built.results(planned), labels,
                                {ps.id: ps.upstream for ps in planned.stages}),
            fuse=fuse, spans=built.spans, run_label=built.run_span)
        futures = graph.submit(client, prepared)
        wait(futures)
        client.gather(futures)

    def hand():
        x = da.random.default_rng(0).standard_normal(shape, dtype=np.float32, chunks="auto")
        z = da.fft.rfft(x, axis=1)
        client.compute((z.real ** 2 + z.imag ** 2).mean(axis=0)).result()

    run = {"fused": lambda: pipeline(True), "--no-fuse": lambda: pipeline(False),
           "hand-written": hand}
    times: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES}
    try:
        with LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1,
                          processes=True, dashboard_address=None,
                          scheduler_kwargs={"dashboard": False},
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            client.run(lambda: __import__("pipeline.ops"))
            hand()  # warm-up: the workers' first FFT plan, NumPy's allocator
            def workers_cpu() -> float:
                return sum(client.run(_cpu_of_this_process).values())

            for i in range(repeats):
                for side in SIDES[i % 3:] + SIDES[:i % 3]:
                    c0, t0 = workers_cpu(), time.perf_counter()
                    run[side]()
                    times[side].append((time.perf_counter() - t0, workers_cpu() - c0))
                    print(f"  warm {i + 1} {side:<13} {times[side][-1][0]:6.2f} s wall "
                          f"{times[side][-1][1]:6.2f} s CPU", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return times


def whole(shape, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Launch-to-exit (wall, CPU of the process tree) seconds per side."""
    from compare import WORKFLOW, handwritten_cmd, timed

    times: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="bench-fusion-") as tmp:
        out = Path(tmp)
        fused = [sys.executable, "-m", "pipeline", "run", WORKFLOW, "--set",
                 f"stages.signal.shape=[{shape[0]},{shape[1]}]", "--no-dashboard", "--quiet",
                 "--output-dir", str(out)]
        cmds = {"fused": fused, "--no-fuse": fused + ["--no-fuse"],
                "hand-written": handwritten_cmd(shape, out)}
        for i in range(repeats):
            for side in SIDES[i % 3:] + SIDES[:i % 3]:
                wall, cpu = timed(cmds[side])
                times[side].append((wall, cpu))
                print(f"  whole {i + 1} {side:<13} {wall:6.2f} s wall {cpu:6.2f} s CPU",
                      flush=True)
    return times


def render(args, shape, warm_s, whole_s, loads) -> str:
    from compare import machine, source_state

    info = machine()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [MARKS[0], "## Fusion on (default) vs `--no-fuse`: spectrum", "",
             f"`python benchmarks/fusion.py --size {args.size:g} --repeats {args.repeats}`, "
             f"{when}, {source_state()}; {shape[0]}x{shape[1]} float32 "
             f"({args.size:g} MiB); {info['cores']} cores ({info['cpu']}), dask "
             f"{info['versions']['dask']}. Load average (1, 5, 15 min) before: {loads[0]}; "
             f"between: {loads[1]}; after: {loads[2]}. Medians of alternating runs "
             "(min..max); ratio: median / hand-written's median. CPU: the workers' "
             "(warm) or the process tree's (whole) CPU seconds, steadier than wall time on "
             "a loaded host.", "",
             "| side | warm: compute s | ratio | CPU s | ratio | whole process: s | ratio "
             "| CPU s | ratio |", "|---|---|---|---|---|---|---|---|---|"]
    med = {(k, i): {side: statistics.median(r[i] for r in runs[side]) for side in SIDES}
           for k, runs in (("warm", warm_s), ("whole", whole_s)) for i in (0, 1)}
    for side in SIDES:
        cells = []
        for key, runs in (("warm", warm_s), ("whole", whole_s)):
            walls = [r[0] for r in runs[side]]
            cells += [f"{med[key, 0][side]:.2f} ({min(walls):.2f}..{max(walls):.2f})",
                      f"{med[key, 0][side] / med[key, 0]['hand-written']:.3f}",
                      f"{med[key, 1][side]:.2f}",
                      f"{med[key, 1][side] / med[key, 1]['hand-written']:.3f}"]
        lines.append(f"| {side} | " + " | ".join(cells) + " |")
    ratio = {k: med[k]["fused"] / med[k]["--no-fuse"] for k in med}
    lines += ["", f"Fused / `--no-fuse`: warm {ratio['warm', 0]:.3f} (CPU "
                  f"{ratio['warm', 1]:.3f}), whole process {ratio['whole', 0]:.3f} (CPU "
                  f"{ratio['whole', 1]:.3f}). Both pipeline sides meter every task callable "
                  "per stage (the report's figures are exact in both); the warm side "
                  "includes the pipeline's graph preparation on the client (optimize, "
                  "materialize, meter).", MARKS[1]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from compare import loadavg, shape_for, write_section

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=512, help="input MiB (default 512)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-doc", action="store_true", help="print only")
    args = p.parse_args(argv)
    shape = shape_for(args.size)
    loads = [loadavg()]
    warm_s = warm(shape, args.repeats)
    loads.append(loadavg())
    whole_s = whole(shape, args.repeats)
    loads.append(loadavg())
    section = render(args, shape, warm_s, whole_s, loads)
    print(section)
    if not args.no_doc:
        write_section(MARKS, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
