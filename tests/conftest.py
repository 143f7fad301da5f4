"""Shared fixtures: both backends for op tests, one process cluster per test session."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline import backends
from pipeline.ops.context import Context
from pipeline.spec import Stage

REPO = Path(__file__).resolve().parents[1]


def gpu_present() -> bool:
    """A real device and the GPU libraries: cupy importing is not enough."""
    det = backends.detect()
    return not det.problem and not det.missing_libs


requires_gpu = pytest.mark.skipif(not gpu_present(), reason="needs an NVIDIA GPU with cupy")


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=[requires_gpu, pytest.mark.gpu])])
def backend(request) -> backends.Backend:
    return {"cpu": backends.CPU, "gpu": backends.GPU}[request.param]


@pytest.fixture
def make_ctx(tmp_path, backend):
    """``make_ctx(op_name)`` -> a Context for calling an op function directly."""

    def make(op_name: str = "test", base_dir: Path | None = None) -> Context:
        stage = Stage(id="s", op=op_name, inputs=(), input_style="none", params={}, index=0)
        return Context(stage=stage, backend=backend, base_dir=base_dir or tmp_path,
                       output_dir=tmp_path / "out", staging_dir=tmp_path / "out" / ".staging")

    return make


@pytest.fixture(scope="session")
def cluster():
    """One real multi-process cluster shared by every test that runs whole workflows."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None,
                      # its HTTP server (health, metrics) on a free port: 8787 may be taken
                      scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.ERROR) as c:
        yield c


@pytest.fixture
def address(cluster) -> str:
    return cluster.scheduler_address


@pytest.fixture(scope="module")
def session():
    """An in-process cluster (processes=False) for the runner's unit tests: test-only ops
    and backends defined in a test module work there without being importable. Per module:
    while its client lives it is Dask's default, and dataframe tests computing with the
    synchronous scheduler would then pick the p2p shuffle, which needs workers."""
    from distributed import Client, LocalCluster

    from pipeline import cluster as pipeline_cluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None,
                      # its HTTP server (health, metrics) on a free port: 8787 may be taken
                      scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.CRITICAL) as c, Client(c) as client:
        yield pipeline_cluster.Session(client, "LocalCluster", c.scheduler_address, None, 1)
