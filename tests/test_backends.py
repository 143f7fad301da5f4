import pytest

from pipeline import backends
from pipeline.errors import InputError
from pipeline.nvml import Gpu

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
