"""This host's CPU rates: seconds per unit of work for each kernel the cost model uses.

``python -m pipeline advise --calibrate`` starts a LocalCluster as ``run`` does (one
single-threaded worker per core, BLAS limited to one thread, as Dask's nanny sets it) and
times every kernel on every worker at once, so the rates include what running side by
side costs (shared memory bandwidth and caches). Each kernel is timed in CPU seconds of
its thread (``time.thread_time``), best of three, on data larger than the caches, so
other programs competing for the cores inflate the rates as little as possible; the load
average is recorded with them. The rates are saved as JSON in the user's cache folder
(``$XDG_CACHE_HOME/pipeline/advise-rates.json``); without that file ``advise`` uses
the rates in :data:`BUILTIN`, measured the same way on the development host.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline import backends
from pipeline.errors import InputError

N = 1 << 22  # elements per kernel array: 32 MiB of float64, beyond the caches
ROWS = 1 << 20  # rows per table kernel
REPEATS = 3
# kernel -> what one unit is
UNITS = {
    "rng_normal": "normal sample",
    "rng_uniform": "uniform sample",
    "rng_integers": "integer sample",
    "arith": "float64 element of one + - * / compare (a pass over an array)",
    "transcendental": "float64 element of one exp / log / sin / power",
    "reduce": "float64 element summed",
    "cumsum": "float64 element of a cumulative sum",
    "quantile": "float64 element of an exact quantile (a partition)",
    "histogram": "float64 element binned",
    "fft": "real float64 element x log2(transform length) of an rfft",
    "fft32": "real float32 element x log2(transform length) of an rfft",
    "gemm": "float64 flop of a matrix product (BLAS, one thread)",
    "copy": "byte copied",
    "stencil": "float64 cell x time step of the heat stencil",
    "mac": "float64 multiply-add of a direct convolution",
    "write": "byte written to a file (the page cache)",
    "frame_call": "pandas column operation on one partition (fixed cost)",
    "group_call": "pandas groupby, merge or sort of one partition (fixed cost)",
    "take": "table value copied by a row filter",
    "groupby": "row x aggregate of a pandas groupby",
    "join": "row of a pandas merge",
    "sort": "row x log2(rows) of a pandas sort",
    "parquet_read": "byte of parquet file read",
    "csv_read": "byte of csv file read",
    "parquet_write": "byte of table data written as parquet",
    "csv_write": "byte of table data written as csv",
}


@dataclass(frozen=True)
class Rates:
    """Seconds per unit of each kernel (:data:`UNITS`), and where they came from."""

    seconds: dict[str, float]
    source: str  # a sentence for advise's output: which host, when, under what load

    def __getitem__(self, kernel: str) -> float:
        return self.seconds[kernel]


# The rates advise uses on a host that has not been calibrated: measured the same way on
# the development host by benchmarks/advise_table.py (docs/advise.md says when and how).
BUILTIN = Path(__file__).with_name("builtin-rates.json")


def path() -> Path:
    """Where ``--calibrate`` saves this host's rates."""
    from pipeline.cache.store import own_dir

    return own_dir() / "advise-rates.json"


def load(file: Path | None = None) -> Rates:
    """This host's calibrated rates (``file``, or :func:`path`), else the built-in ones.

    Raises
    ------
    InputError
        The file is not a rates file (or lacks a kernel): re-calibrate.
    """
    file = file or path()
    if file.exists():
        return _read(file)
    builtin = _read(BUILTIN)
    return Rates(builtin.seconds, f"built in, {builtin.source}")


def _read(file: Path) -> Rates:
    hint = "python -m pipeline advise --calibrate writes it again"
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        seconds = {k: float(doc["seconds"][k]) for k in UNITS}
        source = str(doc["source"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"not a rates file ({type(e).__name__}: {e})", file=str(file),
                         hint=hint) from None
    if not all(0 < v < 1 for v in seconds.values()):
        raise InputError("rates out of range", file=str(file), hint=hint)
    return Rates(seconds, source)


def save(rates: Rates, file: Path | None = None) -> Path:
    from pipeline.report import write_json

    file = file or path()
    file.parent.mkdir(parents=True, exist_ok=True)
    write_json(file, {"seconds": rates.seconds, "source": rates.source, "units": UNITS})
    return file


def calibrate_here() -> Rates:
    """Start a LocalCluster as ``run`` does on this host (CPU backend, the default
    cluster settings, no dashboard) and :func:`calibrate` on it."""
    from pipeline import cluster, spec

    defaults = spec.ClusterSpec(**{**spec.CLUSTER_DEFAULTS, "dashboard_address": None})
    with cluster.connect(defaults, "cpu", dashboard_address=None) as session:
        return calibrate(session.client)


def calibrate(client) -> Rates:
    """Time every kernel on every worker of ``client``'s cluster at once; the median
    over workers of each kernel's best-of-three."""
    load_before = os.getloadavg()
    per_worker = client.run(run_kernels)
    load_after = os.getloadavg()
    seconds = {}
    for kernel in UNITS:
        values = sorted(w[kernel] for w in per_worker.values())
        seconds[kernel] = values[len(values) // 2]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    source = (f"calibrated {when} on {platform.node() or 'this host'} ({_cpu_model()}, "
              f"{len(per_worker)} workers at once; load average "
              f"{load_before[0]:.1f} before, {load_after[0]:.1f} after)")
    return Rates(seconds, source)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best(fn, units: float) -> float:
    """CPU seconds of this thread per unit: the best of :data:`REPEATS` calls."""
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return max(best, 1e-9) / units


def run_kernels() -> dict[str, float]:
    """Seconds per unit of each kernel, measured in this process (a worker)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.random(N), rng.random(N)
    out = {
        "rng_normal": _best(lambda: rng.standard_normal(N), N),
        "rng_uniform": _best(lambda: rng.random(N), N),
        "rng_integers": _best(lambda: rng.integers(0, 1000, N), N),
        "arith": _best(lambda: np.add(a, b), N),
        "transcendental": _best(lambda: np.exp(a), N),
        "reduce": _best(lambda: a.sum(), N),
        "cumsum": _best(lambda: np.cumsum(a.reshape(-1, 256), axis=1), N),
        "quantile": _best(lambda: np.quantile(a, [0.95, 0.99]), N),
        "histogram": _best(lambda: np.histogram(a, bins=100), N),
        "copy": _best(lambda: a.copy(), a.nbytes),
    }
    rows = a.reshape(-1, 4096)
    fft = backends.CPU.fft  # what the CPU backend's FFT ops call (scipy.fft)
    out["fft"] = _best(lambda: fft.rfft(rows, axis=1), rows.size * 12)
    rows32 = rows.astype(np.float32)
    out["fft32"] = _best(lambda: fft.rfft(rows32, axis=1), rows.size * 12)
    tall, small = a.reshape(-1, 128), b[:128 * 128].reshape(128, 128)
    out["gemm"] = _best(lambda: tall @ small, 2.0 * tall.shape[0] * 128 * 128)
    out.update(_array_op_kernels(a))
    out.update(_table_kernels(rng))
    return out


def _array_op_kernels(a) -> dict[str, float]:
    """The ops' own block functions, where an op has one that is not a NumPy call."""
    import numpy as np

    from pipeline.ops.convolve import _shift_add
    from pipeline.ops.stencil import _heat_steps

    side = min(1024, math.isqrt(a.size))
    grid = a[:side * side].reshape(side, side)
    steps = 4
    kernel = np.full((3, 3), 1 / 9)
    out = {"stencil": _best(lambda: _heat_steps(grid, 0.2, steps), grid.size * steps),
           "mac": _best(lambda: _shift_add(grid, kernel), (side - 2) ** 2 * 9)}
    with tempfile.TemporaryDirectory(prefix="pipeline-calibrate-") as tmp:
        target = Path(tmp) / "w.npy"

        def write():
            mapped = np.lib.format.open_memmap(target, mode="w+", dtype=a.dtype,
                                               shape=a.shape)
            mapped[:] = a
            mapped.flush()
            del mapped

        out["write"] = _best(write, a.nbytes)
    return out


def _table_kernels(rng) -> dict[str, float]:
    import pandas as pd

    df = pd.DataFrame({"k1": rng.integers(0, 20, ROWS), "k2": rng.integers(0, 300, ROWS),
                       "x": rng.standard_normal(ROWS), "y": rng.random(ROWS),
                       "z": rng.random(ROWS), "w": rng.random(ROWS)})
    tiny = df.iloc[:100]
    small = pd.DataFrame({"k1": range(20), "name": [f"n{i}" for i in range(20)]})
    mask = df["y"].to_numpy() > 0.1
    aggs = {"x": ["mean", "std", "count"], "y": ["mean", "max"], "z": ["mean"]}
    out = {
        "frame_call": _best(lambda: tiny[tiny["x"] + tiny["y"] > 0], 1),
        "group_call": _best(lambda: tiny.groupby(["k1", "k2"]).agg(aggs), 1),
        "take": _best(lambda: df[mask], mask.sum() * df.shape[1]),
        "groupby": _best(lambda: df.groupby(["k1", "k2"]).agg(aggs), ROWS * 6),
        "join": _best(lambda: df.merge(small, on="k1", how="left"), ROWS),
        "sort": _best(lambda: df.sort_values("x"), ROWS * 20),
    }
    with tempfile.TemporaryDirectory(prefix="pipeline-calibrate-") as tmp:
        parquet, csv = Path(tmp) / "t.parquet", Path(tmp) / "t.csv"
        out["parquet_write"] = _best(lambda: df.to_parquet(parquet), df.size * 8)
        part = df.iloc[:ROWS // 8]  # csv is slow to write: a smaller sample
        out["csv_write"] = _best(lambda: part.to_csv(csv, index=False), part.size * 8)
        out["parquet_read"] = _best(lambda: pd.read_parquet(parquet), parquet.stat().st_size)
        out["csv_read"] = _best(lambda: pd.read_csv(csv), csv.stat().st_size)
    return out
