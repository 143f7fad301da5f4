"""The stand-in's machinery: a device array over NumPy, and strict wrappers of NumPy /
SciPy functions under CuPy's names.

Strict where CuPy is strict (read from CuPy 14's sources, ``cupy/_core/core.pyx`` and
``_kernel.pyx``):

- ``np.asarray(x)`` / ``np.array(x)`` on a device array raise ``TypeError``
  (``ndarray.__array__``): ``.get()``, ``cupy.asnumpy`` and the explicit scalar
  conversions (``float(x)``, ``x.item()``, ``x.tolist()``) are the only ways to the host.
- A host (NumPy) array given to a CuPy function or ufunc raises ``TypeError:
  Unsupported type <class 'numpy.ndarray'>``, even a 0-d one (kernels take only device
  arrays and Python / NumPy scalars). Lists and tuples of numbers are refused by ufuncs
  too. The exceptions are CuPy's own host-to-device entry points (``array``,
  ``asarray``, ``ndarray.set``, indexing) and the parameters listed in
  :data:`HOST_OK`, which CuPy converts itself (each with its source).
- NumPy functions applied to device arrays dispatch (``__array_function__`` /
  ``__array_ufunc__``) to the CuPy function of the same name, or fail when CuPy has none.
- Names and keywords are CuPy's: only what ``_catalog.json`` (made from the real wheel by
  ``tests/cupy_standin/catalog.py``) lists exists, and a keyword CuPy's signature lacks
  is a ``TypeError``.
- Reductions return 0-d device arrays, not host scalars.
- No floating-point warnings (invalid value, overflow, divide by zero): a GPU raises no
  such flags, so CuPy never warns where NumPy does.

Not emulated: asynchrony (every "kernel" is done when it returns), memory pools, and the
CUDA C kernels (``ElementwiseKernel``, ``RawKernel``): those raise ``NotImplementedError``.
"""

from __future__ import annotations

import functools
import importlib
import json
import operator
from pathlib import Path

import numpy

CATALOG = json.loads((Path(__file__).with_name("_catalog.json")).read_text())
# Where each CuPy module's functions come from here.
COUNTERPARTS = {
    "cupy": "numpy", "cupy.fft": "numpy.fft", "cupy.linalg": "numpy.linalg",
    "cupy.random": "numpy.random", "cupy.lib.stride_tricks": "numpy.lib.stride_tricks",
    "cupyx.scipy.signal": "scipy.signal", "cupyx.scipy.special": "scipy.special",
    "cupyx.scipy.linalg": "scipy.linalg", "cupyx.scipy.fft": "scipy.fft",
}
# Parameters that CuPy itself converts from host data (name -> parameters, or "*": all):
HOST_OK = {
    # creation from host data is what these are for
    "cupy.array": "*", "cupy.asarray": "*", "cupy.asanyarray": "*", "cupy.asnumpy": "*",
    "cupy.get_array_module": "*",
    # type and shape queries read only metadata
    "cupy.shape": "*", "cupy.ndim": "*", "cupy.size": "*", "cupy.result_type": "*",
    "cupy.can_cast": "*", "cupy.iscomplexobj": "*", "cupy.isrealobj": "*",
    "cupy.isscalar": "*", "cupy.min_scalar_type": "*",
    # _statistics/histogram.py: _get_bin_edges converts `bins` with numpy.asarray
    "cupy.histogram": ("bins",),
    # _statistics/order.py: _quantile_unchecked runs cupy.asarray(q)
    "cupy.quantile": ("q",), "cupy.percentile": ("q",),
    "cupy.nanquantile": ("q",), "cupy.nanpercentile": ("q",),
    # _routines_indexing.pyx: _take converts `indices` with core.array
    "cupy.take": ("indices",), "ndarray.take": ("indices",),
}
COMPARISONS = {"greater", "greater_equal", "less", "less_equal", "equal", "not_equal"}
SCALARS = (bool, int, float, complex, numpy.generic)


def unsupported(value, where: str) -> TypeError:
    return TypeError(f"{where}: Unsupported type {type(value)} (the CuPy stand-in refuses "
                     "host data where CuPy does: copy it with cupy.asarray first)")


class ndarray:
    """A device array: a NumPy array that will not be converted implicitly."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the CuPy stand-in has no device pointers (memptr)")
        self._a = numpy.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a: numpy.ndarray) -> "ndarray":
        out = cls.__new__(cls)
        out._a = a
        return out

    # -- metadata ------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))
    base = property(lambda self: None if self._a.base is None else ndarray._of(self._a.base))

    @property
    def device(self):
        from cupy import cuda

        return cuda.Device(0)

    @property
    def real(self):
        return ndarray._of(self._a.real)

    @real.setter
    def real(self, value):
        self._a.real = _device_value(value, "ndarray.real")

    @property
    def imag(self):
        return ndarray._of(self._a.imag)

    @imag.setter
    def imag(self, value):
        self._a.imag = _device_value(value, "ndarray.imag")

    # -- host <-> device: explicit only ------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None, blocking=True):
        if out is not None:
            if not isinstance(out, numpy.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            if out.dtype != self.dtype:
                raise TypeError(f"{out.dtype} array cannot be obtained from "
                                f"{self.dtype} array")
            if out.shape != self.shape:
                raise ValueError(f"Shape mismatch. Expected shape: {self.shape}, "
                                 f"actual shape: {out.shape}")
            out[...] = self._a
            return out
        return numpy.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, numpy.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: "
                             f"{arr.shape}")
        self._a[...] = arr

    def item(self, *args):
        return self._a.item(*args)

    def tolist(self):
        return self._a.tolist()

    def __bool__(self):
        return bool(self._a)

    def __int__(self):
        return int(self._a)

    def __float__(self):
        return float(self._a)

    def __complex__(self):
        return complex(self._a)

    def __index__(self):
        return operator.index(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray._of(row) for row in self._a)

    def __repr__(self):
        return repr(self._a).replace("array(", "array(", 1)

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    def __reduce__(self):  # as CuPy's: a host copy travels, an array is rebuilt from it
        from cupy import array

        return array, (self.get(),)

    def __copy__(self):
        return ndarray._of(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._of(self._a.copy())

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()

    # -- indexing (CuPy converts host index arrays and values itself) -------------------
    def __getitem__(self, index):
        return _to_device(self._a[_unwrap_index(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap_index(index)] = value._a if isinstance(value, ndarray) else value

    # -- NumPy protocols ----------------------------------------------------------------
    def __array_ufunc__(self, ufunc_, method, *inputs, **kwargs):
        import cupy

        fn = getattr(cupy, ufunc_.__name__, None)
        if not isinstance(fn, ufunc):
            return NotImplemented
        out = kwargs.get("out")
        if out is not None:
            if len(out) != 1:
                raise ValueError("The 'out' parameter must have exactly one array value")
            kwargs["out"] = out[0]
        for x in (*inputs, *(out or ())):
            if not isinstance(x, (*SCALARS, ndarray, numpy.ndarray)):
                return NotImplemented
        if ufunc_.__name__ in COMPARISONS:  # CuPy's workaround for numpy/numpy#12142
            inputs = tuple(x.item() if isinstance(x, numpy.ndarray) and x.ndim == 0 else x
                           for x in inputs)
        if method != "__call__":
            fn = getattr(fn, method, None)
            if fn is None:
                return NotImplemented
        return fn(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        module = func.__module__.replace("numpy", "cupy", 1)
        try:
            fn = getattr(importlib.import_module(module), func.__name__)
        except (ImportError, AttributeError):
            return NotImplemented
        if not all(issubclass(t, (ndarray, numpy.ndarray)) for t in types):
            return NotImplemented
        return fn(*args, **kwargs)

    # -- everything else: CuPy's method names, NumPy's methods, strict arguments --------
    def __getattr__(self, name):
        info = CATALOG["ndarray"].get(name)
        if info is None or name.startswith("_"):
            raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")
        value = getattr(self._a, name)
        if not callable(value):
            return _to_device(value)
        return _strict(f"ndarray.{name}", value, info)


def _binary(dunder: str, name: str, reflected: bool = False, inplace: bool = False):
    def method(self, other):
        import cupy

        if not isinstance(other, (*SCALARS, ndarray)):
            if isinstance(other, numpy.ndarray):
                raise unsupported(other, f"ndarray.{dunder}")
            return NotImplemented
        fn = getattr(cupy, name)
        if inplace:
            return fn(self, other, out=self)
        return fn(other, self) if reflected else fn(self, other)

    return method


for _op, _fn in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                 ("truediv", "true_divide"), ("floordiv", "floor_divide"),
                 ("mod", "remainder"), ("pow", "power"), ("and", "bitwise_and"),
                 ("or", "bitwise_or"), ("xor", "bitwise_xor"), ("lshift", "left_shift"),
                 ("rshift", "right_shift"), ("matmul", "matmul")]:
    setattr(ndarray, f"__{_op}__", _binary(f"__{_op}__", _fn))
    setattr(ndarray, f"__r{_op}__", _binary(f"__r{_op}__", _fn, reflected=True))
    setattr(ndarray, f"__i{_op}__", _binary(f"__i{_op}__", _fn, inplace=True))
for _op, _fn in [("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                 ("ge", "greater_equal"), ("eq", "equal"), ("ne", "not_equal")]:
    setattr(ndarray, f"__{_op}__", _binary(f"__{_op}__", _fn))
for _op, _fn in [("neg", "negative"), ("pos", "positive"), ("abs", "absolute"),
                 ("invert", "invert")]:
    setattr(ndarray, f"__{_op}__", lambda self, _f=_fn: getattr(__import__("cupy"), _f)(self))
ndarray.__divmod__ = lambda self, other: (self // other, self % other)


class ufunc:
    """A CuPy ufunc: NumPy's, taking only device arrays and scalars."""

    def __init__(self, name: str, numpy_ufunc):
        self.__name__ = self.name = name
        self._u = numpy_ufunc
        self.nin, self.nout, self.nargs = numpy_ufunc.nin, numpy_ufunc.nout, numpy_ufunc.nargs

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"

    def _call(self, method, args, kwargs):
        where = f"cupy.{self.__name__}"
        host = [_ufunc_arg(a, where) for a in args]
        if "out" in kwargs and kwargs["out"] is not None:
            out = kwargs["out"]
            outs = out if isinstance(out, tuple) else (out,)
            if not all(isinstance(o, ndarray) for o in outs):
                raise TypeError(f"{where}: Output arguments must be cupy.ndarray")
            kwargs = {**kwargs, "out": tuple(o._a for o in outs) if isinstance(out, tuple)
                      else out._a}
        with numpy.errstate(all="ignore"):  # no floating-point flags on a GPU (_strict)
            return _to_device(getattr(self._u, method)(*host, **kwargs))

    def __call__(self, *args, **kwargs):
        return self._call("__call__", args, kwargs)

    def reduce(self, *args, **kwargs):
        return self._call("reduce", args, kwargs)

    def accumulate(self, *args, **kwargs):
        return self._call("accumulate", args, kwargs)

    def outer(self, *args, **kwargs):
        return self._call("outer", args, kwargs)

    def reduceat(self, *args, **kwargs):
        return self._call("reduceat", args, kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise unsupported(a, f"cupy.{self.__name__}.at")
        args = (a._a, _unwrap_index(indices)) + (() if b is None else (_ufunc_arg(b, ""),))
        with numpy.errstate(all="ignore"):
            self._u.at(*args)


def _ufunc_arg(value, where: str):
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, SCALARS):
        return value
    raise unsupported(value, where)


def _device_value(value, where: str):
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, numpy.ndarray):
        raise unsupported(value, where)
    return value


def _unwrap_index(index):
    if isinstance(index, ndarray):
        return index._a
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) for i in index)
    return index


def _to_host_args(value, where: str, host_ok: bool):
    """Device arrays -> their NumPy arrays, recursively; host arrays refused."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, numpy.ndarray) and not host_ok:
        raise unsupported(value, where)
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return type(value)(_to_host_args(v, where, host_ok) for v in value)
    return value


def _to_device(value):
    """NumPy results -> device arrays (NumPy scalars too: CuPy returns 0-d arrays)."""
    if isinstance(value, numpy.ndarray):
        return ndarray._of(value)
    if isinstance(value, numpy.generic):
        return ndarray._of(numpy.asarray(value))
    if type(value) in (list, tuple):
        return type(value)(_to_device(v) for v in value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple (eigh...)
        return type(value)(*(_to_device(v) for v in value))
    return value


def _strict(qualname: str, target, info: dict):
    """``target`` (a NumPy / SciPy callable) behind CuPy's name, keywords and strictness."""
    params, varkw = info.get("params"), info.get("varkw", True)
    host_ok = HOST_OK.get(qualname, ())

    @functools.wraps(target)
    def call(*args, **kwargs):
        if params is not None and not varkw:
            for key in kwargs:
                if key not in params:
                    raise TypeError(f"{qualname}() got an unexpected keyword argument "
                                    f"'{key}' (not in CuPy's signature)")
        named = list(zip(params or (), args)) + [(None, a) for a in args[len(params or ()):]]
        new_args = [_to_host_args(a, qualname, host_ok == "*" or n in host_ok)
                    for n, a in named]
        new_kwargs = {k: _to_host_args(v, qualname, host_ok == "*" or k in host_ok)
                      for k, v in kwargs.items()}
        # A GPU raises no floating-point flags, so CuPy never warns (NumPy does, e.g.
        # casting the NaN an uninitialised `empty` may hold to int): neither does this.
        with numpy.errstate(all="ignore"):
            return _to_device(target(*new_args, **new_kwargs))

    return call


_MISSING = object()


def _missing(qualname: str):
    def call(*args, **kwargs):
        raise NotImplementedError(f"{qualname} exists in CuPy but the CuPy stand-in has no "
                                  "NumPy counterpart for it")

    call.__name__ = qualname.rsplit(".", 1)[-1]
    return call


def resolve(namespace: dict, name: str, own: dict):
    """A stand-in module's ``__getattr__``: ``name`` from ``own`` (hand-written) or NumPy's
    / SciPy's counterpart wrapped strictly, kept in ``namespace``; AttributeError for
    names the real CuPy does not have."""
    value = _lookup(namespace["__name__"], name, own)
    namespace[name] = value
    return value


def _lookup(module: str, name: str, own: dict):
    info = CATALOG["modules"].get(module, {}).get(name)
    if info is None:
        raise AttributeError(f"module '{module}' has no attribute '{name}' (not in CuPy "
                             f"{CATALOG['cupy']})")
    if name in own:
        return own[name]
    qualname = f"{module}.{name}"
    if info["kind"] == "module":
        try:
            return importlib.import_module(qualname)
        except ImportError:
            raise AttributeError(f"the CuPy stand-in does not emulate {qualname}") from None
    counterpart = importlib.import_module(COUNTERPARTS[module]) if module in COUNTERPARTS \
        else None
    target = getattr(counterpart, name, _MISSING)
    if info["kind"] == "ufunc":
        return ufunc(name, target) if isinstance(target, numpy.ufunc) else _missing(qualname)
    if info["kind"] == "function":
        return _strict(qualname, target, info) if callable(target) else _missing(qualname)
    if target is _MISSING:
        if info["kind"] == "class":
            return type(name, (), {"__init__": _missing(qualname),
                                   "__module__": module})
        raise AttributeError(f"the CuPy stand-in does not emulate {qualname}")
    return target  # dtypes, scalar types, constants: NumPy's own
