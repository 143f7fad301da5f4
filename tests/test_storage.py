"""read / write at fsspec URLs against real servers on 127.0.0.1: an HTTP server (reads,
with range requests) and moto's S3 server (reads and writes); errors name the URL."""

import json
import socket

import numpy as np
import pandas as pd
import pytest

import pipeline
from pipeline.cli import main
from tests.servers import http_server, moto_server

CREDS = {"key": "testing", "secret": "testing"}


@pytest.fixture(scope="module")
def s3():
    """``(storage_options, s3fs filesystem)`` of a moto server with a bucket 'data'."""
    s3fs = pytest.importorskip("s3fs")
    with moto_server() as endpoint:
        options = {**CREDS, "endpoint_url": endpoint}
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("data")
        yield options, fs


@pytest.fixture
def client(cluster):
    from distributed import Client

    with Client(cluster.scheduler_address) as c:
        yield c


def run(doc, client, tmp_path, **kw):
    return pipeline.run(pipeline.load(doc, base_dir=tmp_path), client=client,
                        output_dir=tmp_path / "out", **kw)


def one_line_error(capsys, doc, tmp_path, address) -> str:
    (tmp_path / "wf.yaml").write_text(json.dumps(doc))
    assert main(["run", str(tmp_path / "wf.yaml"), "--trust-workflow", "--address", address,
                 "--quiet", "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ")
    return err


def test_http_reads_npy_by_ranges_and_tables(tmp_path, client):
    rng = np.random.default_rng()
    c_order = rng.standard_normal((301, 7)).astype(np.float32)
    f_order = np.asfortranarray(rng.standard_normal((5, 40)))
    np.save(tmp_path / "c.npy", c_order)
    np.save(tmp_path / "f.npy", f_order)
    table = pd.DataFrame({"k": rng.integers(0, 4, 50), "v": rng.standard_normal(50)})
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    with http_server(tmp_path) as (base, served):
        doc = {"name": "h", "stages": [
            {"id": "c", "op": "read", "path": f"{base}/c.npy", "chunks": [50, 7]},
            {"id": "cs", "op": "read", "path": f"{base}/c.npy", "chunks": [100, 3]},
            {"id": "f", "op": "read", "path": f"{base}/f.npy", "chunks": [2, 15]},
            {"id": "t", "op": "read", "path": f"{base}/t.csv", "blocksize": 400},
            {"id": "p", "op": "read", "path": f"{base}/t.parquet", "columns": ["v", "k"]},
            {"id": "w1", "op": "write", "input": "c", "path": "c.npy"},
            {"id": "w2", "op": "write", "input": "cs", "path": "cs.npy"},
            {"id": "w3", "op": "write", "input": "f", "path": "f.npy"},
            {"id": "w4", "op": "write", "input": "t", "path": "t.parquet"},
            {"id": "w5", "op": "write", "input": "p", "path": "p.json"}]}
        result = run(doc, client, tmp_path)
    np.testing.assert_array_equal(result.values["w1"], c_order)
    np.testing.assert_array_equal(result.values["w2"], c_order)
    np.testing.assert_array_equal(result.values["w3"], f_order)
    got = result.values["w4"].sort_values(["k", "v"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, table.sort_values(["k", "v"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(
        result.values["w5"].sort_values("v").reset_index(drop=True),
        table[["v", "k"]].sort_values("v").reset_index(drop=True), check_dtype=False)
    # each block of whole rows is one ranged GET: none fetched the whole .npy
    assert max(served) < c_order.nbytes and 50 * 7 * 4 in served and 100 * 7 * 4 in served


@pytest.mark.parametrize("path, fragment", [
    ("missing.npy", "/missing.npy: not found"),
    ("forbidden/x.npy", "/forbidden/x.npy: access denied"),
])
def test_http_errors_name_the_url(tmp_path, capsys, address, path, fragment):
    with http_server(tmp_path) as (base, _):
        doc = {"name": "e", "stages": [{"id": "x", "op": "read", "path": f"{base}/{path}"},
                                       {"id": "w", "op": "write", "input": "x",
                                        "path": "x.npy"}]}
        err = one_line_error(capsys, doc, tmp_path, address)
    assert f"stages.x.path: {base}{fragment}" in err


def test_unreachable_server_is_bad_input_in_one_line(tmp_path, capsys, address):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    doc = {"name": "e", "stages": [
        {"id": "x", "op": "read", "path": f"http://127.0.0.1:{port}/x.npy"},
        {"id": "w", "op": "write", "input": "x", "path": "x.npy"}]}
    err = one_line_error(capsys, doc, tmp_path, address)
    assert f"http://127.0.0.1:{port}/x.npy: unreachable (" in err
    assert "check the address" in err


def test_http_cannot_be_written(tmp_path, capsys, address):
    doc = {"name": "e", "stages": [
        {"id": "x", "op": "random", "shape": [4]},
        {"id": "w", "op": "write", "input": "x", "path": "http://127.0.0.1:9/x.npy"}]}
    assert "http:// is read-only here" in one_line_error(capsys, doc, tmp_path, address)


def test_s3_arrays_written_and_read_back(s3, tmp_path, client):
    options, fs = s3
    data = np.random.default_rng().standard_normal((203, 9))
    np.save(tmp_path / "x.npy", data)
    urls = {fmt: f"s3://data/arrays/result.{fmt}" for fmt in ("npy", "zarr", "json")}
    doc = {"name": "s", "stages": [
        {"id": "x", "op": "read", "path": "x.npy", "chunks": [40, 5]},
        {"id": "y", "op": "elementwise", "inputs": {"x": "x"}, "expr": "2 * x + 1"},
        *({"id": fmt, "op": "write", "input": "y", "path": url, "storage_options": options}
          for fmt, url in urls.items())]}
    first = run(doc, client, tmp_path)
    assert {o["path"] for o in first.report["outputs"]} == set(urls.values())
    npy = next(o for o in first.report["outputs"] if o["path"] == urls["npy"])
    assert npy["bytes"] == data.nbytes + 128  # the .npy header, then the data
    assert sorted(fs.ls("data/arrays")) == sorted(u[5:] for u in urls.values())  # no staging
    for fmt in urls:
        np.testing.assert_allclose(np.asarray(first.values[fmt]), 2 * data + 1)
    for i in (0, 1):  # and a glob of objects, concatenated on axis 0
        np.save(tmp_path / f"part{i}.npy", data[i * 100:(i + 1) * 100])
        fs.put(str(tmp_path / f"part{i}.npy"), f"data/glob/part{i}.npy")
    # and back: the same objects read from S3 (json is a sink-only format)
    back = {"name": "b", "stages": [
        {"id": "g", "op": "read", "path": "s3://data/glob/part*.npy",
         "storage_options": options},
        {"id": "wg", "op": "write", "input": "g", "path": "g.npy"},
        {"id": "n", "op": "read", "path": urls["npy"], "storage_options": options,
         "chunks": [70, 9]},
        {"id": "z", "op": "read", "path": urls["zarr"], "storage_options": options},
        {"id": "wn", "op": "write", "input": "n", "path": "n.npy"},
        {"id": "wz", "op": "write", "input": "z", "path": "z.npy"}]}
    again = run(back, client, tmp_path)
    np.testing.assert_allclose(again.values["wn"], 2 * data + 1)
    np.testing.assert_allclose(again.values["wz"], 2 * data + 1)
    np.testing.assert_array_equal(again.values["wg"], data[:200])


def test_s3_tables_written_and_read_back(s3, tmp_path, client):
    options, fs = s3
    rng = np.random.default_rng()
    table = pd.DataFrame({"k": rng.integers(0, 9, 300), "v": rng.standard_normal(300)})
    table.to_parquet(tmp_path / "t.parquet", index=False)
    fs.put(str(tmp_path / "t.parquet"), "data/in/t.parquet")
    doc = {"name": "t", "stages": [
        {"id": "t", "op": "read", "path": "s3://data/in/t.parquet", "blocksize": 2000,
         "storage_options": options},
        {"id": "f", "op": "filter", "input": "t", "expr": "v > 0"},
        *({"id": fmt, "op": "write", "input": "f", "path": f"s3://data/tables/out.{fmt}",
           "storage_options": options} for fmt in ("parquet", "csv"))]}
    result = run(doc, client, tmp_path)
    want = table[table.v > 0].sort_values(["k", "v"]).reset_index(drop=True)
    for fmt in ("parquet", "csv"):
        got = result.values[fmt].sort_values(["k", "v"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)
    assert sorted(fs.ls("data/tables")) == ["data/tables/out.csv", "data/tables/out.parquet"]


def test_s3_missing_bucket_is_exit_2_before_compute(s3, tmp_path, capsys, address):
    options, fs = s3
    for stage, fragment in (
            ({"id": "x", "op": "read", "path": "s3://nobucket/x.npy",
              "storage_options": options},
             "stages.x.path: s3://nobucket/x.npy: not found (The specified bucket does not "
             "exist)"),
            ({"id": "x", "op": "random", "shape": [4]},
             "stages.w.path: s3://nobucket/y.npy: no such bucket 'nobucket'")):
        doc = {"name": "e", "stages": [stage, {"id": "w", "op": "write", "input": "x",
                                               "path": "s3://nobucket/y.npy",
                                               "storage_options": options}]}
        assert fragment in one_line_error(capsys, doc, tmp_path, address)
    assert not (tmp_path / "out" / "report.json").exists()


def test_s3_denied(tmp_path, capsys, address):
    pytest.importorskip("s3fs")
    with moto_server(INITIAL_NO_AUTH_ACTION_COUNT="0") as endpoint:
        doc = {"name": "e", "stages": [
            {"id": "x", "op": "read", "path": "s3://data/x.npy",
             "storage_options": {**CREDS, "endpoint_url": endpoint}},
            {"id": "w", "op": "write", "input": "x", "path": "x.npy"}]}
        err = one_line_error(capsys, doc, tmp_path, address)
    assert "stages.x.path: s3://data/x.npy: access denied (" in err
    assert "check the credentials" in err


def test_failed_run_leaves_no_staged_objects(s3, tmp_path, client):
    options, fs = s3
    doc = {"name": "f", "stages": [
        {"id": "x", "op": "random", "shape": [40, 4], "chunks": [10, 4]},
        {"id": "b", "op": "map_blocks", "input": "x", "function": "tests.userfuncs:explode"},
        {"id": "up", "op": "write", "input": "x", "path": "s3://data/fail/x.zarr",
         "storage_options": options},
        {"id": "w", "op": "write", "input": "b", "path": "b.npy"}]}
    with pytest.raises(pipeline.RunFailed, match="stage 'b'"):
        run(doc, client, tmp_path)
    assert not fs.exists("data/fail") or fs.ls("data/fail") == []


def test_secrets_stay_out_of_the_report(s3, tmp_path, client):
    options, _ = s3
    doc = {"name": "r", "stages": [
        {"id": "x", "op": "random", "shape": [4]},
        {"id": "up", "op": "write", "input": "x", "path": "s3://data/r/x.json",
         "storage_options": options}]}
    result = run(doc, client, tmp_path)
    text = (tmp_path / "out" / "report.json").read_text()
    assert "testing" not in text and '"secret": "***"' in text
    assert result.report["workflow"]["spec"]["stages"][1]["storage_options"]["endpoint_url"]


def test_memory_urls_on_an_in_process_cluster(session, tmp_path):
    import fsspec

    data = np.arange(60.0).reshape(12, 5)
    with fsspec.open("memory://in/x.npy", "wb") as f:
        np.save(f, data)
    doc = {"name": "m", "stages": [
        {"id": "x", "op": "read", "path": "memory://in/x.npy", "chunks": [5, 5]},
        {"id": "up", "op": "write", "input": "x", "path": "memory://out/x.npy"}]}
    result = run(doc, session.client, tmp_path)
    np.testing.assert_array_equal(result.values["up"], data)
    fsspec.filesystem("memory").rm("/in", recursive=True)
    fsspec.filesystem("memory").rm("/out", recursive=True)


@pytest.mark.parametrize("stage, fragment", [
    ({"id": "x", "op": "read", "path": "x.npy", "storage_options": {"anon": True}},
     "stages.x.storage_options: storage_options apply to URLs only"),
    ({"id": "x", "op": "read", "path": "nosuch://b/x.npy"},
     "stages.x.path: nosuch://b/x.npy: Protocol not known: nosuch"),
    ({"id": "x", "op": "read", "path": "s3://data/x.npy", "storage_options": {"bogus": 1}},
     "stages.x.storage_options: s3://data/x.npy: bad storage_options:"),
])
def test_bad_storage_input(tmp_path, capsys, address, stage, fragment):
    np.save(tmp_path / "x.npy", np.zeros(3))
    doc = {"name": "e", "stages": [stage, {"id": "w", "op": "write", "input": "x",
                                           "path": "y.npy"}]}
    assert fragment in one_line_error(capsys, doc, tmp_path, address)


def test_a_scheme_whose_package_is_missing(tmp_path, capsys, address):
    try:
        import gcsfs  # noqa: F401
        pytest.skip("gcsfs is installed")
    except ImportError:
        pass
    doc = {"name": "e", "stages": [{"id": "x", "op": "read", "path": "gs://b/x.npy"},
                                   {"id": "w", "op": "write", "input": "x", "path": "y.npy"}]}
    err = one_line_error(capsys, doc, tmp_path, address)
    assert "gs://b/x.npy: gs:// needs gcsfs" in err and err.endswith("(pip install gcsfs)")
