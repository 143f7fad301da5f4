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

Two functions differ from NumPy in CuPy itself, and are written here as NumPy defines
them (found on an H200, docs/gpu.md): ``cupy.clip`` ignores NaN bounds and refuses
complex input, where ``np.clip`` is ``minimum(maximum(a, lo), hi)``; ``cupy.angle`` of a
real array is ``0 if x >= 0 else pi`` (0 for -0.0 and NaN), where ``np.angle`` is
``arctan2(imag, real)``. A fused kernel whose result type is not the interpreted path's
(``cupy.fuse`` types Python constants by value, not by NumPy 2's rules) is not used.

When tracing or compiling fails, or the type differs, the chunk is computed by the
interpreted path, and that expression is not tried again in this process.
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
    """The expression language's functions on CuPy arrays (those this CuPy has), with
    NumPy's ``clip`` and ``angle`` (see the module's docstring)."""
    fns = {name: getattr(cupy, attr) for name, attr in CUPY_NAMES.items()
           if hasattr(cupy, attr)}
    fns["clip"] = lambda a, lo, hi: cupy.minimum(cupy.maximum(a, lo), hi)
    fns["angle"] = lambda z: cupy.arctan2(cupy.imag(z), cupy.real(z))
    return fns


def is_cupy(chunk) -> bool:
    """A CuPy array (tested by type, so CuPy is not imported to ask)."""
    return type(chunk).__module__.split(".")[0] == "cupy"


def evaluate(parsed, names: tuple[str, ...], params: dict, chunks: list, out_dtype):
    """``parsed`` over CuPy ``chunks`` (in the order of ``names``) as one fused kernel,
    whose result must be of ``out_dtype`` (the interpreted path's)."""
    import cupy

    fns = functions(cupy)
    key = (parsed.text, names, tuple(sorted(params.items())),
           tuple(c.dtype.str for c in chunks))

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
            out = fused(*chunks)
            if out.dtype == out_dtype:
                return out
            raise TypeError(f"the kernel gives {out.dtype}, the expression {out_dtype}")
        except MemoryError:  # CuPy's OutOfMemoryError: not a fusion problem
            raise
        except Exception as e:  # noqa: BLE001 - CuPy cannot fuse it: compute it unfused
            log.warning("cupy.fuse failed for %r (%s: %s); using one CuPy call per "
                        "operation", parsed.text, type(e).__name__, e)
            with _LOCK:
                _FUSED.pop(key, None)
                _FAILED.add(key)
    return body(*chunks).astype(out_dtype, copy=False)
