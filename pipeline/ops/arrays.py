"""Array transforms. Bodies use Dask's array functions and, inside chunks, the backend's
array module (``ctx.backend.xp``), so one body serves NumPy and CuPy chunks alike."""

from __future__ import annotations

import importlib
import math
from typing import Literal

import dask.array as da
import numpy as np

from pipeline import expr as expr_lang
from pipeline import kernels, limits
from pipeline.errors import OpError
from pipeline.ops.context import Context
from pipeline.ops.registry import op
from pipeline.ops.sources import Chunks, check_chunks

Norm = Literal["backward", "ortho", "forward"] | None


def _clip(a, lo, hi):
    """``np.clip``, which is this on NumPy. ``cupy.clip`` ignores NaN bounds and refuses
    complex input (seen on an H200), so the GPU backend would differ."""
    return da.minimum(da.maximum(a, lo), hi)


def _angle(z):
    """``np.angle``. CuPy's angle of a real array is 0 for -0.0 and pi for NaN, where
    NumPy's is ``arctan2(0, x)``: pi and NaN (seen on an H200)."""
    if z.dtype.kind in "cb":  # complex: CuPy's is arctan2 too; bool: never -0.0 or NaN
        return da.angle(z)
    return da.arctan2(da.zeros_like(z), z)


# The expression language's functions, acting on Dask arrays (they dispatch per chunk).
ARRAY_FUNCTIONS = {
    "abs": da.absolute, "sqrt": da.sqrt, "exp": da.exp, "log": da.log, "log1p": da.log1p,
    "sin": da.sin, "cos": da.cos, "tan": da.tan, "arctan2": da.arctan2, "real": da.real,
    "imag": da.imag, "conj": da.conj, "angle": _angle, "maximum": da.maximum,
    "minimum": da.minimum, "where": da.where, "clip": _clip, "floor": da.floor,
    "ceil": da.ceil, "round": da.round, "isnan": da.isnan, "isfinite": da.isfinite,
}
assert set(ARRAY_FUNCTIONS) == set(expr_lang.FUNCTIONS)


def _axis(x: da.Array, axis: int, where: str = "axis") -> int:
    if not -x.ndim <= axis < x.ndim:
        raise OpError(f"axis {axis} is out of range for a {x.ndim}-d array of shape "
                      f"{x.shape}", where=where, hint=f"use -{x.ndim}..{x.ndim - 1}")
    return axis % x.ndim


def _not_empty(x: da.Array, axes, what: str, least: int = 1) -> None:
    """Refuse an axis shorter than ``least`` where the op cannot work on it: NumPy would
    raise inside a task, at compute time (or Dask while building, ZeroDivisionError)."""
    for a in axes:
        if x.shape[a] == x.shape[a] and x.shape[a] < least:  # NaN: unknown until computed
            raise OpError(f"{what} needs axis {a} of length >= {least}, but the input's shape "
                          f"is {x.shape}", where="input",
                          hint="check the shapes upstream (`python -m pipeline validate`)")


def _whole_along(x: da.Array, axes) -> da.Array:
    """Rechunk so each of ``axes`` is one chunk, letting the others shrink to fit."""
    if all(len(x.chunks[a]) == 1 for a in axes):
        return x
    return x.rechunk({a: -1 if a in axes else "auto" for a in range(x.ndim)})


def _on_backend(ctx: Context, y: da.Array) -> da.Array:
    """``y`` planned with the backend's chunk type (:meth:`Backend.meta`) where Dask's
    inference gave it another one."""
    if type(y._meta).__module__.split(".")[0] == ctx.backend.array_module:
        return y
    return da.Array(y.dask, y.name, y.chunks, meta=ctx.backend.meta(y.ndim, y.dtype))


def _fft_wrapped(ctx: Context, kind: str, dtype):
    """The backend's FFT ``kind`` (:attr:`Backend.fft`) for Dask arrays of ``dtype``.

    The output dtype is given, because otherwise ``fft_wrap`` infers it by calling the
    backend's function on a small NumPy array, which CuPy refuses (TypeError: the input
    must be a cupy.ndarray): on the host, the answer of the function that runs (scipy.fft
    and numpy.fft differ on float16 irfft); for CuPy, NumPy's, which its FFTs return.
    """
    fft = ctx.backend.fft
    probe = fft if ctx.backend.array_module == "numpy" else np.fft
    out = getattr(probe, kind)(np.ones((4, 4), dtype=dtype)).dtype
    return da.fft.fft_wrap(getattr(fft, kind), kind=kind, dtype=out)


def _fft(kind: str, real_input_ok: bool = True):
    def body(ctx: Context, x, *, axis: int = -1, n: int | None = None, norm: Norm = None):
        ax = _axis(x, axis)
        if n is not None and n < 1:
            raise OpError(f"n must be >= 1, got {n}", where="n")
        if kind == "rfft" and np.iscomplexobj(x.dtype.type(0)):
            raise OpError("rfft needs a real input", where="input", hint="use fft")
        if n is None:  # irfft's output has 2 (m - 1) points
            _not_empty(x, [ax], kind, least=2 if kind == "irfft" else 1)
        fn = _fft_wrapped(ctx, kind, x.dtype)
        return _on_backend(ctx, fn(_whole_along(x, [ax]), n=n, axis=ax, norm=norm))

    body.__doc__ = f"""``{kind}`` along one axis (the axis is made one chunk, if it is not).

    ```yaml
    - id: spectrum
      op: {kind}
      input: signal
      axis: -1          # default -1; n (length), norm (backward/ortho/forward)
    ```
    """
    return body


for _kind in ("fft", "ifft", "rfft", "irfft"):
    op(_kind, family="array")(_fft(_kind))


def _fft2(kind: str):
    def body(ctx: Context, x, *, axes: list[int] = [-2, -1], norm: Norm = None):  # noqa: B006
        if len(axes) != 2:
            raise OpError(f"{kind} takes two axes, got {axes}", where="axes")
        ax = [_axis(x, a, "axes") for a in axes]
        if ax[0] == ax[1]:
            raise OpError(f"axes must differ, got {axes}", where="axes")
        _not_empty(x, ax, kind)
        fn = _fft_wrapped(ctx, kind, x.dtype)
        return _on_backend(ctx, fn(_whole_along(x, ax), axes=ax, norm=norm))

    body.__doc__ = f"""2-D ``{kind}`` over two axes (made whole chunks).

    ```yaml
    - id: image_spectrum
      op: {kind}
      input: images
      axes: [-2, -1]
    ```
    """
    return body


for _kind in ("fft2", "ifft2"):
    op(_kind, family="array")(_fft2(_kind))


@op("matmul", family="array", inputs="list", n_inputs=2)
def matmul(ctx: Context, a, b):
    """Matrix product ``a @ b`` (stacks of matrices broadcast, as in NumPy).

    ```yaml
    - id: product
      op: matmul
      inputs: [a, b]
    ```
    """
    if a.ndim == 0 or b.ndim == 0:
        raise OpError("matmul needs arrays of at least one dimension", where="inputs")
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim >= 2 else b.shape[0]
    if k_a != k_b:
        raise OpError(f"shape mismatch: {a.shape} @ {b.shape} ({k_a} != {k_b})",
                      where="inputs", hint="the last axis of a must match b's second-to-last")
    return da.matmul(a, b)


@op("transpose", family="array")
def transpose(ctx: Context, x, *, axes: list[int] | None = None):
    """Permute axes (default: reverse them).

    ```yaml
    - id: xt
      op: transpose
      input: x
      axes: [1, 0]
    ```
    """
    if axes is not None and sorted(a % x.ndim if -x.ndim <= a < x.ndim else a
                                   for a in axes) != list(range(x.ndim)):
        raise OpError(f"axes {axes} is not a permutation of 0..{x.ndim - 1}", where="axes")
    return da.transpose(x, axes)


@op("elementwise", family="array", inputs="mapping")
def elementwise(ctx: Context, inputs: dict, *, expr: str,
                params: dict[str, float] | None = None):
    """An expression over named inputs and numeric params, evaluated chunk by chunk.

    An expression of two operations or more runs as one pass over each chunk: one fused
    kernel on the GPU; on the CPU NumPy in cache-sized blocks, or a numba-compiled loop
    where that is predicted faster (see ``pipeline.kernels``).

    ```yaml
    - id: power
      op: elementwise
      inputs: {z: spectrum}
      expr: "real(z)**2 + imag(z)**2"
      params: {}            # e.g. {gain: 2.0}, used as names in expr
    ```
    """
    params = params or {}
    clash = set(params) & set(inputs)
    if clash:
        raise OpError(f"names used both as input and param: {sorted(clash)}", where="params")
    parsed = expr_lang.parse(expr, [*inputs, *params])
    try:
        out = parsed(ARRAY_FUNCTIONS, {**inputs, **params})
        if not isinstance(out, da.Array):
            raise OpError("the expression uses no input array", where="expr")
        # the graph above checked shapes; the kernel computes the same in one pass. Its
        # plan evaluates the expression on one element of each input's dtype, where
        # NumPy refuses what Dask's lazy graph let through (unary + on booleans)
        fused = kernels.elementwise(parsed, inputs, params, out.shape,
                                    gpu=ctx.backend.array_module == "cupy")
    except (ValueError, TypeError, ArithmeticError) as e:  # shapes that do not broadcast
        raise OpError(f"cannot evaluate: {e}", where="expr") from None
    if fused is not None and fused.dtype == out.dtype and fused.shape == out.shape:
        return fused
    return out


def _axes(x: da.Array, axis) -> int | tuple[int, ...] | None:
    if axis is None:
        return None
    if isinstance(axis, list):
        ax = tuple(_axis(x, a) for a in axis)
        if len(set(ax)) != len(ax):
            raise OpError(f"repeated axis in {axis}", where="axis")
        return ax
    return _axis(x, axis)


@op("reduce", family="array")
def reduce(ctx: Context, x, *,
           how: Literal["sum", "mean", "std", "var", "min", "max", "prod", "sem"],
           axis: int | list[int] | None = None, ddof: int = 0, keepdims: bool = False):
    """Reduce over an axis, several axes, or all (``axis: null``).

    ``sem`` is the standard error of the mean, ``std`` with ddof 1 over the square root of
    the count (``scipy.stats.sem``): the Monte Carlo error of a ``mean``. ``keepdims``
    keeps the reduced axes with size 1, so the result broadcasts against the input (e.g.
    ``x - mean`` along the last axis).

    ```yaml
    - id: mean_power
      op: reduce
      input: power
      how: mean             # sum mean std var min max prod sem
      axis: 0               # int, list, or null for all
      keepdims: false
    ```
    """
    if ddof and how not in ("std", "var"):
        raise OpError(f"'ddof' applies to std and var, not {how}", where="ddof")
    axes = _axes(x, axis)
    reduced = range(x.ndim) if axes is None else np.atleast_1d(axes).tolist()
    if how in ("min", "max", "sem"):  # no identity for min/max; sem divides by count - 1
        _not_empty(x, reduced, f"reduce {how}", least=2 if how == "sem" else 1)
    if how == "sem":
        count = math.prod(x.shape[a] for a in reduced)
        # a Python float keeps float32 results float32
        return da.std(x, axis=axes, ddof=1, keepdims=keepdims) / math.sqrt(count)
    kwargs = {"ddof": ddof} if how in ("std", "var") else {}
    return getattr(da, how)(x, axis=axes, keepdims=keepdims, **kwargs)


def _cumulative(how: str):
    def body(ctx: Context, x, *, axis: int | None = None):
        return getattr(da, how)(x, axis=None if axis is None else _axis(x, axis))

    body.__doc__ = f"""``{how}`` along an axis (``null``: over the flattened array).

    ```yaml
    - id: paths
      op: {how}
      input: steps
      axis: 1
    ```
    """
    return body


for _how in ("cumsum", "cumprod"):
    op(_how, family="array")(_cumulative(_how))


@op("quantile", family="array")
def quantile(ctx: Context, x, *, q: float | list[float], axis: int | None = None):
    """Exact quantiles (NumPy's linear method) along an axis, or of all values.

    The axis is made one chunk (``axis: null`` gathers all values into one chunk). With a
    list of ``q`` the result gains a leading axis, as in ``numpy.quantile``.

    ```yaml
    - id: var95
      op: quantile
      input: losses
      q: 0.95               # or [0.05, 0.5, 0.95]
      axis: 0
    ```
    """
    qs = q if isinstance(q, list) else [q]
    if not qs or any(not 0 <= v <= 1 for v in qs):
        raise OpError(f"q must be in [0, 1], got {q}", where="q")
    if axis is None:
        x, ax = x.reshape(-1), 0
    else:
        ax = _axis(x, axis)
    _not_empty(x, [ax], "quantile")
    x = _whole_along(x, [ax])
    kept = tuple(c for i, c in enumerate(x.chunks) if i != ax)
    xp_q = np.asarray(q, dtype=np.float64)
    out_dtype = np.result_type(x.dtype, np.float64)
    meta = ctx.backend.meta(x.ndim - (not isinstance(q, list)), out_dtype)
    if isinstance(q, list):
        return x.map_blocks(_block_quantile, xp_q, ax, drop_axis=ax, new_axis=0,
                            chunks=((len(qs),),) + kept, dtype=out_dtype, meta=meta)
    return x.map_blocks(_block_quantile, xp_q, ax, drop_axis=ax, chunks=kept, dtype=out_dtype,
                        meta=meta)


def _block_quantile(block, q, axis):
    xp = importlib.import_module(type(block).__module__.split(".")[0])
    return xp.quantile(block, xp.asarray(q), axis=axis)


@op("histogram", family="array")
def histogram(ctx: Context, x, *, bins: int | list[float] = 10,
              range: list[float] | None = None):  # noqa: A002 - the YAML key is `range`
    """Counts of all values in bins (``numpy.histogram``); the result is the counts.

    ```yaml
    - id: hist
      op: histogram
      input: x
      bins: 50              # a count (then `range` is required) or a list of edges
      range: [-4, 4]
    ```
    """
    if isinstance(bins, int):
        if bins < 1:
            raise OpError(f"bins must be >= 1, got {bins}", where="bins")
        if range is None:
            raise OpError("'range' is required when 'bins' is a count", where="range",
                          hint="e.g. range: [-4, 4], or give bins as a list of edges")
    elif len(bins) < 2 or any(b >= c for b, c in zip(bins, bins[1:])):
        raise OpError("bin edges must be increasing, at least two", where="bins")
    if range is not None and (len(range) != 2 or not range[0] < range[1]):
        raise OpError(f"range must be [low, high] with low < high, got {range}", where="range")
    counts, _ = da.histogram(x.reshape(-1), bins=bins, range=range)
    return _on_backend(ctx, counts)


@op("svd", family="array")
def svd(ctx: Context, x, *, k: int | None = None, compute_uv: bool = False):
    """Singular value decomposition of a 2-D array.

    Exact (tall-and-skinny QR) when one dimension fits in a chunk; otherwise, with ``k``,
    randomized (``dask.array.linalg.svd_compressed``, approximate). The result is the
    singular values; with ``compute_uv: true`` it is ``u``, ``s``, ``vt`` together, which
    ``pick`` selects from.

    ```yaml
    - id: sv
      op: svd
      input: matrix
      k: 10                 # optional: keep the top k
    ```
    """
    if x.ndim != 2:
        raise OpError(f"svd needs a 2-D array, got shape {x.shape}", where="input")
    _not_empty(x, [0, 1], "svd")
    if k is not None and not 1 <= k <= min(x.shape):
        raise OpError(f"k must be in 1..{min(x.shape)}, got {k}", where="k")
    rows, cols = x.shape
    chunk_cap = max(x.chunks[1][0] if rows >= cols else x.chunks[0][0], 1)
    if min(rows, cols) <= max(chunk_cap, 4096):
        # tsqr needs the short dimension in one chunk
        x = x.rechunk({1: -1, 0: "auto"} if rows >= cols else {0: -1, 1: "auto"})
        u, s, vt = _svd_one_chunk(x) if x.numblocks == (1, 1) else da.linalg.svd(x)
        if k is not None:
            u, s, vt = u[:, :k], s[:k], vt[:k]
    elif k is None:
        raise OpError(f"exact svd of a {rows}x{cols} array needs one side <= 4096",
                      where="k", hint="give k for a truncated, randomized svd")
    else:
        u, s, vt = da.linalg.svd_compressed(x, k, n_power_iter=4, seed=0)
    return {"u": u, "s": s, "vt": vt} if compute_uv else s


def _svd_one_chunk(x):
    """``da.linalg.svd`` of a one-chunk matrix, as one task of the graph. Dask's own wraps
    the matrix in ``dask.delayed``, which embeds a renamed copy of its whole graph: all
    that is upstream would be computed twice whenever it is also used elsewhere."""
    k = min(x.shape)
    probe = np.linalg.svd(np.ones((1, 1), dtype=x.dtype), full_matrices=False)
    return da.apply_gufunc(np.linalg.svd, "(m,n)->(m,k),(k),(k,n)", x, output_sizes={"k": k},
                           output_dtypes=tuple(part.dtype for part in probe),
                           full_matrices=False)


@op("pick", family="array")
def pick(ctx: Context, x, *, part: str):
    """One array of a result made of several (``svd`` with ``compute_uv``: u, s, vt).

    ```yaml
    - id: components
      op: pick
      input: decomposition
      part: vt
    ```
    """
    if not isinstance(x, dict):
        raise OpError("the input is a single array: nothing to pick from", where="input")
    if part not in x:
        raise OpError(f"no part '{part}'", where="part", hint="parts: " + ", ".join(x))
    return x[part]


@op("rechunk", family="array")
def rechunk(ctx: Context, x, *, chunks: Chunks):
    """Change the chunking (``auto``, sizes per axis, or a byte size like "256 MiB").

    ```yaml
    - id: rows
      op: rechunk
      input: x
      chunks: [4096, -1]
    ```
    """
    check_chunks(chunks, x.ndim)  # dask ignores extra list entries, divides by a 0 size
    limits.check_array(x.shape, chunks, x.dtype)
    try:
        return x.rechunk(chunks)
    except (ValueError, TypeError) as e:
        raise OpError(f"bad chunks {chunks!r}: {e}", where="chunks") from None
