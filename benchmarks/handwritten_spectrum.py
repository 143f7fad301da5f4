"""The benchmark workflows written by hand with dask.array: the baselines the pipeline is
measured against (see benchmarks/compare.py).

Same cluster as the pipeline starts on a CPU host (``LocalCluster``, one single-threaded
worker process per core, the dashboard on, as a user gets it), same input
(``default_rng(0)``, float32, ``chunks="auto"``), same computation: rfft along axis 1,
``real**2 + imag**2``, mean over axis 0, saved with ``np.save`` and drawn as a line plot
(log y) to PNG, as the workflow's ``plot`` stage does.

``--job arithmetic`` is ``benchmarks/arithmetic.yaml`` instead: the same random input,
the 13-operator polynomial written with array operators, its sum, written as
``{"value": sum}`` JSON.

    python benchmarks/handwritten_spectrum.py --shape 65536 4096 --out /tmp/hw/mean_power.npy
    python benchmarks/handwritten_spectrum.py --job arithmetic --out /tmp/hw/total.json
"""

from __future__ import annotations

import time

T_SCRIPT = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--job", choices=("spectrum", "arithmetic"), default="spectrum")
    p.add_argument("--shape", type=int, nargs=2, default=[65536, 4096], metavar=("R", "C"))
    p.add_argument("--out", required=True,
                   help="where to np.save the mean power spectrum (arithmetic: the JSON sum)")
    p.add_argument("--timings", help="write the phase timings (JSON) here")
    args = p.parse_args(argv)

    marks = [("start", time.perf_counter(), time.process_time())]

    def mark(name):
        marks.append((name, time.perf_counter(), time.process_time()))

    import dask.array as da
    import numpy as np
    from distributed import Client, LocalCluster

    mark("import_s")
    with LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        mark("cluster_start_s")
        x = da.random.default_rng(0).standard_normal(tuple(args.shape), dtype=np.float32,
                                                     chunks="auto")
        if args.job == "arithmetic":
            from workloads import arithmetic

            result_of = arithmetic(x).sum()
        else:
            z = da.fft.rfft(x, axis=1)
            power = z.real ** 2 + z.imag ** 2
            result_of = power.mean(axis=0)
        mark("graph_s")
        result = client.compute(result_of).result()
        mark("compute_s")
        if args.job == "arithmetic":
            with open(args.out, "w") as f:
                json.dump({"value": float(result)}, f)
        else:
            np.save(args.out, result)
            _plot(result, args.out.removesuffix(".npy") + ".png")
        mark("save_s")
    mark("cluster_close_s")
    if args.timings:
        _write_timings(args.timings, marks)
    return 0


def _plot(values, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(values)
    ax.set_yscale("log")
    ax.set_title("Mean power spectrum")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _write_timings(path: str, marks: list) -> None:
    """{phase: [wall s, CPU s of this process]}; the workers' CPU is not included."""
    import process_age  # beside this script

    started_ago = process_age.seconds()
    t_start, c_start = marks[0][1], marks[0][2]
    phases = {"interpreter_start_s": [max(started_ago - (time.perf_counter() - T_SCRIPT), 0.0),
                                      0.0],
              "script_setup_s": [t_start - T_SCRIPT, c_start]}
    for (_, t0, c0), (name, t1, c1) in zip(marks, marks[1:]):
        phases[name] = [t1 - t0, c1 - c0]
    phases["(in-process total)"] = [marks[-1][1] - T_SCRIPT + phases["interpreter_start_s"][0],
                                    marks[-1][2]]
    with open(path, "w") as f:
        json.dump(phases, f, indent=2)


if __name__ == "__main__":
    raise SystemExit(main())
