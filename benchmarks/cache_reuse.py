"""Cached stages: the cost of keeping a stage's result and the gain of reusing it.

    python benchmarks/cache_reuse.py                 # the 1 GiB spectrum (65536 x 4096)
    python benchmarks/cache_reuse.py --rows 8192 --no-doc

Four whole ``python -m pipeline run`` processes of workflows/spectrum.yaml, alternating
nothing else, in one folder:

1. ``no cache``: the workflow as it is (reduce ``how: mean``).
2. ``cache, first run``: ``--cache DIR`` with ``signal`` and ``spectrum`` opted out
   (``cache: false``), so ``power`` (|FFT|^2, the size of the input) and ``mean_power``
   are computed and written into the cache as the run goes.
3. ``last stage changed``: ``how: max``: ``power`` is read back from the cache (its files
   checked against their CRC-32 first); the random source and the FFT do not run.
4. ``nothing changed``: run 3 again: ``mean_power`` too comes from the cache.

Each row gives the process's wall time, the runner's (report.json), the power stage's, and
whether the FFT ran; the results of runs 3 and 4 are checked against each other and the
section between this script's markers in docs/benchmarks.md is replaced.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from beyond_memory import run_workflow  # noqa: E402
from compare import COLUMNS, ROOT, WORKFLOW, loadavg, machine, source_state  # noqa: E402
from compare import write_section  # noqa: E402

MARKS = ("<!-- bench:cache-reuse:start -->", "<!-- bench:cache-reuse:end -->")
OPT_OUT = ["--set", "stages.signal.cache=false", "--set", "stages.spectrum.cache=false"]


def measure(rows: int, scratch: Path) -> list[dict]:
    size = ["--set", f"stages.signal.shape=[{rows},{COLUMNS}]"]
    cache = ["--cache", str(scratch / "cache")]
    runs = [("no cache", size),
            ("cache, first run", size + cache + OPT_OUT),
            ("last stage changed", size + cache + OPT_OUT
             + ["--set", "stages.mean_power.how=max"]),
            ("nothing changed", size + cache + OPT_OUT
             + ["--set", "stages.mean_power.how=max"])]
    out = []
    for i, (name, extra) in enumerate(runs):
        load = loadavg()
        print(f"{name} (load {load})")
        folder = scratch / f"run{i}"
        m = run_workflow(ROOT / WORKFLOW, folder, extra)
        stages = {s["id"]: s for s in m["stages"]}
        out.append({"name": name, "process_s": m["process_s"], "runner_s": m["runner_s"],
                    "power_s": stages["power"]["wall_s"],
                    "power_cached": stages["power"]["cached"],
                    "fft_ran": stages["spectrum"]["computed"], "load": load,
                    "result": np.load(folder / "mean_power.npy")})
    np.testing.assert_array_equal(out[2]["result"], out[3]["result"])
    return out


def section(rows: int, results: list[dict]) -> str:
    start, end = MARKS
    gib = rows * COLUMNS * 4 / 2**30
    lines = [start, "## Cached stages: reusing |FFT|^2 when the last stage changes", "",
             f"`python benchmarks/cache_reuse.py --rows {rows}`: workflows/spectrum.yaml at "
             f"{rows} x {COLUMNS} float32 ({gib:.2f} GiB in, the same out of `power`), "
             f"whole processes; {machine()['cores']} cores; code {source_state()}; "
             f"{time.strftime('%Y-%m-%d')}. Load average (1, 5, 15 min) before each run "
             "in the last column.", "",
             "| run | process s | runner s | power stage s | power from cache | FFT ran "
             "| load |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['process_s']:.1f} | {r['runner_s']:.1f} | "
                     f"{r['power_s'] if r['power_s'] is not None else 0:.2f} | "
                     f"{'yes' if r['power_cached'] else 'no'} | "
                     f"{'yes' if r['fft_ran'] else 'no'} | {r['load']} |")
    base, first, changed = (results[i]["process_s"] for i in range(3))
    lines += ["", f"The first run, which also writes `power` into the cache, took {first:.1f} s "
                  f"against {base:.1f} s without ({first / base:.2f}x); with the last stage "
                  f"changed, the next took {changed:.1f} s ({changed / base:.2f}x of the run "
                  "without cache): `power` read back (its CRC-32 checked first) instead of "
                  "the input generated and transformed. On a loaded host (see the load "
                  "column) whole-process times move by 20% or more from run to run.", end]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=65536, help="records of 4096 samples")
    p.add_argument("--no-doc", action="store_true", help="print only")
    p.add_argument("--scratch", type=Path, help="folder for the runs (default: a temp one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        results = measure(args.rows, Path(tmp))
    text = section(args.rows, results)
    print(text)
    if not args.no_doc:
        write_section(MARKS, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
