"""``convolve`` (pipeline/ops/convolve.py) against ``scipy.signal.convolve``.

The contract: the result equals ``scipy.signal.convolve(x, kernel, mode)`` whatever the
chunking, the method, and whether the kernel is inline or another stage's (Dask) array.

Tolerance: rtol 1e-9, atol 1e-9 (float64; the fft method rounds like any FFT, and the
per-chunk direct sums add in another order than SciPy's whole-array ones).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.signal

from pipeline.errors import InputError, OpError
from tests.helpers import call
from tests.ops import COPYING, call_ref, chunking, darr, dask_backend, rng, run  # noqa: F401

pytestmark = pytest.mark.usefixtures("dask_backend")

TOL = {"rtol": 1e-9, "atol": 1e-9}

# (input shape, kernel shape): odd and even kernels, kernels of length 1, as long as the
# input, longer than the input along some or all axes
CASES = [
    ((30,), (5,)),
    ((30,), (4,)),
    ((30,), (1,)),
    ((7,), (7,)),
    ((6,), (9,)),
    ((11, 13), (3, 4)),
    ((11, 13), (12, 2)),
    ((5, 6), (7, 9)),
    ((4, 5, 6), (2, 3, 2)),
]


def convolve(ctx, x, kernel, **params):
    """The op with ``kernel`` inline (a nested list) or as a stage's Dask array."""
    if isinstance(kernel, np.ndarray):
        return call(ctx, "convolve", x, kernel=kernel.tolist(), **params)
    return call_ref(ctx, "convolve", x, kernel=kernel, **params)


def valid_allowed(x_shape, k_shape) -> bool:
    """SciPy's rule for 'valid': one operand at least as large as the other on every axis."""
    return (all(a >= b for a, b in zip(x_shape, k_shape))
            or all(a <= b for a, b in zip(x_shape, k_shape)))


# Each chunking runs every mode with some of the methods (all three are covered across
# the chunkings; every method alone on every case would triple the run time for nothing).
METHODS = {"ragged": ("fft", "direct"), "one": ("auto",), "small": ("direct", "fft")}


@pytest.mark.parametrize("x_shape,k_shape", CASES, ids=[f"{a}*{b}" for a, b in CASES])
def test_inline_kernel_matches_scipy(make_ctx, backend, rng, chunking, x_shape, k_shape):
    x, k = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    for mode in ("full", "same", "valid"):
        if mode == "valid" and not valid_allowed(x_shape, k_shape):
            continue  # scipy refuses it too: test_valid_mixed_sizes_is_an_error
        want = scipy.signal.convolve(x, k, mode)
        for method in METHODS[chunking]:
            got = run(backend, convolve(make_ctx(), darr(backend, x, chunking), k, mode=mode,
                                        method=method))
            np.testing.assert_allclose(got, want, **TOL, err_msg=f"{mode=} {method=}")


@pytest.mark.parametrize("x_shape,k_shape", CASES, ids=[f"{a}*{b}" for a, b in CASES])
def test_stage_kernel_matches_scipy(make_ctx, backend, rng, chunking, x_shape, k_shape):
    # the kernel made by another stage: a chunked Dask array (chunks of 2, so several)
    x, k = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    for mode, method in (("full", "fft"), ("same", "direct"), ("valid", "auto")):
        if mode == "valid" and not valid_allowed(x_shape, k_shape):
            continue
        got = run(backend, convolve(make_ctx(), darr(backend, x, chunking),
                                    darr(backend, k, "small"), mode=mode, method=method))
        np.testing.assert_allclose(got, scipy.signal.convolve(x, k, mode), **TOL,
                                   err_msg=f"{mode=} {method=}")


def test_stage_kernel_is_computed_once_with_its_input(make_ctx, backend, rng):
    # a kernel derived from the data itself (a Dask expression, not a plain array)
    x = rng.standard_normal(40)
    xd = darr(backend, x, 7)
    kernel = (xd[:5] * 2).rechunk(2)
    got = run(backend, convolve(make_ctx(), xd, kernel, mode="same"))
    np.testing.assert_allclose(got, scipy.signal.convolve(x, x[:5] * 2, "same"), **TOL)


def along(k: np.ndarray, axes, ndim: int) -> np.ndarray:
    """The full-rank kernel for ``axes``: kernel axis i runs along input axis axes[i]."""
    axes = [a % ndim for a in axes]
    order = np.argsort(axes)
    shape = [1] * ndim
    for a, n in zip(axes, k.shape):
        shape[a] = n
    return k.transpose(order).reshape(shape)


@pytest.mark.parametrize("axes,k_shape", [
    ([1], (4,)),
    ([-2], (3,)),
    ([0, 2], (3, 2)),
    ([2, 0], (3, 2)),      # kernel axis 0 along input axis 2: not a plain reshape
    ([-1, -3, 1], (2, 3, 4)),
])
@pytest.mark.parametrize("stage_kernel", [False, True], ids=["inline", "stage"])
def test_axes(make_ctx, backend, rng, axes, k_shape, stage_kernel):
    x, k = rng.standard_normal((4, 9, 7)), rng.standard_normal(k_shape)
    kernel = darr(backend, k, "small") if stage_kernel else k
    for mode, chunking in (("full", "ragged"), ("same", "small"), ("valid", "one")):
        got = run(backend, convolve(make_ctx(), darr(backend, x, chunking), kernel, mode=mode,
                                    axes=axes))
        want = scipy.signal.convolve(x, along(k, axes, x.ndim), mode)
        np.testing.assert_allclose(got, want, **TOL, err_msg=f"{mode=}")


def test_axes_transposed_kernel_equals_transposed_axes(make_ctx, backend, rng):
    x, k = rng.standard_normal((6, 5, 8)), rng.standard_normal((3, 2))
    a = run(backend, convolve(make_ctx(), darr(backend, x), k, axes=[2, 0]))
    b = run(backend, convolve(make_ctx(), darr(backend, x), k.T.copy(), axes=[0, 2]))
    np.testing.assert_allclose(a, b, **TOL)


def test_result_does_not_depend_on_chunking(make_ctx, backend, rng):
    x, k = rng.standard_normal((23, 19)), rng.standard_normal((4, 3))
    results = [run(backend, convolve(make_ctx(), darr(backend, x, c), k, mode="same",
                                     method="direct"))
               for c in [(1, 1), (2, 5), (4, 3), (23, 19), ((10, 3, 10), (1, 17, 1))]]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], **TOL)


def test_integer_and_complex_inputs(make_ctx, backend, rng, chunking):
    xi, ki = rng.integers(-9, 9, 25), rng.integers(-3, 3, 4)
    for method in ("fft", "direct"):
        got = run(backend, convolve(make_ctx(), darr(backend, xi, chunking),
                                    darr(backend, ki, "small"), method=method))
        np.testing.assert_array_equal(got, scipy.signal.convolve(xi, ki))
    got = run(backend, convolve(make_ctx(), darr(backend, xi, chunking), ki, mode="same"))
    np.testing.assert_allclose(got, scipy.signal.convolve(xi, ki, "same"), **TOL)
    xc = rng.standard_normal(20) + 1j * rng.standard_normal(20)
    kc = np.array([1 - 1j, 2, 0.5j])
    got = run(backend, convolve(make_ctx(), darr(backend, xc, chunking), kc, mode="same"))
    np.testing.assert_allclose(got, scipy.signal.convolve(xc, kc, "same"), **TOL)


def test_float32_stays_float32(make_ctx, backend, rng):
    x = rng.standard_normal(30).astype(np.float32)
    k = rng.standard_normal(5).astype(np.float32)
    out = convolve(make_ctx(), darr(backend, x, 7), darr(backend, k, 2), mode="same")
    assert out.dtype == np.float32
    np.testing.assert_allclose(run(backend, out), scipy.signal.convolve(x, k, "same"),
                               rtol=1e-4, atol=1e-5)


def test_inline_kernel_through_a_copying_backend(make_ctx, backend, rng):
    # an inline kernel is moved to the device in each task; in 'valid' mode with a kernel
    # larger than the input, the kernel becomes the chunked array (copied once)
    if backend.name != "cpu":
        pytest.skip("a NumPy stand-in for the device; the GPU runs the real thing")
    ctx = dataclasses.replace(make_ctx(), backend=COPYING)
    x, k = rng.standard_normal((5, 4)), rng.standard_normal((8, 6))
    for mode in ("full", "same", "valid"):
        got = run(COPYING, convolve(ctx, darr(COPYING, x, 2), k, mode=mode))
        np.testing.assert_allclose(got, scipy.signal.convolve(x, k, mode), **TOL)


def test_valid_mixed_sizes_is_an_error(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal((11, 13)))
    with pytest.raises(ValueError):  # scipy: neither operand is the larger everywhere
        scipy.signal.convolve(np.ones((11, 13)), np.ones((12, 2)), "valid")
    for kernel in (np.ones((12, 2)), darr(backend, np.ones((12, 2)), 2)):
        with pytest.raises(OpError) as info:
            convolve(make_ctx(), x, kernel, mode="valid")
        assert info.value.where == "mode"
        assert "(12, 2)" in str(info.value) and "(11, 13)" in str(info.value)


def test_errors(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal((6, 5)))

    def check(where, words, **params):
        with pytest.raises(InputError) as info:
            call(make_ctx(), "convolve", x, **params)
        assert info.value.where == where, info.value
        for w in words:
            assert w in str(info.value), (w, str(info.value))

    check("kernel", ["3 dimension(s), input has 2"], kernel=[[[1.0]]])
    check("kernel", ["1 dimension(s), input has 2"], kernel=[1, 2])
    check("axes", ["bad axes [2]"], kernel=[1, 2], axes=[2])
    check("axes", ["bad axes [0, -2]"], kernel=[[1, 2]], axes=[0, -2])
    check("kernel", ["kernel has 1 dimension(s) but axes lists 2"], kernel=[1, 2], axes=[0, 1])
    check("kernel", ["same length"], kernel=[[1, 2], [3]])
    check("kernel", ["numbers"], kernel=[["a", "b"]])
    check("kernel", ["must not be empty"], kernel=[[]])
    check("mode", ["expected"], kernel=[[1]], mode="circular")
    check("method", ["expected"], kernel=[[1]], method="winograd")
