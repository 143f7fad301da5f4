"""Host->device copies through a page-locked (pinned) buffer.

A copy from ordinary (pageable) host memory is staged by the CUDA driver through its own
bounce buffer, chunk by chunk, at a fraction of the bus's speed. So each worker thread
keeps one pinned host buffer: the chunk is read into it (for a ``.npy`` read, straight
from the file: the chunk arrives here as a view of the memory-mapped file), then copied
to the device with one DMA transfer.

The copy runs on the thread's current CUDA stream, which on the pipeline's GPU workers is
the legacy default stream that all of a worker's device work shares (see
``pipeline.cluster.local_cuda_kwargs``): it is ordered after every kernel queued before
it and before every kernel queued after it, so the data is in place before any task
reads it. The buffer is reused by this thread's next copy, so the copy is waited for
before returning. With several threads per worker, one thread's file read into its
buffer overlaps the other threads' kernels.

Only the GPU backend calls this; cupy is imported inside the functions, on the worker.
"""

from __future__ import annotations

import threading

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
    stream.synchronize()  # the buffer is reused by this thread's next copy
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
