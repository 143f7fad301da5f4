"""Sink ops: the only places where results leave the device for the host."""

from __future__ import annotations

from typing import Any

from pipeline.ops.context import Context
from pipeline.ops.formats import WRITERS, format_of, kind_of
from pipeline.ops.registry import op


@op("write", family="sink")
def write(ctx: Context, x, *, path: str, format: str | None = None,
          storage_options: dict[str, Any] | None = None):
    """Write the input; the format comes from the extension.

    Arrays: ``.npy`` (written block by block in place), ``.zarr``, ``.json`` (small
    results: a scalar as ``{"value": x}``, an array as nested lists). Tables:
    ``.parquet`` (a folder of parts, one per partition, written by the workers), ``.csv``
    (one file with a header), ``.json`` (small results, at most 1,000,000 rows: a list of
    records ``{column: value}``, missing values as null). The file appears only when the
    whole run succeeded. ``path`` may be an fsspec URL (``s3://``, ``gs://``,
    ``memory://``...; ``storage_options`` for its filesystem): the output is staged
    beside it and moved into place at the end (a copy on object stores); a remote .npy
    or .csv is joined on the client from parts the workers wrote.

    ```yaml
    - id: save
      op: write
      input: mean_power
      path: mean_power.npy     # relative to output_dir
    - id: upload
      op: write
      input: mean_power
      path: s3://bucket/results/mean_power.zarr
      storage_options: {endpoint_url: "http://127.0.0.1:9000"}
    ```
    """
    kind = kind_of(x)
    known = {fmt for fmt, k in WRITERS if k == kind}
    fmt = format_of(path, format, known)
    return WRITERS[(fmt, kind)](ctx, x, ctx.output(path, storage_options, remote=True))
