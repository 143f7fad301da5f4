"""Progress while a run computes: a block that fits the terminal and never scrolls, plain
lines and a heartbeat elsewhere, counted per stage for array and table stages alike."""

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import dask

from pipeline import backends, progress, runner
from pipeline.cli import main
from tests.conftest import REPO
from tests.helpers import load_workflow, sleepy_op  # noqa: F401 - a fixture
from tests.test_workflows import SMALL as SMALL_SIZES

SPECTRUM = str(REPO / "workflows" / "spectrum.yaml")
SMALL = ["--set", "stages.signal.shape=[256,64]", "--set", "stages.signal.chunks=[100,64]"]


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def st(done, total, elapsed=None, erred=0):
    return {"done": done, "total": total, "erred": erred, "elapsed_s": elapsed}


def test_screen_fits_the_window_and_collapses_finished_stages():
    labels = {f"stage_{i:02d}_with_a_long_name": f"L{i}" for i in range(35)}
    states = {f"L{i}": st(10, 10, 1.0) for i in range(5)}  # finished
    states.update({f"L{i}": st(3, 10, 0.5) for i in range(5, 27)})  # running
    states.update({f"L{i}": st(0, 10) for i in range(27, 34)})  # waiting
    # L34 has no task of its own
    screen = progress.Screen(labels, FakeTty())
    lines = screen.lines(states, 12.5, size=(80, 24))
    assert len(lines) <= 23 and all(len(line) < 80 for line in lines)
    assert lines[0].startswith("  done (5): stage_00_with_a_long_name, ")
    assert lines[0].endswith("...")  # 20 names do not fit on one line
    assert lines[1].startswith("  no tasks of their own (1): stage_34")
    assert lines[2].split()[:4] == ["stage_05_with_a_long_name", "[######..............]",
                                    "3/10", "tasks"]
    assert lines[-2] == "  ... 10 more (3 running, 7 waiting)"  # the window is full
    assert lines[-1] == "  running: 116/340 tasks, 12.5 s"
    for rows in range(4, 12):
        small = screen.lines(states, 12.5, size=(40, rows))
        assert len(small) <= rows - 1 and all(len(line) < 40 for line in small)
        assert small[-1].startswith("  running: 116/340 tasks")


def test_screen_redraws_over_its_previous_frame():
    out = FakeTty()
    screen = progress.Screen({"signal": "a", "spectrum": "b"}, out)
    screen.update({"a": st(3, 4, 1.25), "b": st(0, 2)}, 1.5)
    first = out.getvalue()
    assert not re.search(r"\x1b\[\d+F", first)  # nothing to move over yet
    assert first.endswith("\x1b[J")  # clears what a taller frame left below
    screen.update({"a": st(4, 4, 2.0), "b": st(1, 2, 0.3, erred=1)}, 2.5, final=True)
    second = out.getvalue()[len(first):]
    assert second.startswith("\x1b[3F")  # back over the 3 lines drawn before
    frame = second[len("\x1b[3F"):].replace("\x1b[2K", "").replace("\x1b[J", "").splitlines()
    assert frame[0] == "  done (2): signal, spectrum"
    assert frame[-1] == "  finished: 6/6 tasks, 1 erred, 2.5 s"


def test_lines_say_each_event_once_and_a_heartbeat_in_silence():
    out = io.StringIO()
    lines = progress.Lines({"read": "a", "sum": "b", "kernel": "c"}, out, heartbeat=5)
    lines.update({"a": st(0, 4), "b": st(0, 2)}, 0.5)
    lines.update({"a": st(1, 4, 0.4), "b": st(0, 2)}, 1.5)
    lines.update({"a": st(1, 4, 1.4), "b": st(0, 2)}, 4.0)  # silent, not for long enough
    lines.update({"a": st(1, 4, 7.0), "b": st(0, 2)}, 7.0)
    lines.update({"a": st(4, 4, 8.0), "b": st(0, 2, 0.5, erred=1)}, 9.0)
    lines.update({"a": st(4, 4, 8.0), "b": st(1, 2, 2.0, erred=1)}, 10.0, final=True)
    said = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert said == ["no tasks of their own: kernel",
                    "read started (4 tasks)",
                    "still running: 1/6 tasks; read 1/4 tasks",
                    "read done: 4/4 tasks in 8.0 s",
                    "sum started (2 tasks)",
                    "1 task(s) of sum failed",
                    "sum done: 2/2 tasks, 1 erred in 2.0 s",
                    "finished: 6/6 tasks"]
    assert "\x1b" not in out.getvalue()


def test_a_log_gets_events_and_heartbeats(tmp_path, session, sleepy_op):
    p = load_workflow(tmp_path, """
        name: slow
        stages:
          - {id: x, op: random, shape: [40, 5], chunks: [10, 5]}
          - {id: nap, op: sleepy, input: x, seconds: 0.7}
          - {id: more, op: sleepy, input: nap, seconds: 0.7}
          - {id: save, op: write, input: more, path: x.npy}
    """)
    out = io.StringIO()  # not a terminal: a log
    with dask.config.set({"pipeline.progress-heartbeat": "0.2s"}):
        doc = runner.run(p, backends.CPU, session, progress=out)
    said = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert "\x1b" not in out.getvalue()
    for s in doc["stages"]:
        assert f"{s['id']} done: {s['tasks']}/{s['tasks']} tasks in " in " ".join(said)
    assert any(line.startswith("still running: ") for line in said)
    assert said[-1] == f"finished: {sum(s['tasks'] for s in doc['stages'])}/" \
                       f"{sum(s['tasks'] for s in doc['stages'])} tasks"


def test_table_stages_are_counted(tmp_path, session):
    p = load_workflow(tmp_path, """
        name: table
        stages:
          - id: t
            op: random_table
            rows: 2000
            partitions: 4
            columns: {k: {keys: 5}, x: {distribution: normal}}
          - {id: big, op: filter, input: t, expr: "x > 0"}
          - {id: per_k, op: groupby, input: big, by: k, agg: {x: [mean]}}
          - {id: save, op: write, input: per_k, path: per_k.parquet}
    """)
    out = FakeTty()
    doc = runner.run(p, backends.CPU, session, progress=out)
    final = out.getvalue().rsplit("\x1b[J", 2)[-2]  # the last frame
    total = sum(s["tasks"] for s in doc["stages"])
    assert all(s["tasks"] > 0 for s in doc["stages"])
    assert f"finished: {total}/{total} tasks" in final
    assert "done (4): t, big, per_k, save" in final


class Terminal:
    """Just enough of a VT100 to count how often the screen scrolled."""

    def __init__(self, columns=80, rows=24):
        self.columns, self.rows = columns, rows
        self.row = self.col = 0
        self.scrolled = self.wrapped = 0
        self.screen = [""] * rows

    def feed(self, text: str) -> None:
        for part in re.split(r"(\x1b\[\d*[A-Za-z])", text):
            m = re.fullmatch(r"\x1b\[(\d*)([A-Za-z])", part)
            if m:
                n, code = int(m.group(1) or 1), m.group(2)
                if code == "F":
                    self.row, self.col = max(self.row - n, 0), 0
                elif code == "K":
                    self.screen[self.row] = ""
                elif code == "J":
                    self.screen[self.row + 1:] = [""] * (self.rows - self.row - 1)
                continue
            for ch in part:
                if ch == "\n":
                    self._down()
                elif ch == "\r":
                    self.col = 0
                else:
                    if self.col >= self.columns:
                        self.wrapped += 1
                        self._down()
                    line = self.screen[self.row].ljust(self.col)
                    self.screen[self.row] = line[:self.col] + ch + line[self.col + 1:]
                    self.col += 1

    def _down(self):
        self.col = 0
        if self.row == self.rows - 1:
            self.screen = self.screen[1:] + [""]
            self.scrolled += 1
        else:
            self.row += 1


def test_35_stages_in_an_80x24_terminal_never_scroll(address, tmp_path):
    """The CLI in a real pseudo-terminal of 80x24: after the first frame, redrawing the
    progress of option_pricing's 35 stages moves no line off the screen."""
    master, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    args = [sys.executable, "-m", "pipeline", "run", str(REPO / "workflows" / "option_pricing.yaml"),
            "--backend", "cpu", "--address", address, "--output-dir", str(tmp_path)]
    for item in SMALL_SIZES["option_pricing"]:
        args += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, stdout=child, stderr=subprocess.PIPE, env=env, cwd=REPO)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    text = b"".join(chunks).decode()
    frames = text.split("\x1b[J")
    assert len(frames) > 2, text  # drawn more than once
    term = Terminal()
    term.feed(frames[0] + "\x1b[J")
    after_first = term.scrolled
    for frame in frames[1:-1]:
        term.feed(frame + "\x1b[J")
    assert term.scrolled == after_first and term.wrapped == 0
    assert any(line.startswith("  finished: ") for line in term.screen)
    assert len(frames[-2].split("\n")) <= 24


def test_cli_shows_progress_unless_quiet(address, tmp_path, monkeypatch, capsys):
    args = ["run", SPECTRUM, *SMALL, "--address", address, "--output-dir", str(tmp_path)]
    assert main(args) == 0  # capsys: stdout is not a terminal
    plain = capsys.readouterr().out
    assert "\x1b[" not in plain and "] signal done: " in plain and "run folder:" in plain

    tty = FakeTty()
    monkeypatch.setattr(sys, "stdout", tty)
    assert main([*args, "--no-fuse"]) == 0
    assert "\x1b[2K  " in tty.getvalue() and "finished: " in tty.getvalue()

    quiet = FakeTty()
    monkeypatch.setattr(sys, "stdout", quiet)
    assert main([*args, "--quiet"]) == 0
    assert "\x1b" not in quiet.getvalue() and "finished:" not in quiet.getvalue()
    assert "run folder:" in quiet.getvalue()
