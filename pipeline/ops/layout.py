"""Arrays of coordinates and arrays put together: ``arange`` and ``stack``.

``arange`` gives ``elementwise`` an index to compute with (frequency bins, column scales,
grid coordinates); ``stack`` gathers several small results (a price and its standard
error) into one array for one sink.
"""

from __future__ import annotations

import math

import dask.array as da

from pipeline import limits
from pipeline.errors import OpError
from pipeline.ops.context import Context
from pipeline.ops.registry import op
from pipeline.ops.sources import Chunks, check_chunks

DTYPES = ("float32", "float64", "int32", "int64")


@op("arange", family="source", inputs="none")
def arange(ctx: Context, *, stop: float, start: float = 0, step: float = 1,
           dtype: str = "float64", chunks: Chunks = "auto"):
    """Evenly spaced values in [start, stop), as ``numpy.arange``, made on the device.

    ```yaml
    - id: bins
      op: arange
      start: 0
      stop: 513
      step: 1
      dtype: float64        # float32 float64 int32 int64
      chunks: auto
    ```
    """
    if dtype not in DTYPES:
        raise OpError(f"unsupported dtype '{dtype}'", where="dtype",
                      hint="one of: " + ", ".join(DTYPES))
    for key, value in (("start", start), ("stop", stop), ("step", step)):
        if not math.isfinite(value):
            raise OpError(f"{key} must be a finite number, got {value}", where=key)
    if step == 0:
        raise OpError("step must not be 0", where="step")
    span = (stop - start) / step
    if not math.isfinite(span):
        raise OpError(f"[{start}, {stop}) in steps of {step} is too many values", where="stop")
    n = max(math.ceil(span), 0)
    check_chunks(chunks, 1)
    limits.check_array([n], chunks, dtype)
    try:
        # dask's arange follows the array.backend config: cupy chunks on the GPU
        return da.arange(start, stop, step, chunks=chunks, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise OpError(f"bad chunks {chunks!r} for {n} values: {e}", where="chunks") from None


@op("stack", family="array", inputs="list")
def stack(ctx: Context, *arrays, axis: int = 0):
    """Join arrays of one shape along a new axis (``numpy.stack``).

    ```yaml
    - id: call
      op: stack
      inputs: [call_price, call_stderr]   # two scalars -> [price, stderr]
      axis: 0
    ```
    """
    if not arrays:
        raise OpError("stack needs at least one input", where="inputs")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise OpError("inputs must have one shape, got " + ", ".join(
            str(a.shape) for a in arrays), where="inputs")
    ndim = arrays[0].ndim + 1  # the result's
    if not -ndim <= axis < ndim:
        raise OpError(f"axis {axis} is out of range for stacking {ndim - 1}-d arrays",
                      where="axis", hint=f"use -{ndim}..{ndim - 1}")
    return da.stack(arrays, axis=axis)
