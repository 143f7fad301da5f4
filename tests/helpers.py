"""Calling ops directly in tests, through the registry's parameter binding."""

from __future__ import annotations

import numpy as np

from pipeline import ops


def call(ctx, op_name: str, *inputs, **params):
    """Bind ``params`` like a workflow stage would, then call the op (lazy result)."""
    info = ops.get(op_name)
    return info.fn(ctx, *inputs, **info.bind(params))


def host(x) -> np.ndarray:
    """Compute a Dask array (any backend) and bring it to the host as NumPy."""
    value = x.compute(scheduler="sync") if hasattr(x, "compute") else x
    get = getattr(value, "get", None)
    return np.asarray(get() if callable(get) else value)
