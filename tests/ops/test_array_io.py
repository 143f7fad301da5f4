"""The ``write`` sink (pipeline/ops/sinks.py) for arrays: .npy, .zarr, .json
(pipeline/ops/array_io.py).

A sink returns ``Pending(collection, finish)``: the runner computes the collection on the
cluster, then calls ``finish(result)`` on the client. :func:`write` does the same with the
synchronous scheduler and returns the staged file (``ctx.output``'s path), which is what
the runner later renames into the run folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import PurePosixPath

import dask.array as da
import numpy as np
import pytest

from pipeline.errors import InputError, OpError
from pipeline.ops.array_io import JSON_MAX_ELEMENTS
from pipeline.ops.formats import Pending
from tests.helpers import call
from tests.ops import COPYING, chunking, darr, dask_backend, rng  # noqa: F401

pytestmark = pytest.mark.usefixtures("dask_backend")


@pytest.fixture
def ctx(make_ctx):
    c = make_ctx("write")
    c.staging_dir.mkdir(parents=True)
    return c


def write(ctx, x, path: str, **params):
    """Run the write op as the runner does; return the staged file's path."""
    pending = call(ctx, "write", x, path=path, **params)
    assert isinstance(pending, Pending)
    assert ctx.outputs[-1] == PurePosixPath(path)  # relative to the run folder
    staged = ctx.staging_dir / path
    assert not staged.exists(), "a sink must write nothing before the compute"
    result = pending.collection.compute(scheduler="sync")
    if pending.finish is not None:
        pending.finish(result)
    assert staged.exists()
    return staged


def read_zarr(path) -> np.ndarray:
    return np.asarray(da.from_zarr(str(path)).compute(scheduler="sync"))


# --------------------------------------------------------------------------- .npy

@pytest.mark.parametrize("shape", [(23, 6), (17,), (3, 4, 5)])
def test_npy_round_trip(ctx, backend, rng, chunking, shape):
    x = rng.standard_normal(shape)
    staged = write(ctx, darr(backend, x, chunking), "out.npy")
    got = np.load(staged)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, x)


def test_npy_many_tiny_chunks(ctx, backend, rng):
    x = rng.standard_normal((13, 7))
    np.testing.assert_array_equal(np.load(write(ctx, darr(backend, x, (1, 1)), "x.npy")), x)
    x = rng.standard_normal(1000)
    np.testing.assert_array_equal(np.load(write(ctx, darr(backend, x, 3), "y.npy")), x)


@pytest.mark.parametrize("dtype", ["float32", "int64", "uint8", "complex64", "bool"])
def test_npy_dtypes(ctx, backend, rng, dtype):
    x = (rng.standard_normal((9, 5)) * 50).astype(dtype)
    got = np.load(write(ctx, darr(backend, x), "x.npy"))
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, x)


def test_npy_scalar_and_empty(ctx, backend, rng):
    total = darr(backend, rng.standard_normal((6, 4))).sum()  # a 0-d result, as from reduce
    got = np.load(write(ctx, total, "total.npy"))
    assert got.shape == ()
    np.testing.assert_allclose(got, total.compute(scheduler="sync").item())
    empty = darr(backend, np.zeros((0, 3)), (1, 3))
    assert np.load(write(ctx, empty, "empty.npy")).shape == (0, 3)


def test_npy_of_a_lazy_pipeline(ctx, backend, rng):
    # the usual case: the write's input is a computation, not a stored array
    x = rng.standard_normal((12, 10))
    spectrum = call(ctx, "rfft", darr(backend, x, (5, 3)), axis=1)
    power = call(ctx, "elementwise", {"z": spectrum}, expr="real(z)**2 + imag(z)**2")
    got = np.load(write(ctx, call(ctx, "reduce", power, how="mean", axis=0), "power.npy"))
    np.testing.assert_allclose(got, np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=0),
                               rtol=1e-10)


def test_npy_unknown_shape(ctx, backend, rng):
    x = darr(backend, rng.standard_normal((8, 3)), 3)
    rows = x[x[:, 0] > 0]  # boolean selection: unknown row count
    assert math.isnan(rows.shape[0])
    with pytest.raises(OpError) as info:
        call(ctx, "write", rows, path="rows.npy")
    assert info.value.where == "path" and "unknown shape" in str(info.value)


# --------------------------------------------------------------------------- .zarr

@pytest.mark.parametrize("shape", [(23, 6), (17,)])
def test_zarr_round_trip(ctx, backend, rng, chunking, shape):
    x = rng.standard_normal(shape)
    staged = write(ctx, darr(backend, x, chunking), "out.zarr")
    np.testing.assert_array_equal(read_zarr(staged), x)


def test_zarr_irregular_chunks_are_regularised(ctx, backend, rng):
    # zarr needs equal chunks (a smaller last one allowed); these are not
    x = rng.standard_normal((11, 7))
    arr = darr(backend, x, ((2, 5, 4), (1, 6)))
    staged = write(ctx, arr, "irregular.zarr")
    np.testing.assert_array_equal(read_zarr(staged), x)
    for c in da.from_zarr(str(staged)).chunks:
        assert len(set(c[:-1])) <= 1 and c[-1] <= c[0]


def test_zarr_dtypes_and_scalar(ctx, backend, rng):
    x = (rng.standard_normal((5, 4)) * 9).astype(np.int32)
    got = read_zarr(write(ctx, darr(backend, x, 2), "int.zarr"))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, x)
    total = darr(backend, x).sum()
    np.testing.assert_array_equal(read_zarr(write(ctx, total, "total.zarr")), x.sum())


def test_zarr_empty_and_many_tiny_chunks(ctx, backend, rng):
    empty = darr(backend, np.zeros((0, 3)), (1, 3))
    assert read_zarr(write(ctx, empty, "empty.zarr")).shape == (0, 3)
    x = rng.standard_normal((9, 7))
    np.testing.assert_array_equal(read_zarr(write(ctx, darr(backend, x, (1, 1)), "t.zarr")), x)


def test_zarr_unknown_shape(ctx, backend, rng):
    x = darr(backend, rng.standard_normal(8), 3)
    with pytest.raises(OpError) as info:
        call(ctx, "write", x[x > 0], path="rows.zarr")
    assert info.value.where == "path" and "unknown shape" in str(info.value)


# --------------------------------------------------------------------------- .json

def read_json(path):
    with open(path) as f:
        return json.load(f)


def test_json_scalar(ctx, backend, rng):
    x = rng.standard_normal((5, 3))
    doc = read_json(write(ctx, call(ctx, "reduce", darr(backend, x), how="mean"), "m.json"))
    assert set(doc) == {"value"}
    assert doc["value"] == pytest.approx(x.mean(), rel=1e-12)
    doc = read_json(write(ctx, darr(backend, np.int64(42)), "i.json"))
    assert doc == {"value": 42} and isinstance(doc["value"], int)


def test_json_array_nested_lists(ctx, backend, rng, chunking):
    x = rng.standard_normal((4, 3))
    assert read_json(write(ctx, darr(backend, x, chunking), "a.json")) == x.tolist()
    v = rng.integers(0, 100, 7)
    assert read_json(write(ctx, darr(backend, v, chunking), "v.json")) == v.tolist()
    b = v > 50
    assert read_json(write(ctx, darr(backend, b, chunking), "b.json")) == b.tolist()


def test_json_non_finite_is_null(ctx, backend):
    x = np.array([[1.5, np.nan], [np.inf, -np.inf]])
    staged = write(ctx, darr(backend, x, 1), "nan.json")
    text = staged.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    assert json.loads(text) == [[1.5, None], [None, None]]
    assert read_json(write(ctx, darr(backend, np.float64("nan")), "s.json")) == {"value": None}


def test_json_complex_as_pairs(ctx, backend):
    z = np.array([1 + 2j, -0.5j, complex(np.nan, 1)])
    assert read_json(write(ctx, darr(backend, z, 2), "z.json")) == [[1.0, 2.0], [0.0, -0.5],
                                                                     [None, 1.0]]


def test_json_float32_values(ctx, backend):
    x = np.array([0.1, 2.5], dtype=np.float32)
    got = read_json(write(ctx, darr(backend, x), "f.json"))
    np.testing.assert_array_equal(np.array(got, dtype=np.float32), x)


def test_json_empty_array(ctx, backend):
    assert read_json(write(ctx, darr(backend, np.zeros((0, 2)), (1, 2)), "e.json")) == []


def test_json_too_large(ctx, backend):
    big = da.zeros(JSON_MAX_ELEMENTS + 1, chunks=100_000)  # lazy: never materialised
    with pytest.raises(OpError) as info:
        call(ctx, "write", big, path="big.json")
    e = info.value
    assert e.where == "path" and "too large for .json" in str(e) and ".npy" in e.hint
    # the limit itself is fine (checked without computing)
    assert isinstance(call(ctx, "write", da.zeros(JSON_MAX_ELEMENTS, chunks=500_000),
                           path="ok.json"), Pending)


# --------------------------------------------------------------------------- formats, paths

@pytest.mark.parametrize("path", ["x.npy", "x.zarr", "x.json"])
def test_building_a_write_touches_no_files(make_ctx, backend, rng, tmp_path, path):
    # `validate` builds every stage against a staging folder that does not exist: a sink
    # may create its file only when computed
    ctx = make_ctx("write")
    pending = call(ctx, "write", darr(backend, rng.standard_normal((6, 4))), path=path)
    assert isinstance(pending, Pending)
    assert list(tmp_path.iterdir()) == []


def test_format_parameter_overrides_extension(ctx, backend, rng):
    x = rng.standard_normal(5)
    assert read_json(write(ctx, darr(backend, x), "data.txt", format="json")) == x.tolist()
    np.testing.assert_array_equal(np.load(write(ctx, darr(backend, x), "raw.bin",
                                                format="npy")), x)


def test_write_errors(ctx, backend, rng):
    x = darr(backend, rng.standard_normal(5))
    with pytest.raises(OpError) as info:
        call(ctx, "write", x, path="out.txt")
    assert info.value.where == "path" and "cannot tell the format" in str(info.value)
    assert "json, npy, zarr" in info.value.hint
    with pytest.raises(OpError) as info:
        call(ctx, "write", x, path="out.parquet")  # a table format: not for arrays
    assert info.value.where == "path"
    with pytest.raises(OpError) as info:
        call(ctx, "write", x, path="out.npy", format="hdf5")
    assert info.value.where == "format" and "unknown format 'hdf5'" in str(info.value)
    with pytest.raises(OpError) as info:
        call(ctx, "write", x, path="../escape.npy")
    assert info.value.where == "path" and "outside the run folder" in str(info.value)
    with pytest.raises(InputError) as info:
        call(ctx, "write", x)
    assert info.value.where == "path" and "missing required parameter" in str(info.value)


@pytest.mark.parametrize("path", ["x.npy", "x.zarr", "x.json"])
def test_write_through_a_copying_backend(ctx, backend, rng, path):
    # every block goes through to_host before it is written
    if backend.name != "cpu":
        pytest.skip("a NumPy stand-in for the device; the GPU runs the real thing")
    copying = dataclasses.replace(ctx, backend=COPYING)
    x = rng.standard_normal((7, 5))
    staged = write(copying, darr(COPYING, x, (3, 2)), path)
    got = {"x.npy": np.load, "x.zarr": read_zarr, "x.json": lambda p: read_json(p)}[path](staged)
    np.testing.assert_array_equal(np.asarray(got), x)
