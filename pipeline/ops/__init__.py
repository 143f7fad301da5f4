"""The op catalogue. Importing this package registers every op (and imports dask)."""

from pipeline.ops import array_io, arrays, convolve, sinks, sources  # noqa: F401  (register)
from pipeline.ops.registry import REGISTRY, OpInfo, get, op

__all__ = ["REGISTRY", "OpInfo", "get", "op"]
