"""The op catalogue. Importing this package registers every op (and imports dask)."""

from pipeline.ops import (  # noqa: F401  (register)
    array_io, arrays, convolve, frame_io, frames, layout, plots, signal, sinks, sources,
    stencil)
from pipeline.ops.registry import REGISTRY, OpInfo, get, op

__all__ = ["REGISTRY", "OpInfo", "get", "op"]
