"""Dataframe ops (pipeline/ops/frames.py) against pandas on the same data.

Each op runs on frames split into 1, 3 and 7 partitions, with missing values, skewed keys
and partitions a filter leaves empty; results are compared with pandas after sorting and
resetting the index (dask keeps no global row order through shuffles). Where dask and
pandas legitimately differ in dtype, the comparison says why.
"""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline import expr as expr_lang
from pipeline.errors import OpError
from pipeline.ops import frame_expr, frames
from tests.helpers import call, host

NPARTS = (1, 3, 7)

pytestmark = pytest.mark.tables


@pytest.fixture(autouse=True)
def frame_backend(backend):
    """Dask's own backend switch, as the runner sets it (dd.from_pandas -> cuDF on GPU)."""
    with dask.config.set(backend.dask_config):
        yield backend


@pytest.fixture(params=NPARTS, ids=lambda n: f"{n}parts")
def nparts(request) -> int:
    return request.param


def to_dask(backend, pdf: pd.DataFrame, npartitions: int):
    """``pdf`` as a Dask frame whose partitions are of ``backend``'s kind."""
    data = pdf if backend.frame_module == "pandas" else backend.xdf.from_pandas(pdf)
    return dd.from_pandas(data, npartitions=npartitions)


def compute(backend, df) -> pd.DataFrame:
    """Compute on the calling thread, check the partitions' kind, return pandas.

    Text columns become pandas' default ``str`` dtype: dask stores text as
    ``string[pyarrow]`` (missing = NA) where pandas 3 defaults to ``str`` (missing = NaN);
    the values are the same.
    """
    value = df.compute(scheduler="sync")
    assert type(value).__module__.split(".")[0] == backend.frame_module, type(value)
    value = value.to_pandas() if backend.frame_module != "pandas" else value
    text = [c for c in value.columns if isinstance(value[c].dtype, pd.StringDtype)]
    return value.astype({c: "str" for c in text})


def canonical(pdf: pd.DataFrame, by=None) -> pd.DataFrame:
    """Rows in a fixed order (by ``by``, default every column), index reset."""
    by = list(pdf.columns) if by is None else by
    return pdf.sort_values(by, kind="stable").reset_index(drop=True)


def flights(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A small flights table: skewed carriers, missing delays, a string column."""
    rng = np.random.default_rng(seed)
    # skewed: carrier 0 has ~80% of the rows
    carrier = np.where(rng.random(n) < 0.8, 0, rng.integers(1, 6, n))
    delay = rng.normal(5, 20, n)
    delay[rng.random(n) < 0.15] = np.nan
    return pd.DataFrame({
        "carrier": carrier,
        "origin": rng.integers(0, 4, n),
        "name": np.array(["UA", "AA", "DL", "WN"])[rng.integers(0, 4, n)],
        "delay": delay,
        "distance": rng.uniform(100, 3000, n),
    })


# -- filter ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, mask", [
    ("delay > 10", lambda d: d.delay > 10),
    ("(delay > 0) & (distance < 1500) | (carrier == 3)",
     lambda d: (d.delay > 0) & (d.distance < 1500) | (d.carrier == 3)),
    ('name == "UA"', lambda d: d.name == "UA"),
    ("isnan(delay) | ~(abs(delay) < 5)", lambda d: d.delay.isna() | ~(d.delay.abs() < 5)),
    ("1 < origin <= 2", lambda d: (d.origin > 1) & (d.origin <= 2)),
])
def test_filter_matches_pandas(make_ctx, backend, nparts, text, mask):
    pdf = flights()
    got = compute(backend, call(make_ctx(), "filter", to_dask(backend, pdf, nparts), expr=text))
    assert_frame_equal(canonical(got), canonical(pdf[mask(pdf)]))


def test_filter_leaving_empty_partitions_then_groupby(make_ctx, backend):
    pdf = flights().sort_values("distance").reset_index(drop=True)
    df = to_dask(backend, pdf, 7)  # sorted: the low-distance partitions end up empty
    kept = call(make_ctx(), "filter", df, expr="distance > 2500")
    sizes = kept.map_partitions(len).compute(scheduler="sync").tolist()
    assert sizes.count(0) >= 4, sizes
    got = compute(backend, call(make_ctx(), "groupby", kept, by="carrier",
                                agg={"delay": ["sum", "count", "mean"]}))
    sub = pdf[pdf.distance > 2500]
    want = sub.groupby("carrier").agg(delay_sum=("delay", "sum"), delay_count=("delay", "count"),
                                      delay_mean=("delay", "mean")).reset_index()
    assert_frame_equal(canonical(got, ["carrier"]), canonical(want, ["carrier"]), rtol=1e-12)


@pytest.mark.parametrize("text, message", [
    ("delay_min > 3", "no column 'delay_min'"),
    ("sqrt(wind) > 1", "no column 'wind'"),
])
def test_unknown_column_in_expr_lists_the_columns(make_ctx, backend, text, message):
    df = to_dask(backend, flights(), 3)
    with pytest.raises(OpError) as err:
        call(make_ctx(), "filter", df, expr=text)
    assert err.value.where == "expr"
    assert message in str(err.value)
    assert "columns: carrier, origin, name, delay, distance" in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("delay >", "syntax error"),
    ("delay.abs() > 1", "attribute access"),
    ("delay + 1", "gives float64 values, not true/false"),
    ("1 > 0", "uses no column"),
    ("evil(delay) > 0", "unknown function 'evil'"),
    ('name + 1 > 0', "cannot evaluate"),
])
def test_bad_filter_expressions(make_ctx, backend, text, message):
    df = to_dask(backend, flights(), 3)
    with pytest.raises(OpError, match="expr") as err:
        call(make_ctx(), "filter", df, expr=text)
    assert message in str(err.value)


# -- assign and the function table ----------------------------------------------------

def test_assign_matches_pandas(make_ctx, backend, nparts):
    pdf = flights()
    got = compute(backend, call(make_ctx(), "assign", to_dask(backend, pdf, nparts), columns={
        "per_100mi": "delay / distance * 100",
        "late": "where(delay > 15, 1.0, 0.0)",
        "capped": "clip(delay, -10, 30)",
        "twice": "per_100mi * 2",          # a column made just above
        "delay": "maximum(delay, 0)",      # replaces a column
        "one": "1.5",
    }))
    want = pdf.assign(per_100mi=pdf.delay / pdf.distance * 100,
                      late=np.where(pdf.delay > 15, 1.0, 0.0),
                      capped=pdf.delay.clip(-10, 30))
    want = want.assign(twice=want.per_100mi * 2, delay=np.maximum(pdf.delay, 0), one=1.5)
    assert list(got.columns) == list(want.columns)
    assert_frame_equal(canonical(got, ["distance"]), canonical(want, ["distance"]))


def test_assign_keeps_the_row_count_known(make_ctx, backend):
    df = to_dask(backend, flights(50), 3)
    out = call(make_ctx(), "assign", df, columns={"x": "delay * 2"})
    assert frames.known_lengths(out) == frames.known_lengths(df)
    assert sum(frames.known_lengths(out)) == 50


def test_assign_errors(make_ctx, backend):
    df = to_dask(backend, flights(), 3)
    with pytest.raises(OpError, match="no column 'speed'") as err:
        call(make_ctx(), "assign", df, columns={"a": "speed * 2"})
    assert err.value.where == "columns.a" and "columns: carrier" in str(err.value)
    with pytest.raises(OpError, match="no columns to assign"):
        call(make_ctx(), "assign", df, columns={})


def test_function_table_has_every_function():
    assert set(frame_expr.FRAME_FUNCTIONS) == set(expr_lang.FUNCTIONS)


# expression -> the same computed with NumPy on the values (NaN included)
FUNCTION_CASES = {
    "abs": ("abs(x)", lambda x, y: np.abs(x)),
    "sqrt": ("sqrt(x)", lambda x, y: np.sqrt(x)),       # negative -> NaN, no warning
    "exp": ("exp(x)", lambda x, y: np.exp(x)),
    "log": ("log(x)", lambda x, y: np.log(x)),
    "log1p": ("log1p(x)", lambda x, y: np.log1p(x)),
    "sin": ("sin(x)", lambda x, y: np.sin(x)),
    "cos": ("cos(x)", lambda x, y: np.cos(x)),
    "tan": ("tan(x)", lambda x, y: np.tan(x)),
    "arctan2": ("arctan2(x, y)", lambda x, y: np.arctan2(x, y)),
    "real": ("real(x)", lambda x, y: np.real(x)),
    "imag": ("imag(x)", lambda x, y: np.imag(x)),
    "conj": ("conj(x)", lambda x, y: np.conj(x)),
    "angle": ("angle(x)", lambda x, y: np.angle(x)),
    "maximum": ("maximum(x, y)", lambda x, y: np.maximum(x, y)),
    "minimum": ("minimum(x, 0.5)", lambda x, y: np.minimum(x, 0.5)),
    "where": ("where(x > y, x, -1.0)", lambda x, y: np.where(x > y, x, -1.0)),
    "clip": ("clip(x, -1, 1)", lambda x, y: np.clip(x, -1, 1)),
    "floor": ("floor(x * 3)", lambda x, y: np.floor(x * 3)),
    "ceil": ("ceil(x * 3)", lambda x, y: np.ceil(x * 3)),
    "round": ("round(x * 7, 1)", lambda x, y: np.round(x * 7, 1)),
    "isnan": ("isnan(x)", lambda x, y: np.isnan(x)),
    "isfinite": ("isfinite(x / y)", lambda x, y: np.isfinite(x / y)),
}


def test_function_cases_cover_the_table():
    assert set(FUNCTION_CASES) == set(expr_lang.FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTION_CASES))
def test_each_function_matches_numpy(make_ctx, backend, name):
    text, reference = FUNCTION_CASES[name]
    x = np.array([-2.5, -1.0, -0.0, 0.0, 0.25, 0.5, 1.0, 3.0, np.nan, 7.5, 0.5, -0.2])
    y = np.array([1.0, 0.0, 2.0, -1.0, 0.25, np.nan, 0.5, 4.0, 1.0, 0.0, -3.0, 1.0])
    pdf = pd.DataFrame({"x": x, "y": y})
    got = compute(backend, call(make_ctx(), "assign", to_dask(backend, pdf, 3),
                                columns={"out": text}))
    with np.errstate(all="ignore"):
        want = reference(x, y)
    np.testing.assert_allclose(got["out"].to_numpy(dtype=float), want.astype(float),
                               rtol=1e-12, equal_nan=True)


# -- groupby --------------------------------------------------------------------------

def test_groupby_multi_key_multi_agg_flat_names(make_ctx, backend, nparts):
    pdf = flights(300)
    pdf.loc[pdf.index[::17], "origin"] = np.nan  # missing keys: those rows are dropped
    aggs = {"delay": ["sum", "mean", "count", "min", "max", "std", "var"],
            "distance": ["mean", "max"]}
    got = compute(backend, call(make_ctx(), "groupby", to_dask(backend, pdf, nparts),
                                by=["carrier", "origin"], agg=aggs))
    named = {f"{c}_{a}": (c, a) for c, hows in aggs.items() for a in hows}
    want = pdf.groupby(["carrier", "origin"]).agg(**named).reset_index()
    assert list(got.columns) == ["carrier", "origin", *named]
    # origin: float (it holds NaN) in both; count: both int64; std/var of one-row groups:
    # NaN in both. Values agree to rounding (partial sums add up in another order).
    assert_frame_equal(canonical(got, ["carrier", "origin"]),
                       canonical(want, ["carrier", "origin"]), rtol=1e-10)


@pytest.mark.parametrize("split_out", [None, 1, 3])
def test_groupby_split_out_and_single_agg_string(make_ctx, backend, split_out):
    pdf = flights(300)
    got = compute(backend, call(make_ctx(), "groupby", to_dask(backend, pdf, 7), by="origin",
                                agg={"distance": "sum"}, split_out=split_out))
    want = pdf.groupby("origin").agg(distance_sum=("distance", "sum")).reset_index()
    assert_frame_equal(canonical(got, ["origin"]), canonical(want, ["origin"]), rtol=1e-12)


def test_groupby_split_out_then_join(make_ctx, backend):
    # dask 2026.7.1 cannot lower a merge of a renamed shuffle groupby; frames.groupby
    # flattens its columns another way
    pdf = flights(300)
    ctx = make_ctx()
    routes = call(ctx, "groupby", to_dask(backend, pdf, 7), by=["carrier", "origin"],
                  agg={"delay": ["mean"]}, split_out=2)
    names = pd.DataFrame({"carrier": range(6), "label": [f"c{i}" for i in range(6)]})
    got = compute(backend, call(ctx, "join", routes, to_dask(backend, names, 1), on="carrier",
                                how="left"))
    want = pdf.groupby(["carrier", "origin"]).agg(delay_mean=("delay", "mean")).reset_index() \
        .merge(names, on="carrier", how="left")
    assert_frame_equal(canonical(got, ["carrier", "origin"]),
                       canonical(want, ["carrier", "origin"]), rtol=1e-12)


@pytest.mark.parametrize("params, where, message", [
    ({"by": "airline", "agg": {"delay": ["mean"]}}, "by", "no column 'airline'"),
    ({"by": "carrier", "agg": {"dealy": ["mean"]}}, "agg",
     "no column 'dealy'; did you mean 'delay'"),
    ({"by": "carrier", "agg": {"delay": ["avg"]}}, "agg.delay", "unknown aggregate 'avg'"),
    ({"by": "carrier", "agg": {"delay": ["meen"]}}, "agg.delay", "did you mean 'mean'"),
    ({"by": "carrier", "agg": {"carrier": ["count"]}}, "agg.carrier", "is a key column"),
    ({"by": "carrier", "agg": {}}, "agg", "no aggregates"),
    ({"by": "carrier", "agg": {"delay": "sum"}, "split_out": 0}, "split_out", ">= 1"),
])
def test_groupby_errors(make_ctx, backend, params, where, message):
    df = to_dask(backend, flights(), 3)
    with pytest.raises(OpError) as err:
        call(make_ctx(), "groupby", df, **params)
    assert err.value.where == where and message in str(err.value), str(err.value)
    if message.startswith("no column"):
        assert "columns: carrier, origin, name, delay, distance" in str(err.value)


# -- join -----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
@pytest.mark.parametrize("parts", [(1, 1), (3, 1), (7, 3)], ids=lambda p: f"{p[0]}x{p[1]}")
def test_join_matches_pandas(make_ctx, backend, how, parts):
    rng = np.random.default_rng(1)
    left = pd.DataFrame({"k": rng.integers(0, 12, 80), "j": rng.integers(0, 2, 80),
                         "x": rng.normal(size=80)})
    left.loc[::9, "x"] = np.nan
    # keys 8..15: some left keys have no match, some right keys no partner
    right = pd.DataFrame({"k": np.repeat(np.arange(8, 16), 2), "j": np.tile([0, 1], 8),
                          "y": np.arange(16.0), "x": np.arange(16.0) * 10})
    got = compute(backend, call(make_ctx(), "join", to_dask(backend, left, parts[0]),
                                to_dask(backend, right, parts[1]), on=["k", "j"], how=how))
    want = left.merge(right, on=["k", "j"], how=how)
    assert list(got.columns) == ["k", "j", "x_x", "y", "x_y"]
    assert_frame_equal(canonical(got), canonical(want))


def test_join_on_a_single_column_name(make_ctx, backend):
    left = pd.DataFrame({"k": [1, 2, 3, 3], "a": [1.0, 2.0, 3.0, 4.0]})
    right = pd.DataFrame({"k": [3, 1], "b": ["x", "y"]})
    got = compute(backend, call(make_ctx(), "join", to_dask(backend, left, 2),
                                to_dask(backend, right, 1), on="k"))
    assert_frame_equal(canonical(got), canonical(left.merge(right, on="k")))


def test_join_missing_key_names_the_side_and_its_columns(make_ctx, backend):
    left = to_dask(backend, pd.DataFrame({"k": [1], "a": [1.0]}), 1)
    right = to_dask(backend, pd.DataFrame({"key": [1], "b": [2.0]}), 1)
    with pytest.raises(OpError) as err:
        call(make_ctx(), "join", left, right, on="k")
    assert err.value.where == "on"
    assert "no column 'k' in the right input" in str(err.value)
    assert "columns: key, b" in str(err.value)


# -- sort -----------------------------------------------------------------------------

@pytest.mark.parametrize("by, ascending", [
    ("distance", True), ("distance", False), (["carrier", "distance"], [True, False]),
    ("delay", True),  # NaN last, as in pandas
])
def test_sort_matches_pandas(make_ctx, backend, nparts, by, ascending):
    pdf = flights(120)
    got = compute(backend, call(make_ctx(), "sort", to_dask(backend, pdf, nparts), by=by,
                                ascending=ascending))
    want = pdf.sort_values(by, ascending=ascending)
    # distance is unique, so the order is fully determined (ties in delay: its NaNs, whose
    # rows may come in any order, are compared as a set)
    if by == "delay":
        got_known, want_known = got[got.delay.notna()], want[want.delay.notna()]
        assert_frame_equal(got_known.reset_index(drop=True), want_known.reset_index(drop=True))
        assert got.delay.iloc[len(got_known):].isna().all()
        return
    assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


def test_sort_errors(make_ctx, backend):
    df = to_dask(backend, flights(), 2)
    with pytest.raises(OpError, match="no column 'speed'"):
        call(make_ctx(), "sort", df, by="speed")
    with pytest.raises(OpError, match="2 values for 1 columns"):
        call(make_ctx(), "sort", df, by="delay", ascending=[True, False])


# -- to_array / to_frame --------------------------------------------------------------

def test_to_array_to_frame_round_trip(make_ctx, backend, nparts):
    pdf = flights(60)
    ctx = make_ctx()
    arr = call(ctx, "to_array", to_dask(backend, pdf, nparts), columns=["distance", "delay"])
    assert arr.shape == (60, 2)  # from_pandas: partition lengths known without computing
    got = host(arr)
    np.testing.assert_array_equal(got, pdf[["distance", "delay"]].to_numpy())
    back = compute(backend, call(ctx, "to_frame", arr, columns=["d", "e"]))
    assert_frame_equal(back.reset_index(drop=True),
                       pdf[["distance", "delay"]].set_axis(["d", "e"], axis=1))


def test_to_frame_then_to_array_keeps_the_shape(make_ctx, backend):
    import dask.array as da

    x = da.from_array(backend.xp.arange(24.0).reshape(8, 3), chunks=(3, 2))
    ctx = make_ctx()
    df = call(ctx, "to_frame", x, columns=["a", "b", "c"])
    arr = call(ctx, "to_array", call(ctx, "assign", df, columns={"d": "a + c"}))
    assert arr.shape == (8, 4)
    want = np.arange(24.0).reshape(8, 3)
    np.testing.assert_array_equal(host(arr), np.column_stack([want, want[:, 0] + want[:, 2]]))


def test_to_array_rows_unknown_after_filter(make_ctx, backend):
    df = to_dask(backend, flights(60), 3)
    kept = call(make_ctx(), "filter", df, expr="distance > 1000")
    arr = call(make_ctx(), "to_array", kept, columns=["distance"])
    assert np.isnan(arr.shape[0]) and arr.shape[1] == 1
    assert host(arr).shape == ((flights(60).distance > 1000).sum(), 1)


def test_to_array_and_to_frame_errors(make_ctx, backend):
    import dask.array as da

    df = to_dask(backend, flights(), 2)
    with pytest.raises(OpError, match="'name' is .*not numeric"):
        call(make_ctx(), "to_array", df, columns=["delay", "name"])
    with pytest.raises(OpError, match="no column 'nope'"):
        call(make_ctx(), "to_array", df, columns=["nope"])
    x = da.from_array(backend.xp.zeros((4, 3)), chunks=2)
    with pytest.raises(OpError, match="2 names for 3 columns"):
        call(make_ctx(), "to_frame", x, columns=["a", "b"])
    with pytest.raises(OpError, match="repeated"):
        call(make_ctx(), "to_frame", x, columns=["a", "b", "a"])
    with pytest.raises(OpError, match="takes an array"):
        call(make_ctx(), "to_frame", df, columns=["a"])


# -- random_table ---------------------------------------------------------------------

TABLE = {"k": {"keys": 7}, "x": {"distribution": "normal", "loc": 10, "scale": 2},
         "u": {"distribution": "uniform", "low": -1, "high": 1, "dtype": "float32",
               "null_fraction": 0.2}}


def test_random_table_is_reproducible_and_in_range(make_ctx, backend):
    ctx = make_ctx()
    df = call(ctx, "random_table", rows=1000, partitions=4, seed=3, columns=TABLE)
    assert df.npartitions == 4 and df.divisions == (0, 250, 500, 750, 999)
    assert frames.known_lengths(df) == (250, 250, 250, 250)
    a = compute(backend, df)
    b = compute(backend, call(ctx, "random_table", rows=1000, partitions=4, seed=3,
                              columns=TABLE))
    assert_frame_equal(a, b)
    assert list(a.index) == list(range(1000))
    assert dict(a.dtypes.astype(str)) == {"k": "int64", "x": "float64", "u": "float32"}
    assert a.k.between(0, 6).all() and set(a.k) == set(range(7))
    assert abs(a.x.mean() - 10) < 0.5 and abs(a.x.std() - 2) < 0.3
    present = a.u.dropna()
    assert (present >= -1).all() and (present < 1).all()
    assert 0.12 < a.u.isna().mean() < 0.28
    other = compute(backend, call(ctx, "random_table", rows=1000, partitions=4, seed=4,
                                  columns=TABLE))
    assert not np.allclose(other.x.to_numpy(), a.x.to_numpy())


def test_random_table_columns_do_not_depend_on_projection(make_ctx, backend):
    df = call(make_ctx(), "random_table", rows=100, partitions=3, seed=0, columns=TABLE)
    whole = compute(backend, df)
    only_x = compute(backend, df[["x"]])
    assert_frame_equal(only_x, whole[["x"]])


def test_random_table_partition_defaults(make_ctx, backend):
    df = call(make_ctx(), "random_table", rows=5, partitions=9, seed=0,
              columns={"k": {"keys": 2}})
    assert df.npartitions == 5  # never an empty partition
    empty = call(make_ctx(), "random_table", rows=0, seed=0, columns={"k": {"keys": 2}})
    assert len(compute(backend, empty)) == 0
    big = call(make_ctx(), "random_table", rows=2_500_000, seed=0, columns={"k": {"keys": 2}})
    assert big.npartitions == 3  # one per million rows (nothing is computed here)


@pytest.mark.parametrize("column, message", [
    ({"distribution": "poisson"}, "unknown distribution 'poisson'"),
    ({"distribution": "normal", "low": 0}, "'low' does not apply to distribution normal"),
    ({"distribution": "uniform", "low": 2, "high": 1}, "high (1.0) must be greater"),
    ({"keys": 0}, "keys must be an integer >= 1"),
    ({"keys": 5, "loc": 1}, "'loc' does not apply to integer keys"),
    ({"distrib": "normal"}, "unknown key 'distrib'; did you mean 'distribution'"),
    ({"distribution": "normal", "dtype": "int8"}, "unsupported dtype"),
    ({"distribution": "normal", "null_fraction": 2}, "null_fraction must be in [0, 1]"),
])
def test_random_table_column_errors(make_ctx, backend, column, message):
    with pytest.raises(OpError) as err:
        call(make_ctx(), "random_table", rows=10, columns={"c": column})
    assert err.value.where == "columns.c" and message in str(err.value), str(err.value)
