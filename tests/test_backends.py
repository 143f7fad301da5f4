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


def test_gpu_without_libraries_names_them_and_the_extra_for_the_driver():
    det = backends.Detection(gpus=GPU_BOX.gpus, missing_libs=("cupy", "dask_cuda"),
                             cuda_driver_version="12.8")
    with pytest.raises(InputError) as e:
        backends.resolve("gpu", det)
    assert "cupy, dask_cuda" in e.value.what and e.value.hint == 'pip install ".[gpu-cu12]"'


NO_CUDF = backends.Detection(gpus=GPU_BOX.gpus, driver="580.1", cuda_driver_version="13.0",
                             missing_table_libs=("cudf", "dask_cudf"))


def test_arrays_on_the_gpu_need_no_cudf():
    backend, why = backends.resolve("gpu", NO_CUDF)
    assert backend is backends.GPU
    assert backends.resolve("auto", NO_CUDF)[0] is backends.GPU


def test_gpu_for_table_stages_without_cudf_is_exit_2_naming_cudf_and_the_extra():
    with pytest.raises(InputError) as e:
        backends.resolve("gpu", NO_CUDF, tables=("flights", "per_route"))
    assert e.value.exit_code == 2 and e.value.where == "backend"
    assert "stage(s) flights, per_route work on tables, which need cudf, dask_cudf" \
        in e.value.what
    assert e.value.hint.startswith('pip install ".[gpu-tables-cu13]"')


def test_auto_with_table_stages_without_cudf_runs_on_cpu_and_says_why():
    backend, why = backends.resolve("auto", NO_CUDF, tables=tuple("abcde"))
    assert backend is backends.CPU
    assert why.startswith("cpu (auto: stage(s) a, b, c and 2 more work on tables, which "
                          "need cudf, dask_cudf on the GPU (not installed)")


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


def test_cli_gpu_run_of_a_table_workflow_without_cudf(monkeypatch, tmp_path, capsys):
    """One line naming cuDF and the extra, exit 2, before any cluster starts; nothing
    written."""
    from pipeline.cli import main
    from tests.conftest import REPO

    monkeypatch.setattr(backends, "detect", lambda: NO_CUDF)
    out = tmp_path / "out"
    code = main(["run", str(REPO / "workflows" / "table_aggregation.yaml"), "--backend", "gpu",
                 "--output-dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "work on tables, which need cudf, dask_cudf" in err[0]
    assert 'pip install ".[gpu-tables-cu13]"' in err[0]
    assert not out.exists()


def test_cli_auto_run_of_a_table_workflow_without_cudf_uses_the_cpu(monkeypatch, tmp_path,
                                                                      capsys):
    from pipeline.cli import main
    from tests.conftest import REPO

    monkeypatch.setattr(backends, "detect", lambda: NO_CUDF)
    code = main(["run", str(REPO / "workflows" / "table_aggregation.yaml"), "--no-dashboard",
                 "--output-dir", str(tmp_path), "--set", "stages.flights.rows=2000",
                 "--set", "stages.fleet.rows=50", "--set", "cluster.n_workers=1"])
    assert code == 0
    assert "backend cpu (auto: stage(s) flights, flown, enriched and 4 more work on tables" \
        in capsys.readouterr().out
