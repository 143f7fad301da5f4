"""The shared NVML probe and CUDA_VISIBLE_DEVICES matching, on a faked pynvml."""

import sys
import types

from pipeline import backends
from pipeline.gpu import nvml
from pipeline.gpu.nvml import Gpu


class NVMLError(Exception):
    pass


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801 (pynvml's name)
    pass


def fake_pynvml(init_error=None):
    def init():
        if init_error:
            raise init_error("Driver Not Loaded")

    def handle(i):
        return i

    return types.SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=init, nvmlShutdown=lambda: None,
        nvmlSystemGetDriverVersion=lambda: b"550.54.15",
        nvmlSystemGetCudaDriverVersion=lambda: 12040,
        nvmlDeviceGetCount=lambda: 2, nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetName=lambda h: f"GPU model {h}",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=16 << 30, used=h << 30),
        nvmlDeviceGetUUID=lambda h: f"GPU-{h}",
        nvmlDeviceGetCudaComputeCapability=lambda h: (8, 0))


def test_probe_nvml_reads_gpus(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    nv = nvml.probe()
    assert nv.error is None and nv.driver == "550.54.15" and nv.cuda == (12, 4)
    assert [(g.index, g.name, g.memory_used, g.uuid, g.compute) for g in nv.gpus] == [
        (0, "GPU model 0", 0, "GPU-0", (8, 0)), (1, "GPU model 1", 1 << 30, "GPU-1", (8, 0))]


def test_probe_nvml_driver_not_loaded(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(NVMLError_DriverNotLoaded))
    nv = nvml.probe()
    assert nv.error == "DriverNotLoaded" and nv.gpus == []


def test_probe_nvml_without_pynvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    assert nvml.probe().error == "NoPynvml"


def test_detect_reports_the_gpus_nvml_sees(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    det = backends.detect()
    assert det.problem is None and det.driver == "550.54.15"
    assert det.cuda_driver_version == "12.4"
    assert [(g.index, g.memory_total, g.uuid) for g in det.gpus] == [
        (0, 16 << 30, "GPU-0"), (1, 16 << 30, "GPU-1")]


def test_detect_without_a_driver_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(NVMLError_DriverNotLoaded))
    det = backends.detect()
    assert det.gpus == () and det.problem == "no NVIDIA driver found (Driver Not Loaded)"


def test_visible_entries_and_match():
    gpus = [Gpu(0, "a", 1, uuid="GPU-aaaa"), Gpu(1, "b", 1, uuid="GPU-bbbb")]
    assert nvml.visible_entries(" 1, GPU-aa ,,") == ["1", "GPU-aa"]
    assert nvml.match("1", gpus) is gpus[1] and nvml.match("GPU-aa", gpus) is gpus[0]
    assert nvml.match("2", gpus) is None and nvml.match("GPU-cc", gpus) is None
