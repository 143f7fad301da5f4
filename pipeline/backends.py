"""Array / dataframe backends (CPU: NumPy + pandas; GPU: CuPy + cuDF) and GPU detection.

A :class:`Backend` is a small picklable value: ops close over it and workers resolve its
modules lazily, so CuPy / cuDF are imported only on the processes that use them, and never
by ``import pipeline``. Detection goes through NVML, which answers in milliseconds without
creating a CUDA context; ``import cupy`` succeeding does not mean a GPU exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field, replace

from pipeline.errors import InputError
from pipeline.gpu import extras


@dataclass(frozen=True)
class Backend:
    """Where chunks live and how they cross between host and device.

    ``to_device`` / ``to_host`` act on one chunk inside a task. Every host<->device copy
    the pipeline makes goes through them, so they record the bytes and seconds with
    Dask's fine performance metrics, labelled ``(kind, stage label)``: the label of the
    stage whose callable is running (:func:`pipeline.accounting.meter.current_label`),
    whatever task Dask fused it into. The ``frame_*`` methods do the same for dataframe
    partitions, and may name the stage themselves (see :func:`stage_span`).
    """

    name: str
    array_module: str
    frame_module: str
    copies: bool  # True when host and device memory are distinct
    chunk_bytes: int | None = None  # what `chunks: auto` aims for; None: Dask's default

    @property
    def xp(self):
        """The array module of the chunks (numpy or cupy)."""
        return importlib.import_module(self.array_module)

    @property
    def fft(self):
        """The FFT module chunks are transformed with: CuPy's on the GPU; on the host
        ``scipy.fft``, same conventions and dtypes as ``numpy.fft`` and 1.5 to 5 times
        faster on float32 and complex64 data, never slower (NumPy 2.4, SciPy 1.17:
        ``benchmarks/fft_engines.py``). One thread per call: Dask's workers are the
        parallelism."""
        if self.array_module == "numpy":
            return importlib.import_module("scipy.fft")
        return importlib.import_module(f"{self.array_module}.fft")

    @property
    def xdf(self):
        """The dataframe module of the partitions (pandas or cudf)."""
        return importlib.import_module(self.frame_module)

    @property
    def dask_config(self) -> dict:
        """Dask's own backend switch, so ``da.*`` / ``dd.*`` create chunks of our kind."""
        config = {"array.backend": "cupy" if self.array_module == "cupy" else "numpy",
                  "dataframe.backend": "cudf" if self.frame_module == "cudf" else "pandas"}
        if self.chunk_bytes is not None:
            config["array.chunk-size"] = self.chunk_bytes
        return config

    def meta(self, ndim: int, dtype):
        """An empty chunk of this backend's array type: the ``meta`` Dask plans with.

        Dask infers a result's meta by calling the chunk function on empty chunks and
        falls back to a NumPy one when that call raises (an FFT of zero points, the
        quantile of nothing); a NumPy meta on CuPy chunks then sends later steps down
        NumPy's paths, so ops that cannot rely on the inference pass this instead.
        """
        return self.xp.empty((0,) * ndim, dtype=dtype)

    def to_device(self, chunk):
        """Host chunk -> device chunk, counted as host->device bytes."""
        if not self.copies:
            return chunk
        return _timed_copy(self._device_copy, chunk, _label("host-to-device"))

    def _device_copy(self, chunk):
        if self.array_module == "cupy":
            from pipeline.gpu import pinned

            return pinned.to_device(chunk)
        return self.xp.array(chunk, copy=True)  # the copying test backend: NumPy to NumPy

    def to_host(self, chunk):
        """Device chunk -> host (NumPy) chunk, counted as device->host bytes."""
        if not self.copies:
            return chunk
        return _timed_copy(_asnumpy, chunk, _label("device-to-host"))

    def frame_to_host(self, part, span: str | None):
        """Device partition -> pandas partition, counted as device->host bytes of the
        stage whose span id is ``span`` (from :func:`stage_span`)."""
        if not self.copies:
            return part
        return _timed_copy(_pandas, part, _label("device-to-host", span), _frame_nbytes)

    def frame_read(self, part, span: str | None):
        """Counts a partition just read as host->device bytes of ``span``'s stage; copies
        nothing.

        cuDF's readers copy inside themselves, out of the pipeline's sight, so what is
        counted is the partition's decoded size: exactly what crosses when the host
        decodes, and an upper bound of what crosses when cuDF decodes compressed pages on
        the device.
        """
        if self.copies:
            from distributed.metrics import context_meter

            context_meter.digest_metric(_label("host-to-device", span),
                                        _frame_nbytes(part), "bytes")
        return part

    def frame_write(self, write, path: str, span: str | None, size=os.path.getsize):
        """``write(path)``, which encodes a partition into a host file (cuDF encodes on
        the device and the encoded bytes come back), timed and counted as device->host
        bytes of ``span``'s stage: the file's ``size(path)``."""
        if not self.copies:
            return write(path)
        return _timed_copy(write, path, _label("device-to-host", span), size)


def stage_span() -> str | None:
    """The id of the span the current stage is built in (``runner.build`` opens one per
    stage), or None outside one.

    A stage's label is its span id. Copies take it from the running callable
    (:func:`_label`); a dataframe op passes it too, as dask-expr's optimizer rewrites the
    query, and the stage it ran for is known for sure where the copy was built.
    """
    import dask

    ids = dask.get_annotations().get("span", {}).get("ids")
    return ids[-1] if ids else None


def _label(kind: str, span: str | None = None) -> tuple[str, str | None]:
    """A copy's metric label: ``(kind, the stage's label)``, the stage being ``span`` or
    else the one whose callable is running (None outside a metered task)."""
    if span is None:
        from pipeline.accounting.meter import current_label

        span = current_label()
    return kind, span


def _asnumpy(chunk):
    get = getattr(chunk, "get", None)  # cupy.ndarray.get() copies to host
    import numpy as np

    return get() if callable(get) else np.array(chunk, copy=True)


def _pandas(part):
    to_pandas = getattr(part, "to_pandas", None)  # cuDF -> pandas copies to the host
    return to_pandas() if callable(to_pandas) else part.copy(deep=True)


def _frame_nbytes(part) -> int:
    return int(part.memory_usage(index=True, deep=True).sum())


def _nbytes(chunk) -> int:
    return getattr(chunk, "nbytes", 0)


def _timed_copy(copy, chunk, label, nbytes=_nbytes):
    """``copy(chunk)``, timed, and ``nbytes(chunk)`` counted once it is done (so a file
    that ``copy`` writes can be counted by its size)."""
    from distributed.metrics import context_meter

    with context_meter.meter(label):
        out = copy(chunk)
    context_meter.digest_metric(label, nbytes(chunk), "bytes")
    return out


CPU = Backend("cpu", "numpy", "pandas", copies=False)
GPU = Backend("gpu", "cupy", "cudf", copies=True)

# `chunks: auto` on a GPU: Dask's 128 MiB suits CPU caches, but a GPU needs chunks large
# enough to fill its cores and amortise each kernel launch and copy. Like dask-cudf's
# default partition size, a chunk gets 1/32 of the device's memory (per task running at
# once on it), which leaves room for the several chunk-sized temporaries an op holds
# (an rfft's complex output, |z|^2, ...). Capped at 1 GiB: bigger chunks add little
# speed, cost parallelism on mid-sized inputs, and near 2**31 elements some CUDA
# libraries switch to 64-bit indexing or refuse.
DEVICE_SHARE = 32
MIN_CHUNK, MAX_CHUNK = 128 * 2**20, 2**30


def device_chunk_bytes(device_bytes: int, tasks_per_device: int) -> int:
    """The `chunks: auto` target for a device of ``device_bytes`` running
    ``tasks_per_device`` tasks at once."""
    share = device_bytes // (DEVICE_SHARE * max(tasks_per_device, 1))
    return int(min(max(share, MIN_CHUNK), MAX_CHUNK))


def sized_for_device(backend: Backend, device_bytes: int | None,
                     tasks_per_device: int) -> Backend:
    """``backend`` with its chunk size set from the device's memory (unchanged on CPU, or
    when the device's memory is unknown)."""
    if not backend.copies or not device_bytes:
        return backend
    return replace(backend, chunk_bytes=device_chunk_bytes(device_bytes, tasks_per_device))


def device_memory() -> int | None:
    """Total memory of the GPU this process computes on (the first CUDA_VISIBLE_DEVICES
    entry, as dask-cuda sets it per worker; else GPU 0), from NVML; None without one."""
    from pipeline.gpu import nvml

    nv = nvml.probe()
    if nv.error or not nv.gpus:
        return None
    entries = nvml.visible_entries(os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    gpu = nvml.match(entries[0], nv.gpus) if entries else nv.gpus[0]
    return gpu.memory_total if gpu else None


@dataclass(frozen=True)
class Detection:
    """What NVML reports; ``problem`` says why no GPU is usable, when none is."""

    gpus: tuple = ()  # pipeline.gpu.nvml.Gpu
    driver: str | None = None
    cuda_driver_version: str | None = None
    problem: str | None = None
    missing_libs: tuple[str, ...] = field(default=())  # of extras.ARRAY_LIBS
    missing_table_libs: tuple[str, ...] = field(default=())  # of extras.TABLE_LIBS

    @property
    def cuda_major(self) -> int | None:
        """The newest CUDA major the driver supports."""
        return int(self.cuda_driver_version.split(".")[0]) if self.cuda_driver_version \
            else None


def _missing(libs) -> tuple[str, ...]:
    return tuple(lib for lib in libs if importlib.util.find_spec(lib) is None)


def detect() -> Detection:
    """Count GPUs with NVML (no CUDA context) and check the GPU libraries are installed."""
    from pipeline.gpu import nvml

    nv = nvml.probe()
    if nv.error == "NoPynvml":
        problem = nv.detail
    elif nv.error:  # LibraryNotFound / DriverNotLoaded on GPU-less hosts
        problem = f"no NVIDIA driver found ({nv.detail})"
    else:
        problem = None if nv.gpus else "the NVIDIA driver reports no GPUs"
    return Detection(gpus=tuple(nv.gpus), driver=nv.driver,
                     cuda_driver_version=".".join(map(str, nv.cuda)) if nv.cuda else None,
                     problem=problem, missing_libs=_missing(extras.ARRAY_LIBS),
                     missing_table_libs=_missing(extras.TABLE_LIBS))


def _tables_need(tables: tuple[str, ...], missing: tuple[str, ...]) -> str:
    shown = ", ".join(tables[:3]) + (f" and {len(tables) - 3} more" if len(tables) > 3 else "")
    return (f"stage(s) {shown} work on tables, which need {', '.join(missing)} on the GPU "
            "(not installed)")


def resolve(requested: str, detection: Detection | None = None,
            tables: tuple[str, ...] = ()) -> tuple[Backend, str]:
    """Pick the backend for ``requested`` (auto / cpu / gpu) and say why.

    ``tables``: the ids of the workflow's table stages, which need cuDF on the GPU;
    array workflows need only CuPy and dask-cuda.

    Raises
    ------
    InputError
        ``gpu`` was asked for but no usable GPU, or a library it needs, is present:
        never a silent CPU run.
    """
    if requested == "cpu":
        return CPU, "cpu (asked for)"
    det = detection or detect()
    hint = extras.install(det.cuda_major, bool(tables))
    table_gap = det.missing_table_libs if tables else ()
    if requested == "gpu":
        if det.problem:
            raise InputError(f"backend gpu asked for, but {det.problem}", where="backend",
                             hint="install the NVIDIA driver, or use --backend cpu; "
                                  "python -m pipeline doctor says more")
        if det.missing_libs:
            raise InputError("backend gpu asked for, but these libraries are missing: "
                             + ", ".join(det.missing_libs), where="backend", hint=hint)
        if table_gap:
            raise InputError("backend gpu asked for, but " + _tables_need(tables, table_gap),
                             where="backend", hint=f"{hint}, or use --backend cpu")
        return GPU, f"gpu (asked for; {len(det.gpus)} GPU(s))"
    if det.problem or det.missing_libs:
        return CPU, f"cpu (auto: {det.problem or 'missing ' + ', '.join(det.missing_libs)})"
    if table_gap:
        return CPU, f"cpu (auto: {_tables_need(tables, table_gap)}; {hint} for them)"
    return GPU, f"gpu (auto: {len(det.gpus)} GPU(s) found)"


def resolve_on_workers(requested: str, detections: dict[str, Detection],
                       local_missing: tuple[str, ...] | None = None,
                       tables: tuple[str, ...] = ()) -> tuple[Backend, str]:
    """Pick the backend for an existing cluster from what its workers have.

    ``detections``: :func:`detect` run on each worker (``client.run(detect)``). ``gpu``
    needs every worker to have a usable GPU and CuPy (and cuDF, with ``tables``: the
    ids of table stages), and this process (the client, which builds the graph) CuPy
    (and cuDF); ``auto`` picks gpu only then.

    Raises
    ------
    InputError
        ``gpu`` was asked for but some worker (or this client) cannot run it.
    """
    if requested == "cpu":
        return CPU, "cpu (asked for)"
    if local_missing is None:
        local_missing = _missing(("cupy", *(extras.TABLE_LIBS if tables else ())))
    n = len(detections)

    def gap(d: Detection) -> str | None:
        # a worker started with plain `dask worker` (no dask-cuda) runs CuPy tasks too
        missing = tuple(m for m in d.missing_libs if m != "dask_cuda")
        return d.problem or ("missing " + ", ".join(missing) if missing else None)

    no_gpu = {addr: gap(d) for addr, d in sorted(detections.items()) if gap(d)}
    no_tables = {addr: _tables_need(tables, d.missing_table_libs)
                 for addr, d in sorted(detections.items()) if tables and d.missing_table_libs}
    if no_gpu or no_tables:
        addr, why = next(iter((no_gpu or no_tables).items()))
        reason = (f"{len(no_gpu or no_tables)} of {n} worker(s) "
                  f"{'have no usable GPU' if no_gpu else 'lack cuDF'} ({addr}: {why})")
        hint = ("start GPU workers with `dask cuda worker`" if no_gpu else
                f"install {', '.join(extras.TABLE_LIBS)} on the workers "
                f"({extras.install(None, True)})") + ", or use --backend cpu"
    elif local_missing:
        reason = "this client lacks " + ", ".join(local_missing)
        hint = extras.install(None, bool(tables)) + " here too, or use --backend cpu"
    else:
        return GPU, f"gpu ({'asked for' if requested == 'gpu' else 'auto'}: {n} GPU worker(s))"
    if requested == "gpu":
        raise InputError(f"backend gpu asked for, but {reason}", where="backend", hint=hint)
    return CPU, f"cpu (auto: {reason})"
