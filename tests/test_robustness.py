"""Hostile and careless input through the real CLI (issue 16's cases): each ends in exit 2
with one line, or, for data that turns out bad while computing, exit 1 with one line
naming the stage; never a traceback, a hang, or a file left outside the run folder."""

from __future__ import annotations

import gc
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
import weakref

import numpy as np
import pandas as pd
import pytest

from pipeline import ctrl_c
from pipeline.cli import main
from tests.helpers import OOM_WORKFLOW

# as a user runs: interrupted, killed or failed runs with Dask's report rendering too
pytestmark = pytest.mark.performance_report

X = " - {id: x, op: random, shape: [8, 4], chunks: [4, 4]}\n"
WRITE_X = " - {id: w, op: write, input: x, path: x.npy}\n"


def elementwise(expr: str) -> str:
    return X + (f" - {{id: y, op: elementwise, inputs: {{x: x}}, expr: {json.dumps(expr)}}}\n"
                " - {id: w, op: write, input: y, path: y.npy}\n")


def bomb(depth: int = 9) -> str:
    text = 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
    for i in range(1, depth):
        text += f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n"
    return text + f"name: b\nstages: *a{depth - 1}\n"


# name -> (workflow text after "name: a\n", or a whole file with `whole:`), extra CLI
# arguments, and a fragment of the one error line
INPUT_CASES = {
    "write '.'": (X + " - {id: w, op: write, input: x, path: '.', format: zarr}\n", [],
                  "stages.w.path: '.' is the run folder itself"),
    "write ''": (X + " - {id: w, op: write, input: x, path: '', format: zarr}\n", [],
                 "stages.w.path: bad path ''"),
    "two sinks, one path": (X + WRITE_X + " - {id: v, op: write, input: x, path: ./x.npy}\n",
                            [], "stages.v.path: 'x.npy' is also written by another stage"),
    "a sink inside another": (X + " - {id: w, op: write, input: x, path: a.zarr}\n"
                              " - {id: v, op: write, input: x, path: a.zarr/b.npy}\n", [],
                              "overlaps 'a.zarr'"),
    "a sink named report.json": (X + " - {id: w, op: write, input: x, path: report.json}\n",
                                 [], "'report.json' is the run's own report.json"),
    "alias bomb": ("whole:" + bomb(), [], "values once its aliases are expanded"),
    "recursive alias": ("whole:name: &a [*a]\nstages: []\n", [], "refers to a value that "
                                                                  "contains it"),
    "duplicate keys": ("whole:name: a\nstages:\n" + X + WRITE_X + "name: b\n", [],
                       "line 5, column 1: invalid YAML: duplicate key 'name' (first given on "
                       "line 1)"),
    "name with a newline": ('whole:name: "a\\n"\nstages:\n' + X + WRITE_X, [], "bad name"),
    "id with a newline": (' - {id: "x\\n", op: random, shape: [3]}\n' + WRITE_X, [],
                          "bad or missing id"),
    "10**10**10": (elementwise("x + 10**10**10"), [], "does not fit 64 bits"),
    "'a' * 10**10": (elementwise("x + 'a' * 10**10"), [], "strings can only be compared"),
    "deep chain": (elementwise("-" * 5000 + "x"), [], "nested too deeply"),
    "long chain": (elementwise("x+" * 6000 + "x"), [], "more than 10,000"),
    "deep chain in a filter": (" - {id: t, op: random_table, rows: 10, columns: {a: {keys: 3}}}\n"
                               " - {id: f, op: filter, input: t, expr: '" + "-" * 5000
                               + "a > 0'}\n - {id: w, op: write, input: f, path: f.csv}\n",
                               [], "stages.f.expr: the expression is nested too deeply"),
    "& on floats": (elementwise("x & 1.5"), [], "stages.y.expr: cannot evaluate: unsupported "
                                                "operand type(s) for &"),
    "+ a string": (elementwise("x + 'a'"), [], "strings can only be compared"),
    "overflow": (elementwise("x + 10.0**400"), [], "a constant overflows a float"),
    "1/0": (elementwise("x + 1/0"), [], "division by zero in the constants"),
    "huge shape": (" - {id: x, op: random, shape: [1000000000000, 1000000000000]}\n" + WRITE_X,
                   [], "stages.x.chunks: shape [1000000000000, 1000000000000] in chunks 'auto' "
                       "makes 59,604,644,775,390,624 chunks, more than 100,000"),
    "tiny chunks": (" - {id: x, op: random, shape: [1000, 1000], chunks: [1, 1]}\n" + WRITE_X,
                    [], "makes 1,000,000 chunks"),
    # (the source in 10 chunks: refusing the rechunk must not wait for a big graph)
    "rechunk to tiny": (" - {id: x, op: random, shape: [4000, 400], chunks: [400, 400]}\n"
                        " - {id: r, op: rechunk, "
                        "input: x, chunks: [1, 1]}\n - {id: w, op: write, input: r, "
                        "path: r.npy}\n", [], "stages.r.chunks"),
    "0 B chunks": (" - {id: x, op: random, shape: [100, 100], chunks: '0 B'}\n" + WRITE_X, [],
                   "a chunk must hold at least one byte"),
    "10^12 partitions": (" - {id: x, op: random_table, rows: 1000000000000, partitions: "
                         "1000000000000, columns: {a: {keys: 3}}}\n"
                         " - {id: w, op: write, input: x, path: x.parquet}\n", [],
                         "makes 1,000,000,000,000 partitions"),
    "chunk over worker memory": (" - {id: x, op: random, shape: [400000, 400000], chunks: "
                                 "[400000, 400000], dtype: float32}\n"
                                 " - {id: r, op: reduce, input: x, how: sum}\n"
                                 " - {id: w, op: write, input: r, path: r.json}\n", [],
                                 "stages.x: a chunk of 596.05 GiB is larger than a worker's "
                                 "memory limit"),
    "arange to inf": (" - {id: x, op: arange, stop: .inf}\n" + WRITE_X, [],
                      "stop must be a finite number"),
    "arange to nan": (" - {id: x, op: arange, stop: .nan}\n" + WRITE_X, [], "finite number"),
    "huge window": (" - {id: x, op: window, length: 100000000000}\n" + WRITE_X, [],
                    "is too large"),
    "uniform over inf": (" - {id: x, op: random, shape: [10], distribution: uniform, "
                         "low: -.inf, high: .inf}\n" + WRITE_X, [], "must be a finite number"),
    "uniform wider than floats": (" - {id: x, op: random, shape: [10], distribution: "
                                  "uniform, low: -1.0e+308, high: 1.0e+308}\n" + WRITE_X, [],
                                  "wider than the largest float"),
    "NUL in a read path": (' - {id: x, op: read, path: "a\\0b.npy"}\n' + WRITE_X, [],
                           "holds a NUL character"),
    "/dev/zero read": (" - {id: x, op: read, path: /dev/zero, format: npy}\n" + WRITE_X, [],
                       "'/dev/zero' is not a regular file or folder"),
    "FIFO read": (" - {id: x, op: read, path: fifo.csv}\n"
                  " - {id: w, op: write, input: x, path: x.csv}\n", [],
                  "is not a regular file or folder"),
    "lying .npy header": (" - {id: x, op: read, path: lying.npy}\n" + WRITE_X, [],
                          "cannot read 'lying.npy' as .npy"),
    "not zarr": (" - {id: x, op: read, path: junk.zarr}\n" + WRITE_X, [],
                 "cannot open 'junk.zarr' as a zarr array"),
    "corrupt parquet": (" - {id: x, op: read, path: corrupt.parquet}\n"
                        " - {id: w, op: write, input: x, path: x.parquet}\n", [],
                        "cannot read 'corrupt.parquet' as parquet"),
    "memory_limit=lots": (X + WRITE_X, ["--set", "cluster.memory_limit=lots"],
                          "cluster.memory_limit: bad value 'lots'"),
    "--address foo://x": (X + WRITE_X, ["--address", "foo://x"],
                          "--address: bad scheduler address 'foo://x'"),
    "output dir is a file": (X + WRITE_X, ["--output-dir", "inputs.txt"],
                             "inputs.txt exists and is not a folder"),
    "output dir name too long": (X + WRITE_X, ["--output-dir", "x" * 300],
                                 "the name is too long"),
    "output dir not a run folder": (X + WRITE_X, ["--output-dir", "."], "not a run folder"),
}


@pytest.fixture
def inputs(tmp_path):
    """The workflow's folder, with the files the cases read."""
    np.save(tmp_path / "lying.npy", np.zeros(10))
    (tmp_path / "lying.npy").write_bytes(
        (tmp_path / "lying.npy").read_bytes().replace(b"(10,)", b"(99999999,)"))
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / "junk").write_text("x")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1" + bytes(range(200)) + b"PAR1")
    (tmp_path / "inputs.txt").write_text("not a folder")
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "wf.yaml").write_text("")
    return tmp_path


def run_case(folder, text: str, extra: list[str], address: str) -> int:
    body = text[len("whole:"):] if text.startswith("whole:") else f"name: a\nstages:\n{text}"
    (folder / "wf.yaml").write_text(body)
    args = ["run", str(folder / "wf.yaml"), "--quiet", "--no-dashboard"]
    args += [] if "--address" in extra or "cluster.memory_limit" in " ".join(extra) \
        else ["--address", address]
    args += [] if "--output-dir" in extra else ["--output-dir", str(folder / "out")]
    cwd = os.getcwd()
    os.chdir(folder)  # relative --output-dir values are the user's current folder's
    try:
        return main([*args, *extra])
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_bad_input_is_one_line_and_exit_2(inputs, address, capsys, case):
    text, extra, fragment = INPUT_CASES[case]
    before = sorted(p.name for p in inputs.iterdir())
    assert run_case(inputs, text, extra, address) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert fragment in err
    assert sorted(p.name for p in inputs.iterdir()) == before  # no folder left behind


def test_bad_csv_data_fails_naming_the_stage_and_the_line(tmp_path, address, capsys):
    with open(tmp_path / "b.csv", "w") as f:
        f.write("a,b\n")
        f.writelines(f"{i},{i}\n" for i in range(150_000))
        f.write("1,2,3,4\n")
        f.writelines(f"{i},{i}\n" for i in range(1000))
    text = textwrap.dedent("""\
         - {id: rows, op: read, path: b.csv}
         - {id: w, op: write, input: rows, path: x.parquet}
        """)
    assert run_case(tmp_path, text, [], address) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: stages.rows: the run failed: ParserError: Error tokenizing "
                          "data. C error: Expected 2 fields in line 150002, saw 4 (bad data "
                          "at line 150002 of a csv block")
    [entry] = (tmp_path / "out.history").iterdir()
    assert err.rstrip().endswith(f"report: {entry / 'report.json'})")
    doc = json.loads((entry / "report.json").read_text())
    assert doc["failure"]["stage"] == "rows" and doc["failure"]["op"] == "read"
    assert "fix or remove that row" in doc["failure"]["fix"]
    assert not (tmp_path / "out").exists()


def test_a_corrupt_page_fails_at_run_time_in_one_line(tmp_path, address, capsys):
    pd.DataFrame({"a": np.arange(200_000.0)}).to_parquet(tmp_path / "p.parquet",
                                                         compression=None)
    data = bytearray((tmp_path / "p.parquet").read_bytes())
    data[4:40] = b"\xff" * 36  # the first page's header; the footer (schema) stays good
    (tmp_path / "p.parquet").write_bytes(bytes(data))
    text = " - {id: p, op: read, path: p.parquet}\n - {id: w, op: write, input: p, path: x.csv}\n"
    assert run_case(tmp_path, text, [], address) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: stages.p: the run failed: OSError: Couldn't deserialize "
                          "thrift")
    assert "a file's contents are damaged" in err


def test_join_keys_of_two_dtypes(tmp_path, address, capsys):
    """Numeric keys of two dtypes join as pandas joins them (int 2 meets float 2.0);
    keys of two kinds could never match, and are refused."""
    pd.DataFrame({"k": [1, 2, 3], "name": ["a", "b", "c"]}).to_csv(tmp_path / "l.csv",
                                                                   index=False)
    pd.DataFrame({"k": [2.0, 3.0, 4.5], "v": [20.0, 30.0, 45.0]}).to_csv(tmp_path / "r.csv",
                                                                         index=False)
    text = (" - {id: l, op: read, path: l.csv}\n - {id: r, op: read, path: r.csv}\n"
            " - {id: j, op: join, inputs: [l, r], on: k}\n"
            " - {id: w, op: write, input: j, path: j.csv}\n")
    assert run_case(tmp_path, text, [], address) == 0, capsys.readouterr().err
    got = pd.read_csv(tmp_path / "out" / "j.csv").sort_values("k", ignore_index=True)
    left = pd.read_csv(tmp_path / "l.csv").astype({"k": "float64"})  # what pandas compares
    want = left.merge(pd.read_csv(tmp_path / "r.csv"), on="k")
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert run_case(tmp_path, text.replace("on: k", "on: name").replace(
        "r.csv}", "r.csv}\n - {id: r2, op: assign, input: r, columns: {name: v}}").replace(
        "inputs: [l, r]", "inputs: [l, r2]"), [], address) == 2
    err = capsys.readouterr().err
    assert "stages.j.on: key 'name' is" in err and "no row could match" in err


# ---------------------------------------------------------------- faults (real processes)

LONG = textwrap.dedent("""\
    name: long
    stages:
      - {id: x, op: random, shape: [400000, 2000], chunks: [1000, 2000]}
      - {id: y, op: elementwise, inputs: {x: x}, expr: "sqrt(abs(x)) * 2 + 1"}
      - {id: r, op: reduce, input: y, how: sum, axis: 0}
      - {id: w, op: write, input: r, path: r.npy}
    """)


def start(folder, *extra, text=LONG, env=None):
    """``python -m pipeline run`` in its own process group, once its cluster is up."""
    (folder / "long.yaml").write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "long.yaml", "--no-dashboard",
         "--output-dir", "out", "--set", "cluster.n_workers=2", *extra],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    assert "backend cpu" in proc.stdout.readline()  # printed once the workers are up
    return proc


def group_gone(pgid: int, within: float = 30) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_ctrl_c_and_a_killed_run(tmp_path):
    # a run killed outright leaves its staging folder (and its workers die with it) ...
    proc = start(tmp_path)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert group_gone(proc.pid)
    assert len(list(tmp_path.glob(".out.staging-*"))) == 1
    # ... which the next run removes; Ctrl-C on the whole process group (as a terminal
    # sends it, workers included) stops that one: one line, exit 130, workers quiet
    proc = start(tmp_path)
    assert not list(tmp_path.glob(".out.staging-*"))[1:]
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert err == "error: interrupted (Ctrl-C); the run folder is left as it was\n"
    assert group_gone(proc.pid)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.yaml"]


def _interrupt_inside(install, remove) -> list:
    """Press Ctrl-C (SIGINT to this process) inside a callback that ``install(callback)``
    puts where Python drops exceptions; the interrupt must come once outside it."""
    fired = []

    def callback(*args):
        if not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside it

    install(callback)
    try:
        with ctrl_c.handled(), pytest.raises(KeyboardInterrupt):
            gc.collect()
            time.sleep(5)  # interrupted long before
    finally:
        remove(callback)
    return fired


def test_ctrl_c_inside_a_gc_callback_is_not_lost_nor_breaks_it():
    """The in-process scheduler installs a gc callback that pairs each collection's start
    with its stop (and asserts it). Python ignores what a callback raises, so the
    interrupt must come once outside it; and it must not be raised inside it, which
    would skip the rest of the callback and break that pairing."""
    phases = []

    def install(callback):
        def paired(phase, info):
            callback()
            phases.append(phase)  # skipped if the interrupt were raised in callback()

        gc.callbacks.append(paired)
        keep.append(paired)

    keep: list = []
    assert _interrupt_inside(install, lambda callback: gc.callbacks.remove(keep[0]))
    assert phases[:2] == ["start", "stop"] and len(phases) % 2 == 0


def test_ctrl_c_inside_a_weakref_callback_is_not_lost():
    """Objects freed by a collection call their weakref callbacks (Dask's and the
    standard library's WeakSets have them); Python ignores what those raise."""
    class Thing:
        pass

    keep = []

    def install(callback):
        a, b = Thing(), Thing()
        a.other, b.other = b, a  # a cycle: freed by gc.collect(), not before
        keep.append(weakref.ref(a, callback))
        del a, b

    assert _interrupt_inside(install, lambda callback: keep.clear())


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_keeps_the_previous_results(tmp_path, address):
    """A file size limit (RLIMIT_FSIZE, inherited by the workers) makes writes past it
    fail as they do on a full disk, without needing a small file system to fill (by
    hand, on a 24 MiB tmpfs: the same line with [Errno 28] No space left on device)."""
    small = textwrap.dedent("""\
        name: small
        stages:
          - {id: x, op: random, shape: [100, 1000], chunks: [50, 1000]}
          - {id: w, op: write, input: x, path: x.npy}
        """)
    (tmp_path / "small.yaml").write_text(small)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "small.yaml"), "--address", address, "--quiet",
                 "--output-dir", str(out)]) == 0
    kept = np.load(out / "x.npy")
    big = small.replace("[100, 1000], chunks: [50, 1000]", "[4000, 1000], chunks: [500, 1000]")
    limit = 4 << 20  # the big run's 32 MB .npy cannot be written; reports can

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    (tmp_path / "big.yaml").write_text(big)
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", "big.yaml", "--quiet",
                           "--no-dashboard", "--output-dir", "out",
                           "--set", "cluster.n_workers=1"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=180, preexec_fn=limited)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: stages.w: the run failed: OSError: [Errno 27] File "
                                  "too large (the disk is full (or a file size limit was "
                                  "reached); fix: free space")
    np.testing.assert_array_equal(np.load(out / "x.npy"), kept)  # previous results intact
    [entry] = (tmp_path / "out.history").iterdir()
    assert json.loads((entry / "report.json").read_text())["failure"]["stage"] == "w"


@pytest.mark.slow
def test_workers_killed_for_memory_are_blamed_on_the_stage(tmp_path):
    env = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}  # fail at the first death
    (tmp_path / "oom.yaml").write_text(OOM_WORKFLOW)
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", "oom.yaml", "--quiet",
                           "--no-dashboard", "--output-dir", "out", "--set",
                           "cluster.n_workers=1", "--set", "cluster.memory_limit=300MB"],
                          cwd=tmp_path, text=True, capture_output=True, timeout=180,
                          env={**os.environ, **env})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: stages.spectrum: the run failed: KilledWorker")
    assert "out of memory: workers died running it (its chunks are up to 256.00 MiB; a " \
           "worker may use 286.10 MiB)" in proc.stderr
    assert "use smaller chunks for stages.spectrum" in proc.stderr
    assert not (tmp_path / "out").exists()
