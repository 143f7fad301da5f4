"""Array transforms (pipeline/ops/arrays.py) against NumPy, on every chunking and backend.

Tolerances (float64 inputs throughout):
- FFT: rtol 1e-10, atol 1e-9 (values grow like sqrt(n); the same pocketfft/cuFFT kernels,
  only the axis layout differs).
- reductions, cumulative ops, matmul, elementwise: rtol 1e-10, atol 1e-12 (summation
  order differs between chunkings).
- quantile: rtol 1e-12 (the same sort and interpolation, per chunk).
- svd: singular values rtol 1e-9, vectors and reconstructions atol 1e-9 (tsqr's QR then
  a small SVD is a different algorithm from LAPACK's, equal to rounding); the randomized
  (compressed) path on an exactly low-rank matrix rtol 1e-8.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.stats

from pipeline.errors import InputError, OpError
from tests.helpers import call, host
from tests.ops import chunking, chunks_for, darr, dask_backend, rng, run  # noqa: F401

pytestmark = pytest.mark.usefixtures("dask_backend")

FFT_TOL = {"rtol": 1e-10, "atol": 1e-9}
TOL = {"rtol": 1e-10, "atol": 1e-12}
QUANTILE_TOL = {"rtol": 1e-12, "atol": 1e-12}
SVD_TOL = {"rtol": 1e-9, "atol": 1e-9}


def complex_normal(rng, shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def raises(where: str, *words: str, error=OpError):
    """``pytest.raises`` for an op's error: ``where`` names the parameter, and the message
    mentions each of ``words``."""
    return _Raises(error, where, words)


class _Raises:
    def __init__(self, error, where, words):
        self.error, self.where, self.words = error, where, words

    def __enter__(self):
        self.ctx = pytest.raises(self.error)
        self.info = self.ctx.__enter__()
        return self.info

    def __exit__(self, *exc):
        suppressed = self.ctx.__exit__(*exc)
        e = self.info.value
        assert e.where == self.where, f"where={e.where!r}, expected {self.where!r}: {e}"
        for w in self.words:
            assert w in str(e), f"{w!r} not in {str(e)!r}"
        return suppressed


# --------------------------------------------------------------------------- fft family

@pytest.mark.parametrize("kind", ["fft", "ifft", "rfft", "irfft"])
@pytest.mark.parametrize("axis,n", [(0, None), (-1, 7), (1, 40), (-2, 1)])
def test_fft_matches_numpy(make_ctx, backend, rng, chunking, kind, axis, n):
    x = rng.standard_normal((9, 13)) if kind == "rfft" else complex_normal(rng, (9, 13))
    ref = getattr(np.fft, kind)
    for norm in (None, "backward", "ortho", "forward"):
        got = run(backend, call(make_ctx(), kind, darr(backend, x, chunking), axis=axis,
                                n=n, norm=norm))
        np.testing.assert_allclose(got, ref(x, n=n, axis=axis, norm=norm), **FFT_TOL)


@pytest.mark.parametrize("kind", ["fft", "rfft", "irfft", "fft2"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "int16", "complex64"])
def test_fft_of_each_input_dtype_matches_numpy_in_value_and_dtype(make_ctx, backend, rng,
                                                                  kind, dtype):
    # single precision stays single (the CPU backend runs scipy.fft, not numpy.fft: the
    # op declares the dtype its own function returns, which run() checks against the
    # computed one); values as NumPy's within single precision
    if kind == "rfft" and dtype == "complex64":
        pytest.skip("rfft needs a real input (test_fft_errors)")
    if dtype == "float16" and backend.array_module == "cupy":
        pytest.skip("half-precision FFTs on the GPU are not covered")
    x = rng.standard_normal((6, 16)) * 100
    x = (x + 1j * rng.standard_normal((6, 16)) if dtype == "complex64" else x).astype(dtype)
    got = run(backend, call(make_ctx(), kind, darr(backend, x, (4, 5))))
    want = getattr(np.fft, kind)(x)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


def test_fft_of_3d_array_along_middle_axis(make_ctx, backend, rng):
    x = rng.standard_normal((4, 11, 3))
    got = run(backend, call(make_ctx(), "rfft", darr(backend, x, (3, 4, 2)), axis=1))
    np.testing.assert_allclose(got, np.fft.rfft(x, axis=1), **FFT_TOL)


def test_irfft_inverts_rfft(make_ctx, backend, rng):
    x = rng.standard_normal((5, 17))
    spectrum = call(make_ctx(), "rfft", darr(backend, x, (2, 4)))
    back = run(backend, call(make_ctx(), "irfft", spectrum, n=17))
    np.testing.assert_allclose(back, x, **FFT_TOL)


def test_fft_errors(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal((4, 6)))
    with raises("axis", "out of range", "axis 2"):
        call(make_ctx(), "fft", x, axis=2)
    with raises("axis", "out of range"):
        call(make_ctx(), "irfft", x, axis=-3)
    with raises("n", "n must be >= 1"):
        call(make_ctx(), "fft", x, n=0)
    with raises("input", "real input"):
        call(make_ctx(), "rfft", x.astype(complex))
    with raises("norm", "expected", error=InputError):
        call(make_ctx(), "fft", x, norm="sideways")


@pytest.mark.parametrize("kind", ["fft2", "ifft2"])
@pytest.mark.parametrize("axes", [None, [0, 2], [2, 0], [1, -1]])
def test_fft2_matches_numpy(make_ctx, backend, rng, chunking, kind, axes):
    x = complex_normal(rng, (6, 7, 5))
    ref_axes = (-2, -1) if axes is None else axes
    params = {} if axes is None else {"axes": axes}
    for norm in (None, "ortho", "forward"):
        got = run(backend, call(make_ctx(), kind, darr(backend, x, chunking), norm=norm,
                                **params))
        want = getattr(np.fft, kind)(x, axes=ref_axes, norm=norm)
        np.testing.assert_allclose(got, want, **FFT_TOL)


def test_fft2_errors(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal((4, 6)))
    with raises("axes", "two axes"):
        call(make_ctx(), "fft2", x, axes=[0, 1, 1])
    with raises("axes", "must differ"):
        call(make_ctx(), "fft2", x, axes=[1, -1])
    with raises("axes", "out of range"):
        call(make_ctx(), "ifft2", x, axes=[0, 2])
    with raises("axes", "out of range"):
        call(make_ctx(), "fft2", darr(backend, rng.standard_normal(5)))


# --------------------------------------------------------------------------- matmul

@pytest.mark.parametrize("a_shape,b_shape", [
    ((13, 7), (7, 9)),          # matrix @ matrix
    ((13, 7), (7,)),            # matrix @ vector
    ((7,), (7, 9)),             # vector @ matrix
    ((7,), (7,)),               # inner product
    ((3, 13, 7), (7, 9)),       # a stack of matrices @ one matrix
    ((2, 1, 5, 7), (3, 7, 4)),  # stacks broadcast against each other
])
def test_matmul_matches_numpy(make_ctx, backend, rng, chunking, a_shape, b_shape):
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    got = run(backend, call(make_ctx(), "matmul", darr(backend, a, chunking),
                            darr(backend, b, chunking)))
    np.testing.assert_allclose(got, a @ b, **TOL)


def test_matmul_shape_mismatch(make_ctx, backend, rng):
    a = darr(backend, rng.standard_normal((4, 6)))
    b = darr(backend, rng.standard_normal((5, 3)))
    with raises("inputs", "shape mismatch", "(4, 6)", "(5, 3)", "6 != 5"):
        call(make_ctx(), "matmul", a, b)
    with raises("inputs", "shape mismatch", "6 != 5"):
        call(make_ctx(), "matmul", a, darr(backend, rng.standard_normal(5)))
    with raises("inputs", "at least one dimension"):
        call(make_ctx(), "matmul", darr(backend, np.float64(2.0)), a)


# --------------------------------------------------------------------------- transpose

@pytest.mark.parametrize("axes", [None, [1, 0, 2], [2, 0, 1], [-1, 0, -2]])
def test_transpose_matches_numpy(make_ctx, backend, rng, chunking, axes):
    x = rng.standard_normal((4, 5, 6))
    params = {} if axes is None else {"axes": axes}
    got = run(backend, call(make_ctx(), "transpose", darr(backend, x, chunking), **params))
    np.testing.assert_array_equal(got, np.transpose(x, axes))


@pytest.mark.parametrize("axes", [[0, 0], [0, 2], [0], [1, 0, 2], [-3, 0]])
def test_transpose_bad_axes(make_ctx, backend, rng, axes):
    x = darr(backend, rng.standard_normal((3, 4)))
    with raises("axes", "not a permutation of 0..1"):
        call(make_ctx(), "transpose", x, axes=axes)


# --------------------------------------------------------------------------- elementwise

def test_elementwise_params_and_broadcasting(make_ctx, backend, rng, chunking):
    a, b = rng.standard_normal((9, 7)), rng.standard_normal(7)
    got = run(backend, call(make_ctx(), "elementwise",
                            {"a": darr(backend, a, chunking), "b": darr(backend, b, chunking)},
                            expr="gain * a + b - offset / gain", params={"gain": 2.5,
                                                                         "offset": -1}))
    np.testing.assert_allclose(got, 2.5 * a + b - (-1) / 2.5, **TOL)


def test_elementwise_broadcasts_columns_against_rows(make_ctx, backend, rng, chunking):
    col, row = rng.standard_normal((6, 1)), rng.standard_normal((1, 5))
    got = run(backend, call(make_ctx(), "elementwise",
                            {"c": darr(backend, col, chunking), "r": darr(backend, row, chunking)},
                            expr="maximum(c, r) - minimum(c, r)"))
    np.testing.assert_allclose(got, np.abs(col - row), **TOL)


# (expr, the same with NumPy): the whole function table, operators and comparisons
EXPRESSIONS = [
    ("where(a > t, clip(a, lo, hi), b)", lambda a, b: np.where(a > 0.1, np.clip(a, -0.5, 0.5), b)),
    ("abs(a) + sqrt(abs(b)) + exp(-a * a)", lambda a, b: abs(a) + np.sqrt(abs(b)) + np.exp(-a * a)),
    ("log(abs(a) + 1) - log1p(abs(b))", lambda a, b: np.log(abs(a) + 1) - np.log1p(abs(b))),
    ("sin(a) * cos(b) + tan(a / 4)", lambda a, b: np.sin(a) * np.cos(b) + np.tan(a / 4)),
    ("arctan2(a, b)", np.arctan2),
    ("floor(a * 3) + ceil(b * 3) + round(a * 10) + round(b, 2)",
     lambda a, b: np.floor(a * 3) + np.ceil(b * 3) + np.round(a * 10) + np.round(b, 2)),
    ("a // 0.3 + a % 0.3 + b ** 2", lambda a, b: a // 0.3 + a % 0.3 + b ** 2),
    ("(lo < a) & (a <= hi) | ~(b != b)", lambda a, b: ((-0.5 < a) & (a <= 0.5)) | ~(b != b)),
    ("lo < a < hi", lambda a, b: (-0.5 < a) & (a < 0.5)),
    # log(a < 0) is NaN and 1 / False is inf, on purpose
    ("where(isnan(log(a)), 0, 1) + isfinite(1 / (a > 0))",
     lambda a, b: np.where(a < 0, 0, 1) + (a > 0)),
]


@pytest.mark.parametrize("expr,ref", EXPRESSIONS, ids=[e for e, _ in EXPRESSIONS])
def test_elementwise_functions(make_ctx, backend, rng, chunking, expr, ref):
    a, b = rng.standard_normal((8, 5)), rng.standard_normal((8, 5))
    params = {"t": 0.1, "lo": -0.5, "hi": 0.5}
    inputs = {"a": darr(backend, a, chunking), "b": darr(backend, b, chunking)}
    with np.errstate(divide="ignore", invalid="ignore"):  # log(<0), 1/0 on purpose
        got = run(backend, call(make_ctx(), "elementwise", inputs, expr=expr, params=params))
    want = ref(a, b)
    if want.dtype == bool:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, **TOL)


def test_elementwise_complex_functions(make_ctx, backend, rng, chunking):
    z = complex_normal(rng, (7, 6))
    got = run(backend, call(make_ctx(), "elementwise", {"z": darr(backend, z, chunking)},
                            expr="real(z)**2 + imag(z)**2 - abs(z * conj(z)) + angle(z)"))
    np.testing.assert_allclose(got, np.angle(z), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("expr,ref", [
    ("clip(a, b, 1)", lambda a, b: np.clip(a, b, 1)),
    ("clip(z, -1, 1)", lambda a, b: np.clip(a + 1j * b, -1, 1)),
    ("angle(a)", lambda a, b: np.angle(a)),
    ("angle(a) + 2 * clip(a, b, b + 1)", lambda a, b: np.angle(a) + 2 * np.clip(a, b, b + 1)),
])
def test_elementwise_clip_and_angle_are_numpys(make_ctx, backend, rng, expr, ref):
    """NaN bounds, -0.0 and NaN inputs, complex: CuPy's own clip and angle differ from
    NumPy's there (seen on an H200; the CuPy stand-in has CuPy's), the op does not.
    The last expression is one fused kernel on a GPU, the others one call each."""
    a, b = rng.standard_normal((9, 8)), rng.standard_normal((9, 8))
    a[0, :4], b[1, :4] = [-0.0, np.nan, 0.0, -np.inf], np.nan
    inputs = {"a": darr(backend, a), "b": darr(backend, b), "z": darr(backend, a + 1j * b)}
    inputs = {n: v for n, v in inputs.items() if n in expr}
    with np.errstate(invalid="ignore"):
        got = run(backend, call(make_ctx(), "elementwise", inputs, expr=expr))
        want = ref(a, b)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)  # NaN where NumPy has NaN


def test_elementwise_keeps_float32(make_ctx, backend, rng):
    a = rng.standard_normal(10).astype(np.float32)
    out = call(make_ctx(), "elementwise", {"a": darr(backend, a)}, expr="a * g + 1",
               params={"g": 2.0})
    assert out.dtype == np.float32
    np.testing.assert_allclose(run(backend, out), a * np.float32(2) + 1, rtol=1e-6)


def test_elementwise_errors(make_ctx, backend, rng):
    a = darr(backend, rng.standard_normal((4, 3)))
    b = darr(backend, rng.standard_normal((5, 2)))
    with raises("params", "both as input and param", "'a'"):
        call(make_ctx(), "elementwise", {"a": a}, expr="a + 1", params={"a": 1.0})
    with raises("expr", "cannot evaluate", "broadcast"):
        call(make_ctx(), "elementwise", {"a": a, "b": b}, expr="a + b")
    with raises("expr", "uses no input array"):
        call(make_ctx(), "elementwise", {"a": a}, expr="k * 2", params={"k": 1.0})
    # Dask's lazy graph lets this through; NumPy refuses unary + on booleans
    with raises("expr", "cannot evaluate", "positive"):
        call(make_ctx(), "elementwise", {"a": a}, expr="+(a > 0)")
    with raises("expr", "unknown name 'c'", error=InputError):
        call(make_ctx(), "elementwise", {"a": a}, expr="a + c")
    with raises("expr", "unknown function 'eval'", error=InputError):
        call(make_ctx(), "elementwise", {"a": a}, expr="eval(a)")
    with raises("expr", "attribute access", error=InputError):
        call(make_ctx(), "elementwise", {"a": a}, expr="a.T")
    with raises("params", "expected", error=InputError):
        call(make_ctx(), "elementwise", {"a": a}, expr="a", params={"k": "two"})


# --------------------------------------------------------------------------- reduce

HOWS = ["sum", "mean", "std", "var", "min", "max", "prod"]


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("axis", [0, -1, [0, 2], [2, -3, 1], None, []])
def test_reduce_matches_numpy(make_ctx, backend, rng, chunking, how, axis):
    x = rng.uniform(0.5, 1.5, (6, 5, 4))  # near 1, so prod stays finite
    params = {} if axis is None else {"axis": axis}
    got = run(backend, call(make_ctx(), "reduce", darr(backend, x, chunking), how=how,
                            **params))
    want = getattr(np, how)(x, axis=None if axis is None else tuple(np.atleast_1d(axis)))
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("how", ["std", "var"])
@pytest.mark.parametrize("ddof", [0, 1, 3])
def test_reduce_ddof(make_ctx, backend, rng, chunking, how, ddof):
    x = rng.standard_normal((7, 6))
    for axis in (0, [0, 1], None):
        got = run(backend, call(make_ctx(), "reduce", darr(backend, x, chunking), how=how,
                                axis=axis, ddof=ddof))
        ref_axis = tuple(axis) if isinstance(axis, list) else axis
        np.testing.assert_allclose(got, getattr(np, how)(x, axis=ref_axis, ddof=ddof), **TOL)


def test_reduce_errors(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal((4, 3)))
    with raises("ddof", "'ddof' applies to std and var", "sum"):
        call(make_ctx(), "reduce", x, how="sum", ddof=1)
    with raises("axis", "repeated axis", "[0, -2]"):
        call(make_ctx(), "reduce", x, how="mean", axis=[0, -2])
    with raises("axis", "out of range", "axis 2"):
        call(make_ctx(), "reduce", x, how="max", axis=2)
    with raises("axis", "out of range", "axis -3"):
        call(make_ctx(), "reduce", x, how="max", axis=[0, -3])
    with raises("how", "expected", error=InputError):
        call(make_ctx(), "reduce", x, how="median")
    with raises("how", "missing required parameter", error=InputError):
        call(make_ctx(), "reduce", x)
    with raises("ddof", "'ddof' applies to std and var", "sem"):
        call(make_ctx(), "reduce", x, how="sem", ddof=1)


@pytest.mark.parametrize("how", [*HOWS, "sem"])
@pytest.mark.parametrize("axis", [0, -1, [0, 2], None])
def test_reduce_keepdims_broadcasts_back(make_ctx, backend, rng, chunking, how, axis):
    x = rng.uniform(0.5, 1.5, (6, 5, 4))
    got = run(backend, call(make_ctx(), "reduce", darr(backend, x, chunking), how=how,
                            axis=axis, keepdims=True))
    ref_axis = tuple(axis) if isinstance(axis, list) else axis
    want = (scipy.stats.sem(x, axis=ref_axis, keepdims=True) if how == "sem"
            else getattr(np, how)(x, axis=ref_axis, keepdims=True))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_allclose(x - got, x - want, **TOL)


@pytest.mark.parametrize("axis", [0, 1, [0, 1], None])
def test_reduce_sem_is_the_monte_carlo_error(make_ctx, backend, rng, chunking, axis):
    x = rng.standard_normal((40, 7))
    got = run(backend, call(make_ctx(), "reduce", darr(backend, x, chunking), how="sem",
                            axis=axis))
    want = scipy.stats.sem(x, axis=tuple(axis) if isinstance(axis, list) else axis)
    np.testing.assert_allclose(got, want, **TOL)


def test_reduce_sem_keeps_float32(make_ctx, backend, rng):
    x = rng.standard_normal(50).astype(np.float32)
    out = call(make_ctx(), "reduce", darr(backend, x, 7), how="sem")
    assert out.dtype == np.float32
    np.testing.assert_allclose(run(backend, out), scipy.stats.sem(x), rtol=1e-5)


# --------------------------------------------------------------------------- cumsum/cumprod

@pytest.mark.parametrize("how", ["cumsum", "cumprod"])
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_cumulative_matches_numpy(make_ctx, backend, rng, chunking, how, axis):
    x = rng.uniform(0.5, 1.5, (7, 9))
    params = {} if axis is None else {"axis": axis}
    got = run(backend, call(make_ctx(), how, darr(backend, x, chunking), **params))
    np.testing.assert_allclose(got, getattr(np, how)(x, axis=axis), **TOL)


@pytest.mark.parametrize("how", ["cumsum", "cumprod"])
def test_cumulative_bad_axis(make_ctx, backend, rng, how):
    with raises("axis", "out of range", "axis 2"):
        call(make_ctx(), how, darr(backend, rng.standard_normal((3, 4))), axis=2)


# --------------------------------------------------------------------------- quantile

@pytest.mark.parametrize("q", [0.5, 0.0, 1.0, 0.37, [0.05, 0.5, 0.95], [1, 0], [0.25]])
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_quantile_matches_numpy(make_ctx, backend, rng, chunking, q, axis):
    x = rng.standard_normal((11, 8))
    params = {} if axis is None else {"axis": axis}
    got = run(backend, call(make_ctx(), "quantile", darr(backend, x, chunking), q=q, **params))
    np.testing.assert_allclose(got, np.quantile(x, q, axis=axis), **QUANTILE_TOL)


def test_quantile_of_3d_and_integers(make_ctx, backend, rng, chunking):
    x = rng.integers(-50, 50, (5, 6, 4))
    got = run(backend, call(make_ctx(), "quantile", darr(backend, x, chunking),
                            q=[0.1, 0.9], axis=1))
    np.testing.assert_allclose(got, np.quantile(x, [0.1, 0.9], axis=1), **QUANTILE_TOL)
    got = run(backend, call(make_ctx(), "quantile", darr(backend, x, chunking), q=0.3))
    np.testing.assert_allclose(got, np.quantile(x, 0.3), **QUANTILE_TOL)


@pytest.mark.parametrize("q", [1.5, -0.1, [0.5, 2], []])
def test_quantile_bad_q(make_ctx, backend, rng, q):
    with raises("q", "q must be in [0, 1]"):
        call(make_ctx(), "quantile", darr(backend, rng.standard_normal(5)), q=q)


def test_quantile_bad_axis_and_type(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal((3, 4)))
    with raises("axis", "out of range", "axis 2"):
        call(make_ctx(), "quantile", x, q=0.5, axis=2)
    with raises("q", "expected", error=InputError):
        call(make_ctx(), "quantile", x, q="median")


# --------------------------------------------------------------------------- histogram

@pytest.mark.parametrize("bins,range_", [
    (10, [-2, 2]),                      # values beyond the range are not counted
    (1, [-10, 10]),
    (7, [-0.5, 3.25]),
    ([-3, -1, -0.2, 0, 0.5, 3], None),  # uneven edges
    ([-1, 1], [-5, 5]),                 # numpy ignores range when edges are given
])
def test_histogram_matches_numpy(make_ctx, backend, rng, chunking, bins, range_):
    x = rng.standard_normal((13, 9))
    params = {} if range_ is None else {"range": range_}
    got = run(backend, call(make_ctx(), "histogram", darr(backend, x, chunking), bins=bins,
                            **params))
    want, _ = np.histogram(x, bins=bins, range=range_)
    np.testing.assert_array_equal(got, want)


def test_histogram_counts_the_right_edge(make_ctx, backend):
    # numpy's last bin is closed: a value equal to the upper edge is counted
    x = np.array([0.0, 0.5, 1.0, 1.0, 2.0])
    got = run(backend, call(make_ctx(), "histogram", darr(backend, x, 2), bins=2, range=[0, 1]))
    np.testing.assert_array_equal(got, [1, 3])


def test_histogram_errors(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal(20))
    with raises("bins", "bins must be >= 1"):
        call(make_ctx(), "histogram", x, bins=0, range=[0, 1])
    with raises("range", "'range' is required"):
        call(make_ctx(), "histogram", x, bins=5)
    with raises("bins", "increasing"):
        call(make_ctx(), "histogram", x, bins=[0, 2, 1])
    with raises("bins", "at least two"):
        call(make_ctx(), "histogram", x, bins=[1.0])
    with raises("range", "low < high", "[1, 1]"):
        call(make_ctx(), "histogram", x, bins=3, range=[1, 1])
    with raises("range", "[low, high]"):
        call(make_ctx(), "histogram", x, bins=3, range=[0, 1, 2])
    with raises("bins", "expected", error=InputError):
        call(make_ctx(), "histogram", x, bins="auto")


# --------------------------------------------------------------------------- svd / pick

def aligned(got, want, axis):
    """``got`` with each singular vector's sign flipped to match ``want`` (vectors are the
    columns when ``axis`` is 0, the rows when 1)."""
    dots = np.sum(got * want, axis=axis, keepdims=True)
    return got * np.where(dots < 0, -1, 1)


def check_uv(backend, result, x, k=None):
    u, s, vt = (run(backend, call(None, "pick", result, part=p)) for p in ("u", "s", "vt"))
    wu, ws, wvt = np.linalg.svd(x, full_matrices=False)
    if k is not None:
        wu, ws, wvt = wu[:, :k], ws[:k], wvt[:k]
    np.testing.assert_allclose(s, ws, **SVD_TOL)
    np.testing.assert_allclose(aligned(u, wu, 0), wu, **SVD_TOL)
    np.testing.assert_allclose(aligned(vt, wvt, 1), wvt, **SVD_TOL)
    if k is None:
        np.testing.assert_allclose((u * s) @ vt, x, **SVD_TOL)


@pytest.mark.parametrize("shape", [(40, 6), (6, 40), (12, 12)], ids=["tall", "wide", "square"])
def test_svd_exact(make_ctx, backend, rng, chunking, shape):
    x = rng.standard_normal(shape)
    s = run(backend, call(make_ctx(), "svd", darr(backend, x, chunking)))
    np.testing.assert_allclose(s, np.linalg.svd(x, compute_uv=False), **SVD_TOL)
    check_uv(backend, call(make_ctx(), "svd", darr(backend, x, chunking), compute_uv=True), x)


@pytest.mark.parametrize("shape", [(40, 6), (6, 40)], ids=["tall", "wide"])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_svd_truncated(make_ctx, backend, rng, chunking, shape, k):
    x = rng.standard_normal(shape)
    s = run(backend, call(make_ctx(), "svd", darr(backend, x, chunking), k=k))
    np.testing.assert_allclose(s, np.linalg.svd(x, compute_uv=False)[:k], **SVD_TOL)
    check_uv(backend, call(make_ctx(), "svd", darr(backend, x, chunking), k=k,
                           compute_uv=True), x, k)


@pytest.mark.parametrize("shape", [(200, 6), (6, 200), (40, 30)])
def test_svd_tsqr_over_many_row_chunks(make_ctx, backend, rng, shape):
    # the op re-chunks the long side to "auto"; a tiny chunk-size makes that many chunks,
    # as a big array would get, so tsqr's tree of QRs is exercised
    x = rng.standard_normal(shape)
    with dask.config.set({"array.chunk-size": "1KiB"}):
        result = call(make_ctx(), "svd", darr(backend, x, "small"), compute_uv=True)
        long_axis = 0 if shape[0] >= shape[1] else 1
        assert len((result["u"] if long_axis == 0 else result["vt"]).chunks[long_axis]) > 1
        check_uv(backend, result, x)


def test_svd_randomized_for_big_low_rank(make_ctx, backend, rng):
    # both sides > 4096 (no exact path): the randomized svd recovers an exactly rank-3
    # matrix; built lazily as a product so nothing big is held
    n = 4100
    a, b = rng.standard_normal((n, 3)), rng.standard_normal((3, n))
    x = darr(backend, a, (2050, 3)) @ darr(backend, b, (3, 2050))
    result = call(make_ctx(), "svd", x, k=3, compute_uv=True)
    # one compute for the three parts: each alone would redo the whole randomized svd
    u, s, vt = (host(v) for v in dask.compute(result["u"], result["s"], result["vt"],
                                               scheduler="sync"))
    assert (u.shape, s.shape, vt.shape) == ((n, 3), (3,), (3, n))
    # the singular values of a @ b, from the small factors: a = qa ra, b.T = qb rb
    _, ra = np.linalg.qr(a)
    _, rb = np.linalg.qr(b.T)
    np.testing.assert_allclose(s, np.linalg.svd(ra @ rb.T, compute_uv=False), rtol=1e-8)
    rows = rng.choice(n, 50, replace=False)
    np.testing.assert_allclose((u[rows] * s) @ vt, a[rows] @ b, rtol=1e-8, atol=1e-8)


def test_svd_errors(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal((5, 3)))
    with raises("input", "2-D"):
        call(make_ctx(), "svd", darr(backend, rng.standard_normal(4)))
    with raises("k", "k must be in 1..3", "got 0"):
        call(make_ctx(), "svd", x, k=0)
    with raises("k", "k must be in 1..3", "got 4"):
        call(make_ctx(), "svd", x, k=4)
    big = da.zeros((4100, 4100), chunks=1025)
    with raises("k", "4100x4100", "4096"):
        call(make_ctx(), "svd", big)


def test_pick_errors(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal((5, 3)))
    with raises("input", "single array"):
        call(make_ctx(), "pick", x, part="u")
    with raises("part", "no part 'v'") as info:
        call(make_ctx(), "pick", call(make_ctx(), "svd", x, compute_uv=True), part="v")
    assert info.value.hint == "parts: u, s, vt"


# --------------------------------------------------------------------------- rechunk

@pytest.mark.parametrize("chunks,expected", [
    ("auto", ((23,), (17,))),
    ([4, -1], ((4,) * 5 + (3,), (17,))),
    (5, ((5,) * 4 + (3,), (5, 5, 5, 2))),
    (-1, ((23,), (17,))),
    ([[20, 3], "auto"], ((20, 3), (17,))),
    ([None, 6], (None, (6, 6, 5))),     # null: keep that axis's chunks
    ("1 MiB", ((23,), (17,))),
])
def test_rechunk(make_ctx, backend, rng, chunking, chunks, expected):
    x = rng.standard_normal((23, 17))
    arr = darr(backend, x, chunking)
    out = call(make_ctx(), "rechunk", arr, chunks=chunks)
    want = tuple(arr.chunks[i] if e is None else e for i, e in enumerate(expected))
    assert out.chunks == want
    np.testing.assert_array_equal(run(backend, out), x)


def test_rechunk_byte_size(make_ctx, backend, rng):
    x = rng.standard_normal((100, 50))
    out = call(make_ctx(), "rechunk", darr(backend, x, "one"), chunks="1 KiB")
    sizes = [a * b * 8 for a in out.chunks[0] for b in out.chunks[1]]
    assert max(sizes) <= 1024 and out.npartitions > 1
    np.testing.assert_array_equal(run(backend, out), x)


@pytest.mark.parametrize("chunks,words", [
    ([3], ["1 entries", "2 axes"]),
    ([4, 4, 4], ["3 entries", "2 axes"]),   # dask used to ignore the extra entry
    ([0, 5], ["chunk size 0"]),              # dask: ZeroDivisionError
    (0, ["must be >= 1"]),
    (-3, ["must be >= 1"]),
    ([2.5, 3], ["chunk size 2.5"]),
    ([True, 3], ["chunk size True"]),
    ([[4, -1], 3], ["explicit sizes"]),
    ([[5, 5], 3], ["bad chunks", "add up"]),
    ("banana", ["bad chunks 'banana'"]),
])
def test_rechunk_bad_chunks(make_ctx, backend, rng, chunks, words):
    with raises("chunks", *words):
        call(make_ctx(), "rechunk", darr(backend, rng.standard_normal((8, 6))), chunks=chunks)
