"""Which libraries a GPU run needs, and the pip extra that installs them for the driver.

``pyproject.toml`` has one extra per CUDA line: ``gpu-cu12`` / ``gpu-cu13`` for arrays
(CuPy and dask-cuda with its CUDA bindings) and ``gpu-tables-cu12`` / ``gpu-tables-cu13``
adding cuDF and dask-cudf for table stages; ``gpu`` keeps its first meaning,
``gpu-tables-cu12``. Arrays never need cuDF, a 350-700 MB install that array users
often leave out.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

ARRAY_LIBS = ("cupy", "dask_cuda")  # import names: arrays on a local GPU cluster
TABLE_LIBS = ("cudf", "dask_cudf")  # and table stages
NEWEST_CUDA = 13  # the newest CUDA line with RAPIDS wheels


def cuda_line(driver_cuda: int | None) -> int:
    """The CUDA major to install for a driver that supports CUDA up to ``driver_cuda``
    (the newest line it runs; the newest line when the driver is unknown)."""
    if driver_cuda is None or driver_cuda >= NEWEST_CUDA:
        return NEWEST_CUDA
    return 12


def name(driver_cuda: int | None, tables: bool) -> str:
    """The extra for this driver: ``gpu-cu13``, ``gpu-tables-cu12``..."""
    return f"gpu-{'tables-' if tables else ''}cu{cuda_line(driver_cuda)}"


def install(driver_cuda: int | None, tables: bool) -> str:
    """The install command, as a hint: ``pip install ".[gpu-cu13]"``."""
    return f'pip install ".[{name(driver_cuda, tables)}]"'


def requirements(extra: str) -> list[str]:
    """The pins of ``extra``: from the installed package's metadata, else from the
    source tree's pyproject.toml (a checkout run without installing)."""
    try:
        reqs = metadata.requires("pipeline") or []
    except metadata.PackageNotFoundError:
        reqs = []
    pins = [r.split(";")[0].strip() for r in reqs
            if re.search(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]", r)]
    if pins:
        return pins
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        return []
    import tomllib

    extras = tomllib.loads(pyproject.read_text()).get("project", {}) \
        .get("optional-dependencies", {})
    return list(extras.get(extra, []))
