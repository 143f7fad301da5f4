"""Host->device copies that can overlap with compute on the GPU.

A copy from ordinary (pageable) host memory is staged by the CUDA driver through its own
bounce buffer and holds up the device's default stream while it runs. So each worker
thread keeps one page-locked (pinned) host buffer: the chunk is read into it (for a file
read, this is where the bytes are read), then copied to the device asynchronously on the
thread's own stream. GPU workers run with ``CUPY_CUDA_PER_THREAD_DEFAULT_STREAM=1`` (see
:data:`WORKER_ENV`) and two threads, so while one thread's chunk crosses the bus the other
thread's kernels run.

Only the GPU backend calls this; cupy is imported inside the function, on the worker.
"""

from __future__ import annotations

import threading

# Set on GPU workers before they start, so CuPy gives each worker thread its own default
# stream instead of one stream that serialises every thread's copies and kernels.
WORKER_ENV = {"CUPY_CUDA_PER_THREAD_DEFAULT_STREAM": "1"}

_local = threading.local()


def to_device(chunk):
    """A device copy of the host array ``chunk``, through this thread's pinned buffer."""
    import cupy
    import numpy as np

    staged = _buffer(chunk.nbytes)[:chunk.nbytes].view(chunk.dtype).reshape(chunk.shape)
    np.copyto(staged, chunk)  # a memory-mapped file is read here, straight into pinned memory
    out = cupy.empty(chunk.shape, dtype=chunk.dtype)
    stream = cupy.cuda.get_current_stream()
    out.set(staged, stream=stream)
    stream.synchronize()  # this thread's stream only; the buffer is reused by the next copy
    return out


def _buffer(nbytes: int):
    """This thread's pinned buffer, at least ``nbytes`` long (grown, never shrunk, so a
    worker pins about one chunk per thread)."""
    import cupyx
    import numpy as np

    buf = getattr(_local, "buffer", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _local.buffer = cupyx.empty_pinned((max(nbytes, 1),), dtype=np.uint8)
    return buf
