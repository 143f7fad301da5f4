"""Compute only, on one warm cluster: the spectrum graph as the pipeline builds it vs the
hand-written dask.array graph, alternating.

    python benchmarks/warm_compute.py --size 1024 --repeats 5

Start-up, imports (workers import ``pipeline.ops`` once, before the first repeat), the
performance report and the other run-folder files are all left out, so what differs is
the task graph: the pipeline tags each stage's layer with its own span and turns Dask's
low-level fusion off (``runner.COMPUTE_CONFIG``), so random -> rfft -> power -> partial
mean run as separate tasks per chunk with their intermediates held in worker memory; the
hand-written graph fuses them into one task per chunk. ``pipeline, fused`` is the
pipeline's graph with low-level fusion on (per-stage span attribution is then lost), to
show what the split costs.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cpu_of_this_process() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    from compare import shape_for  # benchmarks/compare.py

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=1024, help="input MiB (default 1024)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    shape = shape_for(args.size)

    import dask
    import dask.array as da
    import numpy as np
    from distributed import Client, LocalCluster, wait

    from pipeline import backends, plan, runner, spec

    def hand():
        x = da.random.default_rng(0).standard_normal(shape, dtype=np.float32, chunks="auto")
        z = da.fft.rfft(x, axis=1)
        return client.compute((z.real ** 2 + z.imag ** 2).mean(axis=0)).result()

    wf = spec.load(ROOT / "workflows" / "spectrum.yaml",
                   [f"stages.signal.shape=[{shape[0]},{shape[1]}]"],
                   output_dir=tempfile.mkdtemp(prefix="warm-compute-"))
    planned = plan.build(wf)

    def pipeline(fuse: bool):
        staging = Path(tempfile.mkdtemp(prefix="warm-compute-staging-"))
        try:
            built = runner.build(planned, backends.CPU, staging)
            config = {**backends.CPU.dask_config, **runner.COMPUTE_CONFIG}
            if fuse:
                config["optimization.fuse.active"] = True
            with dask.config.set(config):
                futures = client.compute([s.collection for s in built.sinks.values()])
                wait(futures)
                client.gather(futures)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    sides = {"hand-written": hand, "pipeline": lambda: pipeline(False),
             "pipeline, fused": lambda: pipeline(True)}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    with LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      dashboard_address=None, scheduler_kwargs={"dashboard": False},
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("pipeline.ops"))  # both sides: imports done

        def workers_cpu() -> float:
            return sum(client.run(_cpu_of_this_process).values())

        names = list(sides)
        for i in range(args.repeats):
            for name in names if i % 2 == 0 else names[::-1]:
                c0, t0 = workers_cpu(), time.perf_counter()
                sides[name]()
                wall, cpu = time.perf_counter() - t0, workers_cpu() - c0
                results[name].append((wall, cpu))
                print(f"  {i + 1} {name:<16} {wall:6.2f} s wall  {cpu:6.2f} s workers' CPU",
                      flush=True)
    print(f"\n{shape[0]}x{shape[1]} float32, {args.repeats} repeats, load {os.getloadavg()}")
    print(f"{'':<16} {'median wall':>12} {'min wall':>9} {'median CPU':>11}")
    for name, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(f"{name:<16} {statistics.median(walls):12.2f} {min(walls):9.2f} "
              f"{statistics.median(cpus):11.2f}")
    hw = statistics.median(w for w, _ in results["hand-written"])
    print(f"ratio pipeline / hand-written (median wall): "
          f"{statistics.median(w for w, _ in results['pipeline']) / hw:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
