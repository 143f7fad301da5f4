"""Compiled element-wise expressions (pipeline/kernels) against the interpreted path:
every dtype the language takes, every engine, fresh random inputs with NaN, inf and 0.

Tolerances: the blocked NumPy path makes the interpreted path's own calls, so it is held
to bit equality. numba's loop rounds each float32 / float64 operation as NumPy does, but
its transcendental functions (libm) may differ from NumPy's SIMD ones in the last bit:
rtol 1e-5 for float32, 1e-12 for float64, plus 4 units in the last place of the results'
typical size where two terms cancel, and NaN exactly where NumPy has NaN.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest

from pipeline import expr as expr_lang
from pipeline import kernels
from pipeline.kernels import blocked, choose, chunk, cupy_gpu, numba_cpu
from pipeline.kernels.chunk import ExprKernel
from tests.conftest import requires_gpu, requires_standin
from tests.ops import rng  # noqa: F401  - the seeded, printed random generator

ROOT = Path(__file__).resolve().parent.parent
DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64", "complex64", "complex128"]
EXPRESSIONS = [
    "2*a + 3*b*b - 1.5*a*b + 0.5",
    "a / b + a // b - a % b",
    "a ** 2 + b ** 0.5 - a ** -1 + abs(b) ** a",
    "where(a > b, a - b, -(b - a) * 2) + (a == b) + (a != 0)",
    "((a > 0) & (b < 1) | ~(a >= b)) & (0 < a <= 3)",
    "sqrt(abs(a)) * exp(0 - abs(a)) + sin(a) * cos(b) - tan(b / 4)",
    "log(abs(a) + 1) - log1p(abs(b)) + arctan2(a, b)",
    "maximum(a, b) - minimum(a, 0.5) + clip(a, -1, 1)",
    "maximum(a, b) * 2", "minimum(a, b) * 2", "clip(a, b, 1) * 2",  # NaN on either side
    "floor(a * 3) + ceil(b * 3) + round(a * 10) + round(b, 2)",
    "where(isnan(a), 0, a) + isfinite(b) * 1.0 + real(a) - imag(b) + conj(a)",
    "angle(a) + real(b) * imag(a)",
    "a & b | ~a",
    "-a + +b - 1e999 * (a == 0)",
    "((((0.5*a + 1.5)*a - 2.0)*a + 0.25)*a - 3.0)*a + b*b*0.125 - b + 7.0",
]


def sample(rng, dtype: str, shape) -> np.ndarray:
    """Random values of ``dtype`` with the edge values mixed in (0, and NaN / inf /
    -0.0 for floats)."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = max(info.min, -50), min(info.max, 50)
        x = rng.integers(lo, hi + 1, shape).astype(dt)
    else:
        real = rng.standard_normal(shape) * 3
        x = (real + 1j * rng.standard_normal(shape)).astype(dt) if dt.kind == "c" \
            else real.astype(dt)
        flat = x.reshape(-1)
        flat[rng.choice(flat.size, 4, replace=False)] = [np.nan, np.inf, -np.inf, -0.0]
    x.reshape(-1)[rng.choice(x.size, 3, replace=False)] = 0
    return x


def interpreted(parsed, values):
    with np.errstate(all="ignore"):
        return parsed(blocked.NUMPY_FUNCTIONS, values)


def assert_same(got, want, dtype: str, exact: bool):
    assert got.dtype == want.dtype and got.shape == want.shape
    if exact or want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)  # NaN == NaN here
    else:
        single = want.dtype in (np.float32, np.complex64)
        finite = np.abs(want[np.isfinite(want)])
        scale = max(1.0, float(np.median(finite))) if finite.size else 1.0
        atol = 4 * np.finfo(np.float32 if single else np.float64).eps * scale
        np.testing.assert_allclose(got, want, rtol=1e-5 if single else 1e-12, atol=atol,
                                   equal_nan=True)


def cases():
    for dtype in DTYPES:
        for text in EXPRESSIONS:
            yield pytest.param(dtype, text, id=f"{dtype}-{text[:30]}")


def case(rng, dtype: str, text: str, finite_complex: bool = False):
    """``(parsed, {name: input}, interpreted result)`` for ``text`` on fresh inputs of
    ``dtype`` (the test skips where NumPy refuses the expression on that dtype);
    ``finite_complex``: no inf / NaN in complex inputs."""
    a, b = sample(rng, dtype, (37, 23)), sample(rng, dtype, (37, 23))
    if finite_complex and dtype.startswith("complex"):
        a[~np.isfinite(a)], b[~np.isfinite(b)] = 1, 1
    parsed = expr_lang.parse(text, ["a", "b"])
    values = {n: v for n, v in {"a": a, "b": b}.items() if n in parsed.names}
    try:
        return parsed, values, interpreted(parsed, values)
    except (TypeError, ValueError, OverflowError):
        pytest.skip(f"NumPy refuses {text!r} on {dtype}")


@pytest.mark.parametrize("dtype,text", list(cases()))
def test_every_engine_equals_the_interpreted_path(dtype, text, rng):
    parsed, values, want = case(rng, dtype, text)
    for engine in ("blocked", "numba"):
        try:
            src = numba_cpu.source(parsed, {n: v.dtype.name for n, v in values.items()}, {})
        except numba_cpu.Ineligible:
            if engine == "numba":
                assert dtype not in ("float32", "float64") or "round(b, 2)" in text \
                    or "angle" in text or "&" in text or "isfinite" in text \
                    or "1e999" in text, f"numba declined {text!r} on {dtype}"
                continue
            src = None
        kernel = ExprKernel(text=text, names=tuple(values), params=(),
                            out_dtype=want.dtype.name, engine=engine, numba_source=src)
        # a small block size so the 37 x 23 chunk spans many blocks
        got = kernel(*values.values()) if engine == "numba" else blocked.evaluate(
            parsed, values, {}, want.dtype, block_bytes=64)
        assert_same(got, want, dtype, exact=engine == "blocked")


@pytest.mark.parametrize("engine", ["blocked", "numba"])
def test_dask_chunks_broadcasting_and_params(engine, rng, monkeypatch):
    monkeypatch.setenv(choose.ENV, engine)
    a = sample(rng, "float32", (64, 48))
    row = sample(rng, "float32", (48,))
    parsed = expr_lang.parse("g * a * a + row * a - off", ["a", "row", "g", "off"])
    inputs = {"a": da.from_array(a, chunks=(16, 24)), "row": da.from_array(row, chunks=24)}
    params = {"g": 2.5, "off": 1}
    out = kernels.elementwise(parsed, inputs, params, (64, 48))
    assert out is not None and out.dtype == np.float32
    with dask.config.set(scheduler="sync"):
        got = out.compute()
    want = interpreted(parsed, {"a": a, "row": row, **params})
    assert_same(got, want, "float32", exact=engine == "blocked")


def test_the_choice_follows_the_measured_costs(monkeypatch):
    monkeypatch.delenv(choose.ENV, raising=False)
    arith = choose.operations(expr_lang.parse("2*a + 3*b*b - 1.5*a*b + 0.5", ["a", "b"]).tree)
    assert arith.count("*") == 5 and arith.count("+") == 2
    # a small job: numba's start-up is not earned back
    small = choose.pick(arith, "float32", 10**6, 2, None)
    assert small.engine == "blocked"
    # a huge one: numba's loop wins when it can compile the expression ...
    huge = choose.pick(arith, "float32", 10**12, 2, None)
    assert huge.engine == "numba", huge
    # ... and the blocked path when numba cannot
    assert choose.pick(arith, "float32", 10**12, 2, "not installed").engine == "blocked"
    assert choose.pick(["sqrt"], "float32", 10**12, 2, None).engine == "numpy"
    monkeypatch.setenv(choose.ENV, "numpy")
    assert choose.pick(arith, "float32", 10**12, 2, None).engine == "numpy"


def test_without_numba_the_blocked_path_runs(rng, monkeypatch):
    import importlib.util

    monkeypatch.setenv(choose.ENV, "numba")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba" else real(name, *a))
    a = sample(rng, "float64", (10, 10))
    parsed = expr_lang.parse("a * a + 2 * a", ["a"])
    kernel, choice = kernels.plan(parsed, {"a": a}, {}, a.shape)
    assert kernel.engine == "blocked" and "not installed" in choice.reason
    # a worker without numba, given a numba kernel: the NumPy path, same values
    src = numba_cpu.source(parsed, {"a": "float64"}, {})
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    monkeypatch.setattr(numba_cpu, "_KERNELS", {})
    numba_kernel = ExprKernel(parsed.text, ("a",), (), "float64", "numba", src)
    assert_same(numba_kernel(a), interpreted(parsed, {"a": a}), "float64", exact=True)


def test_numba_starts_no_thread_pool(rng):
    pytest.importorskip("numba")
    from numba.np.ufunc import parallel

    a = sample(rng, "float32", (100,))
    parsed = expr_lang.parse("a * a + 1", ["a"])
    src = numba_cpu.source(parsed, {"a": "float32"}, {})
    assert "parallel" not in src and "nogil=True" in src
    ExprKernel(parsed.text, ("a",), (), "float32", "numba", src)(a)
    assert not parallel._is_initialized


CHILD = """
import sys, numpy as np
from pipeline import expr
from pipeline.kernels import numba_cpu
p = expr.parse("a * a * 0.25 - a / 3 + 1", ["a"])
k = numba_cpu.compile_kernel(numba_cpu.source(p, {"a": "float64"}, {}))
print(float(numba_cpu.evaluate(k, [np.arange(5.0)], "float64").sum()))
"""


def test_many_processes_share_one_kernel_cache(tmp_path):
    """Three processes compile the same kernel into one cache folder at the same time:
    each gets the right answer, and the folder holds one source file and numba's cache."""
    pytest.importorskip("numba")
    env = {**os.environ, "PIPELINE_KERNEL_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    want = float((np.arange(5.0) ** 2 * 0.25 - np.arange(5.0) / 3 + 1).sum())
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert float(out) == pytest.approx(want)
    assert len(list(tmp_path.glob("pipeline_kernel_*.py"))) == 1
    assert not list(tmp_path.glob(".*.tmp"))
    assert list(tmp_path.glob("__pycache__/*.nbi")), "numba's cache index was not written"


def test_an_unwritable_cache_compiles_in_memory(tmp_path, monkeypatch, rng):
    pytest.importorskip("numba")
    monkeypatch.setattr(numba_cpu, "cache_dir", lambda: None)
    monkeypatch.setattr(numba_cpu, "_KERNELS", {})
    parsed = expr_lang.parse("a * 3 - 1", ["a"])
    a = sample(rng, "float64", (20,))
    kernel = numba_cpu.compile_kernel(numba_cpu.source(parsed, {"a": "float64"}, {}))
    assert_same(numba_cpu.evaluate(kernel, [a], "float64"), interpreted(parsed, {"a": a}),
                "float64", exact=False)


class _FakeCupy:
    """NumPy under CuPy's names, with a ``fuse`` that traces like CuPy's: it calls the
    function with the arrays. ``how`` is "fuses", "raises" (the fused call fails) or
    "float32" (the kernel's result is of another type than the expression's)."""

    def __init__(self, how: str):
        self.how, self.fused_calls = how, 0
        for attr in cupy_gpu.CUPY_NAMES.values():
            setattr(self, attr, getattr(np, attr))

    def fuse(self, kernel_name=None):
        def wrap(fn):
            def fused(*arrays):
                self.fused_calls += 1
                if self.how == "raises":
                    raise NotImplementedError("not fusable")
                out = fn(*arrays)
                return out.astype(np.float32) if self.how == "float32" else out
            return fused
        return wrap


@pytest.mark.parametrize("how", ["fuses", "raises", "float32"])
def test_gpu_path_fuses_or_falls_back(how, rng, monkeypatch):
    fake = _FakeCupy(how)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cupy_gpu, "_FUSED", {})
    monkeypatch.setattr(cupy_gpu, "_FAILED", set())
    parsed = expr_lang.parse("g * a + sqrt(abs(a))", ["a", "g"])
    a = sample(rng, "float64", (30,))
    want = interpreted(parsed, {"a": a, "g": 2.0})
    for _ in range(2):
        with np.errstate(all="ignore"):  # inf - inf in the sample, on purpose
            got = cupy_gpu.evaluate(parsed, ("a",), {"g": 2.0}, [a], want.dtype)
        assert_same(got, want, "float64", exact=True)
    # a failed fusion, or one of the wrong type, is not tried again
    assert fake.fused_calls == (2 if how == "fuses" else 1)


def test_cupy_names_exist_in_the_real_cupy():
    cupy = pytest.importorskip("cupy")
    missing = [attr for attr in cupy_gpu.CUPY_NAMES.values() if not hasattr(cupy, attr)]
    assert not missing and callable(cupy.fuse)
    assert set(cupy_gpu.CUPY_NAMES) == set(expr_lang.FUNCTIONS)


FUSE_DTYPES = ["int32", "float32", "float64", "complex64"]
# cupy.fuse types a Python constant by its value (``isfinite(b) * 1.0``: narrower than
# float64), NumPy 2 by the array's kind (float64): the kernel is refused for its type and
# the expression runs one CuPy call per operation, with NumPy's types (seen on an H200)
TYPED_BY_VALUE = {"where(isnan(a), 0, a) + isfinite(b) * 1.0 + real(a) - imag(b) + conj(a)"}


@pytest.mark.parametrize("dtype,text", [
    pytest.param(d, t, id=f"{d}-{t[:30]}", marks=pytest.mark.gpu)
    for d in FUSE_DTYPES for t in EXPRESSIONS])
@pytest.mark.parametrize("where", [
    pytest.param("gpu", marks=[requires_gpu]),
    pytest.param("standin", marks=[requires_standin, pytest.mark.standin])])
def test_cupy_fuse_equals_the_interpreted_path(where, dtype, text, rng, monkeypatch):
    """Each expression as one fused CuPy kernel: it must fuse (no silent fall back to
    one call per operation), give the interpreted path's type and NumPy's values. On a
    GPU the values are compared where the inputs are finite and not zero: at inf, NaN
    and 0, CuPy's ``//``, ``%`` and ``**`` follow CUDA, not NumPy (docs/gpu.md has the
    table ``benchmarks/gpu_proof.py semantics`` measured). On the stand-in, ``fuse``
    runs the function unfused on NumPy: every value, and the test's own logic, in CI."""
    import cupy

    monkeypatch.setattr(cupy_gpu, "_FUSED", {})
    monkeypatch.setattr(cupy_gpu, "_FAILED", set())
    # complex inf / NaN arithmetic is not NumPy's anywhere
    parsed, values, want = case(rng, dtype, text, finite_complex=True)
    with np.errstate(all="ignore"):
        got = cupy_gpu.evaluate(parsed, tuple(values), {},
                                [cupy.asarray(v) for v in values.values()], want.dtype)
    assert not cupy_gpu._FAILED or text in TYPED_BY_VALUE, \
        f"cupy.fuse could not fuse {text!r} on {dtype}"
    got = cupy.asnumpy(got)
    if where == "gpu":
        ordinary = np.logical_and.reduce([np.isfinite(v) & (v != 0) for v in values.values()])
        assert got.dtype == want.dtype
        got, want = got[ordinary], want[ordinary]
    assert_same(got, want, dtype, exact=False)


FRAME_EXPRESSIONS = [
    "2*a + 3*b*b - 1.5*a*b + 0.5",
    "where(isnan(a), 0, a) * 2 + clip(b, -1, 1)",
    "sqrt(abs(a)) * exp(0 - abs(b)) + round(a, 2) - floor(b)",
    "maximum(a, b) / minimum(a, 0.5) - a // b + a % b",
    "a ** 2 + (a > b) * 1.5",
]


@pytest.mark.parametrize("text", FRAME_EXPRESSIONS)
def test_frame_expressions_on_numpy_blocks_equal_pandas(text, rng):
    import pandas as pd

    from pipeline.ops import frame_expr

    part = pd.DataFrame({"a": sample(rng, "float64", (5000,)),
                         "b": sample(rng, "float64", (5000,)),
                         "k": rng.integers(0, 5, 5000)}, index=rng.permutation(5000) + 100)
    parsed = expr_lang.parse(text, ["a", "b", "k"])
    with np.errstate(all="ignore"):
        want = parsed(frame_expr.FRAME_FUNCTIONS, {n: part[n] for n in parsed.names})
        fast = frame_expr._blocked(parsed, part)
    assert fast is not None, "the blocked path was not taken"
    assert fast.dtype == want.dtype
    pd.testing.assert_index_equal(fast.index, want.index)
    np.testing.assert_array_equal(fast.to_numpy(), want.to_numpy())


def test_frame_expressions_left_to_pandas(rng):
    import pandas as pd

    from pipeline.ops import frame_expr

    part = pd.DataFrame({"a": sample(rng, "float64", (50,)), "i": np.arange(50),
                         "s": ["x"] * 50, "f": sample(rng, "float32", (50,))})
    names = ["a", "i", "s", "f"]
    for text in ["a > 0", "a * 2", "i // 0 + a", "(s == 'x') * a + 1", "f * 2 + a"]:
        assert frame_expr._blocked(expr_lang.parse(text, names), part) is None, text


def test_a_cache_folder_others_can_write_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # as a folder in a shared /tmp would be
    monkeypatch.setenv("PIPELINE_KERNEL_CACHE", str(shared))
    assert numba_cpu.cache_dir() is None
    shared.chmod(0o700)
    assert numba_cpu.cache_dir() == shared


def test_a_kernel_numba_cannot_build_runs_on_numpy(rng, monkeypatch):
    numba = pytest.importorskip("numba")
    parsed = expr_lang.parse("a * a + 1", ["a"])
    a = sample(rng, "float64", (50,))
    monkeypatch.setattr(numba_cpu, "_KERNELS", {})
    monkeypatch.setattr(chunk, "_FAILED", set())

    def broken(src):
        raise numba.core.errors.TypingError("no such thing")

    monkeypatch.setattr(numba_cpu, "compile_kernel", broken)
    kernel = ExprKernel(parsed.text, ("a",), (), "float64", "numba",
                        numba_cpu.source(parsed, {"a": "float64"}, {}))
    assert_same(kernel(a), interpreted(parsed, {"a": a}), "float64", exact=True)
    # not tried again in this process
    monkeypatch.setattr(numba_cpu, "compile_kernel", lambda src: pytest.fail("retried"))
    kernel(a)
