"""The worker side of per-stage accounting: every task callable runs inside
:class:`Metered`, which records under its stage's label

- its time, as Dask's fine performance metric ``("compute", label)`` (seconds; for a
  CuPy result, until its kernels are done), from
  which Dask subtracts the copies metered inside it, and which Dask subtracts from the
  task's own ``thread-cpu`` / ``thread-noncpu`` (what remains there is Dask's overhead);
- its CPU seconds (``time.thread_time``, copies included), as ``(CPU, label)`` in a unit
  of its own (:data:`CPU_UNIT`), so that no enclosing meter subtracts it (Dask's own
  ``thread-cpu`` loses the metered time, CPU or not, to ``("compute", label)``);
- the host<->device copies made inside it: :class:`pipeline.backends.Backend` labels
  each copy ``(kind, label)``, taking the label from :func:`current_label`;
- the first start and last stop of the stage's callables in this process
  (:func:`take_windows`), which fine metrics cannot carry since they are sums.

A label is the id of the stage's span (unique per run), so a long-lived cluster keeps
each run's figures apart. Fused or not, a task's inner callables each run in their own
``Metered``, so the figures stay exact whatever Dask fuses.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar

from distributed.metrics import context_meter

from pipeline.kernels import cupy_gpu

COMPUTE = "compute"
CPU, CPU_UNIT = "compute-cpu", "cpu-seconds"
# the attribute of a task's exception that names the stage it was raised in
STAGE_ATTR = "pipeline_stage_label"
_current: ContextVar[str | None] = ContextVar("pipeline_stage_label", default=None)
_windows: dict[str, list[float]] = {}
_lock = threading.Lock()


class Metered:
    """``fn`` metered under the stage ``label``; called exactly like ``fn``."""

    __slots__ = ("fn", "label")

    def __init__(self, fn, label: str):
        self.fn, self.label = fn, label

    def __call__(self, *args, **kwargs):
        token = _current.set(self.label)
        start, cpu = time.time(), time.thread_time()
        try:
            with context_meter.meter((COMPUTE, self.label)):
                out = self.fn(*args, **kwargs)
                _wait_for_device(out)
                return out
        except Exception as e:
            _blame(e, self.label)
            raise
        finally:
            context_meter.digest_metric((CPU, self.label), time.thread_time() - cpu, CPU_UNIT)
            _current.reset(token)
            _note(self.label, start, time.time())

    def __reduce__(self):
        return Metered, (self.fn, self.label)

    def __dask_tokenize__(self):
        from dask.tokenize import normalize_token

        return "Metered", normalize_token(self.fn), self.label

    @property
    def __name__(self) -> str:  # what dask.utils.funcname shows (dashboard, errors)
        return getattr(self.fn, "__name__", type(self.fn).__name__)

    def __repr__(self) -> str:
        return f"Metered({self.fn!r}, {self.label!r})"


def _wait_for_device(out) -> None:
    """Wait for the kernels that compute ``out``, a CuPy array, so that the stage's time
    is the GPU's and not only the launches': CuPy returns before its kernels finish, and
    on an H200 a 4 GiB spectrum's stages metered 0.07 s unwaited. Each GPU worker runs one
    thread on one (the legacy default) stream, so the wait delays no other task's work."""
    if cupy_gpu.is_cupy(out):
        out.device.synchronize()


def _blame(error: Exception, label: str) -> None:
    """Name the stage whose code raised ``error`` on it (the innermost meter's, in a fused
    task): it travels to the client with the exception, for :mod:`pipeline.failure`."""
    if getattr(error, STAGE_ATTR, None) is None:
        try:
            setattr(error, STAGE_ATTR, label)
        except (AttributeError, TypeError):  # an exception type without a __dict__
            pass


def current_label() -> str | None:
    """The label of the stage whose callable is running in this thread, if any."""
    return _current.get()


def _note(label: str, start: float, stop: float) -> None:
    with _lock:
        window = _windows.get(label)
        if window is None:
            _windows[label] = [start, stop]
        else:
            window[0], window[1] = min(window[0], start), max(window[1], stop)


def take_windows(labels) -> dict[str, tuple[float, float]]:
    """``{label: (first start, last stop)}`` (``time.time()``) of the given labels' callables
    run in this process, forgotten once taken. Run on every worker (``client.run``)."""
    with _lock:
        return {label: tuple(_windows.pop(label)) for label in labels if label in _windows}
