import pytest

from pipeline import backends
from pipeline.errors import InputError
from pipeline.gpu.nvml import Gpu

NO_DRIVER = backends.Detection(problem="no NVIDIA driver found (NVML Shared Library Not Found)",
                               missing_libs=("cupy",))
GPU_BOX = backends.Detection(gpus=(Gpu(index=0, name="H100", memory_total=80 << 30,
                                        uuid="GPU-1"),), driver="580.1",
                             cuda_driver_version="13.0")


def test_cpu_is_cpu():
    backend, why = backends.resolve("cpu", NO_DRIVER)
    assert backend is backends.CPU and "asked for" in why


def test_auto_falls_back_to_cpu_and_says_why():
    backend, why = backends.resolve("auto", NO_DRIVER)
    assert backend is backends.CPU and "no NVIDIA driver found" in why


def test_auto_picks_gpu_when_usable():
    backend, why = backends.resolve("auto", GPU_BOX)
    assert backend is backends.GPU and "1 GPU(s)" in why


def test_gpu_without_driver_is_exit_2_with_a_fix():
    with pytest.raises(InputError) as e:
        backends.resolve("gpu", NO_DRIVER)
    assert e.value.exit_code == 2 and "no NVIDIA driver" in e.value.what
    assert "doctor" in e.value.hint


def test_gpu_without_libraries_names_them_and_the_install():
    det = backends.Detection(gpus=GPU_BOX.gpus, missing_libs=("cudf", "dask_cuda"))
    with pytest.raises(InputError) as e:
        backends.resolve("gpu", det)
    assert "cudf, dask_cuda" in e.value.what and e.value.hint == 'pip install ".[gpu]"'


def test_detect_on_this_machine_does_not_raise():
    det = backends.detect()
    assert det.problem or det.gpus


def test_cpu_backend_config_and_identity_copies():
    import numpy as np

    assert backends.CPU.dask_config == {"array.backend": "numpy", "dataframe.backend": "pandas"}
    x = np.ones(3)
    assert backends.CPU.to_device(x) is x and backends.CPU.to_host(x) is x
    assert backends.GPU.dask_config == {"array.backend": "cupy", "dataframe.backend": "cudf"}


GiB, MiB = 2**30, 2**20


@pytest.mark.parametrize("device, tasks, chunk", [
    (80 * GiB, 1, GiB),          # 2.5 GiB share, capped
    (16 * GiB, 1, 512 * MiB),    # 1/32 of the device
    (16 * GiB, 2, 256 * MiB),    # two tasks at once share it
    (2 * GiB, 1, 128 * MiB),     # never below Dask's CPU default
])
def test_auto_chunks_grow_with_the_device(device, tasks, chunk):
    assert backends.device_chunk_bytes(device, tasks) == chunk


def test_only_a_device_backend_with_known_memory_is_resized():
    assert backends.sized_for_device(backends.CPU, 80 * GiB, 1) is backends.CPU
    assert backends.sized_for_device(backends.GPU, None, 1) is backends.GPU
    gpu = backends.sized_for_device(backends.GPU, 16 * GiB, 1)
    assert gpu.chunk_bytes == 512 * MiB and gpu.dask_config["array.chunk-size"] == 512 * MiB


def test_auto_chunks_follow_the_backends_chunk_size():
    import dask
    import dask.array as da

    small = backends.Backend("cpu-small-chunks", "numpy", "pandas", copies=False,
                             chunk_bytes=MiB)
    with dask.config.set(small.dask_config):
        x = da.ones((1024, 1024), chunks="auto")  # 8 MiB of float64
    biggest = max(x.chunks[0]) * max(x.chunks[1]) * x.dtype.itemsize
    assert 0.5 * MiB <= biggest <= MiB


@pytest.mark.parametrize("visible, memory", [(None, 80 * GiB), ("1", 40 * GiB),
                                             ("GPU-b", 40 * GiB), ("7", None)])
def test_device_memory_is_the_first_visible_gpus(monkeypatch, visible, memory):
    from pipeline.gpu import nvml

    gpus = [Gpu(0, "H100", 80 * GiB, uuid="GPU-a"), Gpu(1, "A100", 40 * GiB, uuid="GPU-b")]
    monkeypatch.setattr(nvml, "probe", lambda: nvml.Nvml(gpus=gpus))
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert backends.device_memory() == memory


def test_device_memory_without_a_driver_is_unknown(monkeypatch):
    from pipeline.gpu import nvml

    monkeypatch.setattr(nvml, "probe", lambda: nvml.Nvml(error="LibraryNotFound"))
    assert backends.device_memory() is None
