"""User functions as stages: ``map_blocks`` over array chunks, ``map_partitions`` over
table partitions. See :mod:`pipeline.ops.functions` for what ``function:`` may name and
what running it means.

The function receives each chunk as the backend holds it: NumPy arrays / pandas frames on
the CPU backend, CuPy arrays / cuDF frames on the GPU one, and must return the same kind.
Each call is checked on the worker against what the stage declared (or Dask inferred):
shape, dtype, columns. A mismatch fails the run with one line naming the stage instead of
corrupting the stages after it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from dask.array.utils import meta_from_array

from pipeline.errors import OpError
from pipeline.ops.context import Context
from pipeline.ops.functions import call, probe, refuse, resolve
from pipeline.ops.registry import op

Axes = int | list[int] | None


@op("map_blocks", family="array")
def map_blocks(ctx: Context, x, *, function: str, kwargs: dict[str, Any] | None = None,
               dtype: str | None = None, chunks: list[int | None] | None = None,
               drop_axis: Axes = None, new_axis: Axes = None):
    """Call a Python function on every chunk of an array (Dask's ``map_blocks``).

    The function is ``fn(block, **kwargs)`` and returns the output block: NumPy in, NumPy
    out on the CPU backend; CuPy in, CuPy out on the GPU one. By default the output has
    the input's chunks and Dask infers its dtype by calling the function on a tiny array.
    Declare a shape change with ``chunks`` (each output block's size per axis; null keeps
    the input's chunks on that axis), ``drop_axis`` / ``new_axis`` (as in Dask; a chunk is
    whole along a dropped axis), and ``dtype``. This runs the function's code.

    ```yaml
    - id: scores
      op: map_blocks
      input: images            # chunks [1, 256, 256]
      function: "pipeline_examples.tiles:classify"
      kwargs: {tile: 64}
      dtype: float32
      chunks: [null, 4, 4]     # each 256x256 chunk -> 4x4 tile scores
    ```
    """
    ref = function
    fn = resolve(ref)
    kwargs = dict(kwargs or {})
    drop = _axes(drop_axis, x.ndim, "drop_axis")
    added = 0 if new_axis is None else 1 if isinstance(new_axis, int) else len(new_axis)
    out_ndim = x.ndim - len(drop) + added
    new = _axes(new_axis, out_ndim, "new_axis")
    out_dtype = _dtype(dtype)
    if out_dtype is None:  # as Dask infers it, but on a block of the backend's kind
        empty = meta_from_array(x._meta, ndim=x.ndim, dtype=x.dtype)
        sample = probe(fn, ref, empty, kwargs, "dtype", "declare it, e.g. dtype: float32")
        if not hasattr(sample, "dtype"):
            raise OpError(f"{ref!r} returned {type(sample).__name__}, not an array",
                          where="function", hint="return the chunk's kind of array")
        out_dtype = np.dtype(sample.dtype)
    options: dict[str, Any] = {"drop_axis": drop or None, "new_axis": new or None}
    if chunks is not None:
        options["chunks"] = _out_chunks(x, chunks, drop, new, out_ndim)
    return x.map_blocks(_block, ref=ref, stage=ctx.stage.id, kwargs=kwargs,
                        module=ctx.backend.array_module, dtype=out_dtype,
                        meta=meta_from_array(x._meta, ndim=out_ndim, dtype=out_dtype),
                        **options)


def _dtype(dtype: str | None):
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise OpError(f"unknown dtype {dtype!r}", where="dtype",
                      hint="a NumPy dtype name: float32, int64, complex64, bool...") from None


def _axes(value: Axes, ndim: int, where: str) -> list[int]:
    axes = [] if value is None else [value] if isinstance(value, int) else list(value)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise OpError(f"axis {a} is out of range for {ndim} axes", where=where)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise OpError(f"repeated axis in {value}", where=where)
    return sorted(out)


def _out_chunks(x, chunks: list, drop: list[int], new: list[int], out_ndim: int):
    """Explicit output chunks from ``chunks`` (one entry per output axis: an int, every
    block's size along it; null, the input's chunks there)."""
    if len(chunks) != out_ndim:
        raise OpError(f"chunks {chunks} has {len(chunks)} entries but the output has "
                      f"{out_ndim} axes", where="chunks", hint="one entry per output axis")
    kept = iter(a for a in range(x.ndim) if a not in drop)
    out = []
    for axis, size in enumerate(chunks):
        source = None if axis in new else next(kept)
        if size is None:
            if source is None:
                raise OpError(f"new axis {axis} needs a size", where="chunks")
            if any(math.isnan(c) for c in x.chunks[source]):
                raise OpError(f"axis {axis}'s input chunks are unknown", where="chunks",
                              hint="give its size")
            out.append(x.chunks[source])
            continue
        if isinstance(size, bool) or size < 0:
            raise OpError(f"bad size {size!r} for axis {axis}", where="chunks",
                          hint="a size >= 0, or null for the input's chunks")
        blocks = 1 if source is None else len(x.chunks[source])
        out.append((size,) * blocks)
    return tuple(out)


def _block(block, *, ref: str, stage: str, kwargs: dict, module: str, block_info=None):
    out = call(ref, stage, (block,), kwargs)
    root = type(out).__module__.partition(".")[0]
    if root != module or not hasattr(out, "shape"):
        raise refuse(stage, ref, f"returned {type(out).__module__}.{type(out).__name__}, "
                                 f"not a {module} array (return the chunk's own kind)")
    want = block_info[None] if block_info else None
    if want is not None:
        shape, dtype = tuple(want["chunk-shape"]), np.dtype(want["dtype"])
        if tuple(out.shape) != shape:
            raise refuse(stage, ref, f"returned a block of shape {tuple(out.shape)}, "
                                     f"expected {shape} (declare the output's 'chunks', "
                                     "'drop_axis' or 'new_axis')")
        if out.dtype != dtype:
            raise refuse(stage, ref, f"returned {out.dtype}, expected {dtype} "
                                     "(declare 'dtype')")
    return out


@op("map_partitions", family="frame")
def map_partitions(ctx: Context, df, *, function: str,
                   kwargs: dict[str, Any] | None = None,
                   columns: dict[str, str] | None = None):
    """Call a Python function on every partition of a table (Dask's ``map_partitions``).

    The function is ``fn(partition, **kwargs)`` and returns a table: pandas in, pandas out
    on the CPU backend; cuDF in, cuDF out on the GPU one. Declare the output's
    ``columns`` (name -> dtype, in order), or Dask infers them by calling the function on
    a small sample partition. This runs the function's code.

    ```yaml
    - id: features
      op: map_partitions
      input: trips
      function: "pipeline_examples.tables:add_speed"
      kwargs: {unit: kmh}
      columns: {distance: float64, minutes: float64, speed: float64}
    ```
    """
    ref = function
    fn = resolve(ref)
    kwargs = dict(kwargs or {})
    if columns is None:  # as Dask infers it: from a call on a small sample partition
        sample = probe(fn, ref, df._meta_nonempty, kwargs, "columns",
                       "declare them: columns: {name: dtype, ...}")
        if not hasattr(sample, "columns"):
            raise OpError(f"{ref!r} returned {type(sample).__name__}, not a table",
                          where="function", hint="return a DataFrame")
        meta = sample.iloc[:0]
    else:
        meta = _declared(columns)
    return df.map_partitions(_partition, ref=ref, stage=ctx.stage.id, kwargs=kwargs,
                             module=ctx.backend.frame_module,
                             expect=[str(c) for c in meta.keys()] if columns else None,
                             meta=meta)


def _declared(columns: dict[str, str]) -> dict[str, Any]:
    if not columns:
        raise OpError("no columns declared", where="columns",
                      hint="name -> dtype for each output column, or leave it out")
    for name, dt in columns.items():
        if dt in ("string", "category"):  # pandas extension dtypes, not NumPy's
            continue
        try:
            np.dtype(dt)
        except TypeError:
            raise OpError(f"unknown dtype {dt!r} for column '{name}'", where="columns",
                          hint="a NumPy dtype name, 'string' or 'category'") from None
    return dict(columns)


def _partition(part, *, ref: str, stage: str, kwargs: dict, module: str,
               expect: list[str] | None):
    out = call(ref, stage, (part,), kwargs)
    root = type(out).__module__.partition(".")[0]
    if root != module or not hasattr(out, "columns"):
        raise refuse(stage, ref, f"returned {type(out).__module__}.{type(out).__name__}, "
                                 f"not a {module} DataFrame")
    if expect is not None and [str(c) for c in out.columns] != expect:
        raise refuse(stage, ref, f"returned columns {[str(c) for c in out.columns]}, "
                                 f"declared {expect}")
    return out
