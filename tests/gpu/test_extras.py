"""The GPU extras (pyproject.toml) and the names pipeline/gpu/extras.py gives them."""

import re
import tomllib
from importlib import metadata

import pytest

from pipeline import report
from pipeline.gpu import extras
from tests.conftest import REPO

EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
    "optional-dependencies"]


@pytest.mark.parametrize("driver_cuda, tables, name", [
    (13, False, "gpu-cu13"), (13, True, "gpu-tables-cu13"), (14, False, "gpu-cu13"),
    (12, False, "gpu-cu12"), (12, True, "gpu-tables-cu12"), (None, False, "gpu-cu13"),
])
def test_the_extra_fits_the_driver(driver_cuda, tables, name):
    assert extras.name(driver_cuda, tables) == name
    assert extras.install(driver_cuda, tables) == f'pip install ".[{name}]"'


@pytest.mark.parametrize("line", [12, 13])
def test_each_cuda_line_has_arrays_and_tables_extras_with_matching_builds(line):
    arrays, tables = EXTRAS[f"gpu-cu{line}"], EXTRAS[f"gpu-tables-cu{line}"]
    assert f"dask-cuda[cu{line}]==26.10.*" in arrays  # [cuXX]: cuda-core's bindings
    assert any(p.startswith(f"cupy-cuda{line}x") for p in arrays)
    assert not any("cudf" in p for p in arrays)  # arrays need no cuDF
    assert set(arrays) < set(tables)
    for pin in tables:
        majors = set(re.findall(r"cu(?:da)?(\d+)", pin))
        assert majors <= {str(line)}, pin
    assert EXTRAS["gpu"] == EXTRAS["gpu-tables-cu12"]  # its first meaning, kept


@pytest.mark.parametrize("extra", ["gpu-cu12", "gpu-cu13", "gpu-tables-cu13"])
def test_requirements_are_the_extras_pins(extra):
    assert extras.requirements(extra) == EXTRAS[extra]


def test_report_versions_name_either_cuda_lines_packages(monkeypatch):
    installed = {"cupy-cuda13x": "14.2.0", "dask-cuda": "26.10.0", "cudf-cu13": "26.10.0"}
    real = metadata.version

    def version(name):
        return installed[name] if name in installed else real(name)

    monkeypatch.setattr(metadata, "version", version)
    got = report.versions()
    assert {k: got.get(k) for k in installed} == installed
