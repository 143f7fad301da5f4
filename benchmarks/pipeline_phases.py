"""Run ``python -m pipeline run ...`` in this process with each phase timed.

    python benchmarks/pipeline_phases.py --json phases.json -- run workflows/spectrum.yaml \
        --no-dashboard --quiet --output-dir /tmp/run

The pipeline runs unchanged (``pipeline.cli.main``); its functions are wrapped by name to
time them, so the phases add up to the process's wall clock: interpreter start, imports,
workflow load + plan, backend detection, cluster start, graph build, compute, gather,
what is left to wait for of the performance report (rendered in a thread), the metrics flush, outputs + report.json, cluster close.
Each phase has its wall seconds and the main process's CPU seconds (all its threads: the
scheduler and the nannies run in it too; the workers' CPU is not included).
A wrapped name that no longer exists is skipped (its time then shows up in "other").
Used by ``benchmarks/compare.py --phases``.
"""

from __future__ import annotations

import time

T_SCRIPT = time.perf_counter()

# (module[:class], function, phase): what is timed. Names that do not exist are skipped.
TIMED = [
    ("pipeline.spec", "load", "workflow load + plan"),
    ("pipeline.plan", "build", "workflow load + plan"),
    ("pipeline.backends", "resolve", "backend detection (NVML)"),
    ("pipeline.runner", "build", "graph build (ops called)"),
    ("distributed:Client", "compute", "compute (submit + wait)"),
    ("distributed", "wait", "compute (submit + wait)"),
    ("distributed:Client", "gather", "gather results"),
    ("pipeline.ops.plots", "draw", "plot sink: PNG drawn on the client"),
    ("pipeline.metrics", "stage_metrics", "metrics flush + span read"),
    ("pipeline.runner", "_move_outputs", "outputs moved + report.json"),
    ("pipeline.report", "versions", "outputs moved + report.json"),
    ("pipeline.report", "write_json", "outputs moved + report.json"),
    ("pipeline.report_html", "write", "report.html (chart drawn)"),
    # rendered in a thread while the runner writes the rest: what is left to wait for
    ("pipeline.perf_report:PerformanceReport", "__enter__", "performance-report.html"),
    ("pipeline.perf_report:PerformanceReport", "render", "performance-report.html"),
    ("pipeline.perf_report:PerformanceReport", "wait", "performance-report.html"),
    ("pipeline.memory:MemorySampler", "__enter__", "memory sampler start/stop"),
    ("pipeline.memory:MemorySampler", "__exit__", "memory sampler start/stop"),
    ("pipeline.watch:WorkerWatch", "start", "worker watch start/stop"),
    ("pipeline.watch:WorkerWatch", "stop", "worker watch start/stop"),
]


def main() -> int:
    import argparse
    import contextlib
    import io
    import json

    import process_age  # beside this script

    started_ago = process_age.seconds()
    p = argparse.ArgumentParser()
    p.add_argument("--json", required=True)
    p.add_argument("cli_args", nargs=argparse.REMAINDER)
    args = p.parse_args()
    cli_args = args.cli_args[1:] if args.cli_args[:1] == ["--"] else args.cli_args

    # {phase: [wall s, main-process CPU s]}, exclusive: a timed call inside another
    # timed call counts for its own phase only.
    phases: dict[str, list[float]] = {
        "interpreter start": [max(started_ago - (time.perf_counter() - T_SCRIPT), 0.0), 0.0]}
    stack: list[list[float]] = []  # [wall, cpu] of the children of each open timed call

    @contextlib.contextmanager
    def timing(name):
        t0, c0 = time.perf_counter(), time.process_time()
        stack.append([0.0, 0.0])
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            inner = stack.pop()
            phase = phases.setdefault(name, [0.0, 0.0])
            phase[0] += wall - inner[0]
            phase[1] += cpu - inner[1]
            if stack:
                stack[-1][0] += wall
                stack[-1][1] += cpu

    import importlib

    # Everything a run imports (the wrapped modules are all imported by a run anyway).
    with timing("imports (pipeline, dask, distributed)"):
        import distributed

        from pipeline import cli, cluster
        owners = []
        for module, attr, name in TIMED:
            owner_path, _, cls = module.partition(":")
            try:
                owner = importlib.import_module(owner_path)
            except ImportError:
                continue
            owners.append((getattr(owner, cls, None) if cls else owner, attr, name))

    def wrap(owner, attr, name):
        fn = getattr(owner, attr, None)
        if fn is None:
            return

        def timed(*a, **k):
            with timing(name):
                return fn(*a, **k)
        setattr(owner, attr, timed)

    for owner, attr, name in owners:
        wrap(owner, attr, name)

    connect = cluster.connect

    @contextlib.contextmanager
    def timed_connect(*a, **k):
        cm = connect(*a, **k)
        with timing("cluster start"):
            session = cm.__enter__()
        try:
            yield session
        finally:
            with timing("cluster close"):
                cm.__exit__(None, None, None)

    cluster.connect = timed_connect

    with timing("other (cli, run folder, staging)"), \
            contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(cli_args)
    phases["(in-process total)"] = [time.perf_counter() - T_SCRIPT
                                    + phases["interpreter start"][0], time.process_time()]
    with open(args.json, "w") as f:
        json.dump({"rc": rc, "phases": phases}, f, indent=2)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
