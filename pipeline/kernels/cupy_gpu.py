"""The expression as one CUDA kernel per chunk (GPU), through ``cupy.fuse``.

Everything element-wise on a GPU is memory-bound: each CuPy call reads and writes the
whole chunk in device memory, so one kernel that reads each input once and writes the
output once wins whenever the expression has two operations or more. ``cupy.fuse``
traces the same closure tree the interpreted path runs, with CuPy's own ufuncs (so the
results follow CuPy's type rules exactly, as the interpreted path does) and compiles it
into one kernel per input dtypes, cached by CuPy in memory and on disk
(``~/.cupy/kernel_cache``). Every function of the language is fusable in CuPy 13/14:
the ufuncs directly, and ``where``, ``clip``, ``round``, ``real`` and ``imag`` through
CuPy's fusion hooks.

Nothing here runs without a GPU; it has not run on one yet (docs/gpu.md). When tracing
or compiling fails, the chunk is computed by the interpreted path, and that expression
is not tried again in this process.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

# language name -> CuPy attribute (ufuncs, or functions with fusion support)
CUPY_NAMES = {
    "abs": "absolute", "sqrt": "sqrt", "exp": "exp", "log": "log", "log1p": "log1p",
    "sin": "sin", "cos": "cos", "tan": "tan", "arctan2": "arctan2", "real": "real",
    "imag": "imag", "conj": "conjugate", "angle": "angle", "maximum": "maximum",
    "minimum": "minimum", "where": "where", "clip": "clip", "floor": "floor",
    "ceil": "ceil", "round": "around", "isnan": "isnan", "isfinite": "isfinite",
}

_FUSED: dict[tuple, object] = {}
_FAILED: set[tuple] = set()
_LOCK = threading.Lock()


def functions(cupy) -> dict:
    """The expression language's functions on CuPy arrays (those this CuPy has)."""
    return {name: getattr(cupy, attr) for name, attr in CUPY_NAMES.items()
            if hasattr(cupy, attr)}


def is_cupy(chunk) -> bool:
    """A CuPy array (tested by type, so CuPy is not imported to ask)."""
    return type(chunk).__module__.split(".")[0] == "cupy"


def evaluate(parsed, names: tuple[str, ...], params: dict, chunks: list):
    """``parsed`` over CuPy ``chunks`` (in the order of ``names``) as one fused kernel."""
    import cupy

    fns = functions(cupy)
    key = (parsed.text, names, tuple(sorted(params.items())))

    def body(*arrays):
        return parsed(fns, {**params, **dict(zip(names, arrays))})

    with _LOCK:
        fused = _FUSED.get(key)
        failed = key in _FAILED
    if not failed:
        try:
            if fused is None:
                fused = cupy.fuse(kernel_name="pipeline_expr")(body)
                with _LOCK:
                    _FUSED[key] = fused
            return fused(*chunks)
        except MemoryError:  # CuPy's OutOfMemoryError: not a fusion problem
            raise
        except Exception as e:  # noqa: BLE001 - CuPy cannot fuse it: compute it unfused
            log.warning("cupy.fuse failed for %r (%s: %s); using one CuPy call per "
                        "operation", parsed.text, type(e).__name__, e)
            with _LOCK:
                _FUSED.pop(key, None)
                _FAILED.add(key)
    return parsed(fns, {**params, **dict(zip(names, chunks))})
