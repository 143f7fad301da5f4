"""The docker-compose deploy played on loopback without Docker: docker-compose.yml's
scheduler and CPU worker commands started as processes, workflows run on them with
--address, workers killed mid-run. tests/test_docker.py runs the containers themselves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask
import numpy as np
import pytest

from pipeline.cli import main
from tests.docker_stack import free_port
from tests.test_compose import compose

# one process runs them all (pytest -n, --dist loadgroup): they share one scheduler
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("deploy"),
              pytest.mark.performance_report]

WORKFLOW = """\
name: loss
description: long enough to lose a worker in the middle
backend: cpu
stages:
  - {id: signal, op: random, shape: [SHAPE], chunks: [CHUNK], seed: 7}
  - {id: spectrum, op: rfft, input: signal, axis: 1}
  - {id: power, op: elementwise, inputs: {z: spectrum}, expr: "real(z)**2 + imag(z)**2"}
  - {id: mean_power, op: reduce, input: power, how: mean, axis: 0}
  - {id: save, op: write, input: mean_power, path: mean_power.npy}
"""
SMALL = {"SHAPE": "512, 256", "CHUNK": "64, 256"}
# a second or more on two one-thread workers: 32 chunks of 4 MiB, ~0.1 s of work each
LONG = {"SHAPE": "2048, 8192", "CHUNK": "64, 8192"}


def set_option(args: list[str], option: str, value: str) -> list[str]:
    args = list(args)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


def scheduler_command(port: int) -> list[str]:
    """docker-compose.yml's scheduler command, bound to loopback on free ports."""
    command = compose()["services"]["scheduler"]["command"]
    assert command[:2] == ["dask", "scheduler"]
    args = set_option(command[2:], "--host", "127.0.0.1")
    args = set_option(args, "--port", str(port))
    args = set_option(args, "--dashboard-address", f"127.0.0.1:{free_port()}")
    return [sys.executable, "-m", "distributed.cli.dask_scheduler", *args]


def cpu_worker_command(address: str) -> list[str]:
    """docker-compose.yml's CPU worker command (`dask worker` with the GPU workers'
    options, tests/test_compose.py), against ``address``, on loopback."""
    command = compose()["services"]["cpu-worker"]["command"]
    assert command[:3] == ["dask", "worker", "tcp://scheduler:8786"]
    return [sys.executable, "-m", "distributed.cli.dask_worker", address, *command[3:],
            "--host", "127.0.0.1"]


class Deploy:
    """A scheduler process and the worker processes started against it."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler = self._start(scheduler_command(self.port), "scheduler")
        self.workers: list[subprocess.Popen] = []

    def wait_listening(self, timeout: float = 60) -> None:
        """Poll the port: a Client's connect backs off for up to ~20 s once refused."""
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.scheduler.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the scheduler did not start; see {self.logs}")

    def _start(self, command, name) -> subprocess.Popen:
        log = open(self.logs / f"{name}-{time.monotonic_ns()}.log", "w")
        with log:
            # own session: killing its group kills a worker and its nanny, like a container
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def ensure_workers(self, n: int, client) -> None:
        """Start workers until ``n`` have joined: each test says what it needs, so none
        depends on which tests ran before it in this process."""
        missing = n - len(client.scheduler_info()["workers"])
        self.workers += [self._start(cpu_worker_command(self.address), "worker")
                         for _ in range(missing)]
        client.wait_for_workers(n, timeout=60)

    def stop_workers(self, client, timeout: float = 30) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                self.kill(proc.pid)
        deadline = time.monotonic() + timeout
        while client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not client.scheduler_info()["workers"], "the killed workers stayed joined"

    def kill(self, pid: int) -> None:
        os.killpg(os.getpgid(pid), signal.SIGKILL)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def deploy(tmp_path_factory):
    from distributed import Client

    d = Deploy(tmp_path_factory.mktemp("deploy-logs"))
    try:
        d.wait_listening()
        with Client(d.address, timeout=30) as client:
            yield d, client
    finally:
        d.close()


def workflow(tmp_path: Path, sizes: dict) -> str:
    text = WORKFLOW
    for key, value in sizes.items():
        text = text.replace(key, value)
    path = tmp_path / "loss.yaml"
    path.write_text(text)
    return str(path)


def run(wf: str, out: Path, address: str, quiet: bool = True) -> int:
    return main(["run", wf, "--address", address, "--output-dir", str(out),
                 *(["--quiet"] if quiet else [])])


def test_a_scheduler_without_workers_is_exit_2(deploy, tmp_path, capsys):
    d, client = deploy
    d.stop_workers(client)
    with dask.config.set({"pipeline.workers-timeout": "1s"}):
        assert run(workflow(tmp_path, SMALL), tmp_path / "out", d.address) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: --address: the scheduler at {d.address} has no workers (none "
                   f"joined within 1 s) (start some: dask worker {d.address} (CPU) or "
                   f"dask cuda worker {d.address} (GPU))")


@pytest.fixture(scope="module")
def local_result(cluster, tmp_path_factory) -> np.ndarray:
    """The LONG workflow's result on the test session's LocalCluster."""
    tmp = tmp_path_factory.mktemp("local")
    assert run(workflow(tmp, LONG), tmp / "out", cluster.scheduler_address) == 0
    return np.load(tmp / "out" / "mean_power.npy")


def test_compose_commands_on_loopback_equal_the_local_cluster_run(deploy, local_result,
                                                                  tmp_path):
    d, client = deploy
    d.ensure_workers(2, client)
    assert run(workflow(tmp_path, LONG), tmp_path / "deploy", d.address) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "deploy" / "mean_power.npy"),
                                  local_result)
    report = json.loads((tmp_path / "deploy" / "report.json").read_text())
    assert report["cluster"] == {**report["cluster"], "kind": "existing",
                                 "address": d.address, "n_workers": 2}
    assert report["lost_workers"] == []
    # the scheduler (another process, with Dask's default config) kept the stages' tasks
    # apart: every stage's time is measured
    for stage in report["stages"][:3]:
        assert stage["tasks"] > 0 and stage["compute_s"] > 0, stage
    # a cluster we did not start is left running, workers and all
    assert d.scheduler.poll() is None and len(client.scheduler_info()["workers"]) == 2
    # every listening socket of the deploy is on loopback
    for info in client.scheduler_info()["workers"].values():
        assert info["host"] == "127.0.0.1"


def test_gpu_backend_on_cpu_workers_is_exit_2(deploy, tmp_path, capsys):
    d, client = deploy
    d.ensure_workers(2, client)
    wf = workflow(tmp_path, SMALL)
    code = main(["run", wf, "--address", d.address, "--backend", "gpu", "--quiet",
                 "--output-dir", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "backend: backend gpu asked for, but 2 of 2 worker(s) have no usable GPU" in err
    assert not (tmp_path / "out").exists()


def run_and_kill(d, client, wf: str, out: Path, victims: int,
                 quiet: bool = True) -> tuple[int, list[str]]:
    """Run ``wf`` in a thread; once the workers are busy, kill ``victims`` of them."""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run, wf, out, d.address, quiet)
        killed = []
        deadline = time.monotonic() + 60
        while len(killed) < victims and time.monotonic() < deadline and not running.done():
            busy = [w for w, keys in client.processing().items() if keys]
            if len(busy) >= min(victims, 2):
                for worker in busy[:victims]:
                    pid = client.run(os.getpid, workers=[worker])[worker]
                    d.kill(pid)
                    killed.append(worker)
            time.sleep(0.05)
        return running.result(timeout=120), killed


def test_losing_a_worker_mid_run_still_completes(deploy, local_result, tmp_path, capsys):
    d, client = deploy
    d.ensure_workers(2, client)
    code, killed = run_and_kill(d, client, workflow(tmp_path, LONG), tmp_path / "out",
                                victims=1)
    assert code == 0 and len(killed) == 1
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "mean_power.npy"), local_result)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (lost,) = report["lost_workers"]
    assert lost["worker"] == killed[0] and not lost["graceful"]
    assert f"warning: worker {killed[0]} was lost during the run" in capsys.readouterr().err


@pytest.mark.parametrize("on_a_terminal", [False, True], ids=["quiet", "progress"])
def test_losing_every_worker_fails_cleanly(deploy, tmp_path, capsys, monkeypatch,
                                           on_a_terminal):
    d, client = deploy
    d.ensure_workers(2, client)
    out = tmp_path / "out"
    if on_a_terminal:  # the progress display waits on the futures too
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    with dask.config.set({"pipeline.no-workers-timeout": "2s"}):
        code, killed = run_and_kill(d, client, workflow(tmp_path, LONG), out, victims=2,
                                    quiet=not on_a_terminal)
    assert len(killed) == 2 and code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: the run failed: every worker of {d.address} was lost and "
                          f"none joined within 2 s (pipeline.no-workers-timeout) (every worker "
                          f"was lost; fix: check that the workers are running")
    assert "\n" not in err
    assert not out.exists()  # no outputs, no staging folder; the report is in the history
    [entry] = out.with_name("out.history").iterdir()
    assert err.endswith(f"report: {entry / 'report.json'})")
