"""Connecting to an existing cluster: unreachable scheduler, TLS settings, the workers'
backend. (Whole runs on a real existing cluster are in test_deploy.py.)"""

from __future__ import annotations

import sys
import time

import dask
import pytest

from pipeline import backends, cluster, spec
from pipeline.backends import Detection
from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.gpu.nvml import Gpu
from tests.conftest import REPO

SPECTRUM = str(REPO / "workflows" / "spectrum.yaml")
GPU_WORKER = Detection(gpus=(Gpu(index=0, name="H100", memory_total=80 << 30),), driver="580",
                       missing_libs=())
CPU_WORKER = Detection(problem="no NVIDIA driver found (NVML Shared Library Not Found)")


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("dash, reason", [
    ("999.1.1.1:80", "Name or service not known"),  # before: "internal error", exit 1
    ("8.8.8.8:8787", "Cannot assign requested address"),  # another machine's address
])
def test_a_dashboard_address_this_machine_cannot_listen_on_is_exit_2(tmp_path, capsys,
                                                                     monkeypatch, dash,
                                                                     reason):
    monkeypatch.setattr(cluster, "_local", lambda *a: pytest.fail("a cluster was started"))
    out = tmp_path / "out"
    assert main(["run", SPECTRUM, "--dashboard-address", dash, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    host = dash.rpartition(":")[0]
    assert err.startswith(f"error: --dashboard-address: cannot listen on {host}: ")
    assert "\n" not in err.strip() and not out.exists()


@pytest.mark.parametrize("via", ["--address", "cluster.address"])
def test_unreachable_scheduler_is_exit_2_within_the_timeout(tmp_path, capsys, via):
    address = f"tcp://127.0.0.1:{closed_port()}"
    where = ["--address", address] if via == "--address" \
        else ["--set", f"cluster.address={address}"]
    t0 = time.monotonic()
    with dask.config.set({"pipeline.connect-timeout": "1s"}):
        code = main(["run", SPECTRUM, *where, "--output-dir", str(tmp_path / "out")])
    assert code == 2 and time.monotonic() - t0 < 20
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {via}: cannot reach the scheduler at {address} within 1 s")
    assert "\n" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("requested, workers, local_missing, want", [
    ("auto", [GPU_WORKER, GPU_WORKER], (), "gpu (auto: 2 GPU worker(s))"),
    ("gpu", [GPU_WORKER], (), "gpu (asked for: 1 GPU worker(s))"),
    ("auto", [GPU_WORKER, CPU_WORKER], (), "cpu (auto: 1 of 2 worker(s) have no usable GPU"),
    ("auto", [GPU_WORKER], ("cupy",), "cpu (auto: this client lacks cupy)"),
    ("cpu", [GPU_WORKER], (), "cpu (asked for)"),
])
def test_backend_is_resolved_on_the_workers(requested, workers, local_missing, want):
    detections = {f"tcp://w{i}:1": d for i, d in enumerate(workers)}
    backend, why = backends.resolve_on_workers(requested, detections, local_missing)
    assert why.startswith(want) and backend.name == want[:3]


def test_gpu_asked_for_on_workers_without_one_is_an_input_error():
    detections = {"tcp://a:1": GPU_WORKER, "tcp://b:1": CPU_WORKER}
    with pytest.raises(InputError) as e:
        backends.resolve_on_workers("gpu", detections, ())
    assert e.value.line() == (
        "error: backend: backend gpu asked for, but 1 of 2 worker(s) have no usable GPU "
        "(tcp://b:1: no NVIDIA driver found (NVML Shared Library Not Found)) (start GPU "
        "workers with `dask cuda worker`, or use --backend cpu)")
    with pytest.raises(InputError, match="this client lacks cudf"):
        backends.resolve_on_workers("gpu", {"tcp://a:1": GPU_WORKER}, ("cudf",))


def test_table_stages_need_cudf_on_the_workers_not_array_stages():
    no_cudf = Detection(gpus=GPU_WORKER.gpus, driver="580",
                        missing_table_libs=("cudf", "dask_cudf"))
    assert backends.resolve_on_workers("gpu", {"tcp://a:1": no_cudf}, ())[0] is backends.GPU
    with pytest.raises(InputError) as e:
        backends.resolve_on_workers("gpu", {"tcp://a:1": no_cudf}, (), tables=("t",))
    assert "1 of 1 worker(s) lack cuDF (tcp://a:1: stage(s) t work on tables" in e.value.what
    backend, why = backends.resolve_on_workers("auto", {"tcp://a:1": no_cudf}, (),
                                               tables=("t",))
    assert backend is backends.CPU and "lack cuDF" in why


def write(tmp_path, security: str):
    (tmp_path / "ca.pem").write_text("ca")
    (tmp_path / "client.pem").write_text("cert")
    path = tmp_path / "wf.yaml"
    path.write_text("name: tls\ncluster:\n  address: tls://scheduler:8786\n"
                    f"  security: {security}\n"
                    "stages:\n - {id: x, op: random, shape: [4]}\n")
    return path


def test_cluster_security_builds_a_dask_security(tmp_path):
    path = write(tmp_path, "{tls_ca_file: ca.pem, tls_client_cert: client.pem, "
                           "tls_client_key: client.pem, require_encryption: true}")
    wf = spec.load(path, trust_workflow=True)  # the file sets an address and TLS files
    assert wf.cluster.security == {"tls_ca_file": str(tmp_path / "ca.pem"),
                                   "tls_client_cert": str(tmp_path / "client.pem"),
                                   "tls_client_key": str(tmp_path / "client.pem"),
                                   "require_encryption": True}
    sec = cluster.security(wf.cluster)
    assert sec.tls_ca_file == str(tmp_path / "ca.pem")
    assert sec.tls_client_cert == sec.tls_client_key == str(tmp_path / "client.pem")
    assert sec.require_encryption is True
    assert cluster.security(spec.load(write(tmp_path, "null"), trust_workflow=True).cluster) \
        is None


@pytest.mark.parametrize("security, fragment", [
    ("{tls_ca_fille: ca.pem}", "cluster.security: unknown key 'tls_ca_fille'; did you mean "
                               "'tls_ca_file'?"),
    ("{tls_ca_file: missing.pem}", "cluster.security.tls_ca_file: file not found: "
                                   "'missing.pem'"),
    ("{require_encryption: maybe}", "cluster.security.require_encryption: bad value 'maybe'"),
    ("[ca.pem]", "cluster.security: must be a mapping"),
])
def test_bad_cluster_security_is_exit_2(tmp_path, capsys, security, fragment):
    assert main(["validate", str(write(tmp_path, security)), "--trust-workflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and err.startswith("error: ") and "\n" not in err


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    """An in-process cluster that only speaks TLS, and its PEM files."""
    pytest.importorskip("cryptography")
    import logging

    from distributed import LocalCluster
    from distributed.security import Security

    sec = Security.temporary()  # require_encryption=True: TLS only
    pems = tmp_path_factory.mktemp("tls")
    for name in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
        (pems / f"{name}.pem").write_text(getattr(sec, name))  # PEM text, not paths
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, security=sec,
                      protocol="tls://", dashboard_address=None,
                      scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.CRITICAL) as c:
        yield c.scheduler_address, pems


def test_cluster_security_connects_to_a_tls_scheduler(tls_cluster, tmp_path, capsys):
    address, pems = tls_cluster
    assert address.startswith("tls://")
    small = ["--set", "stages.signal.shape=[64,16]", "--set", "stages.signal.chunks=[32,16]",
             "--output-dir", str(tmp_path / "out"), "--quiet"]
    assert main(["run", SPECTRUM, "--address", address, *small]) == 2
    assert f"--address: {address} needs TLS settings" in capsys.readouterr().err
    tls = ",".join(f"{k}: {pems / f'{k}.pem'}"
                   for k in ("tls_ca_file", "tls_client_cert", "tls_client_key"))
    code = main(["run", SPECTRUM, "--address", address, *small,
                 "--set", f"cluster.security={{{tls}, require_encryption: true}}"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "mean_power.npy").exists()


def test_workers_without_the_pipeline_are_an_input_error():
    class Client:
        def run(self, fn):  # what distributed raises when a worker cannot unpickle fn
            raise Exception("ModuleNotFoundError(\"No module named 'pipeline'\")")

    with pytest.raises(InputError, match="the workers at tcp://s:8786 cannot import the "
                                         "pipeline"):
        cluster._workers_backend(Client(), "auto", "tcp://s:8786", "--address")


@pytest.mark.parametrize("n_workers, want", [(1, 1), ("auto", None)])
def test_local_cluster_honours_n_workers(n_workers, want):
    import os

    from pipeline.spec import CLUSTER_DEFAULTS, ClusterSpec

    c = ClusterSpec(**{**CLUSTER_DEFAULTS, "n_workers": n_workers, "memory_limit": "1GiB"})
    with cluster.connect(c, backends.CPU, dashboard_address=None) as session:
        assert session.kind == "LocalCluster"
        assert session.n_workers == (want or os.cpu_count())
        assert len(session.client.scheduler_info()["workers"]) == session.n_workers


@pytest.fixture
def fake_dask_cuda(monkeypatch):
    """A stand-in dask_cuda whose LocalCUDACluster records how it was made."""
    import importlib.machinery
    import sys
    import types

    made = {}

    class LocalCUDACluster:
        def __init__(self, **kwargs):
            made["kwargs"] = kwargs
            made["worker_env"] = dict(dask.config.get("distributed.nanny.environ"))

    module = types.ModuleType("dask_cuda")
    module.__spec__ = importlib.machinery.ModuleSpec("dask_cuda", None)
    module.LocalCUDACluster = LocalCUDACluster
    monkeypatch.setitem(sys.modules, "dask_cuda", module)
    from pipeline.gpu import preflight

    monkeypatch.setattr(preflight, "check_local_gpu_cluster", lambda *a: None)
    return made


@pytest.mark.parametrize("threads, want", [("auto", 1), (3, 3)])
def test_gpu_workers_keep_all_device_work_on_one_stream(fake_dask_cuda, threads, want):
    """One thread by default, and no per-thread default streams however many threads:
    two threads on their own streams let a task read another's output while it is
    still being written (see pipeline.cluster.local_cuda_kwargs)."""
    from pipeline.spec import CLUSTER_DEFAULTS, ClusterSpec

    c = ClusterSpec(**{**CLUSTER_DEFAULTS, "threads_per_worker": threads})
    cluster._local_cuda(c, None)
    assert fake_dask_cuda["kwargs"]["threads_per_worker"] == want
    assert "CUPY_CUDA_PER_THREAD_DEFAULT_STREAM" not in fake_dask_cuda["worker_env"]


@pytest.mark.parametrize("ours, theirs", [("auto", "default"), (0.5, 0.5), ("20GB", "20GB"),
                                          (0, 0)])
def test_device_memory_limit_auto_spills_at_dask_cudas_default(fake_dask_cuda, ours, theirs):
    """dask-cuda reads its own "auto" as the whole device (no spilling): ours means its
    recommended default, 80%."""
    from pipeline.spec import CLUSTER_DEFAULTS, ClusterSpec

    c = ClusterSpec(**{**CLUSTER_DEFAULTS, "device_memory_limit": ours,
                       "enable_cudf_spill": True})
    cluster._local_cuda(c, None)
    assert fake_dask_cuda["kwargs"]["device_memory_limit"] == theirs
    assert fake_dask_cuda["kwargs"]["enable_cudf_spill"] is True


def test_dask_cudas_cpu_affinity_warning_on_vms_is_not_shown(fake_dask_cuda, monkeypatch):
    import warnings

    from pipeline.spec import CLUSTER_DEFAULTS, ClusterSpec

    class Warns:
        def __init__(self, **kwargs):
            warnings.warn("Cannot get CPU affinity for device with index 0, setting "
                          "default affinity", UserWarning)

    monkeypatch.setattr(sys.modules["dask_cuda"], "LocalCUDACluster", Warns)
    assert isinstance(cluster._local_cuda(ClusterSpec(**CLUSTER_DEFAULTS), None), Warns)


def test_cpu_workers_keep_one_thread():
    from pipeline.spec import CLUSTER_DEFAULTS, ClusterSpec

    c = ClusterSpec(**{**CLUSTER_DEFAULTS, "n_workers": 1, "memory_limit": "1GiB"})
    with cluster.connect(c, backends.CPU, dashboard_address=None) as session:
        assert [w["nthreads"] for w in session.client.scheduler_info()["workers"].values()] == [1]
        assert session.backend.chunk_bytes is None


def test_gpu_chunks_are_sized_for_the_smallest_workers_device():
    class Client:
        plugins = []

        def register_plugin(self, plugin):
            self.plugins.append(plugin.name)

        def run(self, fn):
            assert fn is backends.device_memory
            return {"tcp://a:1": 80 << 30, "tcp://b:1": 16 << 30, "tcp://c:1": None}

        def scheduler_info(self):
            return {"workers": {"tcp://a:1": {"nthreads": 2}, "tcp://b:1": {"nthreads": 2}}}

    sized = cluster._ready(Client(), backends.GPU)
    assert sized.chunk_bytes == backends.device_chunk_bytes(16 << 30, 2) == 256 << 20
    assert Client.plugins == ["pipeline-spill-meter"]
    assert cluster._ready(Client(), backends.CPU) is backends.CPU
