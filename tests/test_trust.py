"""The trust rule (pipeline/trust.py): a workflow file cannot connect this process to a
scheduler, hand out TLS credentials or open the dashboard to other machines on its own;
the user can, from the command line, the environment, a Dask config file, or by trusting
the file with --trust-workflow."""

from __future__ import annotations

import json
import socket
import textwrap

import dask
import pytest

import pipeline
from pipeline import trust
from pipeline.cli import main
from pipeline.errors import InputError

STAGES = "stages:\n - {id: x, op: random, shape: [8]}\n - {id: w, op: write, input: x, path: x.npy}\n"


def workflow(tmp_path, cluster: str = "", stages: str = STAGES):
    path = tmp_path / "wf.yaml"
    path.write_text(f"name: t\n{cluster}{stages}")
    return str(path)


@pytest.fixture
def listener():
    """A TCP port that records whether anything connected to it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.settimeout(0.5)

        def connected() -> bool:
            try:
                s.accept()[0].close()
                return True
            except TimeoutError:
                return False

        yield f"tcp://127.0.0.1:{s.getsockname()[1]}", connected


@pytest.mark.parametrize("command", ["run", "validate"])
def test_an_address_in_the_file_is_refused_without_connecting(tmp_path, capsys, listener,
                                                                command):
    address, connected = listener
    wf = workflow(tmp_path, f"cluster: {{address: '{address}'}}\n")
    assert main([command, wf, *(["--output-dir", str(tmp_path / "out")]
                                if command == "run" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {wf}: cluster.address: the workflow file asks to connect to the "
                   f"scheduler at '{address}'; a scheduler can run code in this process "
                   f"(give it yourself (--address ADDR, or DASK_PIPELINE__ADDRESS in the "
                   f"environment), or run with --trust-workflow if you trust the file's "
                   f"author)")
    assert not connected()  # never reached: a hostile scheduler's reply is never unpickled
    assert not (tmp_path / "out").exists()


def test_the_users_own_address_is_used(tmp_path, address, capsys):
    wf = workflow(tmp_path)
    out = str(tmp_path / "out")
    for how in (["--address", address], ["--set", f"cluster.address={address}"]):
        assert main(["run", wf, *how, "--output-dir", out, "--quiet"]) == 0, \
            capsys.readouterr().err
    with dask.config.set({"pipeline.address": address}):  # DASK_PIPELINE__ADDRESS, a file
        assert main(["run", wf, "--output-dir", out, "--quiet"]) == 0
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    assert doc["cluster"]["kind"] == "existing" and doc["cluster"]["address"] == address


def test_trust_workflow_lets_the_file_set_the_address(tmp_path, address):
    wf = workflow(tmp_path, f"cluster: {{address: '{address}'}}\n")
    out = tmp_path / "out"
    assert main(["run", wf, "--trust-workflow", "--output-dir", str(out), "--quiet"]) == 0
    assert json.loads((out / "report.json").read_text())["cluster"]["address"] == address


@pytest.mark.parametrize("value, refused", [
    ("127.0.0.1:8787", False), ("localhost:0", False), ("127.0.0.2:0", False),
    ("0.0.0.0:8787", True), (":8787", True), ("8787", True), ("myhost:8787", True),
    ("127.0.0.1:0,0.0.0.0:0", True),
])
def test_a_dashboard_beyond_loopback_needs_the_user(tmp_path, capsys, value, refused):
    wf = workflow(tmp_path, f"cluster: {{dashboard_address: '{value}'}}\n")
    assert main(["validate", wf]) == (2 if refused else 0)
    if refused:
        assert "cluster.dashboard_address: the workflow file asks to open the dashboard on" \
            in capsys.readouterr().err
        assert main(["validate", wf, "--trust-workflow"]) == 0
        assert main(["validate", wf, "--set", f"cluster.dashboard_address='{value}'"]) == 0


def test_security_in_the_file_needs_the_user(tmp_path, capsys):
    (tmp_path / "ca.pem").write_text("ca")
    wf = workflow(tmp_path, "cluster: {security: {tls_ca_file: ca.pem}}\n")
    assert main(["validate", wf]) == 2
    err = capsys.readouterr().err
    assert "cluster.security: the workflow file sets TLS credentials" in err
    assert "Dask's distributed.comm.tls settings" in err
    assert main(["validate", wf, "--trust-workflow"]) == 0


@pytest.mark.parametrize("value", ["nonsense:xx", "host:99999", "a b:1", "::1:80"])
def test_bad_dashboard_addresses_are_exit_2(tmp_path, capsys, value):
    wf = workflow(tmp_path)
    assert main(["run", wf, "--dashboard-address", value,
                 "--output-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --dashboard-address: bad address {value!r} (HOST:PORT, e.g. "
        "127.0.0.1:8787; port 0 picks a free one)")
    assert not (tmp_path / "out").exists()


def test_loopback_rule():
    assert trust.is_loopback("127.0.0.1:8787", "x") and trust.is_loopback("localhost", "x")
    assert not trust.is_loopback("10.0.0.1:8787", "x") and not trust.is_loopback(":1", "x")
    with pytest.raises(InputError, match="bad address"):
        trust.listen_hosts("h:p", "x")


def test_reads_outside_the_workflow_folder_are_listed(tmp_path, address):
    import numpy as np

    data = tmp_path / "elsewhere"
    data.mkdir()
    np.save(data / "x.npy", np.arange(6.0))
    folder = tmp_path / "wf"
    folder.mkdir()
    wf = workflow(folder, stages=textwrap.dedent(f"""\
        stages:
         - {{id: a, op: read, path: {data / 'x.npy'}}}
         - {{id: b, op: read, path: ../elsewhere/x.npy}}
         - {{id: w, op: write, input: a, path: a.npy}}
         - {{id: v, op: write, input: b, path: b.npy}}
        """))
    out = tmp_path / "out"
    assert main(["run", wf, "--address", address, "--output-dir", str(out), "--quiet"]) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["reads_outside_workflow_folder"] == [str(data / "x.npy"),
                                                    str(folder / "../elsewhere/x.npy")]
    assert "read from outside the workflow&#x27;s folder" in (out / "report.html").read_text()


def test_a_function_in_the_file_needs_the_user(tmp_path, capsys, monkeypatch):
    """A ``function:`` runs code: a file names one only with --trust-workflow, and nothing
    of it is imported before that is known."""
    (tmp_path / "hostile.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('ran').touch()\n"
        "def f(block):\n    return block\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    wf = workflow(tmp_path, stages=(
        "stages:\n - {id: x, op: random, shape: [8]}\n"
        " - {id: f, op: map_blocks, input: x, function: 'hostile:f'}\n"
        " - {id: w, op: write, input: f, path: x.npy}\n"))
    assert main(["validate", wf]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {wf}: stages.f.function: the workflow file runs the Python function "
        "'hostile:f' in this process and on the workers (run with --trust-workflow if you "
        "trust the file's author (README: your own code))")
    assert not (tmp_path / "ran").exists()
    with pytest.raises(InputError, match="runs the Python function"):
        pipeline.load(wf)
    assert main(["validate", wf, "--set", "stages.f.function=hostile:f"]) == 0
    assert (tmp_path / "ran").exists()
    assert main(["validate", wf, "--trust-workflow"]) == 0
    doc = {"name": "t", "stages": [{"id": "x", "op": "random", "shape": [8]},
                                    {"id": "f", "op": "map_blocks", "input": "x",
                                     "function": "hostile:f"},
                                    {"id": "w", "op": "write", "input": "f", "path": "x.npy"}]}
    assert pipeline.load(doc).stage("f").params["function"] == "hostile:f"  # the caller's


def test_a_sink_url_in_the_file_needs_the_user(tmp_path, capsys):
    """Writing to a URL sends data (anything the run may read) to another machine."""
    url = "memory://trust-test/x.npy"
    wf = workflow(tmp_path, stages=("stages:\n - {id: x, op: random, shape: [8]}\n"
                                    f" - {{id: w, op: write, input: x, path: '{url}'}}\n"))
    assert main(["validate", wf]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {wf}: stages.w.path: the workflow file sends data to '{url}', on another "
        "machine (give it yourself (--set stages.w.path=URL), or run with --trust-workflow "
        "if you trust the file's author)")
    assert main(["validate", wf, "--set", f"stages.w.path={url}"]) == 0
    assert main(["validate", wf, "--trust-workflow"]) == 0
    reads = workflow(tmp_path, stages=(f"stages:\n - {{id: x, op: read, path: '{url}'}}\n"
                                       " - {id: w, op: write, input: x, path: x.npy}\n"))
    assert "sends data" not in _validate_err(reads, capsys)  # reads are listed, not refused


def _validate_err(wf: str, capsys, *extra: str) -> str:
    main(["validate", wf, *extra])
    return capsys.readouterr().err


def test_a_storage_server_in_the_file_needs_the_user(tmp_path, capsys):
    """A storage_options key naming a server (here nested, as s3fs takes it) would send
    this user's own storage credentials there: only a loopback server, the user's --set or
    --trust-workflow lets it through. (memory:// takes no such option: once trusted, the
    file fails later, without any network.)"""
    def stages(server: str) -> str:
        return ("stages:\n - {id: x, op: read, path: 'memory://trust-test/x.npy', "
                f"storage_options: {{anon: true, client_kwargs: {{endpoint_url: '{server}'}}}}}}\n"
                " - {id: w, op: write, input: x, path: x.npy}\n")

    wf = workflow(tmp_path, stages=stages("http://192.0.2.1:9000"))
    assert main(["validate", wf]) == 2
    key = "stages.x.storage_options.client_kwargs.endpoint_url"
    assert capsys.readouterr().err.strip() == (
        f"error: {wf}: {key}: the workflow file sends this user's storage credentials to the "
        f"server it names ('http://192.0.2.1:9000') (give it yourself (--set {key}=...), or "
        "run with --trust-workflow if you trust the file's author)")
    with pytest.raises(InputError, match="storage credentials"):
        pipeline.load(wf)
    for how in (["--set", f"{key}=http://192.0.2.1:9000"], ["--trust-workflow"]):
        assert "storage credentials" not in _validate_err(wf, capsys, *how)
    for server in ("http://127.0.0.1:9000", "localhost:9000", "http://[::1]:9"):
        assert "storage credentials" not in _validate_err(
            workflow(tmp_path, stages=stages(server)), capsys)
