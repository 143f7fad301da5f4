"""The expression over a NumPy chunk in cache-sized blocks: the interpreted path's ufunc
calls, made on slices small enough that every temporary stays in the CPU's cache.

NumPy evaluates ``2*x + 3*y*y - 1.5*x*y + 0.5`` as nine calls, each reading and writing a
whole chunk (a 64 MiB chunk makes nine 64 MiB temporaries): the work is memory-bound. The
same calls on 64 KiB slices keep the temporaries in L2 and touch main memory once per
input and once for the output. The results are bit-identical to the interpreted path
(the same ufuncs on the same values, element by element); no compiler is involved.
"""

from __future__ import annotations

import numpy as np

# The expression language's functions on NumPy arrays (what dask.array's calls do per chunk)
NUMPY_FUNCTIONS = {
    "abs": np.absolute, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log1p": np.log1p,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "arctan2": np.arctan2, "real": np.real,
    "imag": np.imag, "conj": np.conj, "angle": np.angle, "maximum": np.maximum,
    "minimum": np.minimum, "where": np.where, "clip": np.clip, "floor": np.floor,
    "ceil": np.ceil, "round": np.round, "isnan": np.isnan, "isfinite": np.isfinite,
}

# Bytes of the widest operand per block: 64 KiB (16384 float32) measured fastest on a
# 64 MiB chunk (docs/benchmarks.md, "Element-wise engines"); 4 KiB pays Python's call
# overhead, 256 KiB spills L2.
BLOCK_BYTES = 64 * 1024


def evaluate(parsed, arrays: dict, params: dict, out_dtype, block_bytes: int = BLOCK_BYTES):
    """``parsed`` over ``arrays`` (name -> ndarray, broadcast together) and ``params``
    (name -> Python number), block by block, into a new array of ``out_dtype``."""
    names = list(arrays)
    views = np.broadcast_arrays(*arrays.values())
    shape = views[0].shape
    out = np.empty(shape, dtype=out_dtype)
    if out.size == 0 or out.ndim == 0:
        out[...] = parsed(NUMPY_FUNCTIONS, {**params, **arrays})
        return out
    widest = max([out.itemsize, *(v.itemsize for v in views)])
    per_block = max(1, block_bytes // widest)
    if all(v.flags.c_contiguous for v in views):
        views, target = [v.reshape(-1) for v in views], out.reshape(-1)
        step = per_block
    else:  # a broadcast or strided input: blocks of whole rows (axis 0) instead
        views, target = list(views), out
        step = max(1, per_block // (out.size // shape[0]))
    with np.errstate(all="ignore"):  # as the interpreted path, values (inf, NaN) not errors
        for start in range(0, target.shape[0], step):
            part = slice(start, start + step)
            target[part] = parsed(NUMPY_FUNCTIONS,
                                  {**params, **{n: v[part] for n, v in zip(names, views)}})
    return out
