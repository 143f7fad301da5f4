"""A strict stand-in for CuPy, for tests on machines without a GPU. Never a backend a user
can pick: it lives under tests/ and is put on ``sys.path`` by the test suite only.

NumPy does the arithmetic; the rules CuPy enforces are enforced here too (see
:mod:`cupy._core`), so code that would fail on a real GPU because it hands host data to
CuPy, converts device data implicitly, or uses a name or keyword CuPy lacks fails here.
"""

import numpy

from cupy import _core
from cupy._core import CATALOG, ndarray, resolve, ufunc

__standin__ = True
__version__ = CATALOG["cupy"]


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    if isinstance(obj, ndarray):
        obj = obj._a
    return ndarray._of(numpy.array(obj, dtype=dtype, copy=bool(copy), order=order,
                                   ndmin=ndmin))


def asarray(a, dtype=None, order=None, blocking=False):
    if isinstance(a, ndarray) and (dtype is None or a.dtype == numpy.dtype(dtype)):
        return a
    if isinstance(a, ndarray):
        return ndarray._of(a._a.astype(dtype))
    return ndarray._of(numpy.array(a, dtype=dtype, order=order or "K"))


def asanyarray(a, dtype=None, order=None, blocking=False):
    return asarray(a, dtype=dtype, order=order, blocking=blocking)


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order, out=out, blocking=blocking)
    if out is not None:
        out[...] = a
        return out
    return numpy.asarray(a, order=order)


def get_array_module(*args):
    import sys

    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


def fuse(*args, **kwargs):
    """``cupy.fuse``: one kernel of the function's element-wise operations; here the
    function itself, run on device arrays (the same arithmetic, unfused)."""
    def wrap(fn):
        return fn

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return wrap


def _clip(a, a_min=None, a_max=None, out=None, **kwargs):
    """CuPy's clip, not NumPy's (seen on an H200): ``fmin(fmax(a, lo), hi)``, so NaN bounds
    are ignored (NumPy's gives NaN), and complex input is refused."""
    if numpy.iscomplexobj(a):
        raise TypeError(f"Wrong type ({numpy.asarray(a).dtype}) of arguments for cupy_clip")
    return numpy.fmin(numpy.fmax(a, a_min), a_max, out=out, **kwargs)


def _angle(z, deg=False):
    """CuPy's angle, not NumPy's (seen on an H200): of a real array, 0 where ``x >= 0``
    and pi elsewhere, so 0 for -0.0 and pi for NaN (NumPy's: pi and NaN)."""
    if numpy.iscomplexobj(z):
        return numpy.angle(z, deg)
    half_turn = 180.0 if deg else numpy.pi
    return numpy.where(z >= 0, 0, half_turn).astype(numpy.angle(z, deg).dtype)


OWN = {"ndarray": ndarray, "ufunc": ufunc, "array": array, "asarray": asarray,
       "asanyarray": asanyarray, "asnumpy": asnumpy, "get_array_module": get_array_module,
       "fuse": fuse,
       "clip": _core._strict("cupy.clip", _clip, CATALOG["modules"]["cupy"]["clip"]),
       "angle": _core._strict("cupy.angle", _angle, CATALOG["modules"]["cupy"]["angle"])}


def __getattr__(name):
    return resolve(globals(), name, OWN)


def _register_with_distributed():
    """Serialise device arrays for Dask's comms as CuPy's "dask" serializer does (device
    -> host frames -> device), and drop distributed's lazy registration for the real
    CuPy, which would reach for CUDA memory pointers."""
    try:
        from distributed.protocol.cuda import cuda_deserialize, cuda_serialize
        from distributed.protocol.serialize import dask_deserialize, dask_serialize
    except ImportError:
        return
    for dispatch in (dask_serialize, dask_deserialize, cuda_serialize, cuda_deserialize):
        dispatch._lazy.pop("cupy", None)
        dispatch._lazy.pop("cupyx", None)

    @dask_serialize.register(ndarray)
    def _serialize(x):
        host = numpy.ascontiguousarray(x.get())
        return {"shape": host.shape, "dtype": host.dtype.str}, [host.view("u1").ravel()]

    @dask_deserialize.register(ndarray)
    def _deserialize(header, frames):
        data = numpy.frombuffer(frames[0], dtype=header["dtype"]).reshape(header["shape"])
        return ndarray._of(data.copy())


_register_with_distributed()
del _core
