"""Host->device copies through a per-thread pinned buffer (pipeline/gpu/pinned.py), on the
CuPy stand-in, which records the pinned buffers it hands out and what each stream was
asked to do. (On a real GPU the workflow tests run this path.)"""

import threading

import numpy as np
import pytest

from pipeline import backends
from pipeline.gpu import pinned
from pipeline.ops.context import Context
from pipeline.spec import Stage
from tests.conftest import requires_standin
from tests.helpers import call

pytestmark = [requires_standin, pytest.mark.standin]


@pytest.fixture
def device(monkeypatch):
    """The stand-in's logs, emptied, and a fresh set of per-thread buffers."""
    import cupy
    import cupyx

    monkeypatch.setattr(pinned, "_local", threading.local())
    cupyx._pinned.clear()
    cupy.cuda._events.clear()
    return cupy, cupyx._pinned, cupy.cuda._events


def test_copies_go_through_a_reused_pinned_buffer_on_the_current_stream(device):
    cupy, pinned_buffers, events = device
    rng = np.random.default_rng()
    a = rng.standard_normal((40, 30)).astype(np.float32)
    b = rng.standard_normal((7, 5))  # smaller: the same buffer serves
    out_a, out_b = pinned.to_device(a), pinned.to_device(b)
    assert isinstance(out_a, cupy.ndarray) and out_a.dtype == a.dtype
    np.testing.assert_array_equal(out_a.get(), a)
    np.testing.assert_array_equal(out_b.get(), b)
    assert len(pinned_buffers) == 1
    # each copy waited for on the worker's one stream (the legacy default) before the
    # buffer is reused
    assert events == [("synchronize", cupy.cuda.Stream.null)] * 2


def test_a_larger_chunk_grows_the_buffer(device):
    _, pinned_buffers, _ = device
    pinned.to_device(np.ones(10))
    pinned.to_device(np.arange(1000.0))
    assert [p.nbytes for p in pinned_buffers] == [80, 8000]


def test_a_strided_memory_mapped_chunk_is_read_into_the_pinned_buffer(device, tmp_path):
    data = np.random.default_rng().standard_normal((50, 20))
    np.save(tmp_path / "x.npy", data)
    view = np.load(tmp_path / "x.npy", mmap_mode="r")[5:40:3, 2:17]  # not contiguous
    np.testing.assert_array_equal(pinned.to_device(view).get(), data[5:40:3, 2:17])


def test_each_thread_has_its_own_buffer(device):
    _, pinned_buffers, _ = device
    threads = [threading.Thread(target=pinned.to_device, args=(np.ones(16),))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(p) for p in pinned_buffers}) == 3


def test_an_npy_read_reaches_the_pinned_copy_still_memory_mapped(device, monkeypatch,
                                                                 tmp_path):
    """The file is read once, into the pinned buffer: no pageable copy before it."""
    import dask

    seen = []
    copy = pinned.to_device
    monkeypatch.setattr(pinned, "to_device", lambda chunk: seen.append(chunk) or copy(chunk))
    data = np.random.default_rng().standard_normal((30, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", data)
    stage = Stage(id="s", op="read", inputs=(), input_style="none", params={}, index=0)
    ctx = Context(stage=stage, backend=backends.GPU, base_dir=tmp_path,
                  output_dir=tmp_path / "out", staging_dir=tmp_path / "staging")
    with dask.config.set(backends.GPU.dask_config):
        x = call(ctx, "read", path="x.npy", chunks=[7, 8])
        got = x.compute(scheduler="sync")
    np.testing.assert_array_equal(got.get(), data)
    assert len(seen) == 5 and all(isinstance(c, np.memmap) for c in seen)
