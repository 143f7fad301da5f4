"""The one NVML query (driver, CUDA version, GPUs) and the one reading of
``CUDA_VISIBLE_DEVICES``, shared by backend detection, the GPU preflight and ``doctor``.

NVML answers in milliseconds and creates no CUDA context.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_total: int
    memory_used: int | None = None
    uuid: str = ""
    compute: tuple[int, int] | None = None


@dataclass
class Nvml:
    """What NVML says; ``error`` (the NVMLError class name) when it could not say."""

    error: str | None = None
    detail: str = ""
    driver: str | None = None
    cuda: tuple[int, int] | None = None  # the newest CUDA the driver supports
    gpus: list[Gpu] = field(default_factory=list)


def probe() -> Nvml:
    """Ask NVML for the driver and the GPUs."""
    try:
        import pynvml
    except ImportError:
        return Nvml(error="NoPynvml", detail="nvidia-ml-py (pynvml) is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return _failed(e)
    try:
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        out = Nvml(driver=_text(pynvml.nvmlSystemGetDriverVersion()),
                   cuda=(cuda // 1000, cuda % 1000 // 10))
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            try:
                compute = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(h))
            except pynvml.NVMLError:  # old drivers lack the query
                compute = None
            out.gpus.append(Gpu(i, _text(pynvml.nvmlDeviceGetName(h)), int(mem.total),
                                int(mem.used), _text(pynvml.nvmlDeviceGetUUID(h)), compute))
        return out
    except pynvml.NVMLError as e:
        return _failed(e)
    finally:
        pynvml.nvmlShutdown()


def _failed(e: Exception) -> Nvml:
    return Nvml(error=type(e).__name__.removeprefix("NVMLError_"),
                detail=str(e) or type(e).__name__)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def visible_entries(value: str) -> list[str]:
    """The entries of a ``CUDA_VISIBLE_DEVICES`` value, in order."""
    return [e.strip() for e in value.split(",") if e.strip()]


def match(entry: str, gpus) -> Gpu | None:
    """The GPU a ``CUDA_VISIBLE_DEVICES`` entry names: an index, or a UUID (prefix)."""
    if entry.isdigit():
        return next((g for g in gpus if g.index == int(entry)), None)
    return next((g for g in gpus if g.uuid and g.uuid.startswith(entry)), None)
