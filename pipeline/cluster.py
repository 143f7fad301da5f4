"""The Dask cluster a run uses: LocalCluster (CPU), LocalCUDACluster (GPU), or an
existing scheduler. A cluster the pipeline did not start is never shut down by it."""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from pipeline import backends, ctrl_c, settings, trust
from pipeline.backends import Backend
from pipeline.errors import InputError
from pipeline.gpu import extras
from pipeline.spec import ClusterSpec

@dataclass
class Session:
    """An open client plus what the report says about its cluster."""

    client: object
    kind: str  # LocalCluster | LocalCUDACluster | existing
    address: str
    dashboard_link: str | None
    n_workers: int
    backend: Backend | None = None
    backend_why: str = ""


@contextmanager
def connect(spec: ClusterSpec, backend: Backend | str, *, address: str | None = None,
            dashboard_address: str | None = "keep",
            tables: tuple[str, ...] = ()) -> Iterator[Session]:
    """Start (or connect to) the cluster for ``backend``; close what we started.

    ``backend``: a :class:`Backend`, or what the workflow asks for (auto / cpu / gpu),
    resolved on this host for a local cluster and on the workers for an existing one.
    ``dashboard_address``: ``"keep"`` uses the workflow's; ``None`` disables it.
    ``tables``: the workflow's table stages (on a GPU they need cuDF).

    Raises
    ------
    InputError
        The scheduler cannot be reached or has no workers, the workers lack the asked-for
        backend, or a cluster option is invalid for this backend.
    """
    from distributed import Client

    address, where = _address(address, spec)
    if address:
        requested = backend if isinstance(backend, str) else backend.name
        with _existing(address, spec, where) as client:
            chosen, why = _workers_backend(client, requested, address, where, tables)
            n = len(client.scheduler_info()["workers"])
            yield Session(client, "existing", address, client.dashboard_link, n,
                          _ready(client, chosen), why)
        return
    dash = spec.dashboard_address if dashboard_address == "keep" else dashboard_address
    if dash is not None:
        where = "--dashboard-address" if dashboard_address != "keep" \
            else "cluster.dashboard_address"
        for host in trust.listen_hosts(dash, where):
            _check_listen(host, where)
    _memory_limit(spec)
    backend, why = backends.resolve(backend, tables=tables) if isinstance(backend, str) \
        else (backend, backend.name)
    with ctrl_c.held() as release:
        cluster = _local_cuda(spec, dash) if backend.name == "gpu" else _local(spec, dash)
        with cluster:
            release()  # a Ctrl-C pressed meanwhile is raised here: the cluster is closed
            with Client(cluster) as client:
                yield Session(client, type(cluster).__name__, cluster.scheduler_address,
                              cluster.dashboard_link if dash else None, len(cluster.workers),
                              _ready(client, backend), why)


def _address(given: str | None, spec: ClusterSpec) -> tuple[str | None, str]:
    """The scheduler to use, and where it was asked for: ``--address``, then the workflow's
    ``cluster.address`` (allowed by :mod:`pipeline.trust`), then the user's Dask config
    ``pipeline.address`` (``DASK_PIPELINE__ADDRESS`` in the environment)."""
    import dask

    for address, where in ((given, "--address"), (spec.address, "cluster.address"),
                           (dask.config.get("pipeline.address", None),
                            "pipeline.address (Dask config)")):
        if address:
            return str(address), where
    return None, ""


def _memory_limit(spec: ClusterSpec) -> None:
    """Check ``cluster.memory_limit`` as a worker would read it, before starting any.

    Raises
    ------
    InputError
        Not ``auto``, a fraction of the host's memory, a byte count or a size like "4GB".
    """
    from distributed.worker_memory import parse_memory_limit

    value = spec.memory_limit
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        limit = parse_memory_limit(value, 1, logger=logging.getLogger(__name__))
    except (ValueError, TypeError, OverflowError):
        limit = -1
    if limit is not None and limit < 0:
        raise InputError(f"bad value {value!r}", where="cluster.memory_limit",
                         hint="'auto', a fraction of this host's memory like 0.5, or a size "
                              "like \"4GB\" per worker")


def attach(client, backend: str, tables: tuple[str, ...] = ()) -> Session:
    """A session on the caller's own ``distributed.Client``, used as is: the backend is
    resolved on its workers, and nothing is closed afterwards. ``tables``: as for
    :func:`connect`.

    Raises
    ------
    InputError
        ``client`` is not a ``distributed.Client``, it has no workers, or they lack the
        asked-for backend.
    """
    from distributed import Client

    if not isinstance(client, Client):
        raise InputError(f"client must be a distributed.Client, got {type(client).__name__}",
                         where="client", hint="distributed.Client(...) or leave it out")
    address = client.scheduler.address
    workers_s = settings.seconds("workers-timeout")
    try:  # a worker may be (re)starting: wait as for a scheduler reached by address
        client.wait_for_workers(1, timeout=workers_s)
    except TimeoutError:
        raise InputError(f"the client's cluster at {address} has no workers (none joined "
                         f"within {workers_s:g} s)", where="client",
                         hint="start some, or wait for them: client.wait_for_workers(1)") \
            from None
    chosen, why = _workers_backend(client, backend, address, "client", tables)
    return Session(client, "existing", address, client.dashboard_link,
                   len(client.scheduler_info()["workers"]), _ready(client, chosen), why)


def _ready(client, backend: Backend) -> Backend:
    """``backend`` made ready on the workers: on a GPU, the spill meter registered
    (pipeline/gpu/spill.py) and `chunks: auto` sized for the smallest of their GPUs."""
    if backend.name != "gpu":
        return backend
    from pipeline.gpu.spill import SpillMeter

    client.register_plugin(SpillMeter())
    memory = [m for m in client.run(backends.device_memory).values() if m]
    threads = max(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    return backends.sized_for_device(backend, min(memory, default=None), threads)


@contextmanager
def _existing(address: str, spec: ClusterSpec, where: str):
    """A client of the scheduler at ``address`` once a worker has joined; only the client
    is closed on exit, never the cluster (we did not start it)."""
    from distributed import Client

    connect_s = settings.seconds("connect-timeout")
    sec = security(spec)
    if address.startswith("tls://"):
        from distributed.security import Security

        tls = sec or Security()  # Security() reads Dask's distributed.comm.tls config
        if not (tls.tls_ca_file and tls.tls_client_cert):
            raise InputError(f"{address} needs TLS settings: a CA file and a client "
                             "certificate", where=where,
                             hint="set cluster.security (tls_ca_file, tls_client_cert, "
                                  "tls_client_key), or Dask's distributed.comm.tls config; "
                                  "docs/deploy.md")
    unreachable = InputError(
        f"cannot reach the scheduler at {address} within {connect_s:g} s", where=where,
        hint="is `dask scheduler` running there, and reachable from here? TLS schedulers "
             "need tls:// and cluster.security")
    try:
        _probe(address, connect_s, sec)
        client = Client(address, timeout=connect_s, security=sec)
    except (OSError, TimeoutError):
        raise unreachable from None
    except (ValueError, TypeError) as e:  # e.g. an unknown scheme: foo://host
        raise InputError(f"bad scheduler address {address!r}: {e}", where=where,
                         hint="e.g. tcp://host:8786 or tls://host:8786") from None
    with client:
        workers_s = settings.seconds("workers-timeout")
        try:
            client.wait_for_workers(1, timeout=workers_s)
        except TimeoutError:
            raise InputError(f"the scheduler at {address} has no workers (none joined within "
                             f"{workers_s:g} s)", where=where,
                             hint=f"start some: dask worker {address} (CPU) or "
                                  f"dask cuda worker {address} (GPU)") from None
        yield client


def _probe(address: str, timeout: float, sec) -> None:
    """Open and close one connection to ``address`` within ``timeout`` seconds, handshake
    included: Dask's own connect waits for the handshake without a deadline, so a server
    that accepts the connection but is not a scheduler (an HTTP server) would hang it.
    The handshake is not deserialized here (it is not our code's to unpickle).

    Raises
    ------
    OSError, TimeoutError
        Nothing answered as a Dask scheduler in time.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect
    from distributed.security import Security

    async def once():
        # Security() holds Dask's distributed.comm.tls config, as the Client would use it
        args = (sec or Security()).get_connection_args("client")
        comm = await asyncio.wait_for(connect(address, timeout=timeout, deserialize=False,
                                              **args), timeout)
        await comm.close()

    # its own thread and event loop: the caller may be running one (a notebook)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, once()).result()


def _workers_backend(client, requested: str, address: str, where: str,
                     tables: tuple[str, ...] = ()) -> tuple[Backend, str]:
    """Resolve ``requested`` against what the workers have (NVML + GPU libraries there)."""
    try:
        detections = client.run(backends.detect)
    except Exception as e:  # distributed re-raises a worker's failure to unpickle as Exception
        if "No module named" not in str(e):
            raise
        raise InputError(f"the workers at {address} cannot import the pipeline ({e})",
                         where=where,
                         hint="install this project on the workers too (the Dockerfile "
                              "does)") from None
    return backends.resolve_on_workers(requested, detections, tables=tables)


def security(spec: ClusterSpec):
    """``distributed.Security`` from ``cluster.security``; ``None`` leaves Dask's own
    ``distributed.comm.tls.*`` configuration in charge."""
    if not spec.security:
        return None
    from distributed.security import Security

    return Security(**spec.security)


def _check_listen(host: str, where: str) -> None:
    """Refuse a dashboard host this machine cannot listen on (a name that does not resolve,
    an address of another machine), which would otherwise fail the cluster's start.

    Raises
    ------
    InputError
        With the system's reason.
    """
    import socket

    if not host:  # every interface
        return
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as s:
            s.bind(address)
    except OSError as e:
        raise InputError(f"cannot listen on {host}: {e.strerror or e}", where=where,
                         hint="an address of this machine, e.g. 127.0.0.1:8787, or "
                              "--no-dashboard") from None


def _dashboard_kwargs(dash: str | None) -> dict:
    if dash is None:
        # the scheduler's HTTP server (health, metrics) still starts: on a free port, so
        # that 8787 being taken costs nothing
        return {"dashboard_address": None,
                "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}}
    return {"dashboard_address": dash}


def _quiet_workers() -> dict:
    """Local workers that leave Ctrl-C to the client (:mod:`pipeline.ctrl_c`) and
    log nothing below CRITICAL: a task's failure reaches the user once, as the run's one
    error line and in its report, not as a worker's traceback on the terminal."""
    import dask

    preload = [*dask.config.get("distributed.worker.preload"), "pipeline.ctrl_c"]
    return {"preload": preload, "silence_logs": logging.CRITICAL}


def _threads(spec: ClusterSpec, auto: int) -> int:
    return auto if spec.threads_per_worker == "auto" else spec.threads_per_worker


def _local(spec: ClusterSpec, dash: str | None):
    from distributed import LocalCluster

    n = (os.cpu_count() or 1) if spec.n_workers == "auto" else spec.n_workers
    return LocalCluster(n_workers=n, threads_per_worker=_threads(spec, 1),
                        memory_limit=spec.memory_limit, processes=True,
                        **_quiet_workers(), **_dashboard_kwargs(dash))


def local_cuda_kwargs(spec: ClusterSpec, dash: str | None) -> dict:
    """LocalCUDACluster's arguments for ``spec``.

    One thread per GPU worker by default, and all of a worker's device work on CUDA's
    legacy default stream, as dask-cuda runs it: every kernel and copy in the process is
    then ordered, so a task never reads another task's output before it is written, and
    CuPy's memory pool never hands out a block that a queued kernel still reads. More
    threads stay correct (still one stream); they overlap only the host side of file
    reads (pipeline/gpu/pinned.py) with the other threads' kernels.
    """
    kwargs = dict(threads_per_worker=_threads(spec, 1), memory_limit=spec.memory_limit,
                  device_memory_limit=device_memory_limit(spec.device_memory_limit),
                  enable_cudf_spill=spec.enable_cudf_spill, protocol=spec.protocol,
                  **_quiet_workers(), **_dashboard_kwargs(dash))
    if spec.n_workers != "auto":
        kwargs["n_workers"] = spec.n_workers
    if spec.rmm_pool_size is not None:
        # RMM's pool also backs CuPy's allocations on the workers
        kwargs.update(rmm_pool_size=spec.rmm_pool_size, rmm_allocator_external_lib_list=["cupy"])
    return kwargs


def device_memory_limit(value):
    """dask-cuda's value for ``cluster.device_memory_limit``: ``auto`` is dask-cuda's
    recommended default, spilling device->host above 80% of the device (dask-cuda reads
    its own "auto" as 100%: no spilling at all); 0 turns spilling off."""
    return "default" if value == "auto" else value


def _local_cuda(spec: ClusterSpec, dash: str | None):
    from pipeline.gpu import preflight

    det = backends.detect()
    preflight.check_local_gpu_cluster(spec, det, os.environ)
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as e:  # e.g. cuda.core without its bindings (no [cuXX] extra)
        raise InputError(f"dask-cuda cannot be imported ({e})", where="backend",
                         hint=extras.install(det.cuda_major, False)
                         + "; python -m pipeline doctor says more") from None
    try:
        with warnings.catch_warnings():
            # NVML cannot report CPU affinity on VMs: dask-cuda warns and uses the default
            warnings.filterwarnings("ignore", "Cannot get CPU affinity", UserWarning)
            return LocalCUDACluster(**local_cuda_kwargs(spec, dash))
    except ValueError as e:
        raise InputError(f"cannot start LocalCUDACluster: {e}", where="cluster") from None
