"""Does a GPU read overlap its host->device copies with compute? Measured, not claimed.

    python benchmarks/read_overlap.py --size-gib 4            # on a GPU host
    python benchmarks/read_overlap.py --size-gib 0.25 --backend cpu --no-doc   # smoke test

Writes a float32 (R, 4096) .npy file, then runs ``read -> rfft -> |z|^2 -> mean -> write``
as whole ``python -m pipeline run`` processes with 1 and with 2 threads per worker
(alternating, ``--repeats`` each). With one thread a worker reads a chunk, copies it,
then computes on it, then reads the next: read, copy and compute add up. With two
threads, one thread's file read into its own pinned buffer (pipeline/gpu/pinned.py) runs
while the other's kernels do; the copies and kernels themselves stay ordered on the
worker's one CUDA stream (which keeps the results correct). From each run's report.json:

- ``copy s``: the read stage's host->device seconds (summed over chunks),
- ``stages s``: the stages' compute seconds summed (copies included),
- ``wall s``: the runner's wall time for build + compute + outputs.

Overlap shows as the 2-thread wall time falling below the 1-thread one by up to the copy
time. The section between this script's markers in docs/gpu.md is replaced.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from beyond_memory import FROM_DISK, run_workflow  # noqa: E402
from compare import COLUMNS, ROOT, loadavg, machine, source_state, write_section  # noqa: E402

if str(ROOT) not in sys.path:  # the pipeline, when it is not installed
    sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "gpu.md"
MARKS = ("<!-- bench:read-overlap:start -->", "<!-- bench:read-overlap:end -->")


def write_input(path: Path, rows: int) -> None:
    """A float32 (rows, COLUMNS) .npy file of random data, written block by block."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, COLUMNS))
    rng = np.random.default_rng(0)
    step = max(1, 2**26 // COLUMNS)  # 256 MiB at a time
    for start in range(0, rows, step):
        block = out[start:start + step]
        block[...] = rng.standard_normal(block.shape, dtype=np.float32)
    out.flush()
    del out


def one_run(workflow: Path, out: Path, backend: str, threads: int) -> dict:
    m = run_workflow(workflow, out, ["--backend", backend,
                                     "--set", f"cluster.threads_per_worker={threads}"])
    stages = {s["id"]: s for s in m["stages"]}
    m.update(copy_s=stages["signal"].get("h2d_s") or 0.0,
             h2d_bytes=stages["signal"].get("h2d_bytes") or 0,
             stages_s=sum(s.get("compute_s") or 0.0 for s in stages.values()))
    return m


def measure(size_gib: float, backend: str, repeats: int, scratch: Path) -> list[dict]:
    rows = round(size_gib * 2**30 / (4 * COLUMNS))
    data = scratch / "signal.npy"
    write_input(data, rows)
    workflow = scratch / "from_disk.yaml"
    workflow.write_text(FROM_DISK.format(store=data))  # the same spectrum, from a .npy
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for i in range(repeats):
        for threads in ((1, 2) if i % 2 == 0 else (2, 1)):
            out = scratch / f"run-{threads}-{i}"
            runs[threads].append(one_run(workflow, out, backend, threads))
    return [{"threads": t, "size_gib": size_gib,
             **{k: statistics.median(r[k] for r in rs)
                for k in ("runner_s", "copy_s", "stages_s", "h2d_bytes")},
             "walls": [r["runner_s"] for r in rs]} for t, rs in runs.items()]


def render(rows: list[dict], info: dict, device: str, loads, cmd: str) -> str:
    one = next(r for r in rows if r["threads"] == 1)
    lines = [MARKS[0], "## Read/compute overlap, measured", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `{cmd}`.", "",
             f"- Device: {device}", f"- Host: {info['cores']} cores, "
             f"{info['memory_bytes'] / 2**30:.1f} GiB", f"- Pipeline: {info['source']}",
             f"- Load average before / after: {loads[0]} / {loads[1]}", "",
             "| threads per worker | wall s (median) | copy s | stages s | H2D bytes | runs |",
             "|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['runner_s']:.2f} | {r['copy_s']:.2f} | "
                     f"{r['stages_s']:.2f} | {r['h2d_bytes']:,} | "
                     + ", ".join(f"{w:.2f}" for w in r["walls"]) + " |")
    two = next(r for r in rows if r["threads"] == 2)
    saved = one["runner_s"] - two["runner_s"]
    lines += ["", f"Two threads against one: {saved:+.2f} s of wall time "
              f"({saved / one['runner_s'] * 100:+.0f}%); the copies took {one['copy_s']:.2f} s "
              "with one thread, the most that overlap could hide.", MARKS[1]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-gib", type=float, default=4)
    p.add_argument("--backend", choices=("gpu", "cpu"), default="gpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-doc", action="store_true")
    args = p.parse_args(argv)
    from pipeline import backends

    det = backends.detect()
    device = ", ".join(g.name for g in det.gpus) or "none (cpu backend: nothing is copied)"
    info = machine()
    info["source"] = source_state()
    before = loadavg()
    with tempfile.TemporaryDirectory(prefix="read-overlap-") as tmp:
        rows = measure(args.size_gib, args.backend, args.repeats, Path(tmp))
    cmd = (f"python benchmarks/read_overlap.py --size-gib {args.size_gib:g} "
           f"--backend {args.backend} --repeats {args.repeats}")
    section = render(rows, info, device, (before, loadavg()), cmd)
    print(section)
    if not args.no_doc:
        write_section(MARKS, section, DOC)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
