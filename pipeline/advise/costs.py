"""The cost model: what each stage does, in units of the calibrated kernels.

A stage's CPU time is the sum over the kernels it runs of (units x seconds per unit,
:mod:`pipeline.advise.calibrate`): e.g. an ``rfft`` of a 65536 x 4096 array is
65536 * 4096 * log2(4096) units of ``fft``; 1000 ``stencil`` steps over a 4096^2 grid in
1024^2 chunks with a halo of 20 are 4096^2 * 1000 * 1.06 units of ``stencil`` (the halo's
extra cells included). Elementwise expressions count one pass per operation that touches
an array (operations on ``params`` alone are free). Tables count rows: known ones from
the source (generated, or a parquet file's metadata), otherwise the input's (a filter is
assumed to keep every row). Ops without a model are priced as one copy of their output,
and the stage says so.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import dask.array as da

# expression functions that run a transcendental kernel; real / imag are views (free)
TRANSCENDENTAL = {"exp", "log", "log1p", "sin", "cos", "tan", "arctan2", "angle"}
FREE = {"real", "imag"}
CHEAP_POWERS = (-1, 0, 0.5, 1, 2)  # NumPy's fast paths: reciprocal, sqrt, square...
GROUPS_GUESS = 1000  # result rows of a groupby, when nothing tells
AUTO_DIRECT_MAX = 64  # kernel elements up to which convolve's method auto is direct


@dataclass
class Work:
    """A stage's kernel units, textbook flops (for the GPU roofline) and assumptions."""

    units: dict[str, float] = field(default_factory=dict)
    flops: float = 0.0
    notes: list[str] = field(default_factory=list)
    rows: float | None = None  # a table stage's output rows (estimated)

    def add(self, kernel: str, units: float) -> None:
        if units > 0:
            self.units[kernel] = self.units.get(kernel, 0.0) + float(units)

    def seconds(self, rates) -> float:
        return sum(rates[k] * u for k, u in self.units.items())


@dataclass
class View:
    """What a cost function sees of a stage: op parameters, built input and output
    collections, upstream row estimates, and the workflow's folder (read paths)."""

    op: str
    params: dict
    value: Any
    inputs: list
    input_names: list
    input_rows: list
    base_dir: Path


COSTS: dict[str, Callable[[View, Work], None]] = {}


def cost(*names: str):
    def register(fn):
        for name in names:
            COSTS[name] = fn
        return fn
    return register


def work(view: View) -> Work:
    """The :class:`Work` of one stage."""
    w = Work()
    fn = COSTS.get(view.op)
    if fn is None:
        w.add("copy", _nbytes(view.value))
        w.notes.append(f"no cost model for op '{view.op}': priced as a copy of its output")
    else:
        fn(view, w)
    if w.rows is None and _is_frame(view.value):
        w.rows = view.input_rows[0] if view.input_rows else None
    return w


# ----------------------------------------------------------------------------- helpers
def _is_frame(v) -> bool:
    return hasattr(v, "columns") and not isinstance(v, da.Array)


def _size(x) -> float:
    if isinstance(x, da.Array):
        return 0.0 if any(math.isnan(s) for s in x.shape) else float(x.size)
    if isinstance(x, dict):
        return sum(_size(v) for v in x.values())
    return 0.0


def _nbytes(x) -> float:
    if isinstance(x, da.Array):
        return _size(x) * x.dtype.itemsize
    if isinstance(x, dict):
        return sum(_nbytes(v) for v in x.values())
    return 0.0


def _prec(x) -> float:
    """Cost relative to float64: by the bytes per element (float32: 0.5, complex128: 2)."""
    return x.dtype.itemsize / 8 if isinstance(x, da.Array) else 1.0


def _real_prec(x) -> float:
    """Cost of one real component relative to float64 (float32, complex64: 0.5)."""
    return _prec(x) / (2 if x.dtype.kind == "c" else 1)


def _fft_units(n_elements: float, length: float) -> float:
    return n_elements * math.log2(length) if length > 1 else 0.0


def expr_units(text: str, sizes: dict[str, float]) -> tuple[float, float]:
    """``(arithmetic, transcendental)`` element-passes of an expression: each operation
    that touches an array costs one pass over the largest array it involves (its output,
    broadcasting aside); operations on constants and ``params`` alone cost nothing.
    ``sizes``: elements of each array name."""
    tree = ast.parse(text.strip(), mode="eval")
    arith = trans = 0.0
    for node in ast.walk(tree):
        n = max((sizes.get(x.id, 0.0) for x in ast.walk(node) if isinstance(x, ast.Name)),
                default=0.0)
        if not n:
            continue
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            cheap = isinstance(node.right, ast.Constant) and node.right.value in CHEAP_POWERS
            arith, trans = (arith + n, trans) if cheap else (arith, trans + n)
        elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
            arith += n
        elif isinstance(node, ast.Compare):
            arith += n * len(node.ops)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in TRANSCENDENTAL:
                trans += n
            elif name not in FREE:
                arith += n * (2 if name == "clip" else 1)
    return arith, trans


def _partitions(x) -> int:
    return int(getattr(x, "npartitions", 1) or 1)


# ----------------------------------------------------------------------------- arrays
@cost("random")
def _random(v: View, w: Work) -> None:
    n, p = _size(v.value), _prec(v.value)
    if v.params.get("distribution", "normal") == "normal":
        w.add("rng_normal", n)
        scaled = (v.params.get("loc") or 0.0, v.params.get("scale", 1.0) or 1.0) != (0, 1)
        w.add("arith", 2 * n * p * scaled)
    else:
        w.add("rng_uniform", n)
        w.add("arith", 5 * n * p)  # x * (high - low) + low, astype, clip
    w.flops = 20.0 * n


@cost("arange", "window", "kernel")
def _small_source(v: View, w: Work) -> None:
    w.add("arith", _size(v.value))


@cost("read")
def _read(v: View, w: Work) -> None:
    if not _is_frame(v.value):
        w.add("copy", _nbytes(v.value))  # from the page cache
        return
    files = _files(v)
    size = sum(f.stat().st_size for f in files)
    fmt = (v.params.get("format") or (files[0].suffix.lstrip(".") if files else "")).lower()
    w.add("csv_read" if fmt == "csv" else "parquet_read", size)
    w.add("frame_call", _partitions(v.value))
    from pipeline.ops.frames import known_lengths

    lengths = known_lengths(v.value)
    w.rows = float(sum(lengths)) if lengths is not None else None


def _files(v: View) -> list[Path]:
    pattern = str(v.params.get("path", ""))
    base = v.base_dir
    if any(c in pattern for c in "*?["):
        return sorted(p for p in base.glob(pattern) if p.is_file())
    target = base / pattern
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.is_file())
    return [target] if target.is_file() else []


@cost("fft", "ifft", "rfft", "irfft")
def _fft(v: View, w: Work) -> None:
    """Units are real elements x log2(length): a complex transform counts twice."""
    x = v.inputs[0]
    real = v.value if v.op == "irfft" else x  # the real side of a real transform
    length = v.params.get("n") or real.shape[v.params.get("axis", -1)]
    if v.op in ("rfft", "irfft"):
        units = _fft_units(_size(real), length)
    else:
        units = 2 * _fft_units(_size(v.value), length)
    _add_fft(w, units, v.value)
    w.flops = 2.5 * units


def _add_fft(w: Work, units: float, x) -> None:
    single = isinstance(x, da.Array) and _real_prec(x) < 1
    w.add("fft32" if single else "fft", units)


@cost("fft2", "ifft2")
def _fft2(v: View, w: Work) -> None:
    x = v.inputs[0]
    axes = v.params.get("axes") or [-2, -1]
    units = 2 * _fft_units(_size(v.value), math.prod(x.shape[a] for a in axes))
    _add_fft(w, units, v.value)
    w.flops = 2.5 * units


@cost("matmul")
def _matmul(v: View, w: Work) -> None:
    a, b = v.inputs
    out = v.value
    k = a.shape[-1]
    w.flops = 2.0 * _size(out) * k
    if a.ndim >= 2 and b.ndim >= 2 and min(k, b.shape[-1]) >= 8:
        w.add("gemm", w.flops * _prec(out))
    else:  # matrix-vector: one streaming pass over the matrix
        w.add("arith", 2 * _size(a) * _prec(a))
    w.add("arith", _size(out) * (len(a.chunks[-1]) - 1))  # summing the partial products


@cost("transpose", "pick")
def _view(v: View, w: Work) -> None:
    """NumPy views: no work of their own."""


@cost("stack", "rechunk", "segments", "to_array", "to_frame")
def _copy(v: View, w: Work) -> None:
    """One copy of the array side (a table's side has no byte count here)."""
    w.add("copy", max([_nbytes(v.value), *map(_nbytes, v.inputs)]))


@cost("elementwise")
def _elementwise(v: View, w: Work) -> None:
    sizes = {name: _size(x) for name, x in zip(v.input_names, v.inputs)}
    arith, trans = expr_units(v.params["expr"], sizes)
    p = _prec(v.value)
    w.add("arith", arith * p)
    w.add("transcendental", trans * p)
    w.flops = arith + 10 * trans


@cost("reduce")
def _reduce(v: View, w: Work) -> None:
    x = v.inputs[0]
    n, p = _size(x), _prec(x)
    if v.params.get("how") in ("std", "var", "sem"):
        w.add("reduce", 2 * n * p)  # the sum, the sum of squared deviations
        w.add("arith", 2 * n * p)  # deviation, square
    else:
        w.add("reduce", n * p)
    w.flops = n


@cost("cumsum", "cumprod")
def _cumulative(v: View, w: Work) -> None:
    x = v.inputs[0]
    w.add("cumsum", _size(x) * _prec(x))
    w.flops = _size(x)


@cost("quantile")
def _quantile(v: View, w: Work) -> None:
    n = _size(v.inputs[0])
    w.add("quantile", n)
    w.flops = n * math.log2(max(n, 2))


@cost("histogram")
def _histogram(v: View, w: Work) -> None:
    n = _size(v.inputs[0])
    w.add("histogram", n)
    w.flops = n * 8


@cost("svd")
def _svd(v: View, w: Work) -> None:
    m, n = v.inputs[0].shape
    w.flops = 4.0 * m * n * min(m, n)
    w.add("gemm", 2 * w.flops)  # LAPACK's factorizations run at about half BLAS's rate
    w.notes.append("svd priced as 8 m n min(m, n) flops at the matrix-product rate")


@cost("stencil")
def _stencil(v: View, w: Work) -> None:
    x = v.inputs[0]
    steps = v.params["steps"]
    k = min(v.params.get("halo", 16), max(steps, 1))
    halo = 1.0
    for axis in (x.ndim - 2, x.ndim - 1):
        chunks = x.chunks[axis]
        # each inner chunk edge borrows k cells from its neighbour
        halo *= 1 + 2 * k * (len(chunks) - 1) / x.shape[axis]
    cells = _size(x) * halo
    w.add("stencil", cells * steps * _prec(x))
    w.add("copy", cells * x.dtype.itemsize * math.ceil(steps / max(k, 1)))  # the halos
    w.flops = 6.0 * _size(x) * steps


@cost("convolve")
def _convolve(v: View, w: Work) -> None:
    x, out = v.inputs[0], v.value
    kernel = v.params.get("kernel")
    k_shape = kernel.shape if hasattr(kernel, "shape") else _shape_of(kernel)
    k_size = math.prod(k_shape)
    p = _prec(out)
    direct = _size(out) * k_size
    # FFT per chunk: the chunk padded by the kernel's reach, 3 real transforms
    kernel_axes = list(range(x.ndim - len(k_shape), x.ndim))
    axes = v.params.get("axes") or kernel_axes
    reach = dict(zip([a % x.ndim for a in axes], k_shape))
    chunk = [c[0] + reach.get(i, 1) - 1 for i, c in enumerate(x.chunks)]
    fft_units = math.prod(len(c) for c in x.chunks) * 3 * _fft_units(math.prod(chunk),
                                                                     math.prod(chunk))
    method = v.params.get("method", "auto")
    if method == "auto":  # SciPy's choice depends on its own cost guess; roughly this
        method = "direct" if k_size <= AUTO_DIRECT_MAX else "fft"
        w.notes.append(f"method auto priced as {method}")
    if method == "direct":
        w.add("mac", direct * p)
    else:
        _add_fft(w, fft_units, out)
        w.add("arith", 2 * _size(out) * p)
    w.add("copy", 2 * _nbytes(x))  # padding, and each chunk with its neighbours' edges
    w.flops = 2.0 * direct if method == "direct" else 2.5 * fft_units


def _shape_of(nested) -> tuple[int, ...]:
    shape = []
    while isinstance(nested, list) and nested:
        shape.append(len(nested))
        nested = nested[0]
    return tuple(shape) or (1,)


@cost("map_blocks", "map_partitions")
def _user_function(v: View, w: Work) -> None:
    """User code: advise cannot see into it."""
    w.add("copy", max([_nbytes(v.value), *map(_nbytes, v.inputs)]))
    w.add("frame_call", _partitions(v.value) if _is_frame(v.value) else 0)
    w.notes.append(f"runs {v.params.get('function')}: priced as one copy of its data "
                   "(--measure times it)")


# ----------------------------------------------------------------------------- sinks
@cost("write")
def _write(v: View, w: Work) -> None:
    x = v.inputs[0]
    suffix = Path(str(v.params.get("path", ""))).suffix.lower()
    if not _is_frame(x):
        w.add("write", _nbytes(x) if suffix != ".json" else 0)
        return
    rows = v.input_rows[0] or 0
    data = rows * len(x.columns) * 8
    w.add("parquet_write" if suffix == ".parquet" else "csv_write", data)
    w.add("frame_call", _partitions(x))


@cost("plot")
def _plot(v: View, w: Work) -> None:
    w.notes.append("drawn in the client process, not on the workers")


# ----------------------------------------------------------------------------- tables
@cost("random_table")
def _random_table(v: View, w: Work) -> None:
    rows = float(v.params["rows"])
    for spec in v.params["columns"].values():
        if "keys" in spec:
            w.add("rng_integers", rows)
            continue
        w.add("rng_normal" if spec.get("distribution") == "normal" else "rng_uniform", rows)
        w.add("arith", 3 * rows)  # scale, shift, astype
        if spec.get("null_fraction"):
            w.add("rng_uniform", rows)
            w.add("arith", rows)
    w.add("frame_call", _partitions(v.value))
    w.flops = 20.0 * rows * len(v.params["columns"])
    w.rows = rows


@cost("filter", "assign")
def _frame_expr(v: View, w: Work) -> None:
    df = v.inputs[0]
    rows = v.input_rows[0] or 0
    texts = [v.params["expr"]] if v.op == "filter" else list(v.params["columns"].values())
    sizes = {name: float(rows) for name in [*map(str, df.columns),
                                            *v.params.get("columns", {})]}
    for text in texts:
        arith, trans = expr_units(text, sizes)
        w.add("arith", arith)
        w.add("transcendental", trans)
        w.add("frame_call", (1 + (arith + trans) / max(rows, 1)) * _partitions(df))
        w.flops += arith + 10 * trans
    if v.op == "filter":
        w.add("take", rows * len(df.columns))
        w.notes.append("a filter is assumed to keep every row")
    w.rows = rows


@cost("groupby")
def _groupby(v: View, w: Work) -> None:
    df = v.inputs[0]
    rows = v.input_rows[0] or 0
    aggs = sum(len(h) if isinstance(h, list) else 1 for h in v.params["agg"].values())
    w.add("groupby", rows * aggs)
    w.add("group_call", 3 * _partitions(df))  # per partition, combine, finalize
    w.flops = 10.0 * rows * aggs
    w.rows = min(rows, GROUPS_GUESS)


@cost("join")
def _join(v: View, w: Work) -> None:
    left, right = (r or 0 for r in v.input_rows)
    w.add("join", left + right)
    w.add("group_call", 2 * sum(_partitions(x) for x in v.inputs))
    w.flops = 10.0 * (left + right)
    w.rows = left if v.params.get("how", "inner") in ("inner", "left") else left + right


@cost("sort")
def _sort(v: View, w: Work) -> None:
    rows = v.input_rows[0] or 0
    w.add("sort", rows * math.log2(max(rows, 2)))
    w.add("group_call", 3 * _partitions(v.inputs[0]))
    w.flops = 10.0 * rows * math.log2(max(rows, 2))
    w.rows = rows
