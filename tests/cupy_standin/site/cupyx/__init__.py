"""Stand-in for ``cupyx``: pinned host buffers (NumPy arrays, as CuPy's are) and the
``cupyx.scipy`` submodules (see cupy._core)."""

import numpy

from cupy._core import CATALOG, resolve

# Every pinned buffer handed out, for tests that check buffers are reused.
_pinned: list = []


def empty_pinned(shape, dtype=float, order="C"):
    buf = numpy.empty(shape, dtype=dtype, order=order)
    _pinned.append(buf)
    return buf


def zeros_pinned(shape, dtype=float, order="C"):
    buf = empty_pinned(shape, dtype, order)
    buf[...] = 0
    return buf


def empty_like_pinned(a, dtype=None, order="K", subok=None, shape=None):
    return empty_pinned(a.shape if shape is None else shape, dtype or a.dtype)


def zeros_like_pinned(a, dtype=None, order="K", subok=None, shape=None):
    return zeros_pinned(a.shape if shape is None else shape, dtype or a.dtype)


OWN = {"empty_pinned": empty_pinned, "zeros_pinned": zeros_pinned,
       "empty_like_pinned": empty_like_pinned, "zeros_like_pinned": zeros_like_pinned}
assert set(OWN) <= set(CATALOG["modules"]["cupyx"])


def __getattr__(name):
    return resolve(globals(), name, OWN)
