"""Stand-in for ``cupy.cuda``: streams, events and the device, with CuPy's API.

Work is never queued here (every "kernel" has finished when it returns), so a stream
only records what was asked of it: ``_events`` lists ``(what, stream)`` for copies and
synchronisations, for tests that check which stream a copy used and that it was
waited for. The current stream follows CuPy: a thread-local stack of ``with stream:``
blocks over the default stream, which is the per-thread one when
``CUPY_CUDA_PER_THREAD_DEFAULT_STREAM=1`` is set (read at import, as CuPy does).
"""

import os
import threading
import time
import types

from cupy._core import CATALOG, resolve

_local = threading.local()
_events: list = []
_lock = threading.Lock()


def _record(what: str, stream) -> None:
    with _lock:
        _events.append((what, stream))


class Stream:
    null = None  # the legacy default stream, set below
    ptds = None  # the per-thread default stream

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.is_null, self.non_blocking, self.is_ptds = null, non_blocking, ptds
        self.ptr = 0 if null else (2 if ptds else id(self))

    def __repr__(self):
        kind = "null" if self.is_null else "ptds" if self.is_ptds else hex(self.ptr)
        return f"<Stream {kind}>"

    def synchronize(self):
        _record("synchronize", self)

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event):
        _record("wait_event", self)

    @property
    def done(self):
        return True

    def use(self):
        _local.stack = [self]
        return self

    def __enter__(self):
        _stack().append(self)
        return self

    def __exit__(self, *exc):
        _stack().pop()


Stream.null = Stream(null=True)
Stream.ptds = Stream(ptds=True)
_DEFAULT = Stream.ptds if os.environ.get("CUPY_CUDA_PER_THREAD_DEFAULT_STREAM") == "1" \
    else Stream.null


def _stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def get_current_stream(device_id=-1):
    stack = _stack()
    return stack[-1] if stack else _DEFAULT


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.stream = stream or get_current_stream()
        self.time = time.perf_counter()
        _record("record", self.stream)

    def synchronize(self):
        _record("event_synchronize", getattr(self, "stream", None))

    @property
    def done(self):
        return True


def get_elapsed_time(start_event, end_event):
    return (end_event.time - start_event.time) * 1000.0


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError("cudaErrorInvalidDevice: the stand-in has one device, 0")

    def synchronize(self):
        _record("device_synchronize", None)

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    @property
    def compute_capability(self):
        return "90"

    @property
    def mem_info(self):
        import psutil

        vm = psutil.virtual_memory()
        return vm.available, vm.total


def get_device_id():
    return 0


class CUDARuntimeError(RuntimeError):
    pass


# cupy.cuda.runtime: the calls that ask what the device is (zarr's test plugin, for one,
# asks for the device count when it loads)
runtime = types.ModuleType("cupy.cuda.runtime")
runtime.CUDARuntimeError = CUDARuntimeError
runtime.getDeviceCount = lambda: 1
runtime.runtimeGetVersion = runtime.driverGetVersion = lambda: 13000
runtime.getDevice = lambda: 0
runtime.getDeviceProperties = lambda device: {"name": b"CuPy stand-in", "major": 9,
                                              "minor": 0}


def is_available():
    return True


OWN = {"Stream": Stream, "Event": Event, "Device": Device,
       "get_current_stream": get_current_stream, "get_elapsed_time": get_elapsed_time,
       "get_device_id": get_device_id, "is_available": is_available, "runtime": runtime}
assert set(OWN) <= set(CATALOG["modules"]["cupy.cuda"])


def __getattr__(name):
    return resolve(globals(), name, OWN)
