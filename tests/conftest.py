"""Shared fixtures: the backends for op tests, one process cluster per test session.

Op tests run on three backends: ``cpu``; ``gpu``, the GPU backend on a real NVIDIA GPU
with CuPy (skipped where there is none, with the reason); and ``standin``, the same GPU
backend on the strict CuPy stand-in of ``tests/cupy_standin`` (NumPy underneath), which
runs wherever no real GPU is usable, so CI exercises every GPU code path. The stand-in is
activated here, before anything imports Dask (``dask.array`` imports ``cupy`` when it
loads), and only where the real GPU is absent.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from pipeline import backends
from pipeline.ops.context import Context
from pipeline.spec import Stage
from tests import cupy_standin

REPO = Path(__file__).resolve().parents[1]


def _gpu_problem() -> str | None:
    """Why the real GPU tests cannot run here, or None: a device and CuPy must be
    present (cupy importing is not enough; cuDF is only needed by table tests)."""
    det = backends.detect()
    if det.problem:
        return f"no usable GPU: {det.problem}"
    if importlib.util.find_spec("cupy") is None:
        return "a GPU is present but CuPy is not installed"
    return None


GPU_PROBLEM = _gpu_problem()
NO_CUDF = importlib.util.find_spec("cudf") is None  # checked before the stand-in is on the path
if GPU_PROBLEM:
    cupy_standin.activate()


def gpu_present() -> bool:
    return GPU_PROBLEM is None


requires_gpu = pytest.mark.skipif(GPU_PROBLEM is not None, reason=str(GPU_PROBLEM))
requires_standin = pytest.mark.skipif(
    GPU_PROBLEM is None, reason="a real GPU is present: the gpu tests run on it instead")
BACKEND_PARAMS = [
    "cpu",
    pytest.param("gpu", marks=[requires_gpu, pytest.mark.gpu]),
    pytest.param("standin", marks=[requires_standin, pytest.mark.standin]),
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request) -> backends.Backend:
    """The backend an op test runs on (see the module docstring). Table tests (marked
    ``tables``) skip the GPU backends where cuDF is absent: the stand-in has no cuDF."""
    if request.param != "cpu" and NO_CUDF and request.node.get_closest_marker("tables"):
        pytest.skip("table ops on the GPU need cuDF, which is not installed "
                    "(the CuPy stand-in covers arrays only)")
    return backends.CPU if request.param == "cpu" else backends.GPU


@pytest.fixture
def make_ctx(tmp_path, backend):
    """``make_ctx(op_name)`` -> a Context for calling an op function directly."""

    def make(op_name: str = "test", base_dir: Path | None = None) -> Context:
        stage = Stage(id="s", op=op_name, inputs=(), input_style="none", params={}, index=0)
        return Context(stage=stage, backend=backend, base_dir=base_dir or tmp_path,
                       output_dir=tmp_path / "out", staging_dir=tmp_path / "out" / ".staging")

    return make


def pytest_collection_modifyitems(items):
    """The ``slow`` tests first: under ``pytest -n`` the longest one (the GPU-proof
    rehearsal, about a minute) then overlaps the rest instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def performance_report(request, monkeypatch):
    """Runs write Dask's performance report only in tests marked ``performance_report``.

    Rendering it takes 0.5 to 1 s of CPU per run whatever the run's size, a third of this
    suite's CPU time; the marked tests (its file, the run folder's rules, failures,
    interruptions, the deploy) keep it on as a user has it. Set in Dask's config for runs
    in this process and in the environment for ``python -m pipeline`` subprocesses."""
    import dask

    on = request.node.get_closest_marker("performance_report") is not None
    monkeypatch.setenv("DASK_PIPELINE__PERFORMANCE_REPORT", str(on))
    with dask.config.set({"pipeline.performance-report": on}):
        yield on


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
