"""``convolve``: N-d convolution across chunk boundaries, equal to scipy.signal.convolve.

Every mode is reduced to a *valid* convolution of a zero-padded input: ``full`` pads
``m-1`` on both sides of each axis, ``same`` pads so the result is the centre of ``full``
(as SciPy does), ``valid`` pads nothing. Each chunk then borrows ``m-1`` elements from its
right-hand neighbour (``map_overlap``) and its valid convolution is exactly its share of
the output, so the result does not depend on the chunking.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Literal

import dask
import dask.array as da
import numpy as np

from pipeline.errors import OpError
from pipeline.ops.array_io import _to_device
from pipeline.ops.context import Context
from pipeline.ops.registry import op


@op("convolve", family="array", stage_refs=("kernel",))
def convolve(ctx: Context, x, *, kernel: list, mode: Literal["full", "same", "valid"] = "full",
             method: Literal["auto", "fft", "direct"] = "auto", axes: list[int] | None = None):
    """Convolve with a kernel (inline nested list, or the id of a stage that makes it).

    Equals ``scipy.signal.convolve(x, kernel, mode, method)``; with ``axes``, the kernel
    has one dimension per listed axis and the other axes are convolved with size 1.

    ```yaml
    - id: blurred
      op: convolve
      input: images
      kernel: [[1, 2, 1], [2, 4, 2], [1, 2, 1]]   # or a stage id
      mode: same            # full (default) | same | valid
      method: auto          # auto | fft | direct (per chunk)
      axes: [-2, -1]        # optional
    ```
    """
    k = kernel if isinstance(kernel, da.Array) else _inline_kernel(kernel)
    if axes is not None:
        ax = [a % x.ndim if -x.ndim <= a < x.ndim else None for a in axes]
        if None in ax or len(set(ax)) != len(ax):
            raise OpError(f"bad axes {axes} for a {x.ndim}-d input", where="axes")
        if k.ndim != len(ax):
            raise OpError(f"kernel has {k.ndim} dimension(s) but axes lists {len(ax)}",
                          where="kernel")
        kernel_shape = k.shape
        # kernel axis i runs along axes[i]: order the kernel's axes as the input's before
        # inserting the size-1 axes (a bare reshape scrambles it when axes are not sorted)
        order = sorted(range(len(ax)), key=ax.__getitem__)
        k = k.transpose(order)
        shape = [1] * x.ndim
        for i in order:
            shape[ax[i]] = kernel_shape[i]
        k = k.reshape(shape)
    elif k.ndim != x.ndim:
        raise OpError(f"kernel has {k.ndim} dimension(s), input has {x.ndim}",
                      where="kernel", hint="give 'axes' to convolve along some axes only")
    m = k.shape
    if any(n == 0 for n in m) or 0 in x.shape:
        raise OpError("kernel and input must not be empty", where="kernel")
    if mode == "valid" and any(kn > xn for kn, xn in zip(m, x.shape)):
        if not all(kn >= xn for kn, xn in zip(m, x.shape)):
            raise OpError(f"mode valid needs the kernel no larger than the input in every "
                          f"dimension, or no smaller: kernel {tuple(m)}, input {x.shape}",
                          where="mode")
        # scipy swaps the operands when the kernel is the larger in every dimension
        # (convolution commutes): the kernel becomes the chunked input, the input the kernel
        if not isinstance(k, da.Array):
            k = _to_device(ctx, da.from_array(k, chunks=-1))
        x, k = k, x
        m = k.shape
    pad = [_pad(n, mode) for n in m]
    if any(p != (0, 0) for p in pad):
        x = da.pad(x, pad, mode="constant")
    # each chunk at least as long as the kernel, so every chunk yields some output
    x = x.rechunk(tuple(_min_chunks(c, n) for c, n in zip(x.chunks, m)))
    out_chunks = tuple(c[:-1] + (c[-1] - (n - 1),) for c, n in zip(x.chunks, m))
    if isinstance(k, da.Array):
        # the whole kernel as one Delayed with a plain key: the tuple-keyed Delayed of
        # ``to_delayed()`` passed as a map_blocks keyword is not recorded as a dependency
        # (dask culls it: "Missing dependency ('rechunk-merge-...', 0)" at compute time)
        k_arg = dask.delayed(k)
    else:
        k_arg = k
    dtype = np.result_type(x.dtype, k.dtype)
    return da.map_overlap(_block_valid, x, depth={i: (0, n - 1) for i, n in enumerate(m)},
                          boundary="none", trim=False, allow_rechunk=False, dtype=dtype,
                          chunks=out_chunks, kernel=k_arg, method=method,
                          backend=ctx.backend, meta=ctx.backend.meta(x.ndim, dtype))


def _inline_kernel(kernel) -> np.ndarray:
    try:
        k = np.asarray(kernel)
    except ValueError:
        raise OpError("kernel rows must all have the same length", where="kernel") from None
    if k.dtype.kind not in "iufc":
        raise OpError("kernel must be a nested list of numbers", where="kernel")
    return k.astype(np.result_type(k.dtype, np.float64))


def _pad(m: int, mode: str) -> tuple[int, int]:
    if mode == "full":
        return (m - 1, m - 1)
    if mode == "same":  # scipy's 'same' is full[(m-1)//2 : (m-1)//2 + n]
        start = (m - 1) // 2
        return (m - 1 - start, start)
    return (0, 0)


def _min_chunks(chunks: tuple[int, ...], need: int) -> tuple[int, ...]:
    """Merge neighbouring chunks until each is at least ``need`` long."""
    if min(chunks) >= need:
        return chunks
    out: list[int] = []
    acc = 0
    for c in chunks:
        acc += c
        if acc >= need:
            out.append(acc)
            acc = 0
    if acc:
        if out:
            out[-1] += acc
        else:
            out.append(acc)
    return tuple(out)


@functools.cache
def _signal_module(name: str):
    """``scipy.signal`` or ``cupyx.scipy.signal``. Importing the latter (CuPy 14) builds
    kernels with ``cupyx.jit.rawkernel``, which warns that it is experimental: noise in
    every GPU worker's log (and an error under ``-W error``), seen on an H200."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="cupyx.jit.rawkernel is experimental",
                                category=FutureWarning)
        return importlib.import_module(name)


def _block_valid(block, kernel, method, backend):
    xp = backend.xp
    scipy_signal = _signal_module(
        "scipy.signal" if xp.__name__ == "numpy" else "cupyx.scipy.signal")
    if not isinstance(kernel, type(block)):
        kernel = backend.to_device(kernel)
    # (kernel.ndim differs when Dask infers the output's meta with a Delayed kernel)
    if xp.__name__ == "numpy" and kernel.ndim == block.ndim and (
            method == "direct" or method == "auto" and
            scipy_signal.choose_conv_method(block, kernel, "valid") == "direct"):
        # SciPy's direct N-d convolution (``_correlateND``) is a generic loop: on a 2-D
        # image chunk with a 5x5 kernel it is ~6x slower than the same sum done as one
        # vectorised multiply-add per kernel weight, which gives the same numbers
        return _shift_add(block, kernel)
    if xp.__name__ != "numpy" and method == "auto" and block.ndim > 1:
        # cupyx.scipy.signal chooses a method for 1-d inputs only (NotImplementedError
        # on others, seen on an H200): its 1-d rule, integers direct and the rest by FFT
        method = "direct" if block.dtype.kind in "bui" or kernel.dtype.kind in "bui" \
            else "fft"
    return scipy_signal.convolve(block, kernel, mode="valid", method=method)


def _shift_add(block, kernel):
    """'valid' convolution as a sum of shifted copies of ``block``, one per weight."""
    out_shape = tuple(n - m + 1 for n, m in zip(block.shape, kernel.shape))
    out = np.zeros(out_shape, dtype=np.result_type(block.dtype, kernel.dtype))
    flipped = kernel[(slice(None, None, -1),) * kernel.ndim]
    for offset in np.ndindex(*kernel.shape):
        window = tuple(slice(o, o + n) for o, n in zip(offset, out_shape))
        out += flipped[offset] * block[window]
    return out


