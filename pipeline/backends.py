"""Array / dataframe backends (CPU: NumPy + pandas; GPU: CuPy + cuDF) and GPU detection.

A :class:`Backend` is a small picklable value: ops close over it and workers resolve its
modules lazily, so CuPy / cuDF are imported only on the processes that use them, and never
by ``import pipeline``. Detection goes through NVML, which answers in milliseconds without
creating a CUDA context; ``import cupy`` succeeding does not mean a GPU exists.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field

from pipeline.errors import InputError

GPU_LIBS = ("cupy", "cudf", "dask_cuda")
GPU_INSTALL_HINT = 'pip install ".[gpu]"'


@dataclass(frozen=True)
class Backend:
    """Where chunks live and how they cross between host and device.

    ``to_device`` / ``to_host`` act on one chunk inside a task. Every host<->device copy
    the pipeline makes goes through them, so they record the bytes and seconds with
    Dask's fine performance metrics, attributed to the stage's span.
    """

    name: str
    array_module: str
    frame_module: str
    copies: bool  # True when host and device memory are distinct

    @property
    def xp(self):
        """The array module of the chunks (numpy or cupy)."""
        return importlib.import_module(self.array_module)

    @property
    def xdf(self):
        """The dataframe module of the partitions (pandas or cudf)."""
        return importlib.import_module(self.frame_module)

    @property
    def dask_config(self) -> dict:
        """Dask's own backend switch, so ``da.*`` / ``dd.*`` create chunks of our kind."""
        return {"array.backend": "cupy" if self.array_module == "cupy" else "numpy",
                "dataframe.backend": "cudf" if self.frame_module == "cudf" else "pandas"}

    def to_device(self, chunk):
        """Host chunk -> device chunk, counted as host->device bytes."""
        if not self.copies:
            return chunk
        return _timed_copy(self._device_copy, chunk, "host-to-device")

    def _device_copy(self, chunk):
        return self.xp.array(chunk, copy=True)

    def to_host(self, chunk):
        """Device chunk -> host (NumPy) chunk, counted as device->host bytes."""
        if not self.copies:
            return chunk
        return _timed_copy(_asnumpy, chunk, "device-to-host")


def _asnumpy(chunk):
    get = getattr(chunk, "get", None)  # cupy.ndarray.get() copies to host
    import numpy as np

    return get() if callable(get) else np.array(chunk, copy=True)


def _timed_copy(copy, chunk, label: str):
    from distributed.metrics import context_meter

    with context_meter.meter(label):
        out = copy(chunk)
    context_meter.digest_metric(label, getattr(chunk, "nbytes", 0), "bytes")
    return out


CPU = Backend("cpu", "numpy", "pandas", copies=False)
GPU = Backend("gpu", "cupy", "cudf", copies=True)


@dataclass(frozen=True)
class Detection:
    """What NVML reports; ``problem`` says why no GPU is usable, when none is."""

    gpus: tuple = ()  # pipeline.nvml.Gpu
    driver: str | None = None
    cuda_driver_version: str | None = None
    problem: str | None = None
    missing_libs: tuple[str, ...] = field(default=())


def detect() -> Detection:
    """Count GPUs with NVML (no CUDA context) and check the GPU libraries are installed."""
    from pipeline import nvml

    missing = tuple(lib for lib in GPU_LIBS if importlib.util.find_spec(lib) is None)
    nv = nvml.probe()
    if nv.error == "NoPynvml":
        problem = nv.detail
    elif nv.error:  # LibraryNotFound / DriverNotLoaded on GPU-less hosts
        problem = f"no NVIDIA driver found ({nv.detail})"
    else:
        problem = None if nv.gpus else "the NVIDIA driver reports no GPUs"
    return Detection(gpus=tuple(nv.gpus), driver=nv.driver,
                     cuda_driver_version=".".join(map(str, nv.cuda)) if nv.cuda else None,
                     problem=problem, missing_libs=missing)


def resolve(requested: str, detection: Detection | None = None) -> tuple[Backend, str]:
    """Pick the backend for ``requested`` (auto / cpu / gpu) and say why.

    Raises
    ------
    InputError
        ``gpu`` was asked for but no usable GPU or GPU library is present: never a silent
        CPU run.
    """
    if requested == "cpu":
        return CPU, "cpu (asked for)"
    det = detection or detect()
    usable = not det.problem and not det.missing_libs
    if requested == "gpu":
        if det.problem:
            raise InputError(f"backend gpu asked for, but {det.problem}", where="backend",
                             hint="install the NVIDIA driver, or use --backend cpu; "
                                  "python -m pipeline doctor says more")
        if det.missing_libs:
            raise InputError("backend gpu asked for, but these libraries are missing: "
                             + ", ".join(det.missing_libs), where="backend",
                             hint=GPU_INSTALL_HINT)
        return GPU, f"gpu (asked for; {len(det.gpus)} GPU(s))"
    if usable:
        return GPU, f"gpu (auto: {len(det.gpus)} GPU(s) found)"
    reason = det.problem or "missing " + ", ".join(det.missing_libs)
    return CPU, f"cpu (auto: {reason})"


def resolve_on_workers(requested: str, detections: dict[str, Detection],
                       local_missing: tuple[str, ...] | None = None) -> tuple[Backend, str]:
    """Pick the backend for an existing cluster from what its workers have.

    ``detections``: :func:`detect` run on each worker (``client.run(detect)``). ``gpu``
    needs every worker to have a usable GPU, and this process (the client, which builds
    the graph) the GPU libraries; ``auto`` picks gpu only then.

    Raises
    ------
    InputError
        ``gpu`` was asked for but some worker (or this client) cannot run it.
    """
    if requested == "cpu":
        return CPU, "cpu (asked for)"
    if local_missing is None:
        local_missing = tuple(lib for lib in ("cupy", "cudf")
                              if importlib.util.find_spec(lib) is None)
    n = len(detections)
    without = {addr: d for addr, d in sorted(detections.items())
               if d.problem or d.missing_libs}
    if without:
        addr, det = next(iter(without.items()))
        reason = (f"{len(without)} of {n} worker(s) have no usable GPU ({addr}: "
                  + (det.problem or "missing " + ", ".join(det.missing_libs)) + ")")
        hint = "start GPU workers with `dask cuda worker`, or use --backend cpu"
    elif local_missing:
        reason = "this client lacks " + ", ".join(local_missing)
        hint = GPU_INSTALL_HINT + " here too, or use --backend cpu"
    else:
        return GPU, f"gpu ({'asked for' if requested == 'gpu' else 'auto'}: {n} GPU worker(s))"
    if requested == "gpu":
        raise InputError(f"backend gpu asked for, but {reason}", where="backend", hint=hint)
    return CPU, f"cpu (auto: {reason})"
