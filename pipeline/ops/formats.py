"""File formats: readers and writers registered by extension.

``read`` and ``write`` dispatch here, so array formats (:mod:`pipeline.ops.array_io`) and
table formats (:mod:`pipeline.ops.frame_io`) each live in their own module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipeline.errors import OpError

@dataclass(frozen=True)
class Pending:
    """A sink's work: ``collection`` is computed on the cluster (as an ordinary Dask
    collection, so Dask's optimizer fuses it and keeps the stage spans), then
    ``finish(result)`` runs on the client, for small results written from there."""

    collection: Any
    finish: Callable[[Any], None] | None = None


READERS: dict[str, Callable] = {}
# format -> "array" or "frame": what a reader of it makes (see kind_of)
READ_KINDS: dict[str, str] = {}
# (format, kind) -> writer, where kind is "array" or "frame" (see kind_of)
WRITERS: dict[tuple[str, str], Callable] = {}
# Extensions that name the same format.
ALIASES = {"pq": "parquet", "zarr/": "zarr"}


def reader(fmt: str, kind: str):
    def register(fn):
        READERS[fmt] = fn
        READ_KINDS[fmt] = kind
        return fn
    return register


def writer(fmt: str, kind: str):
    def register(fn):
        WRITERS[(fmt, kind)] = fn
        return fn
    return register


def kind_of(value) -> str:
    """"array" for a Dask array, "frame" for a Dask dataframe or series."""
    import dask.array as da

    return "array" if isinstance(value, da.Array) else "frame"


def format_of(path: str, given: str | None, known) -> str:
    """The format named by ``given`` or, when null, by the path's extension.

    Raises
    ------
    OpError
        Unknown or missing format, listing the known ones.
    """
    fmt = given or Path(path.rstrip("/*")).suffix.lstrip(".").lower()
    fmt = ALIASES.get(fmt, fmt)
    if fmt not in known:
        known = ", ".join(sorted(known))
        if given:
            raise OpError(f"unknown format '{given}'", where="format", hint=f"one of: {known}")
        raise OpError(f"cannot tell the format of '{path}' from its extension", where="path",
                      hint=f"use one of: {known}, or set 'format'")
    return fmt
