"""Calling ops directly in tests, through the registry's parameter binding."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import ops

# dask 2026.7.1's parquet reader (dask/dataframe/io/parquet/arrow.py) calls
# DataFrame.reset_index(inplace=True), which pandas 3.1 deprecates; our code cannot avoid
# it. Only that warning, only from that module, is let through.
dask_parquet_inplace = pytest.mark.filterwarnings(
    "ignore:The inplace keyword in DataFrame.reset_index is deprecated"
    ":DeprecationWarning:dask.dataframe.io.parquet.arrow")


def call(ctx, op_name: str, *inputs, **params):
    """Bind ``params`` like a workflow stage would, then call the op (lazy result)."""
    info = ops.get(op_name)
    return info.fn(ctx, *inputs, **info.bind(params))


def host(x) -> np.ndarray:
    """Compute a Dask array (any backend) and bring it to the host as NumPy."""
    value = x.compute(scheduler="sync") if hasattr(x, "compute") else x
    get = getattr(value, "get", None)
    return np.asarray(get() if callable(get) else value)
