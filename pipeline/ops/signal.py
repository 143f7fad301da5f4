"""Signal and image building blocks: windows, filter kernels, and overlapping segments.

``window`` and ``kernel`` are small sources (a taper, a filter) made once on the host by
SciPy / NumPy and copied to the device as one chunk; ``segments`` cuts an axis into
overlapping frames, the first step of Welch's method and of a short-time FFT. Together
with ``reduce`` (``keepdims``), ``elementwise``, ``rfft`` and ``convolve`` they spell out
``scipy.signal.welch`` and Gaussian / box / disk image filters in a workflow.
"""

from __future__ import annotations

import importlib
from typing import Literal

import dask.array as da
import numpy as np

from pipeline.errors import OpError
from pipeline.ops.array_io import _to_device
from pipeline.ops.arrays import _axis, _whole_along
from pipeline.ops.context import Context
from pipeline.ops.registry import op
from pipeline.ops.sources import FLOAT_DTYPES


def _check_dtype(dtype: str) -> None:
    if dtype not in FLOAT_DTYPES:
        raise OpError(f"unsupported dtype '{dtype}'", where="dtype",
                      hint="one of: " + ", ".join(FLOAT_DTYPES))


def _on_device(ctx: Context, values: np.ndarray) -> da.Array:
    """A small host array as a one-chunk Dask array on the backend's device."""
    return _to_device(ctx, da.from_array(values, chunks=-1))


@op("window", family="source", inputs="none")
def window(ctx: Context, *, length: int, name: str = "hann", param: float | None = None,
           sym: bool = False, dtype: str = "float64"):
    """A 1-D window (taper) of ``scipy.signal.get_window``, one chunk on the device.

    Periodic by default (``sym: false``), as ``scipy.signal.welch`` and ``stft`` use;
    ``param`` is the shape parameter of the windows that need one (gaussian: std,
    kaiser: beta, tukey: alpha, ...).

    ```yaml
    - id: taper
      op: window
      name: hann            # hann hamming blackman boxcar bartlett flattop kaiser ...
      length: 1024
      param: null           # e.g. 8.6 for kaiser
      sym: false
      dtype: float64
    ```
    """
    import scipy.signal

    _check_dtype(dtype)
    if length < 1:
        raise OpError(f"length must be >= 1, got {length}", where="length")
    if length > 1 << 24:
        raise OpError(f"a window of {length:,} points is too large", where="length",
                      hint="at most 16 M points: windows are made on the client")
    spec = name if param is None else (name, param)
    try:
        values = scipy.signal.get_window(spec, length, fftbins=not sym)
    except ValueError as e:
        where = "name" if "invalid window name" in str(e).lower() else "param"
        raise OpError(f"window {spec!r}: {e}", where=where,
                      hint="names: scipy.signal.get_window's (hann, hamming, blackman, "
                           "boxcar, kaiser with param, ...)") from None
    return _on_device(ctx, np.asarray(values, dtype=dtype))


@op("kernel", family="source", inputs="none")
def kernel(ctx: Context, *, kind: Literal["gaussian", "box", "disk"], size: int,
           sigma: float | None = None, ndim: int = 2, dtype: str = "float64"):
    """A normalised filter kernel (its weights sum to 1) for ``convolve``.

    ``size`` points per axis, centred. ``gaussian``: ``exp(-x**2 / (2 sigma**2))`` on the
    grid -(size-1)/2 .. (size-1)/2 per axis (the kernel of
    ``scipy.ndimage.gaussian_filter`` with ``truncate = (size-1)/2 / sigma``); ``box``:
    equal weights; ``disk``: equal weights where ``|x| <= (size-1)/2`` (defocus blur).

    ```yaml
    - id: blur_kernel
      op: kernel
      kind: gaussian        # gaussian | box | disk
      size: 61              # points per axis; odd for a centred gaussian / disk
      sigma: 10.0           # gaussian only
      ndim: 2               # 1 for a separable pass along one axis
    ```
    """
    _check_dtype(dtype)
    if size < 1:
        raise OpError(f"size must be >= 1, got {size}", where="size")
    if ndim < 1:
        raise OpError(f"ndim must be >= 1, got {ndim}", where="ndim")
    if (sigma is None) == (kind == "gaussian"):
        raise OpError("sigma is required by kind gaussian" if sigma is None else
                      f"sigma does not apply to kind {kind}", where="sigma")
    if sigma is not None and not sigma > 0:
        raise OpError(f"sigma must be > 0, got {sigma}", where="sigma")
    if size ** ndim > 1 << 24:
        raise OpError(f"a {size}^{ndim} kernel is too large", where="size",
                      hint="at most 16 M weights; use separable 1-D passes")
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    if kind == "gaussian":
        g = np.exp(-0.5 * (x / sigma) ** 2)
        g /= g.sum()
        values = g
        for _ in range(ndim - 1):
            values = np.multiply.outer(values, g)
    elif kind == "box":
        values = np.full((size,) * ndim, 1.0 / size ** ndim)
    else:
        grid = np.meshgrid(*([x] * ndim), indexing="ij")
        inside = sum(g * g for g in grid) <= ((size - 1) / 2) ** 2
        values = inside / inside.sum()
    return _on_device(ctx, np.asarray(values, dtype=dtype))


@op("segments", family="array")
def segments(ctx: Context, x, *, nperseg: int, noverlap: int | None = None, axis: int = -1):
    """Cut an axis into overlapping segments of ``nperseg`` samples, as Welch's method does.

    The axis of ``n`` samples becomes two: the segment index (``(n - noverlap) //
    (nperseg - noverlap)`` segments, a short tail is dropped, as ``scipy.signal.welch``
    does) and, right after it, the ``nperseg`` samples of each segment. A (channels,
    samples) input gives (channels, segments, nperseg). The axis is made one chunk.

    ```yaml
    - id: frames
      op: segments
      input: signal
      nperseg: 1024
      noverlap: 512         # default nperseg // 2
      axis: -1
    ```
    """
    ax = _axis(x, axis)
    n = x.shape[ax]
    if not 1 <= nperseg <= n:
        raise OpError(f"nperseg must be in 1..{n} (the axis length), got {nperseg}",
                      where="nperseg")
    noverlap = nperseg // 2 if noverlap is None else noverlap
    if not 0 <= noverlap < nperseg:
        raise OpError(f"noverlap must be in 0..{nperseg - 1}, got {noverlap}",
                      where="noverlap")
    step = nperseg - noverlap
    nseg = (n - noverlap) // step
    x = _whole_along(x, [ax])
    chunks = x.chunks[:ax] + ((nseg,), (nperseg,)) + x.chunks[ax + 1:]
    return x.map_blocks(_block_segments, nperseg, step, nseg, ax, chunks=chunks,
                        new_axis=ax + 1, dtype=x.dtype,
                        meta=ctx.backend.meta(x.ndim + 1, x.dtype))


def _block_segments(block, nperseg, step, nseg, axis):
    xp = importlib.import_module(type(block).__module__.split(".")[0])
    view = xp.lib.stride_tricks.sliding_window_view(block, nperseg, axis=axis)
    # the window axis comes last: move it right after the segment axis, keep every step-th
    view = xp.moveaxis(view, -1, axis + 1)
    index = (slice(None),) * axis + (slice(0, (nseg - 1) * step + 1, step),)
    return xp.ascontiguousarray(view[index])
