"""docker-compose.yml driven for real, for tests/test_docker.py and benchmarks/compose.py:
the CPU deployment (profile ``cpu``, the image built on docker/cpu-base.sh's local base),
under a compose project of its own, its ports on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = "pipeline-cpu-base:local"
IMAGE = "pipeline:cpu"
COMPOSE_TIMEOUT = 300  # seconds for any one compose command or one-off container


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) where the plugin is installed, else ``docker-compose``."""
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def engine_problem() -> str | None:
    """Why the deploy cannot run here (the engine's own words), or None when it can."""
    if not shutil.which("docker"):
        return "no docker CLI (apt-get install docker.io; .ci/run does)"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        why = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no Docker engine reachable: {why} (start dockerd; .ci/run does)"
    if compose_command() is None:
        return "neither `docker compose` nor docker-compose is installed"
    have_base = subprocess.run(["docker", "image", "inspect", BASE_IMAGE],
                               capture_output=True).returncode == 0
    if not have_base and not (shutil.which("debootstrap") and os.geteuid() == 0):
        return f"{BASE_IMAGE} is missing and docker/cpu-base.sh needs root and debootstrap"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(command: list[str], **kwargs) -> tuple[float, str]:
    """Run ``command``; its wall time in seconds, and its stdout.

    Raises
    ------
    RuntimeError
        It failed (its output is in the message).
    """
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start, done.stdout


def build_base() -> tuple[float, list[str]]:
    """docker/cpu-base.sh: seconds taken (about one when the base image is current), and
    the script's lines (each step's time)."""
    seconds, out = timed(["bash", str(REPO / "docker" / "cpu-base.sh")], timeout=1800,
                         env={**os.environ, "CPU_BASE_IMAGE": BASE_IMAGE})
    return seconds, out.splitlines()


class Stack:
    """One compose project of docker-compose.yml (+ docker-compose.tls.yml with
    ``certs``): its settings, and the commands the tests give it."""

    def __init__(self, results: Path, workflows: Path, certs: Path | None = None,
                 workers: int = 2):
        self.project = f"pipeline-test-{uuid.uuid4().hex[:8]}"
        self.certs, self.results = certs, results
        self.port, self.dashboard_port = free_port(), free_port()
        results.chmod(0o777)  # the image's user (uid 1001) writes the run folders
        self.env = {
            **os.environ, "COMPOSE_PROFILES": "cpu", "BASE_IMAGE": BASE_IMAGE,
            "IMAGE_BACKEND": "cpu", "PIPELINE_IMAGE": IMAGE,
            "SCHEDULER_PORT": str(self.port), "DASHBOARD_PORT": str(self.dashboard_port),
            "RESULTS_DIR": str(results), "WORKFLOWS_DIR": str(workflows),
            "THREADS_PER_WORKER": "1", "CPU_WORKERS": str(workers),
            "SCHEDULER_SCHEME": "tls" if certs else "tcp",
            **({"CERTS_DIR": str(certs)} if certs else {}),
        }
        files = ["docker-compose.yml", *(["docker-compose.tls.yml"] if certs else [])]
        self.command = [*compose_command(), "-p", self.project,
                        *[arg for f in files for arg in ("-f", str(REPO / f))]]
        self.address = f"{self.env['SCHEDULER_SCHEME']}://127.0.0.1:{self.port}"

    def compose(self, *args: str, settings: dict | None = None,
                timeout: float = COMPOSE_TIMEOUT) -> str:
        """Run a compose command on this project; its stdout.

        Raises
        ------
        RuntimeError
            It failed (its stderr is in the message).
        """
        done = subprocess.run([*self.command, *args], cwd=REPO,
                              env={**self.env, **(settings or {})},
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"compose {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def build(self, cache: bool = True) -> float:
        """Build the image (every service's) once; seconds taken."""
        return timed([*self.command, "build", "--force-rm",
                      *([] if cache else ["--no-cache"]), "scheduler"],
                     cwd=REPO, env=self.env, timeout=COMPOSE_TIMEOUT)[0]

    def up(self, *services: str) -> float:
        """``up -d``: compose starts the workers once the scheduler's health check
        passes. Seconds taken."""
        start = time.perf_counter()
        self.compose("up", "-d", *services)
        return time.perf_counter() - start

    def containers(self, service: str, stopped: bool = False) -> list[str]:
        """Container ids of ``service``'s replicas (one-off runs not included)."""
        return self.compose("ps", "-q", *(["-a"] if stopped else []), service).split()

    def inspect(self, container: str) -> dict:
        return json.loads(subprocess.run(["docker", "inspect", container], check=True,
                                         capture_output=True, text=True).stdout)[0]

    def ip(self, container: str) -> str:
        (net,) = self.inspect(container)["NetworkSettings"]["Networks"].values()
        return net["IPAddress"]

    def run(self, service: str = "cpu-runner", *, settings: dict | None = None,
            env: dict | None = None, no_deps: bool = False) -> str:
        """Start a one-off container of ``service`` with its own command; its id.
        ``settings``: compose variables (.env's) for this run; ``env``: the container's
        environment. Detached: docker-compose 1.29 prints the exit code of an attached
        `run` as a line of its own, among the container's; ``wait`` reads them apart."""
        extra = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
        out = self.compose("run", "-d", "-T", *(["--no-deps"] if no_deps else []),
                           *extra, service, settings=settings)
        return out.split()[-1]

    def wait(self, container: str, timeout: float = COMPOSE_TIMEOUT) -> tuple[int, str, str]:
        """Exit code, stdout and stderr of a one-off container, which is then removed.

        Raises
        ------
        subprocess.TimeoutExpired
            It ran past ``timeout`` (it is removed all the same).
        """
        try:
            code = int(subprocess.run(["docker", "wait", container], check=True,
                                      capture_output=True, text=True,
                                      timeout=timeout).stdout)
            logs = subprocess.run(["docker", "logs", container], capture_output=True,
                                  text=True, check=True)
            return code, logs.stdout, logs.stderr
        finally:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)

    def leftovers(self) -> list[str]:
        """Containers and networks of this project that still exist."""
        label = f"label=com.docker.compose.project={self.project}"
        return [*subprocess.run(["docker", "ps", "-aq", "--filter", label], check=True,
                                capture_output=True, text=True).stdout.split(),
                *subprocess.run(["docker", "network", "ls", "-q", "--filter", label],
                                check=True, capture_output=True, text=True).stdout.split()]

    def down(self) -> float:
        start = time.perf_counter()
        self.compose("down", "--remove-orphans", "-t", "5")
        return time.perf_counter() - start

    @contextmanager
    def client(self, security=None, timeout: float = 30):
        """A Dask client here, through the published port. The image's Python is
        Debian's 3.11.2 and this one may differ in its patch level, which Dask warns of;
        every package must match (``version_differences``)."""
        from distributed import Client
        from distributed.versions import VersionMismatchWarning

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Mismatched versions found",
                                    VersionMismatchWarning)
            with Client(self.address, security=security, timeout=timeout) as client:
                yield client

    def wait_for_workers(self, n: int, security=None, timeout: float = 120) -> None:
        with self.client(security) as client:
            client.wait_for_workers(n, timeout=timeout)


def version_differences(client) -> dict:
    """Packages whose versions differ between this process and the cluster's members."""
    versions = client.get_versions()
    mine = versions["client"]["packages"]
    others = [versions["scheduler"]["packages"],
              *(v["packages"] for v in versions["workers"].values())]
    return {pkg: {mine.get(pkg), *(o.get(pkg) for o in others)} for pkg in mine
            if pkg != "python" and any(o.get(pkg) != mine[pkg] for o in others)}


def make_certs(folder: Path, roles=("scheduler", "worker", "client")) -> Path:
    """A CA (``ca.pem``) and, per role, ``<role>.pem`` and ``<role>-key.pem`` signed by it,
    readable by the image's user; ``folder`` is returned."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject, key, issuer, issuer_key, ca):
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(issuer_key, hashes.SHA256()))

    def write(path, data):
        path.write_bytes(data)
        path.chmod(0o644)  # a test folder: the containers' user must read the keys

    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert(name("pipeline-test-ca"), ca_key, name("pipeline-test-ca"), ca_key, True)
    write(folder / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    for role in roles:
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = cert(name(f"pipeline-{role}"), key, ca.subject, ca_key, False)
        write(folder / f"{role}.pem", leaf.public_bytes(serialization.Encoding.PEM))
        write(folder / f"{role}-key.pem", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return folder
