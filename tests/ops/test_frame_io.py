"""Table formats (pipeline/ops/frame_io.py): parquet, csv and json written by the ``write``
op and read back by ``read``, compared with pandas on the same data."""

from __future__ import annotations

import json

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from pipeline.errors import OpError
from pipeline.ops import frame_io
from tests.helpers import call, dask_parquet_inplace

pytestmark = pytest.mark.tables


@pytest.fixture(autouse=True)
def frame_backend(backend):
    """Dask's own backend switch, as the runner sets it (reads make cuDF frames on GPU)."""
    with dask.config.set(backend.dask_config):
        yield backend


def to_dask(backend, pdf: pd.DataFrame, npartitions: int):
    data = pdf if backend.frame_module == "pandas" else backend.xdf.from_pandas(pdf)
    return dd.from_pandas(data, npartitions=npartitions)


def compute(backend, df) -> pd.DataFrame:
    """Compute on the calling thread, check the partitions' kind, return pandas with text
    as pandas' default ``str`` (dask reads text as ``string[pyarrow]``; same values)."""
    value = df.compute(scheduler="sync")
    assert type(value).__module__.split(".")[0] == backend.frame_module, type(value)
    value = value.to_pandas() if backend.frame_module != "pandas" else value
    text = [c for c in value.columns if isinstance(value[c].dtype, pd.StringDtype)]
    return value.astype({c: "str" for c in text}).reset_index(drop=True)


def table(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    x[::7] = np.nan
    return pd.DataFrame({"k": np.arange(n), "x": x,
                         "name": np.array(["UA", "AA", "DL"])[np.arange(n) % 3],
                         "y": rng.uniform(size=n)})


def write(ctx, df, path: str):
    """Run the write op as the runner does; returns the staged file's path."""
    ctx.staging_dir.mkdir(parents=True, exist_ok=True)
    pending = call(ctx, "write", df, path=path)
    staged = ctx.staging_dir / ctx.outputs[-1]
    assert not staged.exists(), "a sink must write nothing before the compute"
    result = dask.compute(pending.collection, scheduler="sync")[0]
    if pending.finish:
        pending.finish(result)
    return staged


@dask_parquet_inplace
@pytest.mark.parametrize("nparts", [1, 3])
def test_parquet_round_trip(make_ctx, backend, nparts):
    pdf = table()
    ctx = make_ctx()
    staged = write(ctx, to_dask(backend, pdf, nparts), "out.parquet")
    assert staged.is_dir() and len(list(staged.glob("*.parquet"))) == nparts
    back = call(make_ctx(base_dir=staged.parent), "read", path=staged.name)
    assert back.npartitions == nparts
    assert_frame_equal(compute(backend, back), pdf)


@dask_parquet_inplace
def test_parquet_column_pushdown(make_ctx, backend):
    pdf = table()
    staged = write(make_ctx(), to_dask(backend, pdf, 2), "out.parquet")
    back = call(make_ctx(base_dir=staged.parent), "read", path=staged.name, columns=["y", "k"])
    assert list(back.columns) == ["y", "k"]
    # the columns reach the parquet reader itself: no other column is read from the files
    reads = [e for e in back.optimize().expr.walk() if "ReadParquet" in type(e).__name__]
    assert reads and all(sorted(e.columns) == ["k", "y"] for e in reads)
    assert_frame_equal(compute(backend, back), pdf[["y", "k"]])


@dask_parquet_inplace
def test_parquet_glob_of_files_and_folder_of_parts(make_ctx, backend, tmp_path):
    pdf = table(30)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        pdf.iloc[i * 10:(i + 1) * 10].to_parquet(data / f"part-{i}.parquet", index=False)
    (data / "notes.txt").write_text("not a table")
    ctx = make_ctx(base_dir=tmp_path)
    glob = call(ctx, "read", path="data/part-*.parquet")
    assert glob.npartitions == 3
    assert_frame_equal(compute(backend, glob), pdf)
    folder = call(ctx, "read", path="data", format="parquet", columns=["x"])
    assert_frame_equal(compute(backend, folder).sort_values("x").reset_index(drop=True),
                       pdf[["x"]].sort_values("x").reset_index(drop=True))


def test_csv_round_trip_blocksize_and_columns(make_ctx, backend):
    pdf = table(200)
    staged = write(make_ctx(), to_dask(backend, pdf, 3), "out.csv")
    assert staged.is_file()
    assert staged.read_text().splitlines()[0] == "k,x,name,y"  # one header, no index
    ctx = make_ctx(base_dir=staged.parent)
    back = call(ctx, "read", path=staged.name, blocksize=1000)
    assert back.npartitions > 3
    got = compute(backend, back)
    # csv keeps 17 significant digits of each float: exact round trip
    assert_frame_equal(got, pdf)
    only = call(ctx, "read", path=staged.name, columns=["name", "k"])
    assert list(only.columns) == ["name", "k"]
    assert_frame_equal(compute(backend, only), pdf[["name", "k"]])


def test_csv_glob(make_ctx, backend, tmp_path):
    pdf = table(30)
    for i in range(3):
        pdf.iloc[i * 10:(i + 1) * 10].to_csv(tmp_path / f"t{i}.csv", index=False)
    back = call(make_ctx(base_dir=tmp_path), "read", path="t*.csv")
    assert_frame_equal(compute(backend, back), pdf)


def test_json_records_with_nulls(make_ctx, backend):
    pdf = table(10)
    staged = write(make_ctx(), to_dask(backend, pdf, 3), "small.json")
    doc = json.loads(staged.read_text())
    assert len(doc) == 10 and list(doc[1]) == ["k", "x", "name", "y"]
    assert doc[0]["x"] is None and doc[7]["x"] is None  # NaN -> null
    assert doc[1] == {"k": 1, "x": pdf.x[1], "name": "AA", "y": pdf.y[1]}  # exact floats


def test_json_refuses_large_tables(make_ctx, backend, monkeypatch):
    monkeypatch.setattr(frame_io, "JSON_MAX_ROWS", 20)
    df = to_dask(backend, table(50), 3)
    # rows known without computing: refused while building
    with pytest.raises(OpError, match="50 rows is too large for .json") as err:
        call(make_ctx(), "write", df, path="big.json")
    assert err.value.where == "path" and "parquet" in err.value.hint
    # rows known only once computed (after a filter): refused before writing anything
    kept = call(make_ctx(), "filter", df, expr="k >= 0")
    ctx = make_ctx()
    with pytest.raises(OpError, match="too large for .json"):
        write(ctx, kept, "big.json")
    assert not (ctx.staging_dir / ctx.outputs[-1]).exists()


def test_table_readers_reject_chunks_and_bad_columns(make_ctx, backend, tmp_path):
    pdf = table(10)
    pdf.to_parquet(tmp_path / "t.parquet", index=False)
    pdf.to_csv(tmp_path / "t.csv", index=False)
    ctx = make_ctx(base_dir=tmp_path)
    for name in ("t.parquet", "t.csv"):
        with pytest.raises(OpError, match="'chunks' applies to arrays") as err:
            call(ctx, "read", path=name, chunks=[10, 2])
        assert err.value.where == "chunks"
        with pytest.raises(OpError, match="no column 'z'") as err:
            call(ctx, "read", path=name, columns=["x", "z"])
        assert err.value.where == "columns" and "columns: k, x, name, y" in str(err.value)


def test_csv_parquet_and_array_sinks_in_one_run(tmp_path, session):
    """Every sink is computed in one call: table and array sinks must mix without warnings,
    and the csv parts concatenate to one file equal to pandas'."""
    import textwrap

    from pipeline import backends, plan, runner, spec

    wf = tmp_path / "wf.yaml"
    wf.write_text(textwrap.dedent("""
        name: mixed
        stages:
          - {id: t, op: random_table, rows: 1000, partitions: 4, seed: 3,
             columns: {k: {keys: 5}, v: {distribution: normal}}}
          - {id: big, op: filter, input: t, expr: "v > 0"}
          - {id: a, op: to_array, input: t, columns: [v]}
          - {id: csv, op: write, input: big, path: big.csv}
          - {id: pq, op: write, input: big, path: big.parquet}
          - {id: npy, op: write, input: a, path: a.npy}
    """))
    p = plan.build(spec.load(wf, output_dir=tmp_path / "out"))
    runner.run(p, backends.CPU, session)
    out = tmp_path / "out"
    from_csv = pd.read_csv(out / "big.csv")
    from_parquet = pd.read_parquet(out / "big.parquet")
    assert len(from_csv) == len(from_parquet) > 0 and (from_csv["v"] > 0).all()
    pd.testing.assert_frame_equal(from_csv, from_parquet.reset_index(drop=True),
                                  check_dtype=False)
    assert np.load(out / "a.npy").shape == (1000, 1)
    assert not list(out.glob("*.parts"))
