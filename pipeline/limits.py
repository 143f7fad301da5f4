"""Limits that turn resource bombs into one-line errors before anything computes.

A shape of 10^12 x 10^12, a ``random_table`` of 10^12 partitions or ``chunks: [1, 1]``
on a large array are valid YAML, but Dask would spend hours and gigabytes building their
task graphs (a seed or a key per chunk) before the first task runs. Sources count the
chunks a spec would make from the numbers alone, before Dask builds anything; every
stage's result is counted again after it is built. A chunk larger than a worker's memory
limit cannot be computed at all, so it is refused once the workers' limit is known,
before compute.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline import settings
from pipeline.errors import InputError, OpError

def chunk_bytes(spec: str, where: str = "chunks") -> int:
    """A chunk size given in bytes ("128 MiB"), which must be at least one byte.

    Raises
    ------
    OpError
        Not a byte size, or under one byte (a "0 B" chunk is a one-element chunk).
    """
    from dask.utils import parse_bytes

    try:
        n = parse_bytes(spec)
    except (ValueError, OverflowError):
        raise OpError(f"bad chunks {spec!r}", where=where,
                      hint="'auto', a size per axis, or a byte size like '64 MiB'") from None
    if n < 1:
        raise OpError(f"bad chunks {spec!r}: a chunk must hold at least one byte",
                      where=where, hint="e.g. '64 MiB', or 'auto'")
    return n


def count_chunks(shape, chunks: Any, itemsize: int) -> float:
    """How many chunks ``chunks`` cuts an array of ``shape`` into, from the numbers alone
    (Dask's own normalisation builds a tuple per axis, itself huge for a huge shape).

    Byte sizes and ``auto`` count as ``nbytes / chunk bytes``; an axis left to ``auto``
    inside a list counts as one chunk (a lower bound).

    Raises
    ------
    OpError
        A byte size under one byte.
    """
    import dask

    shape = [int(n) for n in shape]
    if chunks is None:
        return 1.0
    if isinstance(chunks, str):
        size = dask.config.get("array.chunk-size") if chunks == "auto" else chunks
        nbytes = math.prod(shape) * itemsize
        return float(math.ceil(nbytes / chunk_bytes(size))) if nbytes else 0.0
    per_axis = chunks if isinstance(chunks, (list, tuple)) else [chunks] * len(shape)
    count = 1.0
    for n, c in zip(shape, per_axis):
        if isinstance(c, (list, tuple)):
            count *= len(c)
        elif isinstance(c, int) and not isinstance(c, bool) and c > 0:
            count *= math.ceil(n / c)
    return count


def check_count(count: float, what: str, where: str = "chunks", unit: str = "chunks") -> None:
    """Refuse more than ``pipeline.max-chunks`` chunks (or partitions: ``unit``).

    Raises
    ------
    OpError
        ``what`` (e.g. "shape [10, 10] in chunks [1, 1]") names what makes them.
    """
    limit = settings.count("max-chunks")
    if count > limit:
        raise OpError(f"{what} makes {count:,.0f} {unit}, more than {limit:,}",
                      where=where, hint=f"use larger {unit}, or raise pipeline.max-chunks "
                                        "in Dask's config")


def check_array(shape, chunks, dtype, where: str = "chunks") -> None:
    """:func:`count_chunks` and :func:`check_count` for an array about to be made."""
    import numpy as np

    count = count_chunks(shape, chunks, np.dtype(dtype).itemsize)
    check_count(count, f"shape {list(shape)} in chunks {chunks!r}", where)


def largest_chunk(x) -> int | None:
    """Bytes of the largest chunk of a Dask array (None when its chunks are unknown)."""
    sizes = [max(c, default=0) for c in x.chunks]
    if any(s != s for s in sizes):  # NaN: sizes known only once computed
        return None
    return math.prod(int(s) for s in sizes) * x.dtype.itemsize


def check_fits(stage_values: dict[str, Any], memory_limit: int | None) -> None:
    """Refuse a stage whose chunks cannot fit in a worker's memory.

    ``stage_values``: the computed stages' results by id; ``memory_limit``: the smallest
    worker's limit in bytes (None: no limit).

    Raises
    ------
    InputError
        Naming the stage, its chunk size and the limit.
    """
    from dask.utils import format_bytes

    if not memory_limit:
        return
    for sid, value in stage_values.items():
        parts = value.values() if isinstance(value, dict) else [value]
        for x in parts:
            size = largest_chunk(x) if hasattr(x, "chunks") and hasattr(x, "dtype") else None
            if size is not None and size > memory_limit:
                raise InputError(f"a chunk of {format_bytes(size)} is larger than a worker's "
                                 f"memory limit ({format_bytes(memory_limit)})",
                                 where=f"stages.{sid}",
                                 hint="use smaller chunks: this stage's or its input's "
                                      "'chunks', or a rechunk; or give workers more memory: "
                                      "cluster.memory_limit")
