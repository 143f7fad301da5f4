"""Compiled element-wise expressions: one pass over each chunk instead of one NumPy /
CuPy call and one chunk-sized temporary per operation.

:func:`elementwise` turns a parsed expression over Dask arrays into one blockwise layer
whose task function (:class:`~pipeline.kernels.chunk.ExprKernel`) computes the whole
expression per chunk: on the GPU as one fused CuPy kernel; on the CPU with the engine
:mod:`pipeline.kernels.choose` predicts fastest from the measurements in
:mod:`pipeline.kernels.costs`: NumPy in cache-sized blocks, or a numba loop (numba is
optional: ``pip install ".[numba]"``). Results equal the interpreted path's: bit for bit
on the blocked path, to rounding (transcendental functions' last bit) on compiled ones.
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np

from pipeline.kernels.blocked import NUMPY_FUNCTIONS
from pipeline.kernels.choose import Choice, operations, pick
from pipeline.kernels.chunk import ExprKernel
from pipeline.kernels import numba_cpu

__all__ = ["Choice", "ExprKernel", "elementwise", "plan"]


def plan(parsed, arrays: dict, params: dict, shape: tuple, *, gpu: bool = False,
         workers: int | None = None) -> tuple[ExprKernel | None, Choice]:
    """The kernel for ``parsed`` over ``arrays`` (name -> an array-like with ``dtype``)
    and ``params`` giving a result of ``shape``, or None where the interpreted path is
    as fast.

    ``workers``: how many processes share the elements (default: this host's cores)."""
    samples = {n: np.ones(1, a.dtype) for n, a in arrays.items()}
    with np.errstate(all="ignore"):
        sample = parsed(NUMPY_FUNCTIONS, {**params, **samples})
    kinds = operations(parsed.tree)
    elements = math.prod(int(s) for s in shape if s == s)  # NaN: a length not known yet
    dtype = np.result_type(*(a.dtype for a in arrays.values())).name
    src, why_not = None, None
    if importlib.util.find_spec("numba") is None:
        why_not = "not installed"
    else:
        try:
            src = numba_cpu.source(parsed, {n: a.dtype.name for n, a in arrays.items()},
                                   params)
        except numba_cpu.Ineligible as e:
            why_not = str(e)
    choice = pick(kinds, dtype, elements, workers or os.cpu_count() or 1, why_not)
    if gpu and len(kinds) >= 2 and choice.engine == "numpy":
        choice = Choice("blocked", "GPU: one fused kernel (CPU chunks: blocked)",
                        choice.predicted_s)
    if choice.engine == "numpy":
        return None, choice
    kernel = ExprKernel(text=parsed.text, names=tuple(arrays),
                        params=tuple(sorted(params.items())),
                        out_dtype=np.asarray(sample).dtype.name, engine=choice.engine,
                        numba_source=src if choice.engine == "numba" else None)
    return kernel, choice


def elementwise(parsed, inputs: dict, params: dict, shape: tuple, *, gpu: bool = False):
    """``parsed`` over the Dask arrays ``inputs`` (giving a result of ``shape``) as one
    blockwise layer running a compiled kernel per chunk, or None where the interpreted
    path is as fast."""
    from dask.array.core import elemwise

    arrays = {n: inputs[n] for n in inputs if n in parsed.names}
    used = {n: v for n, v in params.items() if n in parsed.names}
    if not arrays:
        return None
    kernel, _ = plan(parsed, arrays, used, shape, gpu=gpu)
    if kernel is None:
        return None
    return elemwise(kernel, *arrays.values(), dtype=np.dtype(kernel.out_dtype))
