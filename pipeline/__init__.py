"""Dask-on-GPU data processing pipelines described by a YAML workflow file.

The Python API (see :mod:`pipeline.api`)::

    import pipeline
    result = pipeline.run(pipeline.load("workflows/spectrum.yaml"))

Importing this package must stay cheap and must never import cupy, cudf, dask_cuda or
rmm: GPU libraries imported early create CUDA contexts on the wrong device. Dask itself
is imported on the first run or build, not here.
"""

__version__ = "0.1.0"

from pipeline.api import build, load, run  # noqa: E402
from pipeline.errors import InputError, PipelineError, RunFailed  # noqa: E402
from pipeline.result import Result  # noqa: E402
from pipeline.spec import Workflow  # noqa: E402

__all__ = ["build", "load", "run", "Result", "Workflow", "InputError", "PipelineError",
           "RunFailed", "__version__"]
