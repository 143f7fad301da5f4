"""Dataframe ops: row filters, new columns, groupby, join, sort, and the bridges to and
from arrays (the random table source is in :mod:`pipeline.ops.random_table`).

Bodies use ``dask.dataframe`` and, inside partitions, only methods that pandas and cuDF
share (plus NumPy ufuncs, which both dispatch through ``__array_ufunc__``), so one body
serves pandas and cuDF partitions. Every check of column names runs while the stage is
built, from the frame's metadata, before anything is computed.
"""

from __future__ import annotations

import math
from typing import Literal

import dask.array as da
import numpy as np

from pipeline.errors import OpError
from pipeline.ops.context import Context
from pipeline.ops.frame_expr import check_expr, evaluate, is_series, require_columns
from pipeline.ops.registry import op
from pipeline.spec import did_you_mean

AGGREGATES = ("sum", "mean", "count", "min", "max", "std", "var")
Names = str | list[str]


def _as_list(names: Names) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def _missing_as_null(part):
    """NaN as missing on cuDF too. pandas has only NaN, and its reductions skip it; cuDF
    keeps NaN (a value) apart from null (missing) and skips only nulls."""
    to_nulls = getattr(part, "nans_to_nulls", None)  # cuDF frames and series only
    return to_nulls() if callable(to_nulls) else part


# Partition lengths of sources dask cannot count without computing them (a random table,
# an array made a frame), by the name of the source's expression.
_LENGTHS: dict[str, tuple[int, ...]] = {}


def _lengths_expr(df):
    """What dask reduces "the lengths of ``df``'s partitions" to before computing: a
    literal (from_pandas, parquet statistics), or the lengths of a source, after passing
    through every length-preserving op (projections, assign, ...). None if dask's
    internals moved."""
    try:
        from dask.dataframe.dask_expr._expr import Lengths
    except ImportError:
        return None
    return Lengths(df.expr).simplify()


def known_lengths(df) -> tuple[int, ...] | None:
    """Partition lengths of ``df`` when known without computing, else None."""
    found = _lengths_expr(df)
    if found is None:
        return None
    if type(found).__name__ == "Literal":
        return tuple(int(n) for n in found.value)
    source = getattr(found, "frame", None) if type(found).__name__ == "Lengths" else None
    return _LENGTHS.get(source._name) if source is not None else None


def remember_lengths(df, lengths: tuple[int, ...] | None) -> None:
    found = _lengths_expr(df)
    if lengths is not None and found is not None and type(found).__name__ == "Lengths":
        _LENGTHS[found.frame._name] = tuple(lengths)


@op("filter", family="frame")
def filter_rows(ctx: Context, df, *, expr: str):
    """Keep the rows where a boolean expression over the columns is true.

    Rows where it is false or missing are dropped; a comparison with a missing value is
    false, as in pandas (``isnan(x)`` tests for one).

    ```yaml
    - id: long_flights
      op: filter
      input: flights
      expr: "(distance > 500) & ~isnan(arr_delay)"   # strings too: carrier == "UA"
    ```
    """
    names, sample = check_expr(df, expr)
    if not is_series(sample):
        raise OpError(f"{expr!r} uses no column: it must give true/false for each row",
                      where="expr")
    if sample.dtype.kind != "b" and str(sample.dtype) != "boolean":
        raise OpError(f"{expr!r} gives {sample.dtype} values, not true/false", where="expr",
                      hint="compare, e.g. x > 0, and combine with & | ~")
    return df.map_partitions(_filter_part, expr, names, meta=df._meta)


def _filter_part(part, text: str, names: tuple[str, ...]):
    mask = evaluate(part, text, names)
    if mask.dtype.kind != "b":  # pandas' nullable boolean: missing -> dropped
        mask = mask.fillna(False).astype(bool)
    return part[mask]


@op("assign", family="frame")
def assign(ctx: Context, df, *, columns: dict[str, str]):
    """Add (or replace) columns, each an expression over the columns.

    Expressions are evaluated in order, so a later one may use an earlier new column.

    ```yaml
    - id: enriched
      op: assign
      input: flights
      columns:
        speed: "distance / (air_time / 60)"
        late: "arr_delay > 15"
    ```
    """
    if not columns:
        raise OpError("no columns to assign", where="columns",
                      hint="a mapping new_name -> expression")
    for name, text in columns.items():
        names, sample = check_expr(df, text, where=f"columns.{name}")
        if is_series(sample):
            # assign() of a Series, not one map_partitions doing all: dask then knows the
            # row count is unchanged (to_array can tell the shape without computing)
            meta = sample.iloc[:0].rename(name)
            value = df.map_partitions(_column, text, names, meta=meta)
        else:
            value = sample  # a constant
        df = df.assign(**{name: value})
    return df


def _column(part, text: str, names: tuple[str, ...]):
    return _missing_as_null(evaluate(part, text, names))


@op("groupby", family="frame")
def groupby(ctx: Context, df, *, by: Names, agg: dict[str, list[str] | str],
            split_out: int | None = None):
    """Group rows by key columns and aggregate others.

    The result has the keys as ordinary columns, then one column ``<column>_<agg>`` per
    aggregate. Missing values are skipped (a group's ``count`` counts the present ones);
    rows with a missing key are dropped, as in pandas.

    ```yaml
    - id: per_carrier
      op: groupby
      input: flights
      by: [carrier, origin]          # a column or a list
      agg: {arr_delay: [mean, std, count], distance: [sum]}
      split_out: 4                   # optional: result partitions (many groups)
    ```
    """
    keys = _as_list(by)
    if not keys:
        raise OpError("no key columns", where="by")
    require_columns(df, keys, "by")
    if not agg:
        raise OpError("no aggregates", where="agg", hint="e.g. {arr_delay: [mean, count]}")
    require_columns(df, agg, "agg")
    if split_out is not None and split_out < 1:
        raise OpError(f"split_out must be >= 1, got {split_out}", where="split_out")
    spec, names = {}, []
    for column, hows in agg.items():
        if column in keys:
            raise OpError(f"'{column}' is a key column; it cannot be aggregated too",
                          where=f"agg.{column}")
        spec[column] = _as_list(hows)
        for how in spec[column]:
            if how not in AGGREGATES:
                raise OpError(f"unknown aggregate '{how}'{did_you_mean(how, AGGREGATES)}",
                              where=f"agg.{column}", hint="one of: " + ", ".join(AGGREGATES))
            out = f"{column}_{how}"
            if out in keys or out in names:
                raise OpError(f"result column '{out}' would appear twice", where="agg")
            names.append(out)
    try:
        grouped = df.groupby(keys, dropna=True).agg(spec, split_out=split_out)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise OpError(f"cannot aggregate: {e}", where="agg") from None
    # Flattened per partition, not with named aggregation or a rename: dask 2026.7.1
    # fails to lower a merge of a renamed shuffle groupby (split_out > 1) with
    # KeyError "[keys] not in index".
    names = tuple(names)
    return grouped.map_partitions(_flat_columns, names, meta=_flat_columns(grouped._meta, names))


def _flat_columns(part, names: tuple[str, ...]):
    part = part.copy(deep=False)
    part.columns = list(names)
    return part.reset_index()


@op("join", family="frame", inputs="list", n_inputs=2)
def join(ctx: Context, left, right, *, on: Names,
         how: Literal["inner", "left", "right", "outer"] = "inner"):
    """Join two frames on key columns (as ``pandas.merge``).

    Other columns present in both get the suffixes ``_x`` (left) and ``_y`` (right).
    A small right side (one partition) is broadcast to the left's partitions; otherwise
    both are shuffled by key.

    ```yaml
    - id: with_carrier
      op: join
      inputs: [per_carrier, carriers]
      "on": carrier                  # quoted: YAML 1.1 reads a bare on as true
      how: left                      # inner left right outer
    ```
    """
    keys = _as_list(on)
    if not keys:
        raise OpError("no key columns", where="on")
    require_columns(left, keys, "on", side=" in the left input")
    require_columns(right, keys, "on", side=" in the right input")
    left, right = _common_key_dtypes(left, right, keys)
    try:
        return left.merge(right, on=keys, how=how)
    except (TypeError, ValueError) as e:  # e.g. int keys on one side, strings on the other
        raise OpError(f"cannot join: {e}", where="on") from None


def _common_key_dtypes(left, right, keys: list[str]):
    """Both sides' keys in one dtype: numbers of two dtypes (int64 counts against float64
    means) are cast to the type that holds both, which is how pandas compares them anyway,
    and which spares Dask's multi-line warning; keys of other kinds cannot match.

    Raises
    ------
    OpError
        A key that is numeric on one side only, or of two non-numeric dtypes.
    """
    casts = {}
    for key in keys:
        lt, rt = left[key].dtype, right[key].dtype
        if lt == rt:
            continue
        if lt.kind in "biuf" and rt.kind in "biuf":
            if isinstance(lt, np.dtype) and isinstance(rt, np.dtype):
                casts[key] = np.result_type(lt, rt)
            continue
        raise OpError(f"key '{key}' is {lt} on the left but {rt} on the right: no row "
                      "could match", where="on", hint="join on columns of one kind")
    if not casts:
        return left, right
    return left.astype(casts), right.astype(casts)


@op("sort", family="frame")
def sort_rows(ctx: Context, df, *, by: Names, ascending: bool | list[bool] = True):
    """Sort rows by one or more columns (missing values last), across all partitions.

    ```yaml
    - id: worst_first
      op: sort
      input: per_carrier
      by: arr_delay_mean
      ascending: false               # or one per column of a list
    ```
    """
    keys = _as_list(by)
    if not keys:
        raise OpError("no columns to sort by", where="by")
    require_columns(df, keys, "by")
    if isinstance(ascending, list) and len(ascending) != len(keys):
        raise OpError(f"{len(ascending)} values for {len(keys)} columns", where="ascending")
    by_arg = keys[0] if len(keys) == 1 else keys
    asc = ascending[0] if isinstance(ascending, list) and len(keys) == 1 else ascending
    return df.sort_values(by_arg, ascending=asc)


@op("to_array", family="frame")
def to_array(ctx: Context, df, *, columns: list[str] | None = None):
    """Columns (default: all) as a 2-D array, one row per row, one column per column.

    The number of rows is known without computing when dask can tell the partitions'
    lengths (a random table or a file with row counts, through length-preserving ops);
    after a filter or a groupby it is unknown (NaN) until computed.

    ```yaml
    - id: features
      op: to_array
      input: flights
      columns: [dep_delay, arr_delay, distance]
    ```
    """
    columns = [str(c) for c in df.columns] if columns is None else columns
    if not columns:
        raise OpError("no columns", where="columns")
    require_columns(df, columns, "columns")
    for c in columns:
        if df[c].dtype.kind not in "biufc":
            raise OpError(f"column '{c}' is {df[c].dtype}, not numeric", where="columns")
    sub = df[columns]
    lengths = known_lengths(sub)
    return sub.to_dask_array(lengths=list(lengths) if lengths is not None else None)


@op("to_frame", family="frame", takes="array")
def to_frame(ctx: Context, x, *, columns: list[str]):
    """A 2-D array as a frame, with the given column names (a 1-D array: one name).

    ```yaml
    - id: table
      op: to_frame
      input: features
      columns: [a, b, c]
    ```
    """
    import dask.dataframe as dd  # here: array-only runs need not import pandas (~0.35 s)

    if not isinstance(x, da.Array):
        raise OpError("to_frame takes an array", where="input")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise OpError(f"to_frame needs a 2-D array, got shape {x.shape}", where="input")
    if len(columns) != x.shape[1]:
        raise OpError(f"{len(columns)} names for {x.shape[1]} columns", where="columns")
    if len(set(columns)) != len(columns):
        raise OpError(f"repeated names in {columns}", where="columns")
    if len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    # CuPy chunks become cuDF partitions: dask picks the frame type from the array's meta
    out = dd.from_dask_array(x, columns=columns)
    if not any(math.isnan(n) for n in x.chunks[0]):
        remember_lengths(out, tuple(int(n) for n in x.chunks[0]))
    return out
