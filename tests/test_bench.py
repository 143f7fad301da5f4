"""``python -m pipeline bench``: the harness runs every workload at a tiny size and prints
a table with sane ratios. Speed is measured by the benchmark itself, never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

import pipeline
from pipeline import cli
from tests.conftest import REPO

WORKLOADS = ("fft", "matmul", "transpose_sum", "elementwise", "arithmetic", "reduction",
             "groupby", "join", "convolve")


def test_bench_tiny_every_workload(capsys):
    assert cli.main(["bench", "--size", "1", "--repeats", "1", "--no-doc"]) == 0
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in WORKLOADS:
            rows[cells[0]] = cells
    assert set(rows) == set(WORKLOADS)
    for name, cells in rows.items():
        times = [float(c) for c in cells[2:5]]
        ratio_dask, ratio_best = float(cells[5]), float(cells[7])
        assert all(t > 0 for t in times), name
        assert ratio_dask > 0 and ratio_best > 0, name
        assert cells[-1] == "yes", f"{name}: the sides' results disagree"
    assert re.search(r"pipeline / best", out)


def test_bench_without_source_tree(tmp_path, monkeypatch, capsys):
    fake = tmp_path / "site-packages" / "pipeline" / "__init__.py"
    monkeypatch.setattr(pipeline, "__file__", str(fake))
    assert cli.main(["bench", "--no-doc"]) == 2
    assert "benchmarks/run.py not found" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--size", "-1"), ("--size", "nan"),
                                           ("--size", "0"), ("--scaling-max", "-5")])
def test_bad_sizes_are_exit_2(capsys, option, value):
    # before: -1 and nan were internal errors, 0 ran, a negative --scaling-max was ignored
    assert cli.main(["bench", option, value, "--no-doc"]) == 2
    assert capsys.readouterr().err == (f"error: {option}: bad size {float(value):g} (MiB of "
                                       "input, above 0)\n")


def test_process_age_is_the_time_since_launch():
    # the phase tables' "interpreter start": psutil's create_time read 0.68 s early on the
    # development host (boot time in whole seconds), so a process seemed 0.7 s older
    script = "import time; time.sleep(0.3); import process_age; print(process_age.seconds())"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO / "benchmarks", check=True).stdout
    elapsed = time.perf_counter() - t0
    assert 0.3 <= float(out) <= elapsed + 0.02  # one clock tick of slack
