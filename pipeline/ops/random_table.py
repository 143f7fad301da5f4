"""``random_table``: a random table generated partition by partition on the workers.

Each partition draws from its own seed, derived from (seed, partition, column), so the
same seed and partition count give the same table whichever columns are later selected.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.backends import Backend
from pipeline import limits
from pipeline.errors import OpError
from pipeline.ops.context import Context
from pipeline.ops.frames import _missing_as_null, remember_lengths
from pipeline.ops.registry import op
from pipeline.spec import did_you_mean


# Rows per partition when random_table is given no partition count.
ROWS_PER_PARTITION = 1_000_000
COLUMN_KEYS = {"distribution", "loc", "scale", "low", "high", "keys", "null_fraction", "dtype"}


def _column_spec(name: str, spec) -> tuple:
    """A random_table column's spec -> ``(kind, a, b, null_fraction, dtype)``.

    Raises
    ------
    OpError
        Unknown keys, a missing or unknown distribution, bad bounds.
    """
    where = f"columns.{name}"
    if not isinstance(spec, dict):
        raise OpError(f"expected a mapping, got {spec!r}", where=where,
                      hint="e.g. {distribution: normal, loc: 0, scale: 1} or {keys: 100}")
    for key in spec:
        if key not in COLUMN_KEYS:
            raise OpError(f"unknown key '{key}'{did_you_mean(key, COLUMN_KEYS)}", where=where,
                          hint="accepted keys: " + ", ".join(sorted(COLUMN_KEYS)))
    number = (int, float)
    for key in ("loc", "scale", "low", "high", "null_fraction"):
        if key in spec and (not isinstance(spec[key], number) or isinstance(spec[key], bool)
                            or not math.isfinite(spec[key])):
            raise OpError(f"'{key}' must be a finite number, got {spec[key]!r}", where=where)
    nulls = float(spec.get("null_fraction", 0.0))
    if not 0.0 <= nulls <= 1.0:
        raise OpError(f"null_fraction must be in [0, 1], got {nulls}", where=where)
    if "keys" in spec:
        n = spec["keys"]
        extra = sorted(set(spec) - {"keys"})
        if extra:
            raise OpError(f"'{extra[0]}' does not apply to integer keys", where=where,
                          hint="keys: N gives int64 keys in [0, N)")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise OpError(f"keys must be an integer >= 1, got {n!r}", where=where)
        return ("keys", 0, n, 0.0, "int64")
    dist = spec.get("distribution")
    own = {"normal": ("loc", "scale"), "uniform": ("low", "high")}
    if dist not in own:
        raise OpError(f"unknown distribution {dist!r}", where=where,
                      hint="distribution: normal (loc, scale) or uniform (low, high); "
                           "or keys: N for integer keys")
    for key in ("loc", "scale", "low", "high"):
        if key in spec and key not in own[dist]:
            raise OpError(f"'{key}' does not apply to distribution {dist}", where=where,
                          hint=f"{dist} takes: " + ", ".join(own[dist]))
    dtype = spec.get("dtype", "float64")
    if dtype not in ("float32", "float64"):
        raise OpError(f"unsupported dtype {dtype!r}", where=where, hint="float32 or float64")
    if dist == "normal":
        return ("normal", float(spec.get("loc", 0.0)), float(spec.get("scale", 1.0)), nulls,
                dtype)
    low, high = float(spec.get("low", 0.0)), float(spec.get("high", 1.0))
    if not high > low:
        raise OpError(f"high ({high}) must be greater than low ({low})", where=where)
    if not math.isfinite(high - low):
        raise OpError(f"the range [{low}, {high}) is wider than the largest float",
                      where=where, hint="narrow it")
    return ("uniform", low, high, nulls, dtype)


class RandomTable:
    """Makes partition ``i`` of a random table on the worker (and, on the GPU, on the
    device: the values come from the backend's own generator, never from the host).

    Each column of each partition has its own seed, derived from (seed, partition,
    column), so a partition is the same whichever columns dask asks for (the ``columns``
    argument lets dask's optimizer skip unused ones) and whichever worker makes it.
    """

    def __init__(self, backend: Backend, seed: int, specs: tuple, starts: tuple[int, ...]):
        self.backend, self.seed, self.specs, self.starts = backend, seed, specs, starts

    def __dask_tokenize__(self):
        return ("random-table", self.backend.name, self.seed, self.specs, self.starts)

    def __call__(self, i: int, columns=None):
        xp, xdf = self.backend.xp, self.backend.xdf
        start, stop = self.starts[i], self.starts[i + 1]
        n = stop - start
        wanted = [name for name, _ in self.specs] if columns is None else list(columns)
        position = {name: j for j, (name, _) in enumerate(self.specs)}
        data = {}
        for name in wanted:
            j = position[name]
            kind, a, b, nulls, dtype = self.specs[j][1]
            state = np.random.SeedSequence([self.seed, i, j]).generate_state(1, np.uint64)
            rng = xp.random.default_rng(int(state[0]))
            if kind == "keys":
                values = rng.integers(0, b, n, dtype=np.int64)
            elif kind == "normal":
                values = (rng.standard_normal(n) * b + a).astype(dtype)
            else:
                values = (rng.random(n) * (b - a) + a).astype(dtype)
            if nulls:
                values[rng.random(n) < nulls] = np.nan
            data[name] = values
        return _missing_as_null(xdf.DataFrame(data, index=xdf.RangeIndex(start, stop)))

    def meta(self):
        xp, xdf = self.backend.xp, self.backend.xdf
        return xdf.DataFrame({name: xp.empty(0, dtype=spec[4]) for name, spec in self.specs},
                             index=xdf.RangeIndex(0, 0))


@op("random_table", family="source", inputs="none")
def random_table(ctx: Context, *, rows: int, columns: dict[str, dict],
                 partitions: int | None = None, seed: int | None = None):
    """A random table generated partition by partition on the workers (on the device).

    The same ``seed`` and ``partitions`` give the same table; the index numbers the
    rows 0..rows-1 (known divisions).

    ```yaml
    - id: flights
      op: random_table
      rows: 20_000_000
      partitions: 20               # default: one per million rows
      seed: 0
      columns:
        carrier: {keys: 20}        # int64 keys in [0, 20)
        arr_delay: {distribution: normal, loc: 5, scale: 30, null_fraction: 0.01}
        distance: {distribution: uniform, low: 100, high: 3000, dtype: float32}
    ```
    """
    import dask.dataframe as dd  # here: array-only runs need not import pandas (~0.35 s)

    if rows < 0:
        raise OpError(f"rows must be >= 0, got {rows}", where="rows")
    if not columns:
        raise OpError("no columns", where="columns",
                      hint="e.g. {x: {distribution: normal}, key: {keys: 10}}")
    if partitions is not None and partitions < 1:
        raise OpError(f"partitions must be >= 1, got {partitions}", where="partitions")
    specs = tuple((str(name), _column_spec(str(name), spec)) for name, spec in columns.items())
    nparts = partitions or math.ceil(rows / ROWS_PER_PARTITION)
    nparts = max(1, min(nparts, rows))  # no empty partitions (divisions must increase)
    limits.check_count(nparts, f"a table of {rows:,} rows", where="partitions",
                       unit="partitions")
    starts = tuple(rows * i // nparts for i in range(nparts + 1))
    if seed is None:  # drawn once here, so every partition (and retry) agrees
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    maker = RandomTable(ctx.backend, seed, specs, starts)
    divisions = (*starts[:-1], rows - 1) if rows else None
    df = dd.from_map(maker, range(nparts), meta=maker.meta(), divisions=divisions,
                     label="random-table", enforce_metadata=False)
    remember_lengths(df, tuple(b - a for a, b in zip(starts, starts[1:])))
    return df
