"""Stand-in for ``cupyx.scipy.signal``: SciPy's functions under CuPy's names (see cupy._core).

Importing the real module (CuPy 14) warns, as importing this one does: it builds kernels
with ``cupyx.jit.rawkernel``, which CuPy marks experimental (seen on an H200)."""

import warnings

from cupy._core import resolve

warnings.warn("cupyx.jit.rawkernel is experimental. The interface can change in the future.",
              FutureWarning, stacklevel=2)


def __getattr__(name):
    return resolve(globals(), name, {})
