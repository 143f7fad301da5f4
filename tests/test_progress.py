"""Progress while a run computes: per stage done/total and elapsed, redrawn in place on a
terminal; absent with --quiet and when stdout is not a terminal."""

import io
import sys
import textwrap

from pipeline import backends, plan, progress, runner, spec
from pipeline.cli import main
from tests.conftest import REPO

SPECTRUM = str(REPO / "workflows" / "spectrum.yaml")
SMALL = ["--set", "stages.signal.shape=[256,64]", "--set", "stages.signal.chunks=[100,64]"]


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_display_redraws_in_place():
    out = FakeTty()
    d = progress.Display(["signal", "spectrum", "save"], out)
    d.draw({"signal": {"done": 3, "total": 4, "erred": 0, "elapsed_s": 1.25},
            "spectrum": None, "save": None}, 1.5)
    first = out.getvalue()
    assert "\x1b[" not in first.replace("\x1b[2K", "")  # nothing to move over yet
    lines = first.replace("\x1b[2K", "").splitlines()
    assert lines[0].split() == ["signal", "[##################......]", "3/4", "tasks", "1.2",
                                "s"]
    assert lines[1].split() == ["spectrum", "waiting"]
    assert lines[3].split()[:3] == ["total", "3/4", "tasks"]
    d.draw({"signal": {"done": 4, "total": 4, "erred": 1, "elapsed_s": 2.0},
            "spectrum": {"done": 0, "total": 2, "erred": 0, "elapsed_s": None},
            "save": None}, 2.5, final=True)
    second = out.getvalue()[len(first):]
    assert second.startswith("\x1b[4F")  # back up over the 4 lines drawn before
    assert "4/4 tasks" in second and "1 erred" in second and "4/6 tasks" in second
    frame = second.replace("\x1b[2K", "").splitlines()
    assert frame[1].split()[-3:] == ["tasks", "-", "s"]  # no task of it finished yet
    assert frame[2].split() == ["save", "no", "tasks"]


def test_run_draws_every_stage_done_over_total(tmp_path, session):
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent("""
        name: progress
        stages:
          - {id: signal, op: random, shape: [400, 64], chunks: [100, 64]}
          - {id: spectrum, op: rfft, input: signal, axis: 1}
          - {id: mean, op: reduce, input: spectrum, how: sum, axis: 0}
          - {id: save, op: write, input: mean, path: m.npy}
    """))
    p = plan.build(spec.load(path, output_dir=tmp_path / "out"))
    out = FakeTty()
    doc = runner.run(p, backends.CPU, session, progress=out)
    lines = out.getvalue().replace("\x1b[2K", "").splitlines()[-5:]  # the final frame
    for s, line in zip(doc["stages"], lines):
        assert s["tasks"] > 0 and line.split()[0] == s["id"]
        assert f"{s['tasks']}/{s['tasks']} tasks" in line, line
    total = sum(s["tasks"] for s in doc["stages"])
    assert lines[-1].split()[:3] == ["total", f"{total}/{total}", "tasks"]


def test_cli_draws_progress_on_a_terminal_only(address, tmp_path, monkeypatch, capsys):
    args = ["run", SPECTRUM, *SMALL, "--address", address, "--output-dir", str(tmp_path)]
    assert main(args) == 0  # capsys: stdout is not a terminal
    plain = capsys.readouterr().out
    assert "\x1b[" not in plain and " tasks" not in plain and "run folder:" in plain

    tty = FakeTty()
    monkeypatch.setattr(sys, "stdout", tty)
    assert main(args) == 0
    assert "\x1b[2K  signal" in tty.getvalue() and "/3 tasks" in tty.getvalue()

    quiet = FakeTty()
    monkeypatch.setattr(sys, "stdout", quiet)
    assert main([*args, "--quiet"]) == 0
    assert " tasks" not in quiet.getvalue() and "run folder:" in quiet.getvalue()
