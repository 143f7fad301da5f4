"""Host->device copies through a per-thread pinned buffer, on a stand-in CuPy that records
what the real one would be asked to do (the real path runs only on a GPU host)."""

import sys
import threading
import types

import numpy as np
import pytest

from pipeline.gpu import pinned


@pytest.fixture
def fake_cupy(monkeypatch):
    log = {"pinned": [], "sets": [], "syncs": 0}

    class Stream:
        def synchronize(self):
            log["syncs"] += 1

    stream = Stream()

    class DeviceArray:
        def __init__(self, shape, dtype):
            self.data = np.empty(shape, dtype)

        def set(self, host, stream=None):
            log["sets"].append((host, stream))
            self.data[...] = host

    def empty_pinned(shape, dtype):
        buf = np.empty(shape, dtype)
        log["pinned"].append(buf)
        return buf

    cupy = types.SimpleNamespace(
        empty=lambda shape, dtype: DeviceArray(shape, dtype),
        cuda=types.SimpleNamespace(get_current_stream=lambda: stream))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", types.SimpleNamespace(empty_pinned=empty_pinned))
    monkeypatch.setattr(pinned, "_local", threading.local())
    log["stream"] = stream
    return log


def test_copies_go_through_a_reused_pinned_buffer_on_the_threads_stream(fake_cupy):
    rng = np.random.default_rng()
    a = rng.standard_normal((40, 30)).astype(np.float32)
    b = rng.standard_normal((7, 5))  # smaller: the same buffer serves
    out_a, out_b = pinned.to_device(a), pinned.to_device(b)
    np.testing.assert_array_equal(out_a.data, a)
    np.testing.assert_array_equal(out_b.data, b)
    assert len(fake_cupy["pinned"]) == 1
    for host, stream in fake_cupy["sets"]:  # async copies from pinned memory
        assert np.shares_memory(host, fake_cupy["pinned"][0])
        assert stream is fake_cupy["stream"]
    assert fake_cupy["syncs"] == 2


def test_a_larger_chunk_grows_the_buffer(fake_cupy):
    pinned.to_device(np.ones(10))
    pinned.to_device(np.arange(1000.0))
    assert [p.nbytes for p in fake_cupy["pinned"]] == [80, 8000]


def test_a_strided_memory_mapped_chunk_is_read_into_the_pinned_buffer(fake_cupy, tmp_path):
    data = np.random.default_rng().standard_normal((50, 20))
    np.save(tmp_path / "x.npy", data)
    view = np.load(tmp_path / "x.npy", mmap_mode="r")[5:40:3, 2:17]  # not contiguous
    np.testing.assert_array_equal(pinned.to_device(view).data, data[5:40:3, 2:17])


def test_each_thread_has_its_own_buffer(fake_cupy):
    threads = [threading.Thread(target=pinned.to_device, args=(np.ones(16),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(p) for p in fake_cupy["pinned"]}) == 3
