import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pipeline.cli import main
from tests.conftest import REPO

SPECTRUM = str(REPO / "workflows" / "spectrum.yaml")
SMALL = ["--set", "stages.signal.shape=[256,64]", "--set", "stages.signal.chunks=[100,64]"]


def run(args, address, tmp_path):
    return main(["run", *args, "--address", address, "--output-dir", str(tmp_path / "out"),
                 "--quiet"])


@pytest.mark.performance_report
def test_run_writes_outputs_and_report(address, tmp_path, capsys):
    assert run([SPECTRUM, *SMALL], address, tmp_path) == 0
    out = tmp_path / "out"
    result = np.load(out / "mean_power.npy")
    assert result.shape == (33,) and result.dtype == np.float32
    report = json.loads((out / "report.json").read_text())
    assert [s["id"] for s in report["stages"]] == ["signal", "spectrum", "power", "mean_power",
                                                   "save", "plot"]
    spectrum = report["stages"][1]
    assert spectrum["output"] == {"kind": "array", "shape": [256, 33], "dtype": "complex64",
                                  "bytes": 256 * 33 * 8, "chunks": 3}
    assert spectrum["tasks"] >= 3 and spectrum["compute_s"] > 0
    assert spectrum["peak_host_bytes"] > 10 << 20  # two worker processes' memory
    assert spectrum["peak_device_bytes"] is None  # no GPU metrics on a CPU cluster
    assert report["totals"]["peak_host_bytes"] >= spectrum["peak_host_bytes"]
    assert report["backend"] == "cpu" and report["cluster"]["kind"] == "existing"
    assert report["totals"]["h2d_bytes"] == 0 and report["versions"]["dask"]
    assert report["workflow"]["spec"]["stages"][0]["shape"] == [256, 64]
    assert report["outputs"][0]["path"].endswith("mean_power.npy")
    perf = (out / "performance-report.html").read_text()
    # offline: Bokeh's JavaScript inline, nothing loaded from a network
    assert "Bokeh" in perf and "cdn.bokeh.org" not in perf
    assert not re.search(r"<script[^>]+src=[\"']https?:", perf)
    assert "op: rfft" in perf  # the workflow, as the report's "calling code"
    assert sorted(p.name for p in out.iterdir()) == [
        "mean_power.npy", "mean_power.png", "performance-report.html", "report.html",
        "report.json"]
    assert report["performance_report"] == "performance-report.html"
    assert 'href="performance-report.html"' in (out / "report.html").read_text()
    table = capsys.readouterr().out
    assert "mean_power" in table and "run folder:" in table


@pytest.mark.performance_report  # on in Dask's config: the flag alone turns it off
def test_no_performance_report_writes_none_and_links_none(address, tmp_path):
    assert run([SPECTRUM, *SMALL, "--no-performance-report"], address, tmp_path) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "mean_power.npy", "mean_power.png", "report.html", "report.json"]
    assert json.loads((out / "report.json").read_text())["performance_report"] is None
    assert "performance-report" not in (out / "report.html").read_text()


def test_result_equals_numpy(address, tmp_path):
    data = np.random.default_rng().standard_normal((300, 40))
    np.save(tmp_path / "x.npy", data)
    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent("""
        name: check
        stages:
          - {id: x, op: read, path: x.npy, chunks: [70, 40]}
          - {id: s, op: rfft, input: x, axis: 1}
          - {id: p, op: elementwise, inputs: {z: s}, expr: "real(z)**2 + imag(z)**2"}
          - {id: m, op: reduce, input: p, how: mean, axis: 0}
          - {id: save, op: write, input: m, path: m.json}
    """))
    assert run([str(wf)], address, tmp_path) == 0
    got = json.loads((tmp_path / "out" / "m.json").read_text())
    want = (np.abs(np.fft.rfft(data, axis=1)) ** 2).mean(axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("extra, fragment", [
    (["--set", "stages.spectrum.axis=5"], "stages.spectrum.axis: axis 5 is out of range"),
    (["--set", "stages.signal.dtype=int8"], "unsupported dtype 'int8'"),
    (["--set", "stages.nope.x=1"], "no stage with id 'nope'"),
    (["--set", "stages.save.path=../../escape.npy"], "outside the run folder"),
    (["--set", "stages.save.path=out.xyz"], "cannot tell the format"),
    (["--backend", "gpu"], "backend gpu asked for"),
])
def test_bad_input_is_one_line_and_exit_2(address, tmp_path, capsys, extra, fragment):
    assert run([SPECTRUM, *SMALL, *extra], address, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and err.startswith("error: ") and "\n" not in err
    assert "Traceback" not in err
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())  # nothing partial left behind


def test_read_of_missing_file_fails_before_compute(address, tmp_path, capsys):
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: r\nstages:\n - {id: x, op: read, path: missing.npy}\n"
                  " - {id: w, op: write, input: x, path: y.npy}\n")
    assert run([str(wf)], address, tmp_path) == 2
    assert "file not found: 'missing.npy'" in capsys.readouterr().err


def test_matmul_mismatch(address, tmp_path, capsys):
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: m\nstages:\n - {id: a, op: random, shape: [4, 3]}\n"
                  " - {id: b, op: random, shape: [4, 3]}\n"
                  " - {id: c, op: matmul, inputs: [a, b]}\n"
                  " - {id: w, op: write, input: c, path: c.npy}\n")
    assert run([str(wf)], address, tmp_path) == 2
    assert "stages.c.inputs: shape mismatch: (4, 3) @ (4, 3)" in capsys.readouterr().err


def test_validate_prints_the_dag(capsys):
    assert main(["validate", SPECTRUM]) == 0
    out = capsys.readouterr().out
    assert "spectrum    rfft(signal) -> 65536x2049 complex64 (1.0 GiB)" in out
    assert out.strip().endswith("ok")


def test_validate_error_verbose_shows_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages: [{id: a, op: fftt}]\n")
    assert main(["validate", str(bad)]) == 2
    assert "did you mean 'fft'" in capsys.readouterr().err
    assert main(["--verbose", "validate", str(bad)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_ops_lists_and_describes(capsys):
    assert main(["ops"]) == 0
    listing = capsys.readouterr().out
    for name in ("random", "read", "rfft", "convolve", "svd", "write"):
        assert f"  {name} " in listing
    assert main(["ops", "quantile"]) == 0
    assert "  q     number or list of number; required" in capsys.readouterr().out
    assert main(["ops", "quantil"]) == 2
    assert "did you mean 'quantile'" in capsys.readouterr().err


def test_real_subprocess_starts_its_own_cluster(tmp_path):
    """The one test of the real entry point: own LocalCluster, dashboard off, exit code."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", SPECTRUM, *SMALL, "--no-dashboard",
         "--output-dir", str(tmp_path / "out"), "--set", "cluster.n_workers=1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "backend cpu" in proc.stdout and "run folder:" in proc.stdout
    assert "dashboard:" not in proc.stdout
    assert np.load(tmp_path / "out" / "mean_power.npy").shape == (33,)
    bad = subprocess.run([sys.executable, "-m", "pipeline", "run", "nope.yaml"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: nope.yaml: workflow file not found (check the path)"


@pytest.mark.parametrize("args, where", [
    (["run", SPECTRUM, "--output-dir", ""], "--output-dir"),  # before: the default folder
    (["run", SPECTRUM, "--cache", ""], "--cache"),  # before: no cache, silently
    (["run", SPECTRUM, "--address", ""], "--address"),  # before: a local cluster
    (["run", SPECTRUM, "--dashboard-address", ""], "--dashboard-address"),
    (["run", ""], "WORKFLOW"), (["validate", ""], "WORKFLOW"),  # before: internal error
    (["compare", ""], "RUN_A"), (["schema", "-o", ""], "--output"),  # before: stdout
    (["cache", "ls", "--cache", ""], "--cache"),  # before: the default cache folder
])
def test_an_empty_argument_is_refused_not_taken_for_the_default(tmp_path, monkeypatch,
                                                                capsys, args, where):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {where}: empty (give a value, or leave it out)\n"
    assert captured.out == "" and list(tmp_path.iterdir()) == []


def test_compare_dot_inside_a_run_folder(address, tmp_path, monkeypatch, capsys):
    for _ in range(2):
        assert run([SPECTRUM, *SMALL], address, tmp_path) == 0
    monkeypatch.chdir(tmp_path / "out")
    capsys.readouterr()
    assert main(["compare", "."]) == 0  # before: internal error, '.' has an empty name
    assert capsys.readouterr().out.startswith(f"A: {tmp_path / 'out.history'}")


def test_no_option_defaults_to_an_empty_string():
    # an empty argument is refused as bad input, so no default may be one
    from pipeline.cli import _parser

    parser = _parser()
    for argv in (["run", "x"], ["validate", "x"], ["advise"], ["bench"], ["ops"],
                 ["cache", "ls"], ["schema"], ["compare", "a"], ["doctor"]):
        assert "" not in vars(parser.parse_args(argv)).values(), argv
