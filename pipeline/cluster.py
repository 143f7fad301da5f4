"""The Dask cluster a run uses: LocalCluster (CPU), LocalCUDACluster (GPU), or an
existing scheduler. A cluster the pipeline did not start is never shut down by it."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from pipeline.backends import Backend
from pipeline.errors import InputError
from pipeline.spec import ClusterSpec

CONNECT_TIMEOUT_S = 10


@dataclass
class Session:
    """An open client plus what the report says about its cluster."""

    client: object
    kind: str  # LocalCluster | LocalCUDACluster | existing
    address: str
    dashboard_link: str | None
    n_workers: int


@contextmanager
def connect(spec: ClusterSpec, backend: Backend, *, address: str | None = None,
            dashboard_address: str | None = "keep") -> Iterator[Session]:
    """Start (or connect to) the cluster for ``backend``; close what we started.

    ``dashboard_address``: ``"keep"`` uses the workflow's; ``None`` disables it.

    Raises
    ------
    InputError
        The scheduler cannot be reached, or a cluster option is invalid for this backend.
    """
    from distributed import Client

    address = address or spec.address
    if address:
        try:
            client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError) as e:
            raise InputError(f"cannot reach the scheduler at {address} within "
                             f"{CONNECT_TIMEOUT_S} s ({type(e).__name__})", where="--address",
                             hint="is `dask scheduler` running there?") from None
        with client:
            n = len(client.scheduler_info()["workers"])
            yield Session(client, "existing", address, client.dashboard_link, n)
        return
    dash = spec.dashboard_address if dashboard_address == "keep" else dashboard_address
    cluster = _local_cuda(spec, dash) if backend.name == "gpu" else _local(spec, dash)
    with cluster, Client(cluster) as client:
        yield Session(client, type(cluster).__name__, cluster.scheduler_address,
                      cluster.dashboard_link if dash else None, len(cluster.workers))


def _dashboard_kwargs(dash: str | None) -> dict:
    if dash is None:
        return {"dashboard_address": None, "scheduler_kwargs": {"dashboard": False}}
    return {"dashboard_address": dash}


def _local(spec: ClusterSpec, dash: str | None):
    from distributed import LocalCluster

    n = os.cpu_count() or 1 if spec.n_workers == "auto" else spec.n_workers
    return LocalCluster(n_workers=n, threads_per_worker=spec.threads_per_worker,
                        memory_limit=spec.memory_limit, processes=True,
                        silence_logs=logging.ERROR, **_dashboard_kwargs(dash))


def _local_cuda(spec: ClusterSpec, dash: str | None):
    from pipeline import backends, preflight

    preflight.check_local_gpu_cluster(spec, backends.detect(), os.environ)
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as e:
        raise InputError(f"dask-cuda cannot be imported ({e})", where="backend",
                         hint='pip install ".[gpu]"') from None
    kwargs = dict(threads_per_worker=spec.threads_per_worker, memory_limit=spec.memory_limit,
                  device_memory_limit=spec.device_memory_limit, protocol=spec.protocol,
                  silence_logs=logging.ERROR, **_dashboard_kwargs(dash))
    if spec.n_workers != "auto":
        kwargs["n_workers"] = spec.n_workers
    if spec.rmm_pool_size is not None:
        # RMM's pool also backs CuPy's allocations on the workers
        kwargs.update(rmm_pool_size=spec.rmm_pool_size, rmm_allocator_external_lib_list=["cupy"])
    try:
        return LocalCUDACluster(**kwargs)
    except ValueError as e:
        raise InputError(f"cannot start LocalCUDACluster: {e}", where="cluster") from None
