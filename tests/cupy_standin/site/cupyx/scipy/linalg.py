"""Stand-in for ``cupyx.scipy.linalg``: SciPy's functions under CuPy's names (see cupy._core)."""

from cupy._core import resolve


def __getattr__(name):
    return resolve(globals(), name, {})
