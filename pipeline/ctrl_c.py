"""Ctrl-C: one line and exit 130, from the client alone, whenever it is pressed.

A terminal sends SIGINT to the whole process group: the client, and the worker processes
of a local cluster. The workers leave it to the client, which stops them itself:
:func:`held` blocks SIGINT while they start (a process inherits its parent's blocked
signals, so they never see it), and :func:`dask_setup`, a worker preload, ignores it in
workers started otherwise. In the client, :func:`handled` makes sure the interrupt is not
lost where Python cannot raise it (see there).
"""

from __future__ import annotations

import gc
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
    """SIGINT raises KeyboardInterrupt where Python can raise it, and nowhere else.

    Python cannot raise an exception out of a garbage collector callback (Dask's
    scheduler installs one), a weakref callback or a ``__del__``: it drops it and goes on,
    so a Ctrl-C landing there would be lost and the run would go on. Inside a gc callback
    the interrupt is not raised at all (it would also break the callback: Dask's then
    fails an assertion at every later collection) but owed; one dropped elsewhere reaches
    :func:`sys.unraisablehook`, which owes it too. An owed interrupt is sent again as a
    signal (which also ends a blocking wait) from a helper thread, once the place is left.
    One is owed at a time, and none is sent once the block is left.
    """
    if not _main_thread():
        yield
        return
    main = threading.main_thread().ident
    lock = threading.Lock()
    state = {"owed": False, "hooks": 0, "closed": False}

    def send_later(delay: float) -> None:
        time.sleep(delay)
        while state["hooks"]:  # a signal inside the hook would be dropped again
            time.sleep(0.001)
        with lock:
            if not state["closed"]:
                signal.pthread_kill(main, signal.SIGINT)

    def owe(delay: float) -> None:
        if not state["owed"]:
            state["owed"] = True
            threading.Thread(target=send_later, args=(delay,), daemon=True).start()

    def on_sigint(signum, frame) -> None:
        if _in_gc_callback(frame):
            state["owed"] = False  # this is the owed one, come back too early
            owe(0.01)
            return
        state["owed"] = False
        raise KeyboardInterrupt

    def hook(unraisable) -> None:
        if not issubclass(unraisable.exc_type, KeyboardInterrupt):
            previous_hook(unraisable)
            return
        state["hooks"] += 1
        owe(0)
        state["hooks"] -= 1  # last: Python checks for interrupts at no point after it

    previous_handler = signal.signal(signal.SIGINT, on_sigint)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = hook
    try:
        yield
    finally:
        with lock:
            state["closed"] = True
        sys.unraisablehook = previous_hook
        if previous_handler is not None:  # None: a handler not installed from Python
            signal.signal(signal.SIGINT, previous_handler)


def _in_gc_callback(frame) -> bool:
    codes = {getattr(getattr(cb, "__func__", cb), "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False
