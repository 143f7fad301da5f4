"""Stand-in for ``cupy.lib`` (see cupy._core)."""

from cupy._core import resolve
from cupy.lib import stride_tricks  # noqa: F401 - as CuPy's cupy.lib imports it


def __getattr__(name):
    return resolve(globals(), name, {})
