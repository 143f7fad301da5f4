"""Array file formats: .npy (memory-mapped, chunked reads and writes), .zarr, .json."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from pipeline import limits
from pipeline.errors import OpError
from pipeline.ops import remote_npy
from pipeline.ops.formats import Pending, reader, writer
from pipeline.ops.sources import check_chunks
from pipeline.storage import Remote, failure

# A .json sink holds small results only; larger arrays belong in .npy / .zarr.
JSON_MAX_ELEMENTS = 1_000_000


class NpyFile:
    """Array-like view of a .npy file that reads each requested block on its own.

    Only the path travels to the workers (a pickled ``np.memmap`` would carry its data).
    With ``mapped``, a block is a view of the memory-mapped file, read when it is copied:
    a copying backend's ``to_device`` then reads it straight into its pinned buffer
    instead of through a pageable copy first. Without, it is read into memory here.
    """

    def __init__(self, path: Path, mapped: bool = False):
        self.path, self.mapped = str(path), mapped
        header = np.load(self.path, mmap_mode="r")
        self.shape, self.dtype, self.ndim = header.shape, header.dtype, header.ndim

    def __getitem__(self, index):
        block = np.load(self.path, mmap_mode="r")[index]
        return block if self.mapped else np.array(block)


def _to_device(ctx, x: da.Array) -> da.Array:
    """Copy each host chunk to the device once (a no-op task-free pass on the CPU)."""
    if not ctx.backend.copies:
        return x
    return x.map_blocks(ctx.backend.to_device, dtype=x.dtype,
                        meta=ctx.backend.meta(x.ndim, x.dtype))


def _to_host(ctx, x: da.Array) -> da.Array:
    if not ctx.backend.copies:
        return x
    return x.map_blocks(ctx.backend.to_host, dtype=x.dtype,
                        meta=np.empty((0,) * x.ndim, dtype=x.dtype))


def _no_table_options(columns, blocksize):
    if columns is not None:
        raise OpError("'columns' applies to table formats (parquet, csv)", where="columns")
    if blocksize is not None:
        raise OpError("'blocksize' applies to csv", where="blocksize",
                      hint="arrays take 'chunks'")


def _chunked(ctx, x: da.Array, chunks) -> da.Array:
    if chunks is not None:
        check_chunks(chunks, x.ndim)  # a 0 size is a ZeroDivisionError inside dask
        limits.check_array(x.shape, chunks, x.dtype)
    try:
        return x if chunks is None else x.rechunk(chunks)
    except (ValueError, TypeError) as e:
        raise OpError(f"bad chunks {chunks!r}: {e}", where="chunks") from None


@reader("npy", "array")
def read_npy(ctx, paths: list[Path] | list[Remote], *, chunks, columns, blocksize
             ) -> da.Array:
    _no_table_options(columns, blocksize)
    parts = []
    for p in paths:
        if isinstance(p, Remote):
            f = remote_npy.RemoteNpy(p)
            auto = f.natural_chunks()  # blocks of whole rows: one byte range each
        else:
            try:
                f = NpyFile(p, mapped=ctx.backend.copies)
            except (ValueError, OSError) as e:
                raise OpError(f"cannot read '{p.name}' as .npy: {e}", where="path") from None
            auto = "auto"
        if chunks is not None:
            check_chunks(chunks, f.ndim)  # a 0 size is a ZeroDivisionError inside dask
        limits.check_array(f.shape, "auto" if chunks is None else chunks, f.dtype)
        try:
            parts.append(da.from_array(f, chunks=auto if chunks is None else chunks,
                                       asarray=False, fancy=False, lock=False,
                                       meta=np.empty((0,) * f.ndim, dtype=f.dtype)))
        except (ValueError, TypeError) as e:
            raise OpError(f"bad chunks {chunks!r}: {e}", where="chunks") from None
    if len(parts) > 1:  # a glob: files are stacked along the first axis
        first = parts[0]
        if first.ndim == 0:  # da.concatenate raises a bare ValueError for these
            raise OpError(f"'{paths[0].name}' holds a single value: 0-d files cannot be "
                          "concatenated", where="path", hint="read one file, not a glob")
        for p, x in zip(paths, parts):
            if x.shape[1:] != first.shape[1:] or x.dtype != first.dtype:
                raise OpError(f"'{p.name}' has shape {x.shape} {x.dtype}, but "
                              f"'{paths[0].name}' has {first.shape} {first.dtype}",
                              where="path", hint="globbed files are concatenated on axis 0")
    x = parts[0] if len(parts) == 1 else da.concatenate(parts, axis=0)
    return _to_device(ctx, x)


@reader("zarr", "array")
def read_zarr(ctx, paths: list[Path], *, chunks, columns, blocksize) -> da.Array:
    _no_table_options(columns, blocksize)
    if len(paths) != 1:
        raise OpError("a glob of zarr stores is not supported", where="path")
    source = paths[0]
    try:
        x = da.from_zarr(str(source), storage_options=_options(source))
    except (FileNotFoundError, PermissionError, ConnectionError) as e:
        raise failure(source, e) if isinstance(source, Remote) else \
            OpError(f"cannot open '{source.name}' as a zarr array: {e}", where="path") \
            from None
    except Exception as e:  # zarr raises several types for "not an array store"
        raise OpError(f"cannot open '{source.name}' as a zarr array: {e}",
                      where="path") from None
    return _to_device(ctx, _chunked(ctx, x, chunks))


def _known_shape(x: da.Array, fmt: str) -> None:
    if any(math.isnan(s) for s in x.shape):
        raise OpError(f"cannot write an array of unknown shape {x.shape} as .{fmt}",
                      where="path", hint="write it as .zarr, or rechunk it first")


def _options(path) -> dict | None:
    """The storage options of a remote path (None for a local one: zarr refuses them)."""
    return dict(path.options) if isinstance(path, Remote) else None


@writer("npy", "array")
def write_npy(ctx, x: da.Array, path: Path | Remote) -> Pending:
    _known_shape(x, "npy")
    if isinstance(path, Remote):
        parts = path.with_name(path.name + ".parts")
        marks = remote_npy.write_parts(_to_host(ctx, x), parts)
        return Pending(marks.all(), finish=lambda _: remote_npy.join(
            parts, path, x.shape, x.dtype, marks.numblocks[0]))
    # The full-size file is created first (at compute time, so `validate` writes nothing),
    # then each block is written in place by the worker that holds it: nothing gathers
    # the whole array on one process.
    create = dask.delayed(_create_npy)(str(path), x.shape, x.dtype.str)
    marks = _to_host(ctx, x).map_blocks(
        _write_block, path=str(path), created=create, dtype=bool,
        chunks=tuple((1,) * len(c) for c in x.chunks))
    return Pending(marks.all())


def _create_npy(path: str, shape, dtype: str) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype),
                                    shape=tuple(shape))
    size = out.offset + out.nbytes
    del out
    # The file is sparse: on a full disk, writing a block through the memory map would
    # kill the worker (SIGBUS). Reserving the blocks now turns that into an OSError
    # (no space left on device) here, which the run reports as such.
    if size and hasattr(os, "posix_fallocate"):
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)


def _write_block(block, path: str, created, block_info=None):
    region = tuple(slice(a, b) for a, b in block_info[0]["array-location"])
    out = np.load(path, mmap_mode="r+")
    out[region] = block
    out.flush()
    return np.ones((1,) * block.ndim, dtype=bool)


@writer("zarr", "array")
def write_zarr(ctx, x: da.Array, path: Path | Remote):
    _known_shape(x, "zarr")
    x = _to_host(ctx, x)
    if not _regular(x.chunks):
        x = x.rechunk("auto")
    # As for .npy, the store is created at compute time: da.to_zarr(compute=False) creates
    # it while the graph is built, so `validate` left a store (and its folders) behind.
    # Each block then fills its own zarr chunks, in place, on the worker that holds it.
    zchunks = tuple(max(c[0], 1) for c in x.chunks)  # zarr chunks are >= 1 even if empty
    options = _options(path)
    create = dask.delayed(_create_zarr)(str(path), x.shape, x.dtype.str, zchunks, options)
    marks = x.map_blocks(_write_zarr_block, path=str(path), options=options, created=create,
                         dtype=bool, chunks=tuple((1,) * len(c) for c in x.chunks))
    return Pending(marks.all())


def _create_zarr(path: str, shape, dtype: str, chunks, options: dict | None) -> None:
    import zarr

    zarr.open_array(path, mode="w", shape=tuple(shape), chunks=tuple(chunks),
                    dtype=np.dtype(dtype), storage_options=options)


def _write_zarr_block(block, path: str, options: dict | None, created, block_info=None):
    import zarr

    region = tuple(slice(a, b) for a, b in block_info[0]["array-location"])
    zarr.open_array(path, mode="r+", storage_options=options)[region] = block
    return np.ones((1,) * block.ndim, dtype=bool)


def _regular(chunks) -> bool:
    # zarr needs equal chunks along each axis, except a smaller last one
    return all(len(set(c[:-1])) <= 1 and (len(c) < 2 or c[-1] <= c[0]) for c in chunks)


@writer("json", "array")
def write_json(ctx, x: da.Array, path: Path):
    if not any(math.isnan(s) for s in x.shape) and x.size > JSON_MAX_ELEMENTS:
        raise OpError(f"{x.size:,} elements is too large for .json "
                      f"(at most {JSON_MAX_ELEMENTS:,})", where="path",
                      hint="write .npy or .zarr instead")
    return Pending(_to_host(ctx, x), finish=lambda value: _dump_json(value, path))


def _dump_json(value, path: Path | Remote) -> None:
    value = np.asarray(value)
    if value.ndim == 0:
        doc = {"value": _plain(value.item())}
    else:
        doc = _plain(value.tolist())
    with (path.open("w") if isinstance(path, Remote) else open(path, "w")) as f:
        json.dump(doc, f, allow_nan=False)


def _plain(v):
    """JSON-safe: NaN / inf -> null, complex -> [real, imag]."""
    if isinstance(v, list):
        return [_plain(i) for i in v]
    if isinstance(v, complex):
        return [_plain(v.real), _plain(v.imag)]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
