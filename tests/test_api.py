"""The Python API: load / run / build, the Result, and errors equal to the CLI's lines."""

import json
import socket

import dask.array as da
import numpy as np
import pandas as pd
import pytest

import pipeline
from pipeline.cli import main
from pipeline.runfolder import RunFolder
from tests.conftest import REPO

SPECTRUM = REPO / "workflows" / "spectrum.yaml"
SMALL = {"stages.signal.shape": [256, 64], "stages.signal.chunks": [100, 64]}


@pytest.fixture(scope="module")
def client(cluster):
    from distributed import Client

    with Client(cluster.scheduler_address) as c:
        yield c


def test_the_package_lists_its_api():
    names = set(dir(pipeline))
    assert {"load", "run", "build", "Result", "Workflow", "InputError", "RunFailed"} <= names


def test_load_a_file_with_overrides_of_both_kinds(tmp_path):
    wf = pipeline.load(SPECTRUM, {"stages.signal.shape": [8, 4], "backend": "cpu"})
    assert wf.stage("signal").params["shape"] == [8, 4] and wf.backend == "cpu"
    same = pipeline.load(str(SPECTRUM), ["stages.signal.shape=[8, 4]", "backend=cpu"],
                         output_dir=tmp_path)
    assert same.stage("signal").params == wf.stage("signal").params
    assert same.output_dir == tmp_path and same.path == SPECTRUM.resolve()


def test_load_a_mapping_resolves_reads_against_base_dir(tmp_path, client):
    data = np.random.default_rng().standard_normal((50, 6))
    np.save(tmp_path / "x.npy", data)
    doc = {"name": "m", "stages": [{"id": "x", "op": "read", "path": "x.npy"},
                                   {"id": "s", "op": "reduce", "input": "x", "how": "sum",
                                    "axis": 0},
                                   {"id": "save", "op": "write", "input": "s",
                                    "path": "s.json"}]}
    wf = pipeline.load(doc, base_dir=tmp_path, output_dir=tmp_path / "out")
    assert wf.path is None and wf.base_dir == tmp_path.resolve()
    assert doc["stages"][0] == {"id": "x", "op": "read", "path": "x.npy"}  # not changed
    result = pipeline.run(wf, client=client)
    np.testing.assert_allclose(result.values["save"], data.sum(axis=0), rtol=1e-12)


def _cli_line(capsys, argv) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err.strip()


@pytest.mark.parametrize("override", ["backend=gpux", "stages.spectrum.op=fftt",
                                      "stages.spectrum.axis=7"])
def test_bad_input_raises_the_line_the_cli_prints(override, capsys, tmp_path):
    line = _cli_line(capsys, ["validate", str(SPECTRUM), "--set", override])
    with pytest.raises(pipeline.InputError) as e:
        wf = pipeline.load(SPECTRUM, [override], output_dir=tmp_path)
        pipeline.build(wf)
    assert str(e.value) == e.value.line() == line
    assert isinstance(e.value, pipeline.PipelineError) and e.value.exit_code == 2


def test_a_mapping_with_a_bad_field_names_the_field_only():
    wf = pipeline.load({"name": "x", "stages": [{"id": "a", "op": "random", "shapez": [3]},
                                                {"id": "w", "op": "write", "input": "a",
                                                 "path": "a.npy"}]})
    with pytest.raises(pipeline.InputError) as e:
        pipeline.build(wf)
    assert str(e.value).startswith("error: stages.a: unknown key 'shapez'; did you mean "
                                   "'shape'? (accepted keys: shape, ")


def test_load_refuses_other_types():
    with pytest.raises(pipeline.InputError, match="cannot load a workflow from int"):
        pipeline.load(3)
    with pytest.raises(pipeline.InputError, match="cannot load a workflow from an empty path"):
        pipeline.load("")


def test_run_on_an_existing_client_leaves_it_open(client, tmp_path):
    result = pipeline.run(pipeline.load(SPECTRUM, SMALL), client=client, backend="cpu",
                          output_dir=tmp_path / "out")
    assert client.status == "running"
    assert result.report["backend"] == "cpu"
    assert result.report["cluster"]["address"] == client.scheduler.address
    assert [s["id"] for s in result.report["stages"]][:2] == ["signal", "spectrum"]
    assert result.run_folder == tmp_path / "out"
    assert result.outputs == {"save": (tmp_path / "out" / "mean_power.npy").resolve(),
                              "plot": (tmp_path / "out" / "mean_power.png").resolve()}
    assert set(result.values) == {"save"}  # the PNG is no value
    np.testing.assert_array_equal(result.values["save"], np.load(result.outputs["save"]))
    assert result.values["save"].shape == (33,)
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["stages"] == json.loads(json.dumps(result.report["stages"]))
    assert "spectrum" in repr(result)


def test_run_by_address_and_echo(cluster, tmp_path):
    lines = []
    result = pipeline.run(pipeline.load(SPECTRUM, SMALL), address=cluster.scheduler_address,
                          output_dir=tmp_path, backend="cpu", echo=lines.append)
    assert result.values["save"].shape == (33,)
    assert lines and lines[-1].startswith("workflow 'spectrum': backend cpu")


def test_run_refuses_a_client_that_is_not_one(tmp_path):
    with pytest.raises(pipeline.InputError, match="client must be a distributed.Client"):
        pipeline.run(pipeline.load(SPECTRUM, SMALL), client="tcp://127.0.0.1:1",
                     output_dir=tmp_path)


@pytest.mark.parametrize("name, value, what", [
    ("overrides", 5, "a mapping or a list"),  # before: TypeError
    ("output_dir", 5, "a path"),  # before: a Workflow whose run folder is "5"
    ("base_dir", 5, "a path"),  # before: TypeError
    ("trust_workflow", "no", "True or False"),  # before: "no", truthy, trusted the file
])
def test_load_refuses_an_argument_of_a_wrong_type(name, value, what):
    with pytest.raises(pipeline.InputError, match=f"{name} must be {what}"):
        pipeline.load(SPECTRUM, **{name: value})


@pytest.mark.parametrize("name", ["output_dir", "cache", "address", "dashboard_address"])
def test_run_refuses_an_empty_argument_not_taking_it_for_the_default(tmp_path, monkeypatch,
                                                                     name):
    # output_dir="" (a script's unset "$OUT") ran into the workflow's own run folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pipeline.InputError, match=f"{name}: {name} is empty"):
        pipeline.run(pipeline.load(SPECTRUM, SMALL), **{name: ""})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name, value, what", [
    # before: "no" is truthy, so taken as True (and written as is into report.json)
    ("fuse", "no", "True or False"), ("performance_report", "no", "True or False"),
    ("trust_workflow", None, "True or False"),
    ("output_dir", 5, "a path"),  # before: a run folder named "5"
    ("cache", 5, "a path"), ("address", 5, "a scheduler address"),
    ("dashboard_address", 5, "an address"),  # before: AttributeError
    ("echo", 5, "a function of one line"),  # before: TypeError, after the cluster started
    ("progress", "x", "True, False or a text stream"),  # before: "failed on a worker"
])
def test_run_refuses_an_argument_of_a_wrong_type(tmp_path, monkeypatch, name, value, what):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pipeline.InputError, match=f"{name} must be {what}"):
        pipeline.run(pipeline.load(SPECTRUM, SMALL), **{"output_dir": tmp_path / "out",
                                                       name: value})
    assert list(tmp_path.iterdir()) == []


def test_values_of_tables_and_scalars(client, tmp_path):
    doc = {"name": "t", "stages": [
        {"id": "t", "op": "random_table", "rows": 500, "partitions": 3, "seed": 4,
         "columns": {"k": {"keys": 5}, "v": {"distribution": "uniform"}}},
        {"id": "g", "op": "groupby", "input": "t", "by": "k", "agg": {"v": ["sum"]}},
        {"id": "arr", "op": "to_array", "input": "t", "columns": ["v"]},
        {"id": "total", "op": "reduce", "input": "arr", "how": "sum", "axis": None},
        {"id": "pq", "op": "write", "input": "g", "path": "g.parquet"},
        {"id": "records", "op": "write", "input": "g", "path": "g.json"},
        {"id": "scalar", "op": "write", "input": "total", "path": "total.json"}]}
    result = pipeline.run(doc, client=client, output_dir=tmp_path)
    table = result.values["pq"].sort_values("k").reset_index(drop=True)
    assert list(table.columns) == ["k", "v_sum"] and len(table) == 5
    pd.testing.assert_frame_equal(
        result.values["records"].sort_values("k").reset_index(drop=True), table,
        check_dtype=False)
    assert result.values["scalar"] == pytest.approx(table["v_sum"].sum(), rel=1e-12)


def test_failed_run_raises_run_failed(client, tmp_path):
    doc = {"name": "f", "stages": [
        {"id": "x", "op": "read", "path": "x.npy"},
        {"id": "w", "op": "write", "input": "x", "path": "y.npy"}]}
    with pytest.raises(pipeline.InputError, match="file not found: 'x.npy'"):
        pipeline.run(doc, client=client, output_dir=tmp_path / "out")


def test_run_keeps_the_run_folder_rules(client, tmp_path):
    """As the CLI does: the run folder is swapped in whole (the last one kept in its
    history), a failed run leaves it as it was and files its report in the history, and
    a run into a folder another run holds is refused before it connects anywhere."""
    out, history = tmp_path / "out", tmp_path / "out.history"
    wf = pipeline.load(SPECTRUM, SMALL, output_dir=out)
    first = pipeline.run(wf, client=client, backend="cpu")
    second = pipeline.run(wf, client=client, backend="cpu")
    (kept,) = history.iterdir()
    assert json.loads((kept / "report.json").read_text())["started"] \
        == first.report["started"]
    np.testing.assert_array_equal(second.values["save"], np.load(out / "mean_power.npy"))
    before = sorted(p.name for p in out.iterdir())
    boom = {"name": "b", "stages": [
        {"id": "x", "op": "random", "shape": [8, 4], "chunks": [4, 4]},
        {"id": "e", "op": "map_blocks", "input": "x", "function": "tests.userfuncs:explode",
         "kwargs": {"message": "no"}},
        {"id": "w", "op": "write", "input": "e", "path": "e.npy"}]}
    with pytest.raises(pipeline.RunFailed, match="explode raised ValueError: no"):
        pipeline.run(boom, client=client, output_dir=out)
    assert sorted(p.name for p in out.iterdir()) == before
    (failed,) = (p for p in history.iterdir() if p.name.endswith("-failed"))
    assert json.loads((failed / "report.json").read_text())["status"] == "failed"
    with socket.socket() as s, RunFolder(out):  # another run holds the folder
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.settimeout(0.5)
        with pytest.raises(pipeline.InputError, match=r"another run \(pid \d+\) is writing"):
            pipeline.run(wf, address=f"tcp://127.0.0.1:{s.getsockname()[1]}")
        with pytest.raises(TimeoutError):
            s.accept()  # nothing connected


def test_build_gives_lazy_collections_to_go_on_with(client, tmp_path):
    data = np.random.default_rng().standard_normal((120, 16))
    np.save(tmp_path / "x.npy", data)
    doc = {"name": "b", "stages": [
        {"id": "x", "op": "read", "path": "x.npy", "chunks": [50, 16]},
        {"id": "z", "op": "rfft", "input": "x", "axis": 1},
        {"id": "save", "op": "write", "input": "z", "path": "z.npy"}]}
    lazy = pipeline.build(pipeline.load(doc, base_dir=tmp_path, output_dir=tmp_path / "o"),
                          client=client)
    assert list(lazy) == ["x", "z"] and isinstance(lazy["z"], da.Array)
    assert lazy["z"].chunks[0] == (50, 50, 20)
    power = (abs(lazy["z"]) ** 2).mean(axis=0)  # going on by hand
    np.testing.assert_allclose(client.compute(power).result(),
                               (np.abs(np.fft.rfft(data, axis=1)) ** 2).mean(axis=0))
    assert not (tmp_path / "o").exists()  # building writes nothing
