"""Cluster memory over the run, sampled from the scheduler, for per-stage peaks.

Workers report their process memory (and, where pynvml sees a GPU, the device memory in
use) with every heartbeat; a background thread reads those figures from the scheduler a
few times a second. A stage's peak is the largest total seen between its first task's
start and its last task's end, including the samples just before and just after, since
heartbeats come about once a second and a short stage may fall between two. It is the
whole cluster's memory, so stages running at the same time (all the stages of a fused
chain do) share it: an upper bound for each, not what the stage alone held.
"""

from __future__ import annotations

import bisect
import threading

INTERVAL_S = 0.2


def _sample(dask_scheduler) -> tuple[float, int, int | None]:
    from time import time

    host, device, any_gpu = 0, 0, False
    for ws in dask_scheduler.workers.values():
        host += ws.memory.process
        used = ws.metrics.get("gpu_memory_used")
        if used is not None:
            device += used
            any_gpu = True
    return time(), host, device if any_gpu else None


class MemorySampler:
    """Context manager sampling total worker memory until it exits. ``device``: whether
    the run's chunks live on GPUs. A worker's "GPU memory used" is its whole device's, as
    NVML reports it, so it counts only then: a CPU run's 16 workers on an H200 summed the
    same 0.6 GB sixteen times. (On GPUs, one worker per device is assumed, as
    LocalCUDACluster starts them.)"""

    def __init__(self, client, device: bool, interval: float = INTERVAL_S):
        self.client, self.device, self.interval = client, device, interval
        self.samples: list[tuple[float, int, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="pipeline-memory-sampler")

    def __enter__(self) -> MemorySampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._take()

    def _take(self) -> None:
        try:
            when, host, device = self.client.run_on_scheduler(_sample)
            self.samples.append((when, host, device if self.device else None))
        except OSError:  # the scheduler went away; the run itself reports that
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def peaks(self, start: float | None, stop: float | None) -> dict:
        """``{"peak_host_bytes", "peak_device_bytes"}`` over [start, stop], widened to the
        neighbouring samples; None where nothing is known."""
        if not self.samples or start is None or stop is None:
            return {"peak_host_bytes": None, "peak_device_bytes": None}
        times = [s[0] for s in self.samples]
        lo = max(bisect.bisect_left(times, start) - 1, 0)
        hi = min(bisect.bisect_right(times, stop) + 1, len(self.samples))
        window = self.samples[lo:hi]
        devices = [s[2] for s in window if s[2] is not None]
        return {"peak_host_bytes": max(s[1] for s in window),
                "peak_device_bytes": max(devices) if devices else None}
