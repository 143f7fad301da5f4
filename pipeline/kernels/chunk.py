"""The function a compiled expression runs on each chunk, sent to the workers in tasks.

It is a small frozen value (the expression's text, its names, params, output dtype and
engine) that pickles as such; each worker process parses the text once and builds the
kernel on first use. A chunk on the GPU (CuPy) always takes the fused-kernel path; a
NumPy chunk takes the engine chosen at build time, and falls back to the blocked NumPy
path when numba is missing on that worker or the chunk's layout does not suit the
compiled loop (a broadcast or strided input).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline import expr as expr_lang
from pipeline.kernels import blocked, cupy_gpu, numba_cpu

log = logging.getLogger(__name__)
_FAILED: set[str] = set()  # kernels numba could not build in this process: not retried


@lru_cache(maxsize=256)
def _parsed(text: str, names: tuple[str, ...]) -> expr_lang.Expr:
    return expr_lang.parse(text, names)


@dataclass(frozen=True)
class ExprKernel:
    """``kernel(*chunks)``: the expression over one chunk of each input (by ``names``)."""

    text: str
    names: tuple[str, ...]  # the array inputs, in the order the chunks come
    params: tuple[tuple[str, float], ...]
    out_dtype: str
    engine: str  # "blocked" or "numba" (for NumPy chunks)
    numba_source: str | None = None

    @property
    def __name__(self) -> str:  # dask names the tasks after it
        return "expr"

    def __dask_tokenize__(self):
        return ("pipeline.ExprKernel", self.text, self.names, self.params, self.out_dtype,
                self.engine)

    def __call__(self, *chunks):
        params = dict(self.params)
        parsed = _parsed(self.text, self.names + tuple(params))
        if chunks and cupy_gpu.is_cupy(chunks[0]):
            return cupy_gpu.evaluate(parsed, self.names, params, list(chunks),
                                     np.dtype(self.out_dtype))
        if self.engine == "numba":
            out = self._numba(chunks)
            if out is not None:
                return out
        return blocked.evaluate(parsed, dict(zip(self.names, chunks)), params, self.out_dtype)

    def _numba(self, chunks):
        if self.numba_source in _FAILED:
            return None
        try:
            kernel = numba_cpu.compile_kernel(self.numba_source)
            return numba_cpu.evaluate(kernel, list(chunks), self.out_dtype)  # compiles
        except ImportError:
            log.warning("numba is not installed on this worker: %r runs on NumPy", self.text)
        except Exception as e:
            if not type(e).__module__.startswith("numba"):
                raise
            log.warning("numba cannot compile %r (%s: %s); it runs on NumPy", self.text,
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        _FAILED.add(self.numba_source)
        return None
