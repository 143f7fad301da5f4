"""The benchmark workloads: each one as a pipeline workflow, as hand-written Dask, and as
single-process NumPy / pandas (CPU) or CuPy / cuDF (GPU, untested here).

A workload is sized by its input in MiB. ``stages`` is the workflow's stage list: the
source stages (``random`` / ``random_table``) make the input, and ``result`` names the
stage whose value is timed. The source stages' values are persisted on the cluster
before anything is timed, and every side starts from those same persisted collections:

- pipeline: ``runner.build`` on the workflow with each source stage's op replaced by one
  that returns the persisted collection, then the ``result`` stage's value persisted
  with Dask's low-level fusion as ``pipeline run`` has it by default (on);
- hand-written: ``hand(inputs)`` builds the same result with dask.array / dask.dataframe
  on the persisted inputs, persisted with Dask's default config;
- single process: ``local(inputs)`` on the inputs gathered into this process as NumPy
  arrays / pandas frames (CuPy / cuDF on the GPU).

Results stay where they are made (on the workers, or in this process); nothing is
gathered or written inside the timed region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

MiB = 2**20
ROW_BYTES = 32  # a table row: int64 key + three float64 columns
_B = [1, 4, 6, 4, 1]
KERNEL = [[a * b / 256 for b in _B] for a in _B]  # 5x5 binomial blur, weights sum to 1
EXPR = "sqrt(abs(x)) * exp(0 - abs(x)) + sin(x) * cos(x)"
# a polynomial-like arithmetic expression of 13 operators (the whole-process form is
# benchmarks/arithmetic.yaml against benchmarks/handwritten_arithmetic.py)
ARITH = "((((0.5*x - 1.5)*x + 2.0)*x - 0.25)*x + 3.0)*x - 0.75*x*x + 1.0"


@dataclass(frozen=True)
class Workload:
    name: str
    what: str
    stages: Callable[[float], list[dict]]  # size MiB -> workflow stages
    result: str
    hand: Callable[[dict], object]  # persisted dask inputs -> dask collection
    local: Callable[[dict, object], object]  # (in-process inputs, xp module) -> result


def _rows(size: float, cols: int, itemsize: int = 4) -> int:
    return max(1, round(size * MiB / (itemsize * cols)))


def _side(size: float) -> int:
    return max(8, int(math.sqrt(size * MiB / 4)))


def _random(sid: str, shape, seed: int = 0) -> dict:
    return {"id": sid, "op": "random", "shape": list(shape), "chunks": "auto",
            "dtype": "float32", "seed": seed}


def _table(sid: str, rows: int, keys: int, cols: list[str], seed: int) -> dict:
    parts = max(1, math.ceil(rows * ROW_BYTES / (128 * MiB)))
    columns = {"key": {"keys": keys}}
    columns.update({c: {"distribution": "normal"} for c in cols})
    return {"id": sid, "op": "random_table", "rows": rows, "partitions": parts,
            "seed": seed, "columns": columns}


def _fft_local(i, xp):
    return xp.fft.fft(i["x"], axis=1)


def _conv_hand(i):
    import dask.array as da
    import numpy as np
    import scipy.signal

    k = np.asarray(KERNEL)  # float64, as scipy (and the pipeline) read a list kernel
    return da.map_overlap(lambda b: scipy.signal.convolve(b, k, mode="same"), i["x"],
                          depth=2, boundary=0, dtype=np.float64)


def _conv_local(i, xp):
    k = xp.asarray(KERNEL)  # float64, as scipy (and the pipeline) read a list kernel
    if xp.__name__ == "cupy":  # untested: GPU branch
        import cupyx.scipy.signal as sig
    else:
        import scipy.signal as sig
    return sig.convolve(i["x"], k, mode="same")


def _elementwise(x, xp):
    return xp.sqrt(abs(x)) * xp.exp(0 - abs(x)) + xp.sin(x) * xp.cos(x)


def arithmetic(x):
    """:data:`ARITH` as anyone would write it with array operators (NumPy, CuPy, Dask)."""
    return ((((0.5 * x - 1.5) * x + 2.0) * x - 0.25) * x + 3.0) * x - 0.75 * x * x + 1.0


AGG = {"a": ["mean", "sum"], "b": ["max"], "c": ["std"]}


def _groupby(df):
    return df.groupby("key").agg(AGG)


def _join_stages(size):
    rows = _rows(size, ROW_BYTES, 1)
    small = max(1, rows // 8)
    return [_table("left", rows, small, ["a", "b", "c"], 0),
            _table("right", small, small, ["d"], 1),
            {"id": "joined", "op": "join", "inputs": ["left", "right"], "on": "key",
             "how": "inner"}]


def _merge(i, _xp=None):
    return i["left"].merge(i["right"], on="key", how="inner")


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("fft", "complex FFT along axis 1 of an (R, 4096) float32 array",
             lambda s: [_random("x", (_rows(s, 4096), 4096)),
                        {"id": "y", "op": "fft", "input": "x", "axis": 1}],
             "y", lambda i: __import__("dask.array").array.fft.fft(
                 i["x"].rechunk({1: -1}), axis=1), _fft_local),
    Workload("matmul", "(R, 512) @ (512, 512), float32",
             lambda s: [_random("a", (_rows(s, 512), 512)), _random("b", (512, 512), 1),
                        {"id": "c", "op": "matmul", "inputs": ["a", "b"]}],
             "c", lambda i: i["a"] @ i["b"], lambda i, xp: i["a"] @ i["b"]),
    Workload("transpose_sum", "(x + x.T).sum() of an (n, n) float32 array",
             lambda s: [_random("x", (_side(s), _side(s))),
                        {"id": "xt", "op": "transpose", "input": "x"},
                        {"id": "s", "op": "elementwise", "inputs": {"a": "x", "b": "xt"},
                         "expr": "a + b"},
                        {"id": "total", "op": "reduce", "input": "s", "how": "sum",
                         "axis": None}],
             "total", lambda i: (i["x"] + i["x"].T).sum(),
             lambda i, xp: (i["x"] + i["x"].T).sum()),
    Workload("elementwise", f"`{EXPR}` over an (R, 4096) float32 array",
             lambda s: [_random("x", (_rows(s, 4096), 4096)),
                        {"id": "y", "op": "elementwise", "inputs": {"x": "x"},
                         "expr": EXPR}],
             "y", lambda i: _elementwise(i["x"], __import__("dask.array").array),
             lambda i, xp: _elementwise(i["x"], xp)),
    Workload("arithmetic", f"`{ARITH}` over an (R, 4096) float32 array, then its sum",
             lambda s: [_random("x", (_rows(s, 4096), 4096)),
                        {"id": "y", "op": "elementwise", "inputs": {"x": "x"},
                         "expr": ARITH},
                        {"id": "total", "op": "reduce", "input": "y", "how": "sum",
                         "axis": None}],
             "total", lambda i: arithmetic(i["x"]).sum(),
             lambda i, xp: arithmetic(i["x"]).sum()),
    Workload("reduction", "std over axis 0 of an (R, 4096) float32 array",
             lambda s: [_random("x", (_rows(s, 4096), 4096)),
                        {"id": "y", "op": "reduce", "input": "x", "how": "std", "axis": 0}],
             "y", lambda i: i["x"].std(axis=0), lambda i, xp: i["x"].std(axis=0)),
    Workload("groupby", "groupby 1000 int keys, mean+sum / max / std of 3 float64 columns",
             lambda s: [_table("t", _rows(s, ROW_BYTES, 1), 1000, ["a", "b", "c"], 0),
                        {"id": "g", "op": "groupby", "input": "t", "by": "key",
                         "agg": AGG}],
             "g", lambda i: _groupby(i["t"]), lambda i, xp: _groupby(i["t"])),
    Workload("join", "inner join of R rows with R/8 rows on an int key (about one match "
             "per row)", _join_stages, "joined", _merge, _merge),
    Workload("convolve", "5x5 kernel (a list: float64), mode same, over an (n, n) float32 array; "
             "float64 result",
             lambda s: [_random("x", (_side(s), _side(s))),
                        {"id": "y", "op": "convolve", "input": "x", "kernel": KERNEL,
                         "mode": "same"}],
             "y", _conv_hand, _conv_local),
]}
