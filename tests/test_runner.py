"""The runner on an in-process cluster: failures leave nothing behind, spans per stage."""

import json

import dask.array as da
import numpy as np
import pytest

from pipeline import backends, ops, runner
from pipeline.cli import main
from pipeline.errors import RunFailed
from pipeline.ops.registry import REGISTRY
from tests.helpers import load_workflow


def _boom(block):
    raise ZeroDivisionError("injected failure")


@pytest.fixture
def explode_op():
    """A test-only op whose tasks raise on the workers."""
    @ops.op("explode", family="array")
    def explode(ctx, x):
        """Fails at compute time."""
        return x.map_blocks(_boom, dtype=x.dtype)

    yield
    del REGISTRY["explode"]


@pytest.mark.performance_report
def test_failed_run_leaves_nothing_partial(tmp_path, session, explode_op):
    p = load_workflow(tmp_path, """
        name: fails
        stages:
          - {id: x, op: random, shape: [64, 8], chunks: [8, 8]}
          - {id: ok, op: write, input: x, path: x.npy}
          - {id: bad, op: explode, input: x}
          - {id: bad_out, op: write, input: bad, path: bad.npy}
    """)
    with pytest.raises(RunFailed, match="ZeroDivisionError: injected failure") as err:
        runner.run(p, backends.CPU, session)
    assert err.value.where == "stages.bad"
    assert not (tmp_path / "out").exists()  # not even the good sink's file
    [entry] = (tmp_path / "out.history").iterdir()
    assert entry.name.endswith("-failed")
    assert sorted(f.name for f in entry.iterdir()) == ["performance-report.html", "report.html",
                                                      "report.json"]
    doc = json.loads((entry / "report.json").read_text())
    assert doc["status"] == "failed" and doc["outputs"] == []
    assert doc["performance_report"] == "performance-report.html"
    assert doc["failure"]["stage"] == "bad" and doc["failure"]["op"] == "explode"
    assert "ZeroDivisionError: injected failure" in doc["failure"]["exception"]
    assert doc["failure"]["task"].startswith("('_boom-")  # the Dask key, kept for experts
    assert "ZeroDivisionError" in (entry / "report.html").read_text()
    assert [s["id"] for s in doc["stages"]] == ["x", "ok", "bad", "bad_out"]
    assert list(tmp_path.glob(".out*")) == []  # no staging folder, no lock left


def test_run_failure_exit_code_is_1(tmp_path, session, explode_op, capsys):
    path = tmp_path / "wf.yaml"
    path.write_text("name: fails\nstages:\n - {id: x, op: random, shape: [8]}\n"
                    " - {id: b, op: explode, input: x}\n"
                    " - {id: w, op: write, input: b, path: b.npy}\n")
    code = main(["run", str(path), "--address", session.address, "--quiet",
                 "--output-dir", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: stages.b: the run failed: ZeroDivisionError") and "\n" not in err
    [entry] = (tmp_path / "out.history").iterdir()
    assert err.endswith(f"report: {entry / 'report.json'})")
    # pipeline.performance-report is false here (tests/conftest.py): nothing rendered
    assert sorted(f.name for f in entry.iterdir()) == ["report.html", "report.json"]
    assert json.loads((entry / "report.json").read_text())["performance_report"] is None


@pytest.mark.performance_report
def test_rerun_replaces_outputs_and_shared_intermediate(tmp_path, session):
    text = """
        name: twice
        stages:
          - {id: x, op: random, shape: [40, 6], chunks: [10, 6], seed: SEED}
          - {id: a, op: write, input: x, path: sub/x.npy}
          - {id: b, op: write, input: x, path: x.zarr}
          - {id: c, op: write, input: x, path: first-only.npy}
    """
    for seed in (1, 2):
        body = text.replace("SEED", str(seed))
        if seed == 2:  # the second run writes one output less
            body = "\n".join(line for line in body.splitlines() if "first-only" not in line)
        p = load_workflow(tmp_path, body)
        doc = runner.run(p, backends.CPU, session)
        want = da.random.default_rng(seed).standard_normal((40, 6), chunks=(10, 6)).compute()
        np.testing.assert_array_equal(np.load(tmp_path / "out" / "sub" / "x.npy"), want)
        np.testing.assert_array_equal(da.from_zarr(str(tmp_path / "out" / "x.zarr")).compute(),
                                      want)
    # x feeds two sinks but is generated once: one task per chunk
    assert next(s for s in doc["stages"] if s["id"] == "x")["tasks"] == 4
    # the second run replaced the first as a whole: no output of the first is left
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["performance-report.html", "report.html", "report.json", "sub", "x.zarr"]
    assert doc["outputs"] == [{"path": "sub/x.npy", "bytes": 40 * 6 * 8 + 128},
                              {"path": "x.zarr", "bytes": doc["outputs"][1]["bytes"]}]
    # ... and the first is kept whole in the history, report included
    [first] = (tmp_path / "out.history").iterdir()
    assert (first / "first-only.npy").exists() and (first / "report.json").exists()


def test_a_fused_task_blames_the_stage_that_raised(tmp_path, session, explode_op):
    """Dask fuses x, bad and after into one task per chunk, whose span is its last
    stage's; the stage named is the one whose code raised."""
    p = load_workflow(tmp_path, """
        name: fused
        stages:
          - {id: x, op: random, shape: [64, 8], chunks: [8, 8]}
          - {id: bad, op: explode, input: x}
          - {id: after, op: elementwise, inputs: {b: bad}, expr: "b * 2 + 1"}
          - {id: w, op: write, input: after, path: a.npy}
    """)
    with pytest.raises(RunFailed, match="ZeroDivisionError: injected failure") as err:
        runner.run(p, backends.CPU, session, fuse=True)
    assert err.value.where == "stages.bad"
    [entry] = (tmp_path / "out.history").iterdir()
    assert json.loads((entry / "report.json").read_text())["failure"]["op"] == "explode"
