"""Shared pieces of the op tests: chunkings, device-side inputs, and computing results.

Every op test takes the ``backend`` fixture (CPU always, GPU where a real one exists) and
builds its inputs with :func:`darr`, so one test body checks NumPy and CuPy chunks alike.
Inputs are fresh random data on every run; :func:`rng` prints its seed, which pytest shows
when a test fails, so a failure can be replayed with ``np.random.default_rng(SEED)``.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from pipeline import backends, ops
from tests.helpers import host

# Host and "device" both NumPy, but every to_device / to_host really copies: runs the
# copying code paths (read, write, kernels moved to the device) on machines without a GPU.
COPYING = backends.Backend("cpu-copying", "numpy", "pandas", copies=True)

# ragged: a last chunk smaller than the others; one: a single chunk; small: many tiny ones
CHUNKINGS = ("ragged", "one", "small")


@pytest.fixture(params=CHUNKINGS)
def chunking(request) -> str:
    return request.param


@pytest.fixture
def dask_backend(backend):
    """Dask's own backend switch, as the runner sets it (``da.random`` makes cupy chunks).

    A test module imports it and applies it with
    ``pytestmark = pytest.mark.usefixtures("dask_backend")``."""
    with dask.config.set(backend.dask_config):
        yield backend


@pytest.fixture
def rng() -> np.random.Generator:
    seed = np.random.SeedSequence().entropy
    print(f"rng seed: {seed}")
    return np.random.default_rng(seed)


def chunks_for(shape, kind: str) -> tuple:
    """Chunk sizes of the given kind for ``shape``."""
    if kind == "one":
        return tuple(max(n, 1) for n in shape)
    if kind == "small":
        return tuple(max(min(n, 2), 1) for n in shape)
    assert kind == "ragged", kind
    # a size that does not divide the axis, so the last chunk is smaller
    return tuple(next((c for c in (5, 4, 3, 7, 11) if c < n and n % c), max(n, 1))
                 for n in shape)


def darr(backend, x, kind: str = "ragged") -> da.Array:
    """``x`` as a Dask array whose chunks live on ``backend``'s device."""
    x = np.asarray(x)
    chunks = kind if not isinstance(kind, str) else chunks_for(x.shape, kind)
    return da.from_array(backend.xp.asarray(x), chunks=chunks)


def run(backend, x: da.Array) -> np.ndarray:
    """Compute ``x``: check its chunks stayed on the device, its lazy meta (the chunk type
    Dask plans with), shape and dtype were right, and return it as NumPy."""
    meta = type(x._meta).__module__.split(".")[0]
    assert meta == backend.array_module, f"meta is a {type(x._meta)}, not on {backend.name}"
    value = x.compute(scheduler="sync")
    module = type(value).__module__.split(".")[0]
    assert module == backend.array_module, f"result is a {type(value)}, not on {backend.name}"
    got = host(value)
    assert got.shape == tuple(x.shape), (got.shape, x.shape)
    assert got.dtype == x.dtype, f"computed {got.dtype}, declared {x.dtype}"
    return got


def call_ref(ctx, op_name: str, *inputs, **params):
    """Like :func:`tests.helpers.call`, for a parameter that names another stage (e.g.
    ``convolve``'s ``kernel``): bound as a stage id, then replaced by that stage's array,
    as the runner does."""
    info = ops.get(op_name)
    refs = {k: v for k, v in params.items() if k in info.stage_refs and isinstance(v, da.Array)}
    bound = info.bind({**params, **{k: f"stage_{k}" for k in refs}})
    bound.update(refs)
    return info.fn(ctx, *inputs, **bound)
