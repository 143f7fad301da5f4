"""The dashboard of the run's own cluster answers while the run computes, with Bokeh's
pages (without bokeh it would answer 200 too, with an error page: the body is checked)."""

import io
import os
import re
import sys
import textwrap
import threading
import time
import urllib.request

import pytest

from pipeline import ops
from pipeline.cli import main
from pipeline.ops.registry import REGISTRY

TIMEOUT_S = 60


def _hold(block, started: str, release: str):
    """Runs on a worker: say the run is computing, then wait until the test is done."""
    open(started, "a").close()
    deadline = time.monotonic() + TIMEOUT_S
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    return block


@pytest.fixture
def hold_op():
    @ops.op("hold", family="array")
    def hold(ctx, x, *, started: str, release: str):
        """Blocks each chunk until the file ``release`` exists."""
        return x.map_blocks(_hold, started=started, release=release, dtype=x.dtype)

    yield
    del REGISTRY["hold"]


def wait_for(predicate, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_dashboard_answers_during_a_run(tmp_path, monkeypatch, hold_op):
    started, release = tmp_path / "started", tmp_path / "release"
    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent(f"""
        name: dash
        stages:
          - {{id: x, op: random, shape: [64, 8], chunks: [32, 8]}}
          - {{id: held, op: hold, input: x, started: "{started}", release: "{release}"}}
          - {{id: save, op: write, input: held, path: x.npy}}
    """))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    codes = []
    runner = threading.Thread(target=lambda: codes.append(main([
        "run", str(wf), "--dashboard-address", "127.0.0.1:0", "--set", "cluster.n_workers=1",
        "--output-dir", str(tmp_path / "out")])))
    runner.start()
    try:
        wait_for(lambda: "dashboard: " in out.getvalue(), "the dashboard link")
        link = re.search(r"dashboard: (\S+)", out.getvalue()).group(1)
        assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
        wait_for(started.exists, "the run to start computing")
        with urllib.request.urlopen(link, timeout=TIMEOUT_S) as response:
            status, body = response.status, response.read().decode()
        assert status == 200
        assert "Dask Diagnostic UI" in body and "bokeh.min.js" in body, body[:500]
        assert "needs bokeh" not in body.lower()
        assert runner.is_alive()  # answered while the run was in progress
    finally:
        release.touch()
        runner.join(TIMEOUT_S)
    assert codes == [0], out.getvalue()
    assert "run folder:" in out.getvalue()
