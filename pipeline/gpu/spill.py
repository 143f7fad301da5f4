"""Counting what dask-cuda spills from device to host memory, per stage.

A dask-cuda worker keeps task results in a ``DeviceHostFile``: a zict ``Buffer`` that
moves the least recently used device results to host memory once
``device_memory_limit`` is reached (``device_buffer``), and back when a task needs them.
Dask counts its own host->disk spilling (``disk-write`` / ``disk-read`` metrics);
dask-cuda counts nothing. :class:`SpillMeter` adds callbacks to the device buffer that
record each move with Dask's ``context_meter``: the bytes then reach the scheduler like
any fine performance metric, attributed to the stage of the task whose result was being
stored (or whose input was loaded) when device memory ran short.
"""

from __future__ import annotations

from distributed import WorkerPlugin

# metric label -> report field
LABELS = {"spill-device-to-host": "spilled_bytes", "unspill-host-to-device": "unspilled_bytes"}


class SpillMeter(WorkerPlugin):
    """Registered on every worker of a GPU run; a no-op where the worker's data store
    has no device buffer (CPU workers, ``device_memory_limit: 0``)."""

    name = "pipeline-spill-meter"

    def setup(self, worker) -> None:
        buffer = getattr(worker.data, "device_buffer", None)
        if not hasattr(buffer, "fast_to_slow_callbacks"):
            return
        for callbacks, label in ((buffer.fast_to_slow_callbacks, "spill-device-to-host"),
                                 (buffer.slow_to_fast_callbacks, "unspill-host-to-device")):
            if not any(getattr(c, "spill_label", None) == label for c in callbacks):
                callbacks.append(_meter(label))


def _meter(label: str):
    def callback(key, value) -> None:
        from dask.sizeof import sizeof
        from distributed.metrics import context_meter

        context_meter.digest_metric(label, sizeof(value), "bytes")

    callback.spill_label = label  # registering twice adds nothing
    return callback
