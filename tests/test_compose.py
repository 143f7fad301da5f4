"""The docker-compose deploy, checked without a Docker engine: the files against the Compose
specification, every service's command against the CLI that will run it, the CPU services
against the GPU ones, the TLS file's roles, the settings in .env, the Dockerfile's base
image against our RAPIDS pins, and the scripts in docker/. tests/test_docker.py runs it."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import click
import pytest
import yaml

from pipeline import cli, plan, spec
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
TLS = REPO / "docker-compose.tls.yml"
ENV_FILE = REPO / ".env"
VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")

# `dask cuda worker`'s options, read from dask-cuda 26.10.0's CLI (dask_cuda/cli.py in the
# wheel from `pip download dask-cuda==26.10.* --no-deps`): dask-cuda is not installed here.
CUDA_WORKER_OPTIONS = (
    "--host", "--worker-port", "--listen-address", "--contact-address", "--nthreads",
    "--name", "--memory-limit", "--device-memory-limit", "--cudf-spill-stats",
    "--rmm-pool-size", "--rmm-maximum-pool-size", "--set-rmm-allocator-for-libs",
    "--rmm-release-threshold", "--rmm-log-directory", "--pid-file", "--resources",
    "--dashboard-address", "--local-directory", "--scheduler-file", "--protocol",
    "--interface", "--preload", "--death-timeout", "--dashboard-prefix", "--tls-ca-file",
    "--tls-cert", "--tls-key", "--worker-class", "--pre-import", "--multiprocessing-method",
)
CUDA_WORKER_SWITCHES = (
    "--enable-cudf-spill/--disable-cudf-spill", "--rmm-managed-memory/--no-rmm-managed-memory",
    "--rmm-async/--no-rmm-async", "--rmm-track-allocations/--no-rmm-track-allocations",
    "--dashboard/--no-dashboard", "--enable-tcp-over-ucx/--disable-tcp-over-ucx",
    "--enable-infiniband/--disable-infiniband", "--enable-nvlink/--disable-nvlink",
    "--enable-rdmacm/--disable-rdmacm",
)


def env_file() -> dict[str, str]:
    out = {}
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(value, env: dict[str, str]):
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution, on every string."""
    if isinstance(value, str):
        return VAR.sub(lambda m: env.get(m[1]) or (m[2] or ""), value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def compose(env: dict[str, str] | None = None) -> dict:
    """docker-compose.yml as Compose reads it: merge keys resolved, variables set."""
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env_file() if env is None else env)


def cuda_worker_command() -> click.Command:
    """A click command with `dask cuda worker`'s parameters, to parse its arguments."""
    params = [click.Argument(["scheduler"], required=False)]
    params += [click.Option([name]) for name in CUDA_WORKER_OPTIONS]
    params += [click.Option([switch]) for switch in CUDA_WORKER_SWITCHES]
    return click.Command("worker", params=params)


def dask_command(name: str) -> click.Command:
    from distributed.cli import dask_scheduler, dask_worker

    return {"scheduler": dask_scheduler.main, "worker": dask_worker.main}[name]


def check_command(command: list[str]) -> None:
    """Parse ``command`` with the CLI that runs it; raise on anything it would reject."""
    match command:
        case ["dask", "cuda", "worker", *args]:
            cuda_worker_command().make_context("dask cuda worker", list(args))
        case ["dask", ("scheduler" | "worker") as name, *args]:
            # real click parsing: an unknown option or a bad value raises
            dask_command(name).make_context(f"dask {name}", list(args))
        case ["python", "-m", "pipeline", *args]:
            parsed = cli._parser().parse_args(args)
            # the workflow is mounted from ./workflows at /work/workflows, the working dir
            plan.build(spec.load(REPO / parsed.workflow))
        case _:
            raise AssertionError(f"no known CLI runs {command}")


def test_compose_file_matches_the_compose_specification(tmp_path):
    exe = shutil.which("check-jsonschema") or pytest.fail("pip install -e '.[test]'")
    ok = subprocess.run([exe, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # the validator is live: a key the specification lacks fails it
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE.read_text().replace("shm_size: 1gb", "shm_sise: 1gb"))
    failed = subprocess.run([exe, "--builtin-schema", "vendor.compose-spec", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "shm_sise" in failed.stdout


def test_every_service_command_is_accepted_by_its_cli():
    services = compose()["services"]
    assert {"scheduler", "runner", "worker-0", "worker-7", "cpu-worker",
            "cpu-runner"} <= set(services)
    for name, service in services.items():
        check_command(service["command"])
    runner = services["runner"]["command"]
    assert runner[runner.index("--address") + 1] == "tcp://scheduler:8786"


def given(ctx: click.Context) -> dict[str, str]:
    """The options a command line set, by name, as text."""
    return {name: str(value) for name, value in ctx.params.items()
            if ctx.get_parameter_source(name).name == "COMMANDLINE"}


def test_the_cpu_services_are_the_gpu_ones_less_the_gpu():
    """tests/test_docker.py runs the CPU services: they must be the GPU deployment but for
    the GPU, so what it proves holds for the file a GPU host runs."""
    services = compose()["services"]
    cuda, cpu = services["worker-0"], services["cpu-worker"]
    cuda_args = given(cuda_worker_command().make_context("w", cuda["command"][3:]))
    cpu_args = given(dask_command("worker").make_context("w", cpu["command"][2:]))
    known = {p.name for p in dask_command("worker").params}
    # every option `dask worker` has, at the same value; only dask-cuda's own are dropped
    assert cpu_args == {k: v for k, v in cuda_args.items() if k in known}
    assert set(cuda_args) - known == {"rmm_pool_size", "set_rmm_allocator_for_libs"}
    gpu_only = {"command", "environment", "shm_size", "ulimits", "deploy", "profiles"}
    assert {k: v for k, v in cuda.items() if k not in gpu_only} == \
        {k: v for k, v in cpu.items() if k not in {"command", "profiles", "scale"}}
    runner, cpu_runner = services["runner"], services["cpu-runner"]
    assert {**cpu_runner, "profiles": ["run"], "deploy": runner["deploy"]} == runner
    # only GPU services reserve GPUs
    assert [n for n, s in services.items() if "deploy" in s] == [
        *(f"worker-{i}" for i in range(8)), "runner"]


@pytest.mark.parametrize("command, rejected", [
    (["dask", "scheduler", "--prot", "8786"], "No such option"),
    (["dask", "worker", "tcp://s:8786", "--nthreads", "two"], "not a valid integer"),
    (["dask", "cuda", "worker", "tcp://s:8786", "--rmm-pool", "1GB"], "No such option"),
    (["python", "-m", "pipeline", "run", "workflows/spectrum.yaml", "--adress", "x"], "2"),
])
def test_a_wrong_command_is_caught(command, rejected, capsys):
    with pytest.raises((click.ClickException, SystemExit)) as e:
        check_command(command)
    assert rejected in (str(e.value.code) if isinstance(e.value, SystemExit)
                        else e.value.format_message())


def test_one_cuda_worker_service_per_gpu_set_in_env():
    env = env_file()
    services = compose(env)["services"]
    workers = {n: s for n, s in services.items() if n.startswith("worker-")}
    assert len(workers) == 8
    for name, service in workers.items():
        i = name.removeprefix("worker-")
        assert service["profiles"] == [f"gpu{i}"]
        assert service["command"][:3] == ["dask", "cuda", "worker"]
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"driver": "nvidia", "device_ids": [env[f"GPU_{i}"]],
                          "capabilities": ["gpu"]}
        assert service["shm_size"] == "1gb"
        assert service["ulimits"] == {"memlock": -1, "stack": 67108864}
        assert "./workflows:/work/workflows:ro" in service["volumes"]
    # the GPU workers that start are set in .env, and each has its GPU id there
    profiles = env["COMPOSE_PROFILES"].split(",")
    assert profiles and all(re.fullmatch(r"gpu[0-7]", p) for p in profiles)


def test_variables_are_set_or_defaulted_and_nothing_is_published_beyond_loopback():
    env = env_file()
    for var, default in VAR.findall(COMPOSE.read_text()):
        assert var in env or default, f"${{{var}}} has no value in .env and no default"
    for settings in (env, {}):  # as shipped, and with no .env at all
        ports = compose(settings)["services"]["scheduler"]["ports"]
        assert ports == ["127.0.0.1:8786:8786", "127.0.0.1:8787:8787"]
    services = compose()["services"]
    assert [n for n, s in services.items() if s.get("ports")] == ["scheduler"]


def test_dockerfile_base_image_is_on_the_rapids_line_we_pin():
    text = (REPO / "Dockerfile").read_text()
    image = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)[1]
    # compose builds with the same default, unless .env picks the CPU base
    build = compose({})["services"]["scheduler"]["build"]
    assert build["args"] == {"BASE_IMAGE": image, "BACKEND": "gpu"}
    assert re.search(r"^ARG BACKEND=gpu$", text, re.M)
    # rapidsai/base tags: <RAPIDS>-cuda<major>-py<python> from RAPIDS 25.12 on
    m = re.fullmatch(r"rapidsai/base:(\d\d\.\d\d)-cuda12-py3\.(\d+)", image)
    assert m, image
    gpu = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["gpu"]
    pins = {re.match(r"[\w-]+", r)[0]: r for r in gpu}
    assert re.fullmatch(rf"dask-cuda(\[cu12\])?=={re.escape(m[1])}\.\*", pins["dask-cuda"])
    assert int(m[2]) >= 11  # requires-python
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)


def dask_env(environment: dict[str, str]) -> dict:
    """Dask config from ``DASK_*`` variables, as dotted keys for dask.config.set."""
    import dask

    def flat(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    return dict(flat(dask.config.collect_env(environment)))


def tls_role(service: str) -> str:
    return {"scheduler": "scheduler", "runner": "client", "cpu-runner": "client"}.get(
        service, "worker")


def test_the_tls_file_gives_every_service_tls_and_only_its_own_key():
    import dask
    from distributed.security import Security

    exe = shutil.which("check-jsonschema") or pytest.fail("pip install -e '.[test]'")
    ok = subprocess.run([exe, "--builtin-schema", "vendor.compose-spec", str(TLS)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    tls = interpolate(yaml.safe_load(TLS.read_text()), {"CERTS_DIR": "/c"})["services"]
    assert set(tls) == set(compose()["services"])  # a new service cannot miss it
    for name, service in tls.items():
        role = tls_role(name)
        mounts = dict(v.removesuffix(":ro").split(":")[::-1] for v in service["volumes"])
        assert mounts == {f"/certs/{f}": f"/c/{f}"
                          for f in ("ca.pem", f"{role}.pem", f"{role}-key.pem")}
        # the variables are Dask config that Security reads, for this role
        with dask.config.set(dask_env(service["environment"])):
            sec = Security()
        assert sec.require_encryption and sec.tls_ca_file == "/certs/ca.pem"
        assert getattr(sec, f"tls_{role}_cert") == f"/certs/{role}.pem"
        assert getattr(sec, f"tls_{role}_key") == f"/certs/{role}-key.pem"


def test_the_hosts_file_in_the_docs_is_accepted():
    """docs/deploy.md's docker-compose.hosts.yml (TLS comes from docker-compose.tls.yml,
    which covers every service): every command parses, on the host's network."""
    text = (REPO / "docs" / "deploy.md").read_text()
    block = re.search(r"```yaml\n(# docker-compose.hosts.yml\n.*?)```", text, re.S)[1]

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reset", lambda loader, node: None)  # Compose's reset tag
    env = {**env_file(), "SCHEDULER_HOST": "10.0.0.5", "WORKER_HOST": "10.0.0.6",
           "PUBLISH_ADDRESS": "10.0.0.5"}
    services = interpolate(yaml.load(block, Loader=Loader), env)["services"]
    assert set(services) <= set(compose()["services"])
    for service in services.values():
        assert service["network_mode"] == "host"
        check_command(service["command"])
    assert "tls://10.0.0.5:8786" in services["worker-0"]["command"]
    assert "tls://10.0.0.5:8786" in services["runner"]["command"]


def script(name: str):
    """docker/<name>.py, a script rather than a module of the package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "docker" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_image_check_says_what_the_image_lacks():
    from importlib import metadata, util

    check = script("check_image")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # this host meets the core pins; it has none of the GPU libraries
    assert [p for p in check.problems("cpu", project) if "GPU libraries" not in p] == []
    if not any(util.find_spec(m) for m in check.GPU_MODULES):
        gpu = check.problems("gpu", project)
        assert "dask-cuda is not installed" in gpu
        assert "cudf is missing from the base image" in gpu
    wrong = {**project, "dependencies": ["distributed==1.0", "no-such-package>=1"]}
    assert check.problems("cpu", wrong)[:2] == [
        f"distributed {metadata.version('distributed')} does not meet distributed==1.0",
        "no-such-package is not installed"]


def test_the_base_image_pins_dependencies_of_dependencies_at_their_versions_here():
    from importlib import metadata

    pins = script("pins").pins(["dask[array]==2026.7.1"])
    assert pins["dask"] == metadata.version("dask")
    assert pins["numpy"] == metadata.version("numpy")  # through the array extra
    assert "toolz" in pins and "pandas" not in pins  # dask's own; not asked for
    assert "pandas" in script("pins").pins(["dask[dataframe]"])

