"""Prints the pipeline's run-time dependencies, every one pinned to the version installed
here, dependencies of dependencies included: what docker/cpu-base.sh puts into the CPU
base image, so containers compute with the same libraries as a local run.

    python docker/pins.py [pyproject.toml]
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def pins(requirements: list[str]) -> dict[str, str]:
    """``{name: installed version}`` for ``requirements`` and all they need here.

    Raises
    ------
    importlib.metadata.PackageNotFoundError
        A requirement is not installed (``pip install -e .`` first).
    """
    found: dict[str, tuple[str, set[str]]] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        version, extras = found.get(name, (None, set()))
        if version is not None and set(req.extras) <= extras:
            continue  # seen, and with every extra asked for now
        dist = metadata.distribution(req.name)
        extras = extras | set(req.extras)
        found[name] = (dist.version, extras)
        for sub in map(Requirement, dist.requires or ()):
            if sub.marker is None or any(sub.marker.evaluate({"extra": e})
                                         for e in ("", *extras)):
                todo.append(sub)
    return {name: version for name, (version, _) in sorted(found.items())}


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"
    with open(path, "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    print("\n".join(f"{n}=={v}" for n, v in pins(deps).items()))
