"""Ctrl-C: one line and exit 130, from the client alone, whenever it is pressed.

A terminal sends SIGINT to the whole process group: the client, and the worker processes
of a local cluster. The workers leave it to the client, which stops them itself:
:func:`held` blocks SIGINT while they start (a process inherits its parent's blocked
signals, so they never see it), and :func:`dask_setup`, a worker preload, ignores it in
workers started otherwise. In the client, :func:`handled` makes sure the interrupt is not
lost where Python cannot raise it (see there).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator


def dask_setup(worker) -> None:
    """Worker preload: ignore SIGINT (called in each worker process's main thread)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def held() -> Iterator[Callable[[], None]]:
    """Hold SIGINT back while local workers start; yields ``release``, which raises an
    interrupt that arrived meanwhile."""
    if not hasattr(signal, "pthread_sigmask") or not _main_thread():
        yield lambda: None
        return
    from multiprocessing import resource_tracker

    # multiprocessing starts its resource tracker with the first worker process and then
    # unblocks SIGINT in the calling thread: start it first, so it does not undo the block
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    try:
        yield release
    finally:
        release()


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt, and raises it again where Python dropped it.

    Python cannot raise an exception out of a garbage collector callback (Dask's
    scheduler installs one), a weakref callback or a ``__del__``: it hands it to
    :func:`sys.unraisablehook` and goes on, so a Ctrl-C landing there would be lost and
    the run would go on. The hook here sends the main thread SIGINT again once the hook
    has returned, which raises at the next line of Python that runs outside such a place
    (or lands in the next such place, and comes back here).
    """
    if not _main_thread():
        yield
        return
    previous_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_hook = sys.unraisablehook
    hooks_running = [0]
    main = threading.main_thread().ident

    def interrupt_after_hook() -> None:
        # interrupting inside the hook would raise there, and Python would drop it again
        while hooks_running[0]:
            time.sleep(0.001)
        # a signal, not _thread.interrupt_main(): it also ends a wait the main thread is
        # blocked in (a lock, a sleep), as the first Ctrl-C did
        signal.pthread_kill(main, signal.SIGINT)

    def hook(unraisable) -> None:
        if not issubclass(unraisable.exc_type, KeyboardInterrupt):
            previous_hook(unraisable)
            return
        hooks_running[0] += 1
        threading.Thread(target=interrupt_after_hook, daemon=True).start()
        hooks_running[0] -= 1  # last: Python checks for interrupts at no point after it

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        if previous_handler is not None:  # None: a handler not installed from Python
            signal.signal(signal.SIGINT, previous_handler)
