"""The names and keywords of the real CuPy, recorded for the stand-in (``site/``).

Run with the real CuPy wheel importable and the stand-in NOT on the path:

    python -m tests.cupy_standin.catalog > tests/cupy_standin/site/cupy/_catalog.json

CuPy imports without a GPU, so this runs on any machine; a submodule whose import needs
CUDA libraries that are absent (``cupyx.scipy.signal`` wants cuBLAS) is read from its
Python source instead. ``tests/test_cupy_standin.py`` re-runs this against the wheel
that CI installs and fails when the stored catalog differs, so the stand-in cannot drift
from the CuPy it stands in for.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import re
import sys
import warnings
from pathlib import Path

# The modules whose names the stand-in offers (what the pipeline and Dask reach).
MODULES = ("cupy", "cupy.fft", "cupy.linalg", "cupy.random", "cupy.lib.stride_tricks",
           "cupy.cuda", "cupyx", "cupyx.scipy.signal", "cupyx.scipy.special",
           "cupyx.scipy.linalg", "cupyx.scipy.fft")
# Cython methods carry their signature as the docstring's first line.
DOC_SIGNATURE = re.compile(r"^[\w.]*?(\w+)\((.*)\)")


def params_of(obj) -> dict | None:
    """``{"params": [names], "varkw": bool}`` of a callable, or None when unknowable."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return _doc_params(obj)
    names = [p.name for p in sig.parameters.values()
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"]
    varkw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return {"params": names, "varkw": varkw}


def _doc_params(obj) -> dict | None:
    first = (getattr(obj, "__doc__", None) or "").strip().splitlines()[:1]
    m = DOC_SIGNATURE.match(first[0]) if first else None
    if not m:
        return None
    names, varkw = [], False
    for part in (p.strip() for p in m.group(2).split(",")):
        name = part.split("=")[0].strip().lstrip("*")
        if part.startswith("**"):
            varkw = True
        elif name and name != "self" and not part.startswith("*"):
            names.append(name)
    return {"params": names, "varkw": varkw}


def describe(obj) -> dict:
    if inspect.ismodule(obj):
        return {"kind": "module"}
    if type(obj).__name__ == "ufunc":
        return {"kind": "ufunc"}
    if inspect.isclass(obj):
        return {"kind": "class"}
    if callable(obj):
        return {"kind": "function", **(params_of(obj) or {"params": None, "varkw": True})}
    return {"kind": "value"}


def from_runtime(name: str) -> dict:
    module = importlib.import_module(name)
    return {n: describe(getattr(module, n)) for n in sorted(dir(module))
            if not n.startswith("_")}


def from_source(name: str) -> dict:
    """A package's public names and function signatures, read from its ``__init__.py``
    and the modules it imports them from, without importing it."""
    init = _source(name)
    out = {}
    for node in ast.parse(init.read_text()).body:
        if not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        source = _source(node.module)
        defs = {d.name: d for d in ast.parse(source.read_text()).body
                if isinstance(d, (ast.FunctionDef, ast.ClassDef))}
        for alias in node.names:
            public = alias.asname or alias.name
            if public.startswith("_"):
                continue
            d = defs.get(alias.name)
            if isinstance(d, ast.FunctionDef):
                a = d.args
                names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                out[public] = {"kind": "function", "params": names,
                               "varkw": a.kwarg is not None}
            else:
                out[public] = {"kind": "class" if isinstance(d, ast.ClassDef) else "value"}
    return dict(sorted(out.items()))


def _source(dotted: str) -> Path:
    """The source file of a module, found without importing its package (importing
    ``cupyx.scipy.signal._x`` would run the ``__init__`` that fails)."""
    top, *rest = dotted.split(".")
    path = Path(importlib.util.find_spec(top).origin).parent.joinpath(*rest)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def catalog() -> dict:
    warnings.simplefilter("ignore")  # CuPy warns about a missing CUDA driver/toolkit
    import cupy

    assert not getattr(cupy, "__standin__", False), "run this with the real CuPy"
    modules = {}
    for name in MODULES:
        try:
            modules[name] = from_runtime(name)
        except ImportError:  # needs CUDA libraries absent here: read the source
            modules[name] = from_source(name)
    methods = {n: describe(getattr(cupy.ndarray, n)) for n in sorted(dir(cupy.ndarray))
               if not n.startswith("_")}
    return {"cupy": cupy.__version__, "modules": modules, "ndarray": methods}


if __name__ == "__main__":
    json.dump(catalog(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
