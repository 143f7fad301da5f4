"""pipeline/memory.py: per-stage memory peaks from the scheduler's samples."""

from types import SimpleNamespace

import pytest

from pipeline import memory


def scheduler(*workers):
    """A scheduler whose workers report (process bytes, NVML "GPU memory used")."""
    return SimpleNamespace(workers={
        f"w{i}": SimpleNamespace(memory=SimpleNamespace(process=host),
                                 metrics={} if gpu is None else {"gpu_memory_used": gpu})
        for i, (host, gpu) in enumerate(workers)})


class Client:
    def __init__(self, sched):
        self.sched = sched

    def run_on_scheduler(self, fn):
        return fn(dask_scheduler=self.sched)


@pytest.mark.parametrize("device,want", [(True, 2 * 600), (False, None)])
def test_device_memory_counts_only_for_a_gpu_run(device, want):
    """Every worker on a GPU host reports the whole device's memory in use: summed over a
    CPU run's workers it was 16 times one device's (seen on an H200)."""
    client = Client(scheduler((100, 600), (200, 600)))
    with memory.MemorySampler(client, device=device, interval=0.01) as sampler:
        pass
    start, stop = sampler.samples[0][0], sampler.samples[-1][0]
    assert sampler.peaks(start, stop) == {"peak_host_bytes": 300, "peak_device_bytes": want}


def test_no_gpu_no_device_figure():
    client = Client(scheduler((100, None)))
    with memory.MemorySampler(client, device=True, interval=0.01) as sampler:
        pass
    assert sampler.peaks(0, 2e9)["peak_device_bytes"] is None
