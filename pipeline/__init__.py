"""Dask-on-GPU data processing pipelines described by a YAML workflow file.

Importing this package must stay cheap and must never import cupy, cudf, dask_cuda or
rmm: GPU libraries imported early create CUDA contexts on the wrong device.
"""

__version__ = "0.1.0"
