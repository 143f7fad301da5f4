"""``window``, ``kernel`` and ``segments`` (pipeline/ops/signal.py) against SciPy / NumPy.

Tolerances:
- window, kernel: rtol 1e-14 (the same formulas; the kernel's outer products and
  normalisation round in another order than ndimage's separable passes: atol 1e-16).
- segments: exact (it only copies samples).
- Welch composed from the ops: rtol 1e-10 against ``scipy.signal.welch`` (float64; the
  mean over segments sums in another order).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from pipeline.errors import InputError, OpError
from tests.helpers import call
from tests.ops import COPYING, chunking, darr, dask_backend, rng, run  # noqa: F401

pytestmark = pytest.mark.usefixtures("dask_backend")

TOL = {"rtol": 1e-14, "atol": 1e-16}


def check_raises(fn, where, *words, error=OpError):
    with pytest.raises(error) as info:
        fn()
    assert info.value.where == where, f"where={info.value.where!r}: {info.value}"
    for w in words:
        assert w in str(info.value), (w, str(info.value))


# --------------------------------------------------------------------------- window

@pytest.mark.parametrize("name,param", [("hann", None), ("hamming", None), ("blackman", None),
                                        ("boxcar", None), ("kaiser", 8.6), ("tukey", 0.3),
                                        ("gaussian", 7.0)])
@pytest.mark.parametrize("sym", [False, True])
def test_window_matches_scipy(make_ctx, backend, name, param, sym):
    spec = name if param is None else (name, param)
    for length in (1, 16, 33):
        got = run(backend, call(make_ctx(), "window", name=name, param=param, length=length,
                                sym=sym))
        np.testing.assert_allclose(got, scipy.signal.get_window(spec, length, fftbins=not sym),
                                   **TOL)


def test_window_float32_and_default_is_periodic_hann(make_ctx, backend):
    got = run(backend, call(make_ctx(), "window", length=64, dtype="float32"))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, scipy.signal.get_window("hann", 64), rtol=1e-6)


def test_window_through_a_copying_backend(make_ctx, backend):
    if backend.name != "cpu":
        pytest.skip("a NumPy stand-in for the device; the GPU runs the real thing")
    ctx = dataclasses.replace(make_ctx(), backend=COPYING)
    got = run(COPYING, call(ctx, "window", name="hamming", length=10))
    np.testing.assert_allclose(got, scipy.signal.get_window("hamming", 10), **TOL)


def test_window_errors(make_ctx, backend):
    ctx = make_ctx()
    check_raises(lambda: call(ctx, "window", name="nope", length=8), "name", "nope")
    check_raises(lambda: call(ctx, "window", name="kaiser", length=8), "param", "kaiser")
    check_raises(lambda: call(ctx, "window", name="hann", param=2.0, length=8), "param",
                 "does not allow parameters")
    check_raises(lambda: call(ctx, "window", length=0), "length", "length must be >= 1")
    check_raises(lambda: call(ctx, "window", length=8, dtype="int8"), "dtype", "int8")
    check_raises(lambda: call(ctx, "window", length=8.5), "length", "expected integer",
                 error=InputError)


# --------------------------------------------------------------------------- kernel

def impulse_response(size: int, ndim: int, sigma: float) -> np.ndarray:
    """ndimage's Gaussian kernel: the filter applied to a centred unit impulse."""
    delta = np.zeros((size,) * ndim)
    delta[(size // 2,) * ndim] = 1.0
    return scipy.ndimage.gaussian_filter(delta, sigma, mode="constant",
                                         truncate=(size - 1) / 2 / sigma)


@pytest.mark.parametrize("size,sigma,ndim", [(1, 1.0, 1), (5, 1.0, 1), (61, 10.0, 1),
                                             (5, 1.0, 2), (21, 3.0, 2), (61, 10.0, 2),
                                             (7, 0.7, 2), (9, 1.5, 3)])
def test_gaussian_kernel_is_ndimages(make_ctx, backend, size, sigma, ndim):
    got = run(backend, call(make_ctx(), "kernel", kind="gaussian", size=size, sigma=sigma,
                            ndim=ndim))
    assert got.shape == (size,) * ndim
    np.testing.assert_allclose(got, impulse_response(size, ndim, sigma), rtol=1e-12,
                               atol=1e-17)
    assert got.sum() == pytest.approx(1.0, rel=1e-14)


def test_box_and_disk_kernels(make_ctx, backend):
    box = run(backend, call(make_ctx(), "kernel", kind="box", size=4))
    np.testing.assert_allclose(box, np.full((4, 4), 1 / 16), **TOL)
    disk = run(backend, call(make_ctx(), "kernel", kind="disk", size=7))
    x = np.arange(7) - 3
    inside = np.hypot(x[:, None], x[None, :]) <= 3
    np.testing.assert_allclose(disk, inside / inside.sum(), **TOL)
    assert disk[0, 0] == 0 and disk[3, 0] > 0
    disk3 = run(backend, call(make_ctx(), "kernel", kind="disk", size=5, ndim=3,
                              dtype="float32"))
    assert disk3.dtype == np.float32 and disk3.shape == (5, 5, 5)


def test_kernel_errors(make_ctx, backend):
    ctx = make_ctx()
    check_raises(lambda: call(ctx, "kernel", kind="gaussian", size=5), "sigma", "required")
    check_raises(lambda: call(ctx, "kernel", kind="box", size=5, sigma=1.0), "sigma",
                 "does not apply to kind box")
    check_raises(lambda: call(ctx, "kernel", kind="gaussian", size=5, sigma=0.0), "sigma",
                 "> 0")
    check_raises(lambda: call(ctx, "kernel", kind="box", size=0), "size", ">= 1")
    check_raises(lambda: call(ctx, "kernel", kind="box", size=3, ndim=0), "ndim", ">= 1")
    check_raises(lambda: call(ctx, "kernel", kind="box", size=5000), "size", "too large")
    check_raises(lambda: call(ctx, "kernel", kind="sobel", size=3), "kind", "expected",
                 error=InputError)


# --------------------------------------------------------------------------- segments

def reference_segments(x, nperseg, noverlap, axis):
    step = nperseg - noverlap
    x = np.moveaxis(x, axis, -1)
    nseg = (x.shape[-1] - noverlap) // step
    out = np.stack([x[..., i * step:i * step + nperseg] for i in range(nseg)], axis=-2)
    return np.moveaxis(out, (-2, -1), (axis % (x.ndim), axis % (x.ndim) + 1))


@pytest.mark.parametrize("nperseg,noverlap", [(8, None), (8, 0), (8, 7), (5, 2), (30, 10),
                                              (1, 0)])
def test_segments_match_slicing(make_ctx, backend, rng, chunking, nperseg, noverlap):
    x = rng.standard_normal((3, 30))
    got = run(backend, call(make_ctx(), "segments", darr(backend, x, chunking),
                            nperseg=nperseg, noverlap=noverlap))
    want = reference_segments(x, nperseg, nperseg // 2 if noverlap is None else noverlap, -1)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_segments_of_3d_along_any_axis(make_ctx, backend, rng, chunking, axis):
    x = rng.standard_normal((13, 11, 12))
    got = run(backend, call(make_ctx(), "segments", darr(backend, x, chunking), nperseg=4,
                            noverlap=1, axis=axis))
    want = reference_segments(x, 4, 1, axis)
    assert got.ndim == 4
    np.testing.assert_array_equal(got, want)


def test_segments_errors(make_ctx, backend, rng):
    x = darr(backend, rng.standard_normal((2, 10)))
    ctx = make_ctx()
    check_raises(lambda: call(ctx, "segments", x, nperseg=11), "nperseg", "1..10")
    check_raises(lambda: call(ctx, "segments", x, nperseg=0), "nperseg", "1..10")
    check_raises(lambda: call(ctx, "segments", x, nperseg=4, noverlap=4), "noverlap", "0..3")
    check_raises(lambda: call(ctx, "segments", x, nperseg=4, noverlap=-1), "noverlap")
    check_raises(lambda: call(ctx, "segments", x, nperseg=4, axis=2), "axis", "out of range")


# --------------------------------------------------------------------------- Welch from ops

@pytest.mark.parametrize("nperseg,noverlap,n", [(64, None, 1000), (50, 10, 777), (33, 0, 99)])
def test_welch_composed_from_ops_equals_scipy(make_ctx, backend, rng, chunking, nperseg,
                                             noverlap, n):
    """The welch_psd workflow's stages, called directly: scipy.signal.welch's defaults."""
    x = rng.standard_normal((4, n))
    ctx = make_ctx()
    frames = call(ctx, "segments", darr(backend, x, chunking), nperseg=nperseg,
                  noverlap=noverlap)
    mean = call(ctx, "reduce", frames, how="mean", axis=-1, keepdims=True)
    w = call(ctx, "window", length=nperseg)
    tapered = call(ctx, "elementwise", {"x": frames, "m": mean, "w": w}, expr="(x - m) * w")
    spectra = call(ctx, "rfft", tapered)
    energy = call(ctx, "reduce", call(ctx, "elementwise", {"w": w}, expr="w * w"), how="sum")
    k = call(ctx, "arange", stop=nperseg // 2 + 1)
    scale = call(ctx, "elementwise", {"k": k, "e": energy},
                 expr="where((k > 0) & (k < n / 2), 2 / e, 1 / e)", params={"n": nperseg})
    density = call(ctx, "elementwise", {"z": spectra, "s": scale},
                   expr="(real(z)**2 + imag(z)**2) * s")
    psd = run(backend, call(ctx, "reduce", density, how="mean", axis=1))
    _, want = scipy.signal.welch(x, nperseg=nperseg, noverlap=noverlap)
    np.testing.assert_allclose(psd, want, rtol=1e-10, atol=1e-14)
