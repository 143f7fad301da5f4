"""The runner on an in-process cluster: failures leave nothing behind, spans per stage."""

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


def test_failed_run_leaves_nothing_partial(tmp_path, session, explode_op):
    p = load_workflow(tmp_path, """
        name: fails
        stages:
          - {id: x, op: random, shape: [64, 8], chunks: [8, 8]}
          - {id: ok, op: write, input: x, path: x.npy}
          - {id: bad, op: explode, input: x}
          - {id: bad_out, op: write, input: bad, path: bad.npy}
    """)
    with pytest.raises(RunFailed, match="ZeroDivisionError: injected failure"):
        runner.run(p, backends.CPU, session)
    assert list((tmp_path / "out").iterdir()) == []  # not even the good sink's file


def test_run_failure_exit_code_is_1(tmp_path, session, explode_op, capsys):
    path = tmp_path / "wf.yaml"
    path.write_text("name: fails\nstages:\n - {id: x, op: random, shape: [8]}\n"
                    " - {id: b, op: explode, input: x}\n"
                    " - {id: w, op: write, input: b, path: b.npy}\n")
    code = main(["run", str(path), "--address", session.address, "--quiet",
                 "--output-dir", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the run failed: ZeroDivisionError") and "\n" not in err


def test_rerun_replaces_outputs_and_shared_intermediate(tmp_path, session):
    text = """
        name: twice
        stages:
          - {id: x, op: random, shape: [40, 6], chunks: [10, 6], seed: SEED}
          - {id: a, op: write, input: x, path: sub/x.npy}
          - {id: b, op: write, input: x, path: x.zarr}
    """
    for seed in (1, 2):
        p = load_workflow(tmp_path, text.replace("SEED", str(seed)))
        doc = runner.run(p, backends.CPU, session)
        want = da.random.default_rng(seed).standard_normal((40, 6), chunks=(10, 6)).compute()
        np.testing.assert_array_equal(np.load(tmp_path / "out" / "sub" / "x.npy"), want)
        np.testing.assert_array_equal(da.from_zarr(str(tmp_path / "out" / "x.zarr")).compute(),
                                      want)
    # x feeds two sinks but is generated once: one task per chunk
    assert next(s for s in doc["stages"] if s["id"] == "x")["tasks"] == 4
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["performance-report.html", "report.html", "report.json", "sub", "x.zarr"]
