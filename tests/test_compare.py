"""``python -m pipeline compare``: two runs' reports, stage by stage."""

import json

import pytest

from pipeline import compare
from pipeline.cli import main
from tests.conftest import REPO


def report(stages, *, spec=None, backend="cpu", versions=None, totals=None):
    return {"workflow": {"name": "demo", "spec": spec or {"name": "demo", "stages": []}},
            "backend": backend, "cluster": {"kind": "LocalCluster", "n_workers": 2},
            "versions": versions or {"dask": "2026.7.1"}, "started": "2026-01-01T00:00:00",
            "stages": stages, "totals": totals or {"wall_s": 2.0, "compute_s": 3.0,
                                                   "h2d_bytes": 0, "d2h_bytes": 0}}


def stage(sid, wall, compute, **extra):
    return {"id": sid, "op": "random", "wall_s": wall, "compute_s": compute, "tasks": 4,
            "h2d_bytes": 0, "d2h_bytes": 0, "peak_host_bytes": 1000,
            "output": {"kind": "array", "shape": [10], "dtype": "float64"}, **extra}


def lines_of(text, first_word):
    return [line for line in text.splitlines() if line.split()[:1] == [first_word]]


def test_stage_by_stage_changes():
    spec_a = {"name": "demo", "stages": [{"id": "a", "op": "random", "shape": [10]}]}
    spec_b = {"name": "demo", "stages": [{"id": "a", "op": "random", "shape": [20]}]}
    a = report([stage("a", 1.0, 2.0), stage("gone", 0.5, 0.5), stage("g", None, None)],
               spec=spec_a)
    b = report([stage("a", 0.5, 3.0, tasks=8, h2d_bytes=2048, peak_host_bytes=1050,
                      output={"kind": "array", "shape": [20], "dtype": "float64"}),
                stage("g", None, None), stage("new", 0.1, 0.1)],
               spec=spec_b, versions={"dask": "2026.8.0"})
    text = compare.render(a, b, "runs/a", "runs/b")
    assert "A: runs/a  (demo, backend cpu, 2 workers" in text
    assert "  stages.a.shape: [10] -> [20]" in text
    assert "  version: dask: 2026.7.1 -> 2026.8.0" in text
    assert "backend:" not in text  # the same on both sides
    row = lines_of(text, "a")[0]
    assert "1.00 -> 0.50" in row and "-50%" in row and "2.00 -> 3.00" in row and "+50%" in row
    assert "tasks 4 -> 8" in row and "H2D 0 B -> 2.0 KiB" in row
    assert "output 10 float64 -> 20 float64" in row
    assert "peak host" not in row  # a 5% change of a sampled peak is noise
    assert lines_of(text, "gone")[0].endswith("only in A")
    assert lines_of(text, "new")[0].endswith("only in B")
    assert "- -> -" in lines_of(text, "g")[0] and "%" not in lines_of(text, "g")[0]
    assert "2.00 -> 2.00" in lines_of(text, "(run)")[0]  # no stage id can be "(run)"


def test_how_the_runs_ran_is_a_setting():
    # unknown to one report (a failed run's, or one older than the field): not said
    a = report([stage("a", 1.0, 2.0)])
    b = {**report([stage("a", 2.0, 2.0)]), "accounting": {"fused": False},
         "performance_report": "performance-report.html"}
    text = compare.render(a, b, "a", "b")
    assert "fused" not in text and "performance report" not in text
    text = compare.render(b, {**b, "accounting": {"fused": True}, "performance_report": None},
                          "b", "c")
    assert "  fused: false -> true" in text and "  performance report: true -> false" in text


def write_run(folder, doc):
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(doc))
    return folder


def test_cli_takes_folders_report_files_and_history(tmp_path, capsys):
    a = write_run(tmp_path / "a", report([stage("x", 1.0, 1.0)]))
    b = write_run(tmp_path / "b", report([stage("x", 2.0, 2.0)]))
    assert main(["compare", str(a), str(b / "report.json")]) == 0
    assert "1.00 -> 2.00" in capsys.readouterr().out
    # one folder: compared with its newest earlier run in <folder>.history/
    history = tmp_path / "b.history"
    older = report([stage("x", 9.0, 9.0)])
    write_run(history / "20260101T000000", {**older, "started": "2026-01-01T00:00:00"})
    write_run(history / "20260102T000000", {**older, "started": "2026-01-02T00:00:00",
                                            "stages": [stage("x", 4.0, 4.0)]})
    (history / "partial").mkdir()  # no report: not a run
    assert main(["compare", str(b)]) == 0
    out = capsys.readouterr().out
    assert "4.00 -> 2.00" in out and "20260102T000000" in out


@pytest.mark.parametrize("setup, fragment", [
    (lambda p: p.mkdir(), "no report.json here"),
    (lambda p: None, "not found"),
    (lambda p: write_run(p, {}) and (p / "report.json").write_text("{nope"),
     "cannot read the report"),
    (lambda p: write_run(p, {"stages": "x"}), "not a pipeline report"),
])
def test_bad_runs_are_one_line_and_exit_2(tmp_path, capsys, setup, fragment):
    good = write_run(tmp_path / "good", report([stage("x", 1.0, 1.0)]))
    bad = tmp_path / "bad"
    setup(bad)
    assert main(["compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1


def test_one_folder_without_history_is_exit_2(tmp_path, capsys):
    run = write_run(tmp_path / "r", report([stage("x", 1.0, 1.0)]))
    assert main(["compare", str(run)]) == 2
    assert "no earlier run" in capsys.readouterr().err


def test_two_real_runs(address, tmp_path, capsys):
    spectrum = str(REPO / "workflows" / "spectrum.yaml")
    for name, rows in (("a", 256), ("b", 512)):
        assert main(["run", spectrum, "--address", address, "--quiet",
                     "--set", f"stages.signal.shape=[{rows},64]",
                     "--output-dir", str(tmp_path / name)]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "stages.signal.shape: [256, 64] -> [512, 64]" in out
    assert "output 256x64 float32 -> 512x64 float32" in lines_of(out, "signal")[0]
    for sid in ("signal", "spectrum", "power", "mean_power", "save", "plot", "(run)"):
        assert lines_of(out, sid), sid
