"""The CuPy stand-in (tests/cupy_standin) is as strict as CuPy and has CuPy's names, and
the pipeline uses no CuPy name or keyword that the real CuPy lacks.

Two layers: the stand-in refuses what CuPy refuses (checked here on its own), and its
catalog of names and keywords equals what the real CuPy wheel reports (checked against the
wheel where one is installed: CI installs it; it imports without a GPU). A static scan
of the package then holds every ``xp.`` / ``cupy.`` / ``cupyx.`` name and keyword in the
source against the catalog.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import cupy_standin
from tests.conftest import REPO, requires_standin

CATALOG_FILE = cupy_standin.SITE / "cupy" / "_catalog.json"
CATALOG = json.loads(CATALOG_FILE.read_text())


def real_cupy_env() -> dict:
    """The environment of a process that sees the installed CuPy, not the stand-in."""
    site = str(cupy_standin.SITE)
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != site]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *path])}


def real_cupy_version() -> str | None:
    code = "import cupy; print(getattr(cupy, '__standin__', False) or cupy.__version__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=real_cupy_env(), timeout=120)
    return proc.stdout.strip() if proc.returncode == 0 else None


def test_catalog_matches_the_real_cupy():
    """Regenerate the catalog from the installed CuPy and compare: a CuPy release that
    renames or drops something the stand-in offers fails here (regenerate with
    ``python -m tests.cupy_standin.catalog > tests/cupy_standin/site/cupy/_catalog.json``
    and re-run the suite)."""
    version = real_cupy_version()
    if version is None:
        pytest.skip("the real CuPy wheel is not installed (CI installs cupy-cuda13x)")
    proc = subprocess.run([sys.executable, "-m", "tests.cupy_standin.catalog"],
                          capture_output=True, text=True, env=real_cupy_env(), cwd=REPO,
                          timeout=300, check=True)
    real = json.loads(proc.stdout)
    assert real["cupy"] == CATALOG["cupy"], "the catalog was made from another CuPy"
    for module, names in CATALOG["modules"].items():
        assert real["modules"][module] == names, module
    assert real["ndarray"] == CATALOG["ndarray"]


# -- the package's CuPy names, read from its source -----------------------------------

def _chain(node) -> list[str] | None:
    """``xp.lib.stride_tricks.f`` -> ["cupy", "lib", "stride_tricks", "f"] when the root is
    CuPy (``cupy``, ``cupyx``) or a backend's array module (``xp``, ``*.xp``)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
        if parts[-1] == "xp":  # ctx.backend.xp, self.xp
            return ["cupy", *reversed(parts[:-1])]
    if isinstance(node, ast.Name) and node.id in ("xp", "cupy", "cupyx"):
        return ["cupyx" if node.id == "cupyx" else "cupy", *reversed(parts)]
    return None


def _lookup(chain: list[str]) -> dict | None:
    """The catalog's entry for a chain, from its longest prefix that is a catalogued
    module; None if absent."""
    i = next((i for i in range(len(chain), 0, -1)
              if ".".join(chain[:i]) in CATALOG["modules"]), None)
    if i is None:
        return None
    module, rest = ".".join(chain[:i]), chain[i:]
    if not rest:
        return {"kind": "module"}
    entry = CATALOG["modules"][module].get(rest[0])
    if entry is None or (len(rest) > 1 and entry["kind"] != "class"):
        return None  # (attributes of classes, e.g. cuda.Device().synchronize, pass)
    return entry


def uses(source: str) -> list[tuple[str, str | None]]:
    """Every (CuPy name, keyword or None) a piece of source uses that CuPy lacks."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith(("cupy.", "cupyx.")) and " " not in node.value:
            if _lookup(node.value.split(".")) is None:
                bad.append((node.value, None))
        if not isinstance(node, (ast.Attribute, ast.Call)):
            continue
        chain = _chain(node.func if isinstance(node, ast.Call) else node)
        if not chain or chain[-1] == "__name__":
            continue
        entry = _lookup(chain)
        name = ".".join(chain)
        if entry is None:
            bad.append((name, None))
        elif isinstance(node, ast.Call) and entry.get("params") is not None \
                and not entry.get("varkw"):
            bad += [(name, k.arg) for k in node.keywords
                    if k.arg and k.arg not in entry["params"]]
    return sorted(set(bad))


def test_the_package_uses_only_names_and_keywords_cupy_has():
    found = {}
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        bad = uses(path.read_text())
        if bad:
            found[str(path.relative_to(REPO))] = bad
    assert found == {}


@pytest.mark.parametrize("source, bad", [
    ("xp.block([a, b])", [("cupy.block", None)]),  # NumPy has it, CuPy does not
    ("ctx.backend.xp.quantile(a, q, weights=w)", [("cupy.quantile", "weights")]),
    ("cupy.cuda.get_current_stream()", []),
    ("import importlib; importlib.import_module('cupyx.scipy.nope')",
     [("cupyx.scipy.nope", None)]),
    ("xp.lib.stride_tricks.sliding_window_view(b, 3, axis=0)", []),
])
def test_the_scan_finds_what_cupy_lacks(source, bad):
    assert uses(source) == bad


# -- the stand-in is as strict as CuPy --------------------------------------------------

@requires_standin
def test_host_arrays_are_refused_where_cupy_refuses_them():
    import cupy

    x = cupy.asarray(np.arange(6.0))
    host = np.ones(6)
    for call in (lambda: x + host, lambda: host * x, lambda: cupy.sqrt(host),
                 lambda: cupy.fft.rfft(host), lambda: cupy.concatenate([x, host]),
                 lambda: np.concatenate([x, host]), lambda: cupy.add(x, np.float64(1) + host)):
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            call()
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(x)
    # what CuPy does accept: scalars, host data given to its creation functions and the
    # parameters it converts itself, explicit copies back
    np.testing.assert_array_equal((x * np.float32(2) + 1).get(), np.arange(6.0) * 2 + 1)
    counts, _ = cupy.histogram(x, bins=np.linspace(0, 6, 4))
    assert counts.get().tolist() == [2, 2, 2]
    assert cupy.asnumpy(x.sum()) == 15 and float(x.sum()) == 15
    assert isinstance(x.sum(), cupy.ndarray)  # a 0-d device array, as CuPy returns


@requires_standin
def test_it_raises_no_floating_point_warnings_as_a_gpu_raises_none():
    # Dask's CuPy entry point casts cupy.empty(()) to the dtype asked for: garbage, NaN
    # at times, whose cast to int NumPy warns about (an error under the suite's filters);
    # a GPU, and so CuPy, never does
    import cupy

    with np.errstate(all="warn"), pytest.warns(RuntimeWarning):
        np.array([np.nan, 1e300]).astype(np.float32).astype(np.int64)
    x = cupy.asarray(np.array([np.nan, 1e300, -1.0]))
    assert x.astype("float32").astype("int64").dtype == np.int64
    assert np.isnan(cupy.sqrt(x).get()[2]) and cupy.log(x - x).get()[1] == -np.inf


@requires_standin
def test_numpy_functions_dispatch_to_cupy_or_fail_as_with_cupy():
    import cupy

    x = cupy.asarray(np.arange(12.0).reshape(3, 4))
    assert isinstance(np.sqrt(x), cupy.ndarray) and isinstance(np.moveaxis(x, 0, 1),
                                                               cupy.ndarray)
    with pytest.raises(TypeError):
        np.block([x, x])  # CuPy has no block: NumPy finds no implementation
    with pytest.raises(AttributeError, match="not in CuPy"):
        cupy.block  # noqa: B018
    with pytest.raises(TypeError, match="unexpected keyword argument 'axes'"):
        cupy.fft.rfft(x, axes=1)


@requires_standin
def test_it_is_what_dask_and_the_workers_import():
    import cupy
    import dask
    import dask.array as da

    assert cupy_standin.active() and cupy.__version__ == CATALOG["cupy"]
    with dask.config.set({"array.backend": "cupy"}):
        x = da.random.default_rng(0).standard_normal((10, 4), chunks=(3, 4))
    assert isinstance(x._meta, cupy.ndarray)
    assert isinstance(x.sum(axis=0).compute(scheduler="sync"), cupy.ndarray)
    code = "import cupy; print(cupy.__standin__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # children inherit the path
    assert out.strip() == "True"
