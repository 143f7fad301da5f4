"""The docker-compose deploy run for real (marker ``deploy``): the image built on a local
base, docker-compose.yml's scheduler and two CPU workers started, its runner service run
on workflows/spectrum.yaml and compared with a local run, a worker container killed
mid-run, bad input, TLS (docker-compose.tls.yml), and `down`. Skipped, saying why, where
no Docker engine is reachable; .ci/run installs and starts one."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import dask
import pytest
import yaml

from pipeline.cli import main
from tests import docker_stack
from tests.conftest import REPO
from tests.docker_stack import Stack, make_certs, version_differences

PROBLEM = docker_stack.engine_problem()
pytestmark = [pytest.mark.deploy,
              pytest.mark.skipif(PROBLEM is not None, reason=f"deploy: {PROBLEM}"),
              # one image build and one stack per fixture, in one xdist process
              pytest.mark.xdist_group("docker")]

# workflows/spectrum.yaml at 256 MiB in 16 chunks: some seconds on two one-thread
# workers, long enough for a worker to be killed while it computes.
SHAPE, CHUNKS = [16384, 4096], [1024, 4096]
RUNS = ("plain", "killed", "tls")  # one workflow file and run folder per compose run
REPORTS = {"report.json", "report.html", "performance-report.html"}


@pytest.fixture(scope="module")
def workflows(tmp_path_factory) -> Path:
    """The folder mounted as /work/workflows: the resized spectrum, once per run."""
    folder = tmp_path_factory.mktemp("workflows")
    folder.chmod(0o755)  # pytest makes it 0700; the image's user (uid 1001) reads it
    wf = yaml.safe_load((REPO / "workflows" / "spectrum.yaml").read_text())
    (signal,) = [s for s in wf["stages"] if s["id"] == "signal"]
    signal.update(shape=SHAPE, chunks=CHUNKS)
    for run in RUNS:
        (folder / f"{run}.yaml").write_text(
            yaml.safe_dump({**wf, "output_dir": f"runs/{run}"}, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def local(cluster, workflows, tmp_path_factory) -> Path:
    """The same workflow's run folder, from the test session's local cluster. The image
    has no numba (an optional extra), but at this size the expression engine is not
    numba's here either (pipeline/kernels/choose.py), so the files must be identical."""
    out = tmp_path_factory.mktemp("local") / "spectrum"
    assert main(["run", str(workflows / "plain.yaml"), "--address",
                 cluster.scheduler_address, "--output-dir", str(out), "--quiet"]) == 0
    return out


def outputs(run: Path) -> dict[str, bytes]:
    """The sinks' files of a run folder (the reports hold times and addresses)."""
    return {p.name: p.read_bytes() for p in run.iterdir() if p.name not in REPORTS}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """The local base (debootstrap + wheels; reused while current) and the image."""
    docker_stack.build_base()
    tmp = tmp_path_factory.mktemp("build")
    Stack(tmp, tmp).build()


@pytest.fixture(scope="module")
def stack(image, workflows, tmp_path_factory):
    """The scheduler, up and healthy; tests start the workers when they need them."""
    s = Stack(tmp_path_factory.mktemp("results"), workflows)
    try:
        s.up("scheduler")
        yield s
    finally:
        s.down()
        assert s.leftovers() == []


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.strip()


def test_a_runner_naming_a_missing_workflow_is_one_line_and_exit_2(stack):
    code, out, err = stack.wait(stack.run(settings={"WORKFLOW": "workflows/missing.yaml"}))
    assert (code, out) == (2, "")
    assert one_line(err) == ("error: workflows/missing.yaml: workflow file not found "
                             "(check the path)")


def test_a_runner_on_a_scheduler_without_workers_is_one_line_and_exit_2(stack):
    assert stack.containers("cpu-worker") == []
    code, _, err = stack.wait(stack.run(settings={"WORKFLOW": "workflows/plain.yaml"},
                                        env={"DASK_PIPELINE__WORKERS_TIMEOUT": "3s"}))
    assert code == 2
    assert one_line(err).startswith("error: --address: the scheduler at tcp://scheduler:8786 "
                                    "has no workers (none joined within 3 s)")


def test_only_the_scheduler_publishes_ports_and_only_on_loopback(stack):
    stack.up()
    ports = stack.inspect(*stack.containers("scheduler"))["NetworkSettings"]["Ports"]
    assert ports == {"8786/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(stack.port)}],
                     "8787/tcp": [{"HostIp": "127.0.0.1",
                                   "HostPort": str(stack.dashboard_port)}]}
    for worker in stack.containers("cpu-worker"):
        assert not any(stack.inspect(worker)["NetworkSettings"]["Ports"].values())
    health = f"http://127.0.0.1:{stack.dashboard_port}/health"
    assert urllib.request.urlopen(health, timeout=10).read() == b"ok"


def test_the_runner_service_computes_what_a_local_run_does(stack, local):
    stack.up()
    stack.wait_for_workers(2)
    code, out, err = stack.wait(stack.run(settings={"WORKFLOW": "workflows/plain.yaml"}))
    assert code == 0, err
    run = stack.results / "plain"
    assert outputs(run) == outputs(local) and set(outputs(run)) == {
        "mean_power.npy", "mean_power.png"}
    report = json.loads((run / "report.json").read_text())
    assert report["cluster"] == {**report["cluster"], "kind": "existing",
                                 "address": "tcp://scheduler:8786", "n_workers": 2}
    assert report["backend"] == "cpu" and report["lost_workers"] == []
    with stack.client() as client:  # the image runs this host's libraries
        assert version_differences(client) == {}


def test_a_worker_container_killed_mid_run_is_survived_and_reported(stack, local):
    stack.up()  # starts a worker container an earlier test left stopped
    stack.wait_for_workers(2)
    containers = {stack.ip(c): c for c in stack.containers("cpu-worker")}
    victim = None
    with stack.client() as client:
        runner = stack.run(settings={"WORKFLOW": "workflows/killed.yaml"})
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                victim = busy[0]
                host = victim.split("://")[1].rsplit(":", 1)[0]
                subprocess.run(["docker", "kill", containers[host]], check=True,
                               capture_output=True)
            time.sleep(0.05)
    code, out, err = stack.wait(runner)
    assert victim and code == 0, err
    run = stack.results / "killed"
    assert outputs(run) == outputs(local)
    (lost,) = json.loads((run / "report.json").read_text())["lost_workers"]
    assert lost["worker"] == victim and not lost["graceful"]
    assert f"warning: worker {victim} was lost during the run" in err


def test_without_the_scheduler_runner_and_worker_stop_within_their_timeouts(stack):
    stack.compose("stop", "scheduler")
    worker = stack.run("cpu-worker", settings={"DEATH_TIMEOUT": "5"}, no_deps=True)
    runner = stack.run(settings={"WORKFLOW": "workflows/plain.yaml"},
                       env={"DASK_PIPELINE__CONNECT_TIMEOUT": "3s"}, no_deps=True)
    code, _, err = stack.wait(runner, timeout=60)  # a hang fails here
    assert code == 2
    assert one_line(err).startswith("error: --address: cannot reach the scheduler at "
                                    "tcp://scheduler:8786 within 3 s")
    code, out, err = stack.wait(worker, timeout=60)
    assert code != 0 and "Timed out" in out + err, out + err


def test_down_leaves_nothing(stack):
    stack.down()
    assert stack.leftovers() == []


@pytest.fixture(scope="module")
def tls(image, workflows, tmp_path_factory):
    """docker-compose.yml + docker-compose.tls.yml, with a CA of the test's own; and the
    client settings for it."""
    from distributed.security import Security

    certs = make_certs(tmp_path_factory.mktemp("certs"))
    sec = Security(tls_ca_file=str(certs / "ca.pem"),
                   tls_client_cert=str(certs / "client.pem"),
                   tls_client_key=str(certs / "client-key.pem"), require_encryption=True)
    s = Stack(tmp_path_factory.mktemp("results"), workflows, certs=certs)
    try:
        s.up()
        s.wait_for_workers(2, security=sec)
        yield s, sec
    finally:
        s.down()
        assert s.leftovers() == []


def test_over_tls_the_run_is_the_same(tls, local):
    stack, _ = tls
    code, out, err = stack.wait(stack.run(settings={"WORKFLOW": "workflows/tls.yaml"}))
    assert code == 0, err
    assert outputs(stack.results / "tls") == outputs(local)
    report = json.loads((stack.results / "tls" / "report.json").read_text())
    assert report["cluster"]["address"] == "tls://scheduler:8786"


def tls_handshake(address: str, ca: str, cert: str | None = None, key: str | None = None):
    """Open a TLS connection to ``address`` trusting ``ca``, showing ``cert`` if given,
    and read: None if the server speaks (Dask's handshake) or waits, else why it ended
    the connection."""
    import socket
    import ssl

    host, port = address.split("://")[1].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False  # Dask's certificates name roles, not hosts
    if cert:
        ctx.load_cert_chain(cert, key)
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            ctx.wrap_socket(raw) as tls:
        tls.settimeout(1)
        try:
            return None if tls.recv(1) else "closed"
        except TimeoutError:
            return None
        except ssl.SSLError as e:
            return e.reason


def test_a_client_without_the_certificate_is_refused(tls, workflows, tmp_path, capsys):
    from distributed import Client
    from distributed.security import Security

    stack, sec = tls
    stranger = make_certs(tmp_path / "stranger", roles=("client",))  # another CA's
    with stack.client(sec) as client:  # the certificate opens the door
        assert len(client.scheduler_info()["workers"]) == 2
    # at the TLS layer: the scheduler asks for a certificate and ends a handshake without
    ca = sec.tls_ca_file
    assert tls_handshake(stack.address, ca, sec.tls_client_cert, sec.tls_client_key) is None
    assert tls_handshake(stack.address, ca) == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    # a Dask client with another CA's certificate, or in plain TCP, never gets in
    with pytest.raises(OSError):
        Client(stack.address, timeout=3, security=Security(
            tls_ca_file=ca, tls_client_cert=str(stranger / "client.pem"),
            tls_client_key=str(stranger / "client-key.pem"), require_encryption=True))
    with pytest.raises(OSError):
        Client(stack.address.replace("tls://", "tcp://"), timeout=3)
    # the pipeline, given another CA's certificate in Dask's config: exit 2, one line
    with dask.config.set({"distributed.comm.tls.ca-file": ca,
                          "distributed.comm.tls.client.cert": str(stranger / "client.pem"),
                          "distributed.comm.tls.client.key": str(stranger / "client-key.pem"),
                          "pipeline.connect-timeout": "3s"}):
        code = main(["run", str(workflows / "tls.yaml"), "--address", stack.address,
                     "--output-dir", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    assert one_line(capsys.readouterr().err).startswith(
        f"error: --address: cannot reach the scheduler at {stack.address} within 3 s")
    assert not (tmp_path / "out").exists()
