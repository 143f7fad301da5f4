"""Dask-on-GPU data processing pipelines described by a YAML workflow file.

The Python API (see :mod:`pipeline.api`)::

    import pipeline
    result = pipeline.run(pipeline.load("workflows/spectrum.yaml"))

Importing this package must stay cheap and must never import cupy, cudf, dask_cuda or
rmm: GPU libraries imported early create CUDA contexts on the wrong device. It imports
nothing at all, not even YAML (``doctor`` runs it in an interpreter without
site-packages): the API's names load on first use.
"""

import importlib

__version__ = "0.1.0"

# name -> the module that defines it, imported when the name is first used
_API = {"load": "pipeline.api", "run": "pipeline.api", "build": "pipeline.api",
        "Result": "pipeline.result", "Workflow": "pipeline.spec",
        "PipelineError": "pipeline.errors", "InputError": "pipeline.errors",
        "RunFailed": "pipeline.errors"}
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
