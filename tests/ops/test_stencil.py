"""``stencil`` (pipeline/ops/stencil.py) against the same loop in NumPy over the whole grid.

Tolerance: on the CPU the result equals the loop bit for bit (the block function performs
the same operations in the same order, and the halos make every chunk's cells see exactly
the neighbours they would see in the whole grid). On a GPU, compilers may fuse a multiply
and an add: rtol 1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.errors import InputError, OpError
from tests.helpers import call
from tests.ops import chunking, darr, dask_backend, rng, run  # noqa: F401

pytestmark = pytest.mark.usefixtures("dask_backend")


def heat_loop(u: np.ndarray, alpha: float, steps: int) -> np.ndarray:
    """The reference: explicit Euler steps of the 2-D heat equation, edges held fixed."""
    u = u.copy()
    for _ in range(steps):
        c = u[..., 1:-1, 1:-1]
        u[..., 1:-1, 1:-1] = c + alpha * (u[..., 2:, 1:-1] + u[..., :-2, 1:-1]
                                          + u[..., 1:-1, 2:] + u[..., 1:-1, :-2] - 4 * c)
    return u


def check(backend, got, want):
    if backend.name == "cpu":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("steps,halo", [(0, 4), (1, 4), (7, 1), (13, 4), (20, 5), (9, 100)])
def test_heat_equals_the_numpy_loop(make_ctx, backend, rng, chunking, steps, halo):
    x = rng.uniform(0, 1, (23, 17))
    got = run(backend, call(make_ctx(), "stencil", darr(backend, x, chunking), alpha=0.2,
                            steps=steps, halo=halo))
    check(backend, got, heat_loop(x, 0.2, steps))


@pytest.mark.parametrize("shape,chunks", [((100, 90), (70, 45)), ((2, 75, 40), (1, 75, 40))])
def test_chunks_taller_than_a_strip(make_ctx, backend, rng, shape, chunks):
    # the CPU path works through each chunk in strips of rows: several strips per chunk
    x = rng.uniform(0, 1, shape)
    got = run(backend, call(make_ctx(), "stencil", darr(backend, x, chunks), alpha=0.2,
                            steps=12, halo=6))
    check(backend, got, heat_loop(x, 0.2, 12))


def test_halo_deeper_than_small_chunks(make_ctx, backend, rng):
    # chunks of 3 with a halo of 5: chunks are merged so a halo comes from one neighbour
    x = rng.uniform(0, 1, (20, 14))
    out = call(make_ctx(), "stencil", darr(backend, x, (3, 3)), alpha=0.25, steps=11, halo=5)
    assert min(out.chunks[0]) >= 5 and min(out.chunks[1]) >= 5
    check(backend, run(backend, out), heat_loop(x, 0.25, 11))


def test_one_halo_exchange_per_halo_steps(make_ctx, backend, rng):
    x = darr(backend, rng.uniform(0, 1, (40, 40)), (10, 10))
    for steps, halo in ((30, 8), (30, 10), (3, 8)):
        out = call(make_ctx(), "stencil", x, alpha=0.1, steps=steps, halo=halo)
        passes = [name for name in out.dask.layers if name.startswith("_heat_steps")]
        assert len(passes) == math.ceil(steps / min(halo, steps)), (steps, halo, passes)


def test_leading_axes_are_independent_grids(make_ctx, backend, rng, chunking):
    x = rng.uniform(0, 1, (3, 12, 9))
    got = run(backend, call(make_ctx(), "stencil", darr(backend, x, chunking), alpha=0.15,
                            steps=6, halo=4))
    check(backend, got, heat_loop(x, 0.15, 6))


def test_float32_stays_float32(make_ctx, backend, rng):
    x = rng.uniform(0, 1, (16, 16)).astype(np.float32)
    out = call(make_ctx(), "stencil", darr(backend, x, (5, 7)), alpha=0.2, steps=9, halo=3)
    assert out.dtype == np.float32
    got = run(backend, out)
    check(backend, got, heat_loop(x, 0.2, 9))


def test_a_hot_spot_spreads_symmetrically(make_ctx, backend):
    # physics: heat spreads evenly, the peak falls, and none is lost before the edges
    x = np.zeros((21, 21))
    x[10, 10] = 1.0
    got = run(backend, call(make_ctx(), "stencil", darr(backend, x, (7, 7)), alpha=0.25,
                            steps=8))
    np.testing.assert_allclose(got, got.T, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got, got[::-1], rtol=0, atol=1e-15)
    assert got.max() < 0.1 and got.sum() == pytest.approx(1.0)  # 8 steps reach 8 cells out


def test_errors(make_ctx, backend, rng):
    ctx = make_ctx()
    grid = darr(backend, rng.uniform(0, 1, (6, 6)))

    def check_raises(where, word, x=grid, error=OpError, **params):
        params = {"alpha": 0.2, "steps": 3, **params}
        with pytest.raises(error) as info:
            call(ctx, "stencil", x, **params)
        assert info.value.where == where and word in str(info.value), info.value

    check_raises("input", "at least 2 dimensions", x=darr(backend, np.ones(5)))
    check_raises("input", "floating-point", x=darr(backend, np.ones((4, 4), dtype=int)))
    check_raises("alpha", "stable", alpha=0.3)
    check_raises("alpha", "stable", alpha=0.0)
    check_raises("steps", ">= 0", steps=-1)
    check_raises("halo", ">= 1", halo=0)
    check_raises("kind", "expected", kind="wave", error=InputError)
