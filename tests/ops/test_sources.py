"""Source ops (pipeline/ops/sources.py): ``random``, and ``read`` of .npy / .zarr arrays.

Statistical checks use bounds of 6 standard errors (a false failure about once in 10^9
runs) at 200,000 samples: the mean of a normal within 6·scale/sqrt(n) of loc, its std
within 6·scale/sqrt(2n) of scale.
"""

from __future__ import annotations

import dataclasses

import dask.array as da
import numpy as np
import pytest

from pipeline.errors import InputError, OpError
from tests.helpers import call
from tests.ops import COPYING, chunking, darr, dask_backend, rng, run  # noqa: F401

pytestmark = pytest.mark.usefixtures("dask_backend")

N_STAT = 200_000


def raises(where: str, *words: str, error=OpError):
    class Check:
        def __enter__(self):
            self.cm = pytest.raises(error)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *exc):
            suppressed = self.cm.__exit__(*exc)
            e = self.info.value
            assert e.where == where, f"where={e.where!r}, expected {where!r}: {e}"
            for w in words:
                assert w in str(e), f"{w!r} not in {str(e)!r}"
            return suppressed

    return Check()


# --------------------------------------------------------------------------- random

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize("shape,chunks,expected", [
    ([37, 23], [10, 7], ((10, 10, 10, 7), (7, 7, 7, 2))),
    ([37, 23], 16, ((16, 16, 5), (16, 7))),
    ([37, 23], "auto", ((37,), (23,))),
    ([37, 23], [-1, 5], ((37,), (5, 5, 5, 5, 3))),
    ([37, 23], [[30, 7], -1], ((30, 7), (23,))),
    ([100], "128 B", None),                 # a byte size: 16 float64 or 32 float32 values
    ([5, 0, 3], "auto", ((5,), (0,), (3,))),
    ([4, 3, 2], [1, 2, 2], ((1,) * 4, (2, 1), (2,))),
])
def test_random_shape_dtype_chunks(make_ctx, backend, dtype, distribution, shape, chunks,
                                   expected):
    x = call(make_ctx(), "random", shape=shape, chunks=chunks, dtype=dtype,
             distribution=distribution)
    assert x.shape == tuple(shape) and x.dtype == np.dtype(dtype)
    if expected is None:  # the byte size
        assert max(x.chunks[0]) * x.dtype.itemsize <= 128 and x.npartitions > 1
    else:
        assert x.chunks == expected
    got = run(backend, x)
    assert np.isfinite(got).all()
    if distribution == "uniform":
        assert ((0 <= got) & (got < 1)).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loc,scale", [(None, None), (3.0, 2.0), (-10, 0.5)])
def test_random_normal_statistics(make_ctx, backend, dtype, loc, scale):
    params = {k: v for k, v in (("loc", loc), ("scale", scale)) if v is not None}
    got = run(backend, call(make_ctx(), "random", shape=[N_STAT], chunks=30_000, dtype=dtype,
                            **params)).astype(np.float64)
    loc, scale = loc or 0.0, scale or 1.0
    assert abs(got.mean() - loc) < 6 * scale / np.sqrt(N_STAT)
    assert abs(got.std() - scale) < 6 * scale / np.sqrt(2 * N_STAT)


def test_random_normal_scale_zero_is_constant(make_ctx, backend):
    got = run(backend, call(make_ctx(), "random", shape=[50], loc=4.5, scale=0))
    np.testing.assert_array_equal(got, 4.5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("low,high", [(None, None), (-3.0, 5.0), (10, 10.5), (-0.1, 0.1)])
def test_random_uniform_statistics(make_ctx, backend, dtype, low, high):
    params = {k: v for k, v in (("low", low), ("high", high)) if v is not None}
    got = run(backend, call(make_ctx(), "random", shape=[N_STAT], chunks=30_000, dtype=dtype,
                            distribution="uniform", **params)).astype(np.float64)
    low, high = (0.0, 1.0) if low is None else (low, high)
    assert (got >= low).all() and (got < high).all()
    width = high - low
    assert abs(got.mean() - (low + high) / 2) < 6 * width / np.sqrt(12 * N_STAT)
    # both ends of the range are reached: nothing squeezed into part of it
    assert got.min() < low + width * 1e-3 and got.max() > high - width * 1e-3


def test_random_uniform_never_returns_high(make_ctx, backend):
    # float32 holds only even numbers near 2**24: x*64 + 2**24 rounds up to `high` for
    # about 1.5% of the samples unless the op keeps the values below it
    low, high = 2.0**24, 2.0**24 + 64
    got = run(backend, call(make_ctx(), "random", shape=[20_000], dtype="float32",
                            distribution="uniform", low=low, high=high, chunks=5000))
    assert got.min() >= low and got.max() < high
    assert got.max() == high - 2  # the largest float32 below high is still produced


def test_random_uniform_with_no_value_in_range(make_ctx, backend):
    # no float32 lies in [2**24 + 0.25, 2**24 + 0.5)
    with raises("high", "no float32 value", "float64"):
        call(make_ctx(), "random", shape=[3], dtype="float32", distribution="uniform",
             low=2.0**24 + 0.25, high=2.0**24 + 0.5)


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_random_seed(make_ctx, backend, distribution):
    def make(seed, chunks=(5, 4)):
        return run(backend, call(make_ctx(), "random", shape=[17, 9], chunks=list(chunks),
                                 seed=seed, distribution=distribution))

    np.testing.assert_array_equal(make(7), make(7))
    assert not np.array_equal(make(7), make(8))
    assert not np.array_equal(make(None), make(None))  # no seed: fresh data every run
    # chunks differ: still the same seed, but Dask draws per chunk, so not the same data
    assert make(7, (17, 9)).shape == (17, 9)


def test_random_chunks_of_several_blocks_differ(make_ctx, backend):
    # each chunk gets its own stream: no two blocks are copies of each other
    got = run(backend, call(make_ctx(), "random", shape=[40], chunks=10, seed=1))
    blocks = got.reshape(4, 10)
    assert len({b.tobytes() for b in blocks}) == 4


def test_random_errors(make_ctx, backend):
    ctx = make_ctx()
    with raises("dtype", "unsupported dtype 'int32'", "float32, float64"):
        call(ctx, "random", shape=[3], dtype="int32")
    with raises("shape", "bad shape []"):
        call(ctx, "random", shape=[])
    with raises("shape", "bad shape [3, -1]"):
        call(ctx, "random", shape=[3, -1])
    with raises("shape", "expected list of integer", error=InputError):
        call(ctx, "random", shape=[3.5])
    with raises("loc", "'loc' does not apply to distribution uniform", "low, high"):
        call(ctx, "random", shape=[3], distribution="uniform", loc=1.0)
    with raises("scale", "'scale' does not apply to distribution uniform"):
        call(ctx, "random", shape=[3], distribution="uniform", scale=-1.0)
    with raises("low", "'low' does not apply to distribution normal", "loc, scale"):
        call(ctx, "random", shape=[3], low=0.0)
    with raises("high", "'high' does not apply to distribution normal"):
        call(ctx, "random", shape=[3], high=2.0)
    with raises("high", "must be greater than low"):
        call(ctx, "random", shape=[3], distribution="uniform", low=1, high=1)
    with raises("high", "must be greater than low"):
        call(ctx, "random", shape=[3], distribution="uniform", high=-1)
    with raises("scale", "scale must be >= 0", "-2"):
        call(ctx, "random", shape=[3], scale=-2.0)
    with raises("distribution", "expected", error=InputError):
        call(ctx, "random", shape=[3], distribution="poisson")
    with raises("seed", "expected", error=InputError):
        call(ctx, "random", shape=[3], seed="abc")


@pytest.mark.parametrize("chunks,words", [
    ([0, 5], ["chunk size 0"]),             # dask: ZeroDivisionError
    (-3, ["must be >= 1"]),                 # dask: failed later, at generation
    ([3], ["1 entries", "2 axes"]),
    ([4, 4, 4], ["3 entries", "2 axes"]),
    ([[2, 2], 5], ["bad chunks", "add up"]),
    ("banana", ["bad chunks 'banana'"]),
])
def test_random_bad_chunks(make_ctx, backend, chunks, words):
    with raises("chunks", *words):
        call(make_ctx(), "random", shape=[10, 7], chunks=chunks)


# --------------------------------------------------------------------------- read .npy

@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.mark.parametrize("dtype", ["float64", "float32", "int16", "complex128", "bool"])
def test_read_npy(make_ctx, backend, rng, data, chunking, dtype):
    x = (rng.standard_normal((23, 6)) * 100).astype(dtype)
    np.save(data / "x.npy", x)
    chunks = list(darr(backend, x, chunking).chunksize)  # the same sizes as the fixture's
    out = call(make_ctx(), "read", path="data/x.npy", chunks=chunks)
    assert out.chunksize == tuple(chunks) and out.dtype == x.dtype
    np.testing.assert_array_equal(run(backend, out), x)


def test_read_npy_defaults_and_paths(make_ctx, backend, rng, data):
    x = rng.standard_normal((9, 4))
    np.save(data / "x.npy", x)
    np.save(data / "fortran.npy", np.asfortranarray(x))
    np.save(data / "scalar.npy", np.float64(2.5))
    np.save(data / "x.bin", x)  # np.save appends .npy: x.bin.npy
    (data / "x.bin.npy").rename(data / "x.bin")
    ctx = make_ctx()
    np.testing.assert_array_equal(run(backend, call(ctx, "read", path="data/x.npy")), x)
    np.testing.assert_array_equal(run(backend, call(ctx, "read", path=str(data / "x.npy"))), x)
    np.testing.assert_array_equal(
        run(backend, call(ctx, "read", path="data/fortran.npy", chunks=[2, 3])), x)
    np.testing.assert_array_equal(run(backend, call(ctx, "read", path="data/scalar.npy")), 2.5)
    np.testing.assert_array_equal(
        run(backend, call(ctx, "read", path="data/x.bin", format="npy")), x)
    out = call(ctx, "read", path="data/x.npy", chunks="auto")
    assert out.chunks == ((9,), (4,))


def test_read_npy_glob_concatenates_on_axis_0(make_ctx, backend, rng, data):
    parts = [rng.standard_normal((n, 3)) for n in (5, 1, 7)]
    for i, p in enumerate(parts):
        np.save(data / f"part-{i}.npy", p)
    out = call(make_ctx(), "read", path="data/part-*.npy", chunks=[2, -1])
    np.testing.assert_array_equal(run(backend, out), np.concatenate(parts))
    assert out.chunks[0] == (2, 2, 1, 1, 2, 2, 2, 1)  # each file chunked on its own


def test_read_npy_glob_mismatch(make_ctx, backend, rng, data):
    np.save(data / "a.npy", rng.standard_normal((4, 3)))
    np.save(data / "b.npy", rng.standard_normal((4, 2)))
    with raises("path", "'b.npy' has shape (4, 2)", "'a.npy' has (4, 3)", "axis 0"):
        call(make_ctx(), "read", path="data/*.npy")
    np.save(data / "b.npy", rng.standard_normal((4, 3)).astype(np.float32))
    with raises("path", "float32", "float64"):
        call(make_ctx(), "read", path="data/*.npy")
    np.save(data / "a.npy", np.float64(1))
    np.save(data / "b.npy", np.float64(2))
    with raises("path", "0-d files cannot be concatenated"):
        call(make_ctx(), "read", path="data/*.npy")


def test_read_npy_errors(make_ctx, backend, rng, data):
    np.save(data / "x.npy", rng.standard_normal((6, 4)))
    np.save(data / "obj.npy", np.array([{}, 1], dtype=object))
    (data / "junk.npy").write_bytes(b"not an npy file")
    ctx = make_ctx()
    with raises("path", "file not found: 'data/nope.npy'"):
        call(ctx, "read", path="data/nope.npy")
    with raises("path", "no file matches 'data/nope*.npy'"):
        call(ctx, "read", path="data/nope*.npy")
    with raises("path", "cannot read 'junk.npy' as .npy"):
        call(ctx, "read", path="data/junk.npy")
    with raises("path", "cannot read 'obj.npy' as .npy"):
        call(ctx, "read", path="data/obj.npy")
    with raises("columns", "table formats"):
        call(ctx, "read", path="data/x.npy", columns=["a"])
    with raises("blocksize", "applies to csv"):
        call(ctx, "read", path="data/x.npy", blocksize="64 MiB")
    with raises("path", "cannot tell the format"):
        call(ctx, "read", path="data/x.txt")
    with raises("format", "unknown format 'hdf5'"):
        call(ctx, "read", path="data/x.npy", format="hdf5")


@pytest.mark.parametrize("chunks,words", [
    ([0, 3], ["chunk size 0"]),   # dask: ZeroDivisionError
    ([3], ["1 entries", "2 axes"]),
    ([[5, 5], 4], ["bad chunks", "add up"]),
    ("lots", ["bad chunks 'lots'"]),
])
def test_read_npy_bad_chunks(make_ctx, backend, rng, data, chunks, words):
    np.save(data / "x.npy", rng.standard_normal((6, 4)))
    with raises("chunks", *words):
        call(make_ctx(), "read", path="data/x.npy", chunks=chunks)


# --------------------------------------------------------------------------- read .zarr

def make_zarr(path, x, chunks):
    da.to_zarr(da.from_array(x, chunks=chunks), str(path))


def test_read_zarr(make_ctx, backend, rng, data, chunking):
    x = rng.standard_normal((23, 6))
    make_zarr(data / "x.zarr", x, (7, 4))
    ctx = make_ctx()
    out = call(ctx, "read", path="data/x.zarr")
    assert out.chunks == ((7, 7, 7, 2), (4, 2))  # the store's own chunks by default
    np.testing.assert_array_equal(run(backend, out), x)
    chunks = list(darr(backend, x, chunking).chunksize)
    out = call(ctx, "read", path="data/x.zarr/", chunks=chunks)
    assert out.chunksize == tuple(chunks)
    np.testing.assert_array_equal(run(backend, out), x)
    out = call(ctx, "read", path="data/x.zarr", format="zarr", chunks="auto")
    np.testing.assert_array_equal(run(backend, out), x)


def test_read_zarr_errors(make_ctx, backend, rng, data):
    make_zarr(data / "a.zarr", rng.standard_normal((6, 4)), 3)
    make_zarr(data / "b.zarr", rng.standard_normal((6, 4)), 3)
    ctx = make_ctx()
    with raises("path", "glob of zarr stores"):
        call(ctx, "read", path="data/*.zarr")
    with raises("path", "cannot open 'data' as a zarr array"):
        call(ctx, "read", path="data", format="zarr")
    with raises("chunks", "chunk size 0"):  # dask: ZeroDivisionError
        call(ctx, "read", path="data/a.zarr", chunks=[0, -1])
    with raises("chunks", "3 entries"):
        call(ctx, "read", path="data/a.zarr", chunks=[1, 1, 1])
    with raises("columns", "table formats"):
        call(ctx, "read", path="data/a.zarr", columns=["a"])


@pytest.mark.parametrize("name", ["x.npy", "x.zarr"])
def test_read_through_a_copying_backend(make_ctx, backend, rng, data, name):
    # each chunk is copied to the "device" once, with the array's dtype and chunks kept
    if backend.name != "cpu":
        pytest.skip("a NumPy stand-in for the device; the GPU runs the real thing")
    x = rng.standard_normal((10, 3)).astype(np.float32)
    if name.endswith(".npy"):
        np.save(data / name, x)
    else:
        make_zarr(data / name, x, (4, 3))
    ctx = dataclasses.replace(make_ctx(), backend=COPYING)
    out = call(ctx, "read", path=f"data/{name}", chunks=[4, -1])
    assert out.dtype == np.float32 and out.chunks == ((4, 4, 2), (3,))
    np.testing.assert_array_equal(run(COPYING, out), x)
