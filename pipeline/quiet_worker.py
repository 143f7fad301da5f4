"""A worker preload for the local clusters the pipeline starts: Ctrl-C is the client's.

Ctrl-C in a terminal sends SIGINT to the whole process group, so every worker process
of a local cluster would get it too and print its own ``KeyboardInterrupt`` traceback.
The interrupted client stops its workers itself, so they ignore SIGINT. Dask calls
:func:`dask_setup` in each worker process's main thread as the worker starts.
"""

from __future__ import annotations

import signal


def dask_setup(worker) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
