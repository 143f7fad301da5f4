"""Source ops: chunked random arrays made on the backend's device, and file reads."""

from __future__ import annotations

from typing import Literal

import dask.array as da
import numpy as np

from pipeline.errors import OpError
from pipeline.ops.context import Context
from pipeline.ops.formats import READERS, format_of
from pipeline.ops.registry import op

# chunks: auto | [rows, cols] | "256 MiB" | an integer (elements per axis)
Chunks = str | int | list
FLOAT_DTYPES = ("float32", "float64")


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
    x = rng.random(tuple(shape), chunks=chunks, dtype=dtype)
    return (x * (high - low) + low).astype(dtype)


@op("read", family="source", inputs="none")
def read(ctx: Context, *, path: str, format: str | None = None, chunks: Chunks | None = None,
         blocksize: str | int | None = None, columns: list[str] | None = None):
    """Read a file or a glob of files; each chunk is copied to the device once.

    ```yaml
    - id: signal
      op: read
      path: data/signal.npy    # relative to the workflow file; globs allowed
      format: npy              # default: from the extension (npy, zarr, parquet, csv)
      chunks: auto             # arrays; tables take blocksize (csv) and columns
    ```
    """
    fmt = format_of(path, format, READERS)
    paths = ctx.input_paths(path)
    return READERS[fmt](ctx, paths, chunks=chunks, columns=columns, blocksize=blocksize)
