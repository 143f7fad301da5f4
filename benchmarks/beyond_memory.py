"""Larger than memory: the spectrum over an input bigger than the host's memory, streamed
from and to disk, with its peak memory.

    python benchmarks/beyond_memory.py                  # 32 GiB (this host has 24 GiB)
    python benchmarks/beyond_memory.py --size-gib 2 --no-doc --scratch /tmp/x

Three whole ``python -m pipeline run`` processes, each on a workflow this script writes:

1. ``generate``: random (R, 4096) float32 -> write ``signal.zarr``: every chunk streams
   to disk as it is made.
2. ``from disk``: read ``signal.zarr`` -> rfft -> |z|^2 -> mean over records -> write:
   every chunk streams back from disk. The store is larger than the host's memory, so
   the page cache cannot hold it.
3. ``no disk``: workflows/spectrum.yaml at the same shape (random -> rfft -> ...): chunks
   are generated where they are used and never stored. The reference: same seed and
   chunks, so its result must equal run 2's.

Each run's time and peak host memory come from its report.json (the workers' sampled
memory); the section between this script's markers in docs/benchmarks.md is replaced.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from compare import (COLUMNS, DOC, ROOT, WORKFLOW, loadavg, machine,  # noqa: E402
                     source_state, write_section)

MARKS = ("<!-- bench:beyond-memory:start -->", "<!-- bench:beyond-memory:end -->")
RTOL = 1e-5

GENERATE = """\
name: generate
stages:
  - {{id: signal, op: random, distribution: normal, shape: [{rows}, {cols}], chunks: auto,
     dtype: float32, seed: 0}}
  - {{id: save, op: write, input: signal, path: signal.zarr}}
"""

FROM_DISK = """\
name: spectrum_from_disk
stages:
  - {{id: signal, op: read, path: {store}}}
  - {{id: spectrum, op: rfft, input: signal, axis: 1}}
  - {{id: power, op: elementwise, inputs: {{z: spectrum}}, expr: "real(z)**2 + imag(z)**2"}}
  - {{id: mean_power, op: reduce, input: power, how: mean, axis: 0}}
  - {{id: save, op: write, input: mean_power, path: mean_power.npy}}
"""


def run_workflow(workflow: Path, out: Path, extra: list[str] = (), say=print) -> dict:
    """One whole ``python -m pipeline run`` process: its wall time, and the runner's time,
    peak host memory and per-stage metrics from its report.json."""
    cmd = [sys.executable, "-m", "pipeline", "run", str(workflow), "--dashboard-address",
           "127.0.0.1:0", "--quiet", "--output-dir", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(cmd)}):\n{proc.stdout}{proc.stderr}")
    report = json.loads((out / "report.json").read_text())
    totals = report["totals"]
    m = {"process_s": wall, "runner_s": totals["wall_s"],
         "peak_host_bytes": totals.get("peak_host_bytes"), "stages": report["stages"]}
    say(f"  {wall:.1f} s, peak host memory {(m['peak_host_bytes'] or 0) / 2**30:.2f} GiB")
    return m


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(size_gib: float, scratch: Path, say=print) -> dict:
    rows = round(size_gib * 2**30 / (4 * COLUMNS))
    res = {"size_gib": size_gib, "shape": [rows, COLUMNS]}
    gen_wf, disk_wf = scratch / "generate.yaml", scratch / "from_disk.yaml"
    gen_wf.write_text(GENERATE.format(rows=rows, cols=COLUMNS))
    say(f"1/3 generate {size_gib:g} GiB -> zarr")
    res["generate"] = run_workflow(gen_wf, scratch / "gen", say=say)
    store = scratch / "gen" / "signal.zarr"
    res["store_bytes"] = du(store)
    disk_wf.write_text(FROM_DISK.format(store=store))
    say("2/3 spectrum from disk")
    res["from_disk"] = run_workflow(disk_wf, scratch / "disk", say=say)
    shutil.rmtree(store)  # free the disk before the reference run
    say("3/3 spectrum without disk (reference)")
    res["no_disk"] = run_workflow(ROOT / WORKFLOW, scratch / "nodisk",
                                  ["--set", f"stages.signal.shape=[{rows},{COLUMNS}]"], say)
    a = np.load(scratch / "disk" / "mean_power.npy")
    b = np.load(scratch / "nodisk" / "mean_power.npy")
    res["agree"] = bool(a.shape == b.shape and np.allclose(a, b, rtol=RTOL))
    return res


def render(res: dict, info: dict, loads: tuple[str, str], cmd: str) -> str:
    size = res["size_gib"]
    mem = info["memory_bytes"] / 2**30
    lines = [MARKS[0], "## Larger than memory: spectrum streamed from and to disk", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `{cmd}`.", "",
             f"- Machine: {info['cores']} cores, {mem:.1f} GiB memory, {info['cpu']}; no GPU",
             f"- Pipeline: {info['source']}",
             f"- Load average before / after: {loads[0]} / {loads[1]} (shared host)",
             f"- Input: {res['shape'][0]} x {res['shape'][1]} float32 = {size:g} GiB, "
             f"{size / mem:.2f}x the host's memory; the zarr store on disk: "
             f"{res['store_bytes'] / 2**30:.1f} GiB (zarr's default zstd codec)", "",
             "Three whole `python -m pipeline run` processes on a LocalCluster of one "
             "single-threaded worker per core (workflows written by "
             "`benchmarks/beyond_memory.py`). Peak host memory is report.json's largest "
             "sampled memory of the workers, summed over workers, over the run.", "",
             "| run | what | process s | compute s | compute s per GiB | peak host memory GiB |",
             "|---|---|---:|---:|---:|---:|"]
    what = {"generate": "random -> write signal.zarr",
            "from_disk": "read signal.zarr -> rfft -> abs^2 -> mean -> write",
            "no_disk": "random -> rfft -> abs^2 -> mean -> write + plot (workflows/spectrum.yaml)"}
    for key in ("generate", "from_disk", "no_disk"):
        m = res[key]
        peak = f"{m['peak_host_bytes'] / 2**30:.2f}" if m["peak_host_bytes"] else "n/a"
        lines.append(f"| {key.replace('_', ' ')} | {what[key]} | {m['process_s']:.1f} | "
                     f"{m['runner_s']:.1f} | {m['runner_s'] / size:.2f} | {peak} |")
    lines += ["", f"The spectrum read back from disk equals the one computed without disk "
              f"(np.allclose, rtol {RTOL:g}): **{'yes' if res['agree'] else 'NO'}**.",
              MARKS[1]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-gib", type=float, default=32, help="input GiB (32)")
    p.add_argument("--scratch", type=Path,
                   help="folder for the zarr store and run folders (a temporary one)")
    p.add_argument("--no-doc", action="store_true", help="print only")
    args = p.parse_args(argv)
    info = machine()
    info["source"] = source_state()
    before = loadavg()
    tmp = None
    if args.scratch is None:
        tmp = tempfile.TemporaryDirectory(prefix="beyond-memory-")
        args.scratch = Path(tmp.name)
    args.scratch.mkdir(parents=True, exist_ok=True)
    try:
        res = measure(args.size_gib, args.scratch)
    finally:
        if tmp is not None:
            tmp.cleanup()
    cmd = f"python benchmarks/beyond_memory.py --size-gib {args.size_gib:g}"
    section = render(res, info, (before, loadavg()), cmd)
    print(section)
    if not args.no_doc:
        write_section(MARKS, section, DOC)
    return 0 if res["agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
