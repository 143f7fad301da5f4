"""Run by the Dockerfile once the project is installed: the image has what the pipeline
needs, at the versions pyproject.toml pins, or its build fails here, saying what is wrong.

    python check_image.py gpu|cpu

``gpu``: the RAPIDS libraries of the ``gpu`` extra come from the base image's conda
packages, whose names differ from the extra's pip wheels (cudf vs cudf-cu12), so they
are checked by module and dask-cuda by version, and the core pins must hold with them
(pip would otherwise have replaced the base image's Dask). ``cpu``: no GPU libraries.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata, util

from packaging.requirements import Requirement

GPU_MODULES = ("dask_cuda", "cudf", "dask_cudf", "cupy", "rmm")


def problems(kind: str, project: dict) -> list[str]:
    """What is missing or at the wrong version in this image, for ``kind`` workers."""
    wanted = list(project["dependencies"])
    if kind == "gpu":
        wanted += [r for r in project["optional-dependencies"]["gpu"]
                   if r.startswith("dask-cuda")]
    found = []
    for req in map(Requirement, wanted):
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            found.append(f"{req.name} is not installed")
            continue
        if not req.specifier.contains(version, prereleases=True):
            found.append(f"{req.name} {version} does not meet {req}")
    present = [m for m in GPU_MODULES if util.find_spec(m)]
    if kind == "gpu":
        found += [f"{m} is missing from the base image" for m in (*GPU_MODULES, "pynvml")
                  if not util.find_spec(m)]
    elif present:
        found.append(f"a CPU image with GPU libraries ({', '.join(present)}): "
                     "is BASE_IMAGE a RAPIDS image?")
    return found


def main(kind: str) -> int:
    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    found = problems(kind, project)
    for problem in found:
        print(f"error: image check ({kind}): {problem}", file=sys.stderr)
    if not found:
        import pipeline  # noqa: F401  the installed project imports

        print(f"image check ({kind}): dask {metadata.version('dask')}, distributed "
              f"{metadata.version('distributed')}"
              + (f", dask-cuda {metadata.version('dask-cuda')}" if kind == "gpu" else ""))
    return 1 if found else 0


if __name__ == "__main__":
    if sys.argv[1:] not in (["gpu"], ["cpu"]):
        sys.exit("usage: python check_image.py gpu|cpu")
    sys.exit(main(sys.argv[1]))
