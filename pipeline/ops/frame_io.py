"""Table file formats: parquet and csv (read and write), json (write, small results).

Reads run under the runner's ``dataframe.backend`` config, so on the GPU backend dask
reads each partition with cuDF straight into device memory (cuDF's parquet and csv
readers decode on the device); on the CPU backend the partitions are pandas frames.

On a backend that copies, each partition read is counted as host->device bytes (its
decoded size: :meth:`Backend.frame_read`), and sinks count what comes back: the part
files' sizes, or the .json table converted to pandas inside a task.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pipeline.backends import stage_span
from pipeline.errors import OpError
from pipeline.ops.formats import Pending, reader, writer
from pipeline.ops.frame_expr import require_columns
from pipeline.ops.frames import known_lengths, remember_lengths
from pipeline.storage import Remote, parquet_filesystem

# A .json sink holds small results only; larger tables belong in .parquet / .csv.
JSON_MAX_ROWS = 1_000_000


def _no_chunks(chunks) -> None:
    if chunks is not None:
        raise OpError("'chunks' applies to arrays (npy, zarr)", where="chunks",
                      hint="tables take 'blocksize' and 'columns'")


def _projected(df, columns: list[str] | None):
    """``df`` with ``columns`` in the order asked (readers may keep the file's order)."""
    if columns is None or list(df.columns) == list(columns):
        return df
    return df[list(columns)]


def _parquet_sources(paths: list[Path] | list[Remote]) -> str | list[str]:
    if len(paths) == 1:
        return str(paths[0])  # a file, or a folder of parts (hive partitions included)
    files = []
    for p in paths:  # a glob: folders among the matches stand for their parts
        local_dir = isinstance(p, Path) and p.is_dir()
        files.extend(sorted(str(f) for f in p.rglob("*.parquet")) if local_dir else [str(p)])
    return files


def _storage(paths, fmt: str = "csv") -> dict:
    """``storage_options`` (or a filesystem) for dask's readers when the paths are URLs."""
    first = paths[0]
    if not isinstance(first, Remote):
        return {}
    fs = parquet_filesystem(first) if fmt == "parquet" else None
    return {"filesystem": fs} if fs is not None else {"storage_options": dict(first.options)}


@reader("parquet", "frame")
def read_parquet(ctx, paths: list[Path], *, chunks, columns, blocksize):
    """Only ``columns`` are read from the files; ``blocksize`` sizes the partitions."""
    import dask.dataframe as dd  # here: array-only runs need not import pandas (~0.35 s)

    _no_chunks(chunks)
    source = _parquet_sources(paths)
    options = {**_storage(paths, "parquet"),
               **({} if blocksize is None else {"blocksize": blocksize})}
    try:
        df = dd.read_parquet(source, columns=columns, **options)
    except (ValueError, KeyError, OSError) as e:
        if columns is not None:  # most often a column that is not there: say which
            try:
                whole = dd.read_parquet(source, **options)
            except (ValueError, KeyError, OSError):
                whole = None
            if whole is not None:
                require_columns(whole, columns, "columns")
        raise OpError(f"cannot read {_names(paths)} as parquet: {e}", where="path") from None
    return _counted_read(ctx, _projected(df, columns))


@reader("csv", "frame")
def read_csv(ctx, paths: list[Path], *, chunks, columns, blocksize):
    """Files are split into partitions of ``blocksize`` bytes; only ``columns`` are kept."""
    import dask.dataframe as dd  # here: array-only runs need not import pandas (~0.35 s)

    _no_chunks(chunks)
    source = [str(p) for p in paths]
    options = {**_storage(paths), **({} if blocksize is None else {"blocksize": blocksize})}
    try:
        df = dd.read_csv(source, usecols=columns, **options)
    except (ValueError, OSError) as e:
        if columns is not None:
            try:
                whole = dd.read_csv(source, **options)
            except (ValueError, OSError):
                whole = None
            if whole is not None:
                require_columns(whole, columns, "columns")
        raise OpError(f"cannot read {_names(paths)} as csv: {e}", where="path") from None
    return _counted_read(ctx, _projected(df, columns))


def _counted_read(ctx, df):
    """``df`` with each partition counted as host->device bytes, in a task right after
    its read, on a backend that copies."""
    if not ctx.backend.copies:
        return df
    lengths = known_lengths(df)  # parquet row counts, which a map_partitions hides
    # required_columns=[]: counting needs no column, so dask still reads only the
    # columns later stages use
    counted = df.map_partitions(ctx.backend.frame_read, stage_span(), meta=df._meta,
                                required_columns=[], enforce_metadata=False)
    remember_lengths(counted, lengths)
    return counted


def _names(paths: list[Path]) -> str:
    shown = ", ".join(f"'{p if isinstance(p, Remote) else p.name}'" for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _frame(x):
    """A dataframe (a series becomes a one-column frame)."""
    return x.to_frame() if getattr(x, "ndim", 2) == 1 else x


@writer("parquet", "frame")
def write_parquet(ctx, df, path: Path) -> Pending:
    # A folder of parts, part.<i>.parquet, each written by the worker that holds the
    # partition (cuDF encodes on the device). Not dask's to_parquet: it creates the folder
    # while the graph is built, and `validate` builds every stage but must write nothing.
    # The index is not written: tables here are their columns.
    return Pending(_write_parts(ctx, df, path, "parquet"))


def _write_parts(ctx, df, folder: Path | Remote, fmt: str):
    """A lazy series of row counts, one per partition, each written as ``part.<i>.<fmt>``
    into ``folder`` (local, or at a URL) by the worker that holds the partition."""
    return _frame(df).map_partitions(_write_part, folder, fmt, ctx.backend,
                                     stage_span(), meta=("rows", "int64"),
                                     enforce_metadata=False)


def _write_part(part, folder: Path | Remote, fmt: str, backend, span: str | None,
                partition_info=None):
    import os
    from functools import partial

    number = partition_info["number"] if partition_info else 0
    name = f"part.{number}.{fmt}"
    if isinstance(folder, Remote):
        fs, root = folder.fs()
        target, size = f"{root}/{name}", fs.size
        opened = partial(fs.open, target, "wb")
    else:
        os.makedirs(folder, exist_ok=True)
        target, size = os.path.join(folder, name), os.path.getsize
        opened = None
    if fmt == "parquet":
        write = partial(_to_file, partial(part.to_parquet, index=False), opened)
    else:  # csv: the header once, in the first part, so the parts concatenate
        write = partial(_to_file, partial(part.to_csv, index=False, header=number == 0),
                        opened)
    backend.frame_write(write, target, span, size)
    return len(part)


def _to_file(write, opened, target: str) -> None:
    """``write(target)`` for a local file, or into the remote file ``opened()``."""
    if opened is None:
        write(target)
        return
    with opened() as f:
        write(f)


@writer("csv", "frame")
def write_csv(ctx, df, path: Path) -> Pending:
    # One file: every worker writes its partitions as parts, and the client appends them
    # in order. (dask's to_csv(single_file=True) is a Delayed, which Dask refuses to
    # compute in one call with the dataframe collections of the other sinks.)
    parts = path.with_name(path.name + ".parts")
    return Pending(_write_parts(ctx, df, parts, "csv"),
                   finish=lambda _: _concatenate(parts, path))


def _concatenate(parts: Path | Remote, path: Path | Remote) -> None:
    """Append the csv parts, in order, into one file; then remove them. Remote parts
    stream through this process one at a time."""
    import shutil

    if isinstance(parts, Remote):
        fs, folder = parts.fs()
        files = sorted(fs.ls(folder, detail=False), key=lambda p: int(p.split(".")[-2]))
        with path.open("wb") as out:
            for f in files:
                out.write(fs.cat_file(f))
        fs.rm(folder, recursive=True)
        return
    files = sorted(parts.glob("part.*.csv"), key=lambda p: int(p.name.split(".")[1]))
    with open(path, "wb") as out:
        for f in files:
            with open(f, "rb") as src:
                shutil.copyfileobj(src, out)
    shutil.rmtree(parts)


@writer("json", "frame")
def write_json(ctx, df, path: Path) -> Pending:
    # Records [{column: value}, ...] for small results, gathered to the client. Taking at
    # most one row more than allowed bounds what travels, whatever the table's size; it
    # becomes pandas in a task, so the device->host copy is counted.
    df = _frame(df)
    lengths = known_lengths(df)
    if lengths is not None and sum(lengths) > JSON_MAX_ROWS:
        raise _too_many(sum(lengths))
    head = df.head(JSON_MAX_ROWS + 1, npartitions=-1, compute=False)
    if ctx.backend.copies:
        # the meta too becomes pandas (converting an empty frame here counts nothing:
        # the client records no metrics)
        head = head.map_partitions(ctx.backend.frame_to_host, stage_span(),
                                   meta=ctx.backend.frame_to_host(head._meta, None),
                                   enforce_metadata=False)
    return Pending(head, finish=lambda table: _dump_records(table, path))


def _too_many(rows: int | None) -> OpError:
    size = f"{rows:,} rows is" if rows is not None else "more than that is"
    return OpError(f"{size} too large for .json (at most {JSON_MAX_ROWS:,} rows)",
                   where="path", hint="write .parquet or .csv instead")


def _dump_records(table, path: Path) -> None:
    if len(table) > JSON_MAX_ROWS:
        raise _too_many(None)
    columns = [str(c) for c in table.columns]
    records = [dict(zip(columns, (_plain(v) for v in row)))
               for row in table.itertuples(index=False, name=None)]
    with (path.open("w") if isinstance(path, Remote) else open(path, "w")) as f:
        json.dump(records, f, allow_nan=False)


def _plain(v):
    """JSON-safe: NaN / inf / missing -> null, NumPy scalars -> Python, times -> ISO text."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (bool, int, str)):
        return v
    if hasattr(v, "isoformat"):
        return None if v != v else v.isoformat()  # NaT != NaT
    try:
        missing = bool(v != v)
    except TypeError:  # pd.NA: a comparison gives NA, whose truth is ambiguous
        missing = True
    return None if missing else str(v)
