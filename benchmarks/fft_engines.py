"""numpy.fft against scipy.fft on one chunk, one thread: why the CPU backend's FFT ops
call scipy.fft (``pipeline.backends.Backend.fft``).

    python benchmarks/fft_engines.py                  # 32 MiB chunks, writes the docs section
    python benchmarks/fft_engines.py --no-doc         # print only

For each input dtype and transform, the best of ``--repeats`` calls on one chunk of
``--chunk-mib`` (rows of 4096 points, transformed along the last axis; fft2 over both),
each library's result checked against the other's. Written into docs/benchmarks.md
(section ``bench:fft-engines``).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy
import scipy.fft

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import DOC, loadavg, machine, source_state, write_section  # noqa: E402

MARKS = ("<!-- bench:fft-engines:start -->", "<!-- bench:fft-engines:end -->")
CASES = [("float32", "rfft"), ("float32", "fft"), ("float32", "fft2"),
         ("float64", "rfft"), ("float64", "fft"), ("float64", "fft2"),
         ("complex64", "fft"), ("complex64", "ifft"), ("complex64", "fft2"),
         ("complex128", "fft"), ("complex128", "ifft")]


def best(fn, x, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(chunk_mib: float, repeats: int) -> list[tuple]:
    rng = np.random.default_rng(0)
    rows = []
    for dtype, kind in CASES:
        dt = np.dtype(dtype)
        n = max(int(chunk_mib * 2**20 / dt.itemsize / 4096), 1)
        x = rng.standard_normal((n, 4096)).astype(dt)
        if dt.kind == "c":
            x += 1j * rng.standard_normal((n, 4096)).astype(dt)
        ours, theirs = getattr(scipy.fft, kind), getattr(np.fft, kind)
        a, b = ours(x), theirs(x)
        tol = 1e-3 if dt in (np.float32, np.complex64) else 1e-9
        same = a.dtype == b.dtype and np.allclose(a, b, rtol=tol, atol=tol * 4096)
        rows.append((dtype, kind, best(theirs, x, repeats), best(ours, x, repeats), same))
    return rows


def section(rows, chunk_mib: float, repeats: int) -> str:
    start, end = MARKS
    m = machine()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [start, "## FFT engines on the CPU: numpy.fft vs scipy.fft", "",
             f"`python benchmarks/fft_engines.py --chunk-mib {chunk_mib:g} --repeats "
             f"{repeats}`, {when}, {source_state()}; {m['cores']} cores ({m['cpu']}); numpy "
             f"{np.__version__}, scipy {scipy.__version__}; load average {loadavg()}. One "
             f"chunk of {chunk_mib:g} MiB (rows of 4096 points), one thread, best of "
             f"{repeats}; the CPU backend runs scipy.fft.", "",
             "| input | transform | numpy.fft s | scipy.fft s | scipy / numpy | same result |",
             "|---|---|---:|---:|---:|---|"]
    for dtype, kind, t_np, t_sp, same in rows:
        lines.append(f"| {dtype} | {kind} | {t_np:.3f} | {t_sp:.3f} | {t_sp / t_np:.2f} | "
                     f"{'yes' if same else 'NO'} |")
    lines.append(end)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunk-mib", type=float, default=32.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-doc", action="store_true", help="print only")
    args = p.parse_args(argv)
    if not args.chunk_mib > 0 or args.repeats < 1:
        p.error("--chunk-mib must be > 0 and --repeats >= 1")
    text = section(measure(args.chunk_mib, args.repeats), args.chunk_mib, args.repeats)
    print(text)
    if not args.no_doc:
        write_section(MARKS, text, DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
