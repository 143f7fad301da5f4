"""``arange`` and ``stack`` (pipeline/ops/layout.py) against NumPy. Both are exact."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import InputError, OpError
from tests.helpers import call
from tests.ops import chunking, darr, dask_backend, rng, run  # noqa: F401

pytestmark = pytest.mark.usefixtures("dask_backend")


@pytest.mark.parametrize("start,stop,step", [(0, 10, 1), (2, 11, 3), (5, -5, -2),
                                             (0, 1, 0.25), (3, 3, 1), (0.5, 4, 1)])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "int32"])
def test_arange_matches_numpy(make_ctx, backend, start, stop, step, dtype):
    if dtype.startswith("int") and any(isinstance(v, float) for v in (start, stop, step)):
        return  # numpy truncates fractional steps for integer dtypes; not a use case
    for chunks in ("auto", 3):
        got = run(backend, call(make_ctx(), "arange", start=start, stop=stop, step=step,
                                dtype=dtype, chunks=chunks))
        np.testing.assert_array_equal(got, np.arange(start, stop, step, dtype=dtype))


def test_arange_defaults_and_chunks(make_ctx, backend):
    out = call(make_ctx(), "arange", stop=10, chunks=4)
    assert out.chunks == ((4, 4, 2),) and out.dtype == np.float64
    np.testing.assert_array_equal(run(backend, out), np.arange(10.0))


def test_arange_errors(make_ctx, backend):
    ctx = make_ctx()
    for params, where, word in [({"stop": 5, "step": 0}, "step", "must not be 0"),
                                ({"stop": 5, "dtype": "complex64"}, "dtype", "complex64"),
                                ({"stop": 5, "chunks": 0}, "chunks", "must be >= 1"),
                                ({"stop": 5, "chunks": [2, 2]}, "chunks", "1 axes")]:
        with pytest.raises(OpError) as info:
            call(ctx, "arange", **params)
        assert info.value.where == where and word in str(info.value), info.value
    with pytest.raises(InputError) as info:
        call(ctx, "arange")
    assert info.value.where == "stop"


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack_matches_numpy(make_ctx, backend, rng, chunking, axis):
    xs = [rng.standard_normal((4, 5)) for _ in range(3)]
    got = run(backend, call(make_ctx(), "stack", *(darr(backend, x, chunking) for x in xs),
                            axis=axis))
    np.testing.assert_array_equal(got, np.stack(xs, axis=axis))


def test_stack_of_scalars_and_of_one(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal(7))
    mean, std = x.mean(), x.std()
    got = run(backend, call(make_ctx(), "stack", mean, std))
    np.testing.assert_allclose(got, [run(backend, mean), run(backend, std)], rtol=1e-15)
    column = run(backend, call(make_ctx(), "stack", x, axis=1))
    assert column.shape == (7, 1)


def test_stack_errors(make_ctx, backend, rng):
    ctx = make_ctx()
    a, b = darr(backend, np.ones((2, 3))), darr(backend, np.ones((3, 2)))
    with pytest.raises(OpError) as info:
        call(ctx, "stack", a, b)
    assert info.value.where == "inputs" and "(2, 3), (3, 2)" in str(info.value)
    with pytest.raises(OpError) as info:
        call(ctx, "stack", a, a, axis=3)
    assert info.value.where == "axis" and "out of range" in str(info.value)
    with pytest.raises(OpError) as info:
        call(ctx, "stack")
    assert info.value.where == "inputs"
