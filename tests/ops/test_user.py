"""map_blocks / map_partitions with user functions (pipeline/ops/user.py), against NumPy and
pandas on fresh random data, on both backends; bad references fail at build time."""

from __future__ import annotations

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from pipeline.errors import OpError
from pipeline.ops.functions import FunctionFailed
from tests.helpers import call, host

F = "tests.userfuncs:"


@pytest.fixture(autouse=True)
def dask_backend(backend):
    with dask.config.set(backend.dask_config):
        yield


def rand(backend, shape, chunks):
    data = np.random.default_rng().standard_normal(shape)
    return data, da.from_array(backend.xp.asarray(data), chunks=chunks)


def test_same_shape_with_kwargs_and_inferred_dtype(make_ctx, backend):
    data, x = rand(backend, (37, 11), (10, 4))
    out = call(make_ctx(), "map_blocks", x, function=F + "scale", kwargs={"factor": -2.5})
    assert out.chunks == x.chunks and out.dtype == np.float64
    np.testing.assert_allclose(host(out), data * -2.5)


def test_the_function_gets_the_backends_chunks(make_ctx, backend):
    _, x = rand(backend, (9, 5), (4, 5))
    out = call(make_ctx(), "map_blocks", x, function=F + "kind_and_sum", chunks=[None, 1])
    want = {"numpy": 1.0, "cupy": 2.0}[backend.array_module]
    np.testing.assert_array_equal(host(out), np.full((9, 1), want))


def test_drop_axis(make_ctx, backend):
    data, x = rand(backend, (23, 8), (5, 3))  # several chunks along the dropped axis
    out = call(make_ctx(), "map_blocks", x, function=F + "row_sums", drop_axis=1)
    assert out.shape == (23,)
    np.testing.assert_allclose(host(out), data.sum(axis=1))


def test_new_axis_with_declared_chunks(make_ctx, backend):
    data, x = rand(backend, (13, 6), (5, 6))
    out = call(make_ctx(), "map_blocks", x, function=F + "with_moments",
               chunks=[None, 1, 2], new_axis=2, dtype="float64")
    assert out.shape == (13, 1, 2) and out.chunks[0] == (5, 5, 3)
    want = np.stack([data.mean(axis=1), data.max(axis=1)], axis=-1)[:, None, :]
    np.testing.assert_allclose(host(out), want)


def test_a_block_of_the_wrong_shape_is_refused(make_ctx, backend):
    _, x = rand(backend, (10, 3), (4, 3))
    out = call(make_ctx(), "map_blocks", x, function=F + "halve_rows")
    with pytest.raises(FunctionFailed, match=r"stage 's': tests.userfuncs:halve_rows returned "
                                             r"a block of shape \((1|2), 3\), expected \((2|4), 3\)"):
        host(out)


def test_a_dtype_other_than_declared_is_refused(make_ctx, backend):
    _, x = rand(backend, (6, 3), (3, 3))
    out = call(make_ctx(), "map_blocks", x.astype(np.float32), function=F + "as_float64",
               dtype="float32")
    with pytest.raises(FunctionFailed, match="returned float64, expected float32"):
        host(out)


def test_something_not_an_array_is_refused(make_ctx, backend):
    _, x = rand(backend, (6, 3), (3, 3))
    out = call(make_ctx(), "map_blocks", x, function=F + "as_list", dtype="float64")
    with pytest.raises(FunctionFailed, match="returned builtins.list, not a"):
        host(out)


def test_a_raising_function_names_stage_function_and_line(make_ctx, backend):
    _, x = rand(backend, (6, 3), (3, 3))
    out = call(make_ctx(), "map_blocks", x, function=F + "explode",
               kwargs={"message": "bad\ntile"})
    with pytest.raises(FunctionFailed) as e:
        host(out)
    assert str(e.value).startswith("stage 's': tests.userfuncs:explode raised ValueError: "
                                   "bad (at userfuncs.py:")
    assert isinstance(e.value.__cause__, ValueError)


@pytest.mark.parametrize("ref, fragment", [
    ("nope_pkg.mod:fn", "cannot import 'nope_pkg.mod': No module named 'nope_pkg'"),
    ("tests.userfuncs:scal", "'tests.userfuncs' has no 'scal'; did you mean 'scale'?"),
    ("tests.userfuncs:NOT_A_FUNCTION", "'tests.userfuncs:NOT_A_FUNCTION' is a int, not a "
                                       "function"),
    ("tests.userfuncs", "bad function reference 'tests.userfuncs'"),
    ("os:system; rm", "bad function reference"),
    ("broken_module:fn", "importing 'broken_module' raised ZeroDivisionError"),
])
def test_bad_references_fail_at_build(make_ctx, backend, ref, fragment, tmp_path,
                                      monkeypatch):
    monkeypatch.delitem(__import__("sys").modules, "broken_module", raising=False)
    (tmp_path / "broken_module.py").write_text("x = 1 / 0\n")  # raises when imported
    monkeypatch.syspath_prepend(str(tmp_path))
    _, x = rand(backend, (4, 2), (2, 2))
    with pytest.raises(OpError) as e:
        call(make_ctx(), "map_blocks", x, function=ref)
    assert fragment in e.value.what and e.value.where == "function"
    assert "\n" not in e.value.line()


def test_undeclared_dtype_that_cannot_be_inferred(make_ctx, backend):
    _, x = rand(backend, (4, 2), (2, 2))
    with pytest.raises(OpError, match="cannot infer the output dtype: .* raised ValueError"):
        call(make_ctx(), "map_blocks", x, function="numpy:argmax")  # empty input
    with pytest.raises(OpError, match="'builtins:len' returned int, not an array"):
        call(make_ctx(), "map_blocks", x, function="builtins:len")


@pytest.mark.parametrize("chunks, new_axis, fragment", [
    ([None], None, "has 1 entries but the output has 2 axes"),
    ([None, None, None], 2, "new axis 2 needs a size"),
    ([-1, None], None, "bad size -1"),
])
def test_bad_declared_shapes(make_ctx, backend, chunks, new_axis, fragment):
    _, x = rand(backend, (4, 2), (2, 2))
    with pytest.raises(OpError, match=fragment):
        call(make_ctx(), "map_blocks", x, function=F + "scale", chunks=chunks,
             new_axis=new_axis)


def test_bad_axes_and_dtype(make_ctx, backend):
    _, x = rand(backend, (4, 2), (2, 2))
    with pytest.raises(OpError, match="axis 2 is out of range for 2 axes"):
        call(make_ctx(), "map_blocks", x, function=F + "row_sums", drop_axis=2)
    with pytest.raises(OpError, match="unknown dtype 'float33'"):
        call(make_ctx(), "map_blocks", x, function=F + "scale", dtype="float33")


def frame(backend, nparts):
    rng = np.random.default_rng()
    pdf = pd.DataFrame({"a": rng.uniform(1, 9, 40), "b": rng.uniform(1, 9, 40),
                        "c": rng.integers(0, 5, 40)})
    data = pdf if backend.frame_module == "pandas" else backend.xdf.from_pandas(pdf)
    return pdf, dd.from_pandas(data, npartitions=nparts)


def to_pandas(backend, df) -> pd.DataFrame:
    value = df.compute(scheduler="sync")
    assert type(value).__module__.split(".")[0] == backend.frame_module
    return value if backend.frame_module == "pandas" else value.to_pandas()


@pytest.mark.tables
@pytest.mark.parametrize("declared", [None, {"a": "float64", "b": "float64",
                                             "ratio": "float64"}])
def test_map_partitions_against_pandas(make_ctx, backend, declared):
    pdf, df = frame(backend, 3)
    out = call(make_ctx(), "map_partitions", df, function=F + "speed",
               kwargs={"unit_factor": 2.0}, columns=declared)
    assert list(out.columns) == ["a", "b", "ratio"]
    want = pdf[["a", "b"]].assign(ratio=pdf["a"] / pdf["b"] * 2.0)
    pd.testing.assert_frame_equal(to_pandas(backend, out).sort_index(), want)


@pytest.mark.tables
def test_map_partitions_declared_columns_are_checked(make_ctx, backend):
    _, df = frame(backend, 2)
    out = call(make_ctx(), "map_partitions", df, function=F + "drop_all",
               columns={"a": "float64", "z": "float64"})
    with pytest.raises(FunctionFailed, match=r"returned columns \['a'\], declared \['a', 'z'\]"):
        to_pandas(backend, out)


@pytest.mark.tables
def test_map_partitions_inference_failure_is_bad_input(make_ctx, backend):
    _, df = frame(backend, 2)
    with pytest.raises(OpError) as e:
        call(make_ctx(), "map_partitions", df, function=F + "fail_on_data")
    assert e.value.where == "columns" and "raised KeyError on a sample" in e.value.what
    with pytest.raises(OpError, match="unknown dtype 'floaty'"):
        call(make_ctx(), "map_partitions", df, function=F + "speed", columns={"a": "floaty"})
