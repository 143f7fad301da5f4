"""Source ops: chunked random arrays made on the backend's device, and file reads."""

from __future__ import annotations

import math
from typing import Any, Literal

import dask.array as da
import numpy as np

from pipeline import limits
from pipeline.errors import OpError
from pipeline.ops.context import Context
from pipeline.ops.formats import READERS, format_of
from pipeline.ops.registry import op

# chunks: auto | [rows, cols] | "256 MiB" | an integer (elements per axis)
Chunks = str | int | list
FLOAT_DTYPES = ("float32", "float64")


def check_chunks(chunks, ndim: int) -> None:
    """Reject the chunk specs Dask mishandles instead of rejecting them.

    A list must have one entry per axis (``Array.rechunk`` silently drops extra entries);
    a size must be an integer >= 1, or -1 for the whole axis (0 raises ZeroDivisionError
    deep inside Dask, other negatives a confusing message). Strings ("auto", "64 MiB") and
    explicit per-axis size lists are left to Dask, whose ValueError callers turn into an
    OpError.

    Raises
    ------
    OpError
        ``where`` is ``chunks``.
    """
    def bad_size(n) -> bool:
        return isinstance(n, bool) or not isinstance(n, int) or (n < 1 and n != -1)

    hint = "a size >= 1 or -1 (the whole axis) per axis, 'auto', or a byte size like '64 MiB'"
    if isinstance(chunks, list):
        if len(chunks) != ndim:
            raise OpError(f"chunks {chunks} has {len(chunks)} entries but the array has "
                          f"{ndim} axes", where="chunks", hint="one entry per axis")
        for c in chunks:
            if c is None or isinstance(c, str):
                continue
            if isinstance(c, list):  # explicit chunk sizes along this axis (0 is legal)
                if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in c):
                    raise OpError(f"bad chunks {chunks!r}: explicit sizes must be integers "
                                  ">= 0", where="chunks", hint=hint)
            elif bad_size(c):
                raise OpError(f"bad chunks {chunks!r}: chunk size {c!r} is not allowed",
                              where="chunks", hint=hint)
    elif not isinstance(chunks, str) and bad_size(chunks):
        raise OpError(f"bad chunks {chunks!r}: chunk size must be >= 1 or -1",
                      where="chunks", hint=hint)


@op("random", family="source", inputs="none")
def random(ctx: Context, *, shape: list[int], chunks: Chunks = "auto", dtype: str = "float64",
           seed: int | None = None, distribution: Literal["normal", "uniform"] = "normal",
           loc: float | None = None, scale: float | None = None,
           low: float | None = None, high: float | None = None):
    """A random array generated chunk by chunk on the device (never copied from the host).

    ```yaml
    - id: signal
      op: random
      shape: [65536, 4096]
      chunks: auto          # or [8192, 4096] or "256 MiB"
      dtype: float32
      seed: 0
      distribution: normal  # normal: loc, scale; uniform: low, high
    ```
    """
    if not shape or any(n < 0 for n in shape):
        raise OpError(f"bad shape {shape}", where="shape", hint="a list of sizes >= 0")
    if dtype not in FLOAT_DTYPES:
        raise OpError(f"unsupported dtype '{dtype}'", where="dtype",
                      hint="one of: " + ", ".join(FLOAT_DTYPES))
    own = {"normal": ("loc", "scale"), "uniform": ("low", "high")}[distribution]
    given = {"loc": loc, "scale": scale, "low": low, "high": high}
    for key, value in given.items():
        if value is not None and key not in own:
            raise OpError(f"'{key}' does not apply to distribution {distribution}", where=key,
                          hint=f"{distribution} takes: " + ", ".join(own))
        if value is not None and not math.isfinite(value):
            raise OpError(f"{key} must be a finite number, got {value}", where=key)
    if scale is not None and scale < 0:  # numpy's normal() refuses it too
        raise OpError(f"scale must be >= 0, got {scale}", where="scale")
    check_chunks(chunks, len(shape))
    limits.check_array(shape, chunks, dtype)
    try:
        chunks = da.core.normalize_chunks(chunks, tuple(shape), dtype=np.dtype(dtype))
    except (ValueError, TypeError) as e:
        raise OpError(f"bad chunks {chunks!r}: {e}", where="chunks") from None
    # dask's default_rng follows the array.backend config: cupy's generator on the GPU
    rng = da.random.default_rng(seed)
    if distribution == "normal":
        x = rng.standard_normal(tuple(shape), chunks=chunks, dtype=dtype)
        scale = 1.0 if scale is None else scale
        loc = 0.0 if loc is None else loc
        return x if (loc, scale) == (0.0, 1.0) else (x * scale + loc).astype(dtype)
    low = 0.0 if low is None else low
    high = 1.0 if high is None else high
    if not high > low:
        raise OpError(f"high ({high}) must be greater than low ({low})", where="high")
    if not math.isfinite(high - low):
        raise OpError(f"the range [{low}, {high}) is wider than the largest float",
                      where="high", hint="narrow it")
    # x * (high - low) + low rounds in `dtype`, and can land on `high` itself (about 1.5%
    # of float32 samples with low=2**24, high=2**24+64), or below `low` when `low` is not
    # representable: clip to the representable values inside [low, high).
    lo_v, hi_v = _inside(low, high, np.dtype(dtype))
    x = rng.random(tuple(shape), chunks=chunks, dtype=dtype)
    return da.clip((x * (high - low) + low).astype(dtype), lo_v, hi_v)


def _inside(low: float, high: float, dtype: np.dtype):
    """The smallest and largest values of ``dtype`` in [low, high)."""
    lo_v, hi_v = dtype.type(low), dtype.type(high)
    if float(lo_v) < low:  # compare as Python floats: NumPy would compare in `dtype`
        lo_v = np.nextafter(lo_v, dtype.type(np.inf))
    if float(hi_v) >= high:
        hi_v = np.nextafter(hi_v, dtype.type(-np.inf))
    if not lo_v <= hi_v:
        raise OpError(f"no {dtype} value lies in [{low}, {high})", where="high",
                      hint="widen the range or use float64")
    return lo_v, hi_v


@op("read", family="source", inputs="none")
def read(ctx: Context, *, path: str, format: str | None = None, chunks: Chunks | None = None,
         blocksize: str | int | None = None, columns: list[str] | None = None,
         storage_options: dict[str, Any] | None = None):
    """Read a file or a glob of files, local or at an fsspec URL; each chunk is copied to
    the device once.

    ```yaml
    - id: signal
      op: read
      path: data/signal.npy    # relative to the workflow file; globs allowed
      format: npy              # default: from the extension (npy, zarr, parquet, csv)
      chunks: auto             # arrays; tables take blocksize (csv) and columns
    - id: trips
      op: read
      path: s3://bucket/trips/*.parquet   # s3:// gs:// http(s):// memory:// ...
      storage_options: {anon: true}       # for the filesystem (s3fs, gcsfs, ...)
    ```
    """
    fmt = format_of(path, format, READERS)
    paths = ctx.input_paths(path, storage_options)
    return READERS[fmt](ctx, paths, chunks=chunks, columns=columns, blocksize=blocksize)
