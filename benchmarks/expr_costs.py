"""Measure what each operation of the expression language costs on each CPU engine, and
write the table the pipeline decides from (``pipeline/kernels/costs.py``).

    python benchmarks/expr_costs.py                # 64 MiB chunks, writes costs.py + docs
    python benchmarks/expr_costs.py --no-write     # print only

One thread, one chunk of ``--chunk-mib`` per input (two inputs, standard normal), for
float32 and float64. For each operation kind (``x + y``, ``sqrt(x)``...), the best of
``--repeats`` runs of:

- numpy: the interpreted path on the whole chunk (one call, one temporary per operation);
- blocked: the same calls on cache-sized slices (``pipeline.kernels.blocked``);
- numba: one compiled loop (``pipeline.kernels.numba_cpu``).

An operation's cost on blocked / numba is its time minus the time of the bare pass
(``x`` copied through the same engine), which is stored as ``pass``. numba's start-up is
measured in fresh processes: ``import numba`` plus the first call of a kernel already in
numba's on-disk cache (``numba_start_s``), and the first call of one that is not
(``numba_compile_s``).

Then whole expressions (the issue's two, the arithmetic benchmark's polynomial, the
spectrum's power) are timed on each engine beside what the table predicts, and written
into docs/benchmarks.md (section ``bench:expr-engines``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import expr as expr_lang  # noqa: E402
from pipeline.kernels import blocked, numba_cpu  # noqa: E402

COSTS = ROOT / "pipeline" / "kernels" / "costs.py"
DOC = ROOT / "docs" / "benchmarks.md"
MARKS = ("<!-- bench:expr-engines:start -->", "<!-- bench:expr-engines:end -->")
# (expression, dtype of x and y)
EXAMPLES = [
    ("2*x + 3*y*y - 1.5*x*y + 0.5", "float32"),
    ("sqrt(abs(x)) * exp(0 - abs(x)) + sin(x) * cos(x)", "float32"),
    ("((((0.5*x - 1.5)*x + 2.0)*x - 0.25)*x + 3.0)*x - 0.75*x*x + 1.0", "float32"),
    ("real(x)**2 + imag(x)**2", "complex64"),
    ("2*x + 3*y*y - 1.5*x*y + 0.5", "float64"),
]
# operation kind -> an expression made of the bare pass plus that one operation
KINDS = {
    "+": "x + y", "-": "x - y", "*": "x * y", "/": "x / y", "//": "x // y", "%": "x % y",
    "**": "x ** y", "compare": "where(x < y, x, y)", "neg": "-x",
    "abs": "abs(x)", "sqrt": "sqrt(x)", "exp": "exp(x)", "log": "log(x)",
    "log1p": "log1p(x)", "sin": "sin(x)", "cos": "cos(x)", "tan": "tan(x)",
    "arctan2": "arctan2(x, y)", "maximum": "maximum(x, y)", "minimum": "minimum(x, y)",
    "clip": "clip(x, -1, 1)", "floor": "floor(x)", "ceil": "ceil(x)", "round": "round(x)",
    "isnan": "where(isnan(x), y, x)", "isfinite": "where(isfinite(x), x, y)",
    # on a real input: real() is the array itself, imag() zeros, conj() a copy
    "real": "real(x) * y", "imag": "imag(x) + y", "conj": "conj(x) * y", "angle": "angle(x)",
}
# measured with one other operation (numba compiles float results only): subtract it
WITH = {"real": "*", "imag": "+", "conj": "*"}
# numba compiles float results only, so a comparison is measured inside the where that
# uses it, and "where" itself counts 0: the compare's figure holds both


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(dtype: str, chunk_mib: float, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    n = int(chunk_mib * 2**20 / np.dtype(dtype).itemsize)
    x = rng.standard_normal(n).astype(dtype).reshape(-1, 4096)
    y = rng.standard_normal(n).astype(dtype).reshape(-1, 4096)
    per = 1e9 / x.size
    out: dict = {"numpy": {}, "blocked": {}, "numba": {}}

    def run(text: str) -> dict:
        parsed = expr_lang.parse(text, ["x", "y"])
        values = {"x": x, "y": y}
        with np.errstate(all="ignore"):
            dt = parsed(blocked.NUMPY_FUNCTIONS, values).dtype
            t = {"numpy": best(lambda: parsed(blocked.NUMPY_FUNCTIONS, values), repeats),
                 "blocked": best(lambda: blocked.evaluate(parsed, values, {}, dt), repeats)}
        used = {k: v for k, v in values.items() if k in parsed.names}
        try:
            kernel = numba_cpu.compile_kernel(numba_cpu.source(
                parsed, {k: dtype for k in used}, {}))
            numba_cpu.evaluate(kernel, list(used.values()), dt)  # compile
            t["numba"] = best(lambda: numba_cpu.evaluate(kernel, list(used.values()), dt),
                              repeats)
        except (numba_cpu.Ineligible, ImportError):
            t["numba"] = None
        return {k: (v * per if v is not None else None) for k, v in t.items()}

    bare = run("x + 0")  # the pass: read, one cheap add, write
    for engine in out:
        out[engine]["pass"] = 0.0 if engine == "numpy" else round(bare[engine], 3) \
            if bare[engine] is not None else None
        out[engine]["where"] = 0.0
    for kind, text in KINDS.items():
        t = run(text)
        for engine in out:
            if t[engine] is None:
                continue
            cost = t[engine] - (out[engine]["pass"] or 0.0)
            if kind in WITH:
                cost -= out[engine].get(WITH[kind], 0.0)
            out[engine][kind] = round(max(cost, 0.0), 3)
        print(f"  {dtype:<8} {kind:<9} " + "  ".join(
            f"{e} {t[e]:6.2f}" if t[e] is not None else f"{e}    n/a" for e in out),
            flush=True)
    for engine in out:
        costs = [v for k, v in out[engine].items() if k not in ("pass", "where")
                 and v is not None]
        out[engine]["default"] = round(float(np.median(costs)), 3) if costs else 0.0
        if out[engine]["pass"] is None:
            out[engine]["pass"] = 0.0
    return out


_START = """
import time, sys
t0 = time.perf_counter()
import numpy as np
from pipeline import expr
from pipeline.kernels import numba_cpu
p = expr.parse("2*x + 3*x*x - 1.5*x + 0.5 + {salt}", ["x"])
k = numba_cpu.compile_kernel(numba_cpu.source(p, {{"x": "float32"}}, {{}}))
numba_cpu.evaluate(k, [np.ones(8, np.float32)], "float32")
print(time.perf_counter() - t0)
"""


def start_costs(repeats: int) -> tuple[float, float]:
    """(start-up with the kernel in numba's cache, start-up compiling it), seconds,
    each the median of fresh processes (the NumPy and pipeline imports subtracted)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def child(code: str, cache: str) -> float:
        out = subprocess.run([sys.executable, "-c", code], env={**env,
                             "PIPELINE_KERNEL_CACHE": cache}, capture_output=True,
                             text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    base = "import time; t0 = time.perf_counter(); import numpy; " \
        "from pipeline import expr; print(time.perf_counter() - t0)"
    with tempfile.TemporaryDirectory() as cache:
        imports = float(np.median([child(base, cache) for _ in range(repeats)]))
        compiled = [child(_START.format(salt=i), cache) for i in range(repeats)]
        cached = [child(_START.format(salt=0), cache) for _ in range(repeats)]
    return (round(float(np.median(cached)) - imports, 3),
            round(float(np.median(compiled)) - imports, 3))


def render(table: dict, start: float, compile_s: float, args) -> str:
    try:
        numba = metadata.version("numba")
    except metadata.PackageNotFoundError:
        numba = "absent"
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) \
        if Path("/proc/loadavg").exists() else "n/a"
    return f'''"""What each operation of the expression language costs per element on each CPU
engine: the measurements :mod:`pipeline.kernels.choose` decides from.

Written by ``python benchmarks/expr_costs.py --chunk-mib {args.chunk_mib:g} --repeats \\
{args.repeats}`` on {time.strftime("%Y-%m-%d %H:%M %Z")}: {os.cpu_count()} cores, {cpu},
python {platform.python_version()}, numpy {np.__version__}, numba {numba}; one thread,
load average {load} (a shared host: re-run it on yours). Nanoseconds per element of one
{args.chunk_mib:g} MiB chunk; ``pass`` is the engine's read-and-write of the chunk, an
operation's figure its time on top of that; ``default`` (the median) stands for an
operation not measured. ``numba_start_s``: a fresh process's ``import numba`` and first
call of a kernel found in numba's disk cache; ``numba_compile_s``: the same when the
kernel must be compiled.
"""

COSTS = {json.dumps({"numba_start_s": start, "numba_compile_s": compile_s,
                     "ns_per_element": table}, indent=4)}
'''


def examples(chunk_mib: float, repeats: int) -> list[dict]:
    """Each of :data:`EXAMPLES` on each engine: measured and predicted seconds per chunk."""
    from pipeline.kernels import choose

    rng = np.random.default_rng(0)
    rows = []
    for text, dtype in EXAMPLES:
        n = int(chunk_mib * 2**20 / np.dtype(dtype).itemsize)
        x, y = (rng.standard_normal(n).astype(dtype).reshape(-1, 4096) for _ in range(2))
        if np.dtype(dtype).kind == "c":
            x = x + 1j * rng.standard_normal(x.shape).astype(x.real.dtype)
        parsed = expr_lang.parse(text, ["x", "y"])
        values = {k: v for k, v in {"x": x, "y": y}.items() if k in parsed.names}
        with np.errstate(all="ignore"):
            out = parsed(blocked.NUMPY_FUNCTIONS, values).dtype
            row = {"expr": text, "dtype": dtype,
                   "numpy": best(lambda: parsed(blocked.NUMPY_FUNCTIONS, values), repeats),
                   "blocked": best(lambda: blocked.evaluate(parsed, values, {}, out),
                                   repeats)}
        try:
            kernel = numba_cpu.compile_kernel(numba_cpu.source(
                parsed, {k: v.dtype.name for k, v in values.items()}, {}))
            numba_cpu.evaluate(kernel, list(values.values()), out)
            row["numba"] = best(lambda: numba_cpu.evaluate(kernel, list(values.values()),
                                                           out), repeats)
        except (numba_cpu.Ineligible, ImportError) as e:
            row["numba"] = None
            row["numba_why"] = str(e)
        pred = choose.predict(choose.operations(parsed.tree), dtype, x.size)
        pred["numba"] -= choose.COSTS["numba_start_s"]
        row["predicted"] = pred
        rows.append(row)
        print(f"  {text[:40]:<40} {dtype:<9} numpy {row['numpy']:.4f} blocked "
              f"{row['blocked']:.4f} numba {row['numba'] or float('nan'):.4f}", flush=True)
    return rows


def render_examples(rows: list[dict], args, start: float) -> str:
    def cell(v):
        return "n/a" if v is None else f"{v:.4f}"

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) \
        if Path("/proc/loadavg").exists() else "n/a"
    lines = [MARKS[0], "## Element-wise engines: one chunk, one thread", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `python "
             f"benchmarks/expr_costs.py --chunk-mib {args.chunk_mib:g} --repeats "
             f"{args.repeats}` ({os.cpu_count()} cores, load average after: {load}).", "",
             f"Seconds for one {args.chunk_mib:g} MiB chunk per input (best of "
             f"{args.repeats}); in brackets what `pipeline/kernels/costs.py` predicts (numba "
             f"without its start-up of {start:.2f} s per worker process). numpy is the "
             "interpreted path (one NumPy call per operation); blocked the same calls on "
             "64 KiB blocks; numba one compiled loop.", "",
             "| expression | dtype | numpy s | blocked s | numba s | blocked / numpy | "
             "numba / numpy |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = r["predicted"]
        nb = r["numba"]
        lines.append(
            f"| `{r['expr']}` | {r['dtype']} | {cell(r['numpy'])} ({p['numpy'] / 1:.3f}) | "
            f"{cell(r['blocked'])} ({p['blocked']:.3f}) | {cell(nb)}"
            + (f" ({p['numba']:.3f})" if nb is not None else "") + " | "
            f"{r['blocked'] / r['numpy']:.2f} | "
            + (f"{nb / r['numpy']:.2f}" if nb is not None else "n/a") + " |")
    lines.append(MARKS[1])
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunk-mib", type=float, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    table = {}
    for dtype in ("float32", "float64"):
        table[dtype] = measure(dtype, args.chunk_mib, args.repeats)
    start, compile_s = start_costs(max(3, args.repeats // 2))
    print(f"numba start-up {start:.3f} s (cached kernel), {compile_s:.3f} s (compiling)")
    text = render(table, start, compile_s, args)
    if args.no_write:
        print(text)
    else:
        tmp = COSTS.with_name(f".{COSTS.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, COSTS)
        print(f"written: {COSTS}")
        importlib.reload(importlib.import_module("pipeline.kernels.costs"))
        importlib.reload(importlib.import_module("pipeline.kernels.choose"))
    section = render_examples(examples(args.chunk_mib, args.repeats), args, start)
    print(section)
    if not args.no_write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from compare import write_section

        write_section(MARKS, section, DOC)
        print(f"written: {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
