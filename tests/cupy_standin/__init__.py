"""A strict CuPy stand-in, so CI runs the GPU code paths on machines without a GPU.

``site/`` holds packages named ``cupy`` and ``cupyx``: NumPy underneath, strict where
CuPy is strict (see ``site/cupy/_core.py``), with exactly the names and keywords of the
real CuPy recorded in ``site/cupy/_catalog.json`` by :mod:`tests.cupy_standin.catalog`.
:func:`activate` puts them first on the import path of this process and of every
process it starts (Dask workers, ``python -m pipeline`` subprocesses), which is how
``backend: gpu`` and Dask's ``array.backend: cupy`` run on it.

It is a test tool: it lives under ``tests/`` and nothing in the package can select it.
Where a real GPU and CuPy are present the suite uses those instead (see
``tests/conftest.py``), and never activates this.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent / "site"


def activate() -> None:
    """Make ``import cupy`` / ``import cupyx`` give the stand-in, here and in children."""
    site = str(SITE)
    if site not in sys.path:
        sys.path.insert(0, site)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if site not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([site, *parts])
    if "cupy" in sys.modules and not getattr(sys.modules["cupy"], "__standin__", False):
        for name in [m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx")]:
            del sys.modules[name]  # a real CuPy imported earlier must not shadow it


def active() -> bool:
    """Whether ``import cupy`` gives the stand-in in this process."""
    import cupy

    return getattr(cupy, "__standin__", False)
