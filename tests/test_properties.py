"""The CLI's contract under generated workflows (hypothesis): every op, parameters of
every type, sensible and hostile (wrong types, NaN, inf, huge, zero, negative, control
characters, paths that leave the folder), inputs of the wrong kind.

Whatever the workflow, ``run`` ends in exit 0; or 1 or 2 with exactly one line
``error: ...``; no traceback, no other exception; nothing written outside its run
folder and that folder's history, and no staging folder or lock left behind.

CI runs a small, fixed set of examples. A longer, random run:
``PIPELINE_HYPOTHESIS_EXAMPLES=2000 python -m pytest tests/test_properties.py -q``
(docs/robustness.md records what the last one found).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import string
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline import ops
from pipeline.cli import main

EXAMPLES = int(os.environ.get("PIPELINE_HYPOTHESIS_EXAMPLES", "0"))
SETTINGS = settings(max_examples=EXAMPLES or 20, deadline=None, derandomize=not EXAMPLES,
                    suppress_health_check=list(HealthCheck), database=None)
COLUMNS = ("a", "b", "k")
FILES = ("x.npy", "t.parquet", "t.csv", "z.zarr", "bad.npy", "empty.csv")

# ---------------------------------------------------------------- values of every type

huge_ints = st.sampled_from([0, -1, 2**31, 10**12, 2**63, -(10**9), 10**30])
small_ints = st.integers(-3, 12)
ints = st.one_of(small_ints, small_ints, small_ints, huge_ints)
floats = st.one_of(st.floats(-10, 10), st.sampled_from([0.0, -0.5, 1e308, -1e308, 1e-320]),
                   st.just(math.inf), st.just(-math.inf), st.just(math.nan))
hostile_text = st.sampled_from(["", " ", "\0", "a\nb", "\x1b[31m", "../up", "x" * 300,
                                "é", "None", "auto", "0 B", "-5 MiB", "1e400 B"])
texts = st.one_of(st.text(string.ascii_letters + string.digits + "_-. ", max_size=12),
                  hostile_text)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
anything = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=3)), max_leaves=8)


def by_annotation(ann) -> st.SearchStrategy:
    """Values of an op parameter's declared type, and sometimes of any other type."""
    import types
    import typing

    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        good = st.one_of(*(by_annotation(a) for a in typing.get_args(ann)))
    elif origin is typing.Literal:
        good = st.sampled_from(typing.get_args(ann))
    elif ann is type(None) or ann is None:
        good = st.none()
    elif ann is bool:
        good = st.booleans()
    elif ann is int:
        good = ints
    elif ann is float:
        good = st.one_of(floats, ints)
    elif ann is str:
        good = texts
    elif origin is list or ann is list:
        args = typing.get_args(ann)
        good = st.lists(by_annotation(args[0]) if args else scalars, max_size=4)
    elif origin is dict or ann is dict:
        args = typing.get_args(ann)
        good = st.dictionaries(texts, by_annotation(args[1]) if args else scalars, max_size=3)
    else:
        good = anything
    return st.one_of(good, good, good, good, good, anything)


# Parameters whose useful values are a small vocabulary: the right words are what gets
# past validation into the op bodies, where the interesting failures are.
paths = st.sampled_from(["out.npy", "out.zarr", "out.json", "out.parquet", "out.csv",
                         "p.png", "sub/deep/out.npy", ".", "", "..", "../out.npy",
                         "report.json", "report.html", "/etc/out.npy", "a\0b.npy",
                         "x" * 300 + ".npy", "out.xyz", *FILES, "*.npy", "nope.npy",
                         "/dev/zero", "fifo.csv"])
columns = st.one_of(st.sampled_from(COLUMNS), st.lists(st.sampled_from([*COLUMNS, "zz"]),
                                                       max_size=3))
expr_atoms = st.sampled_from(["a", "b", "k", "x", "1", "2.5", "0", "'s'", "10**10**10",
                              "1/0", "1e400", "True"])
expr_ops = st.sampled_from([" + ", " - ", " * ", " / ", " // ", " % ", " ** ", " & ",
                            " | ", " < ", " == "])
exprs = st.one_of(
    st.lists(expr_atoms, min_size=1, max_size=4).flatmap(
        lambda atoms: st.lists(expr_ops, min_size=len(atoms) - 1,
                               max_size=len(atoms) - 1).map(
            lambda o: "".join(a + b for a, b in zip(atoms, [*o, ""])))),
    st.sampled_from(["sqrt(a)", "where(a > 0, a, b)", "~(a > 0)", "a.__class__",
                     "__import__('os')", "(" * 120 + "a" + ")" * 120, "-" * 300 + "a",
                     "a if b else k", "[a]", "lambda: 1", "clip(a, 0)", "real(x)**2"]),
    texts)
BY_NAME = {
    "path": paths, "expr": exprs, "by": columns, "on": columns,
    "dtype": st.sampled_from(["float32", "float64", "int32", "int64", "int8", "x", 3]),
    "format": st.sampled_from([None, "npy", "zarr", "parquet", "csv", "json", "xyz"]),
    "chunks": st.one_of(st.sampled_from(["auto", "0 B", "1 KiB", "-5 MiB", "lots", -1, 0, 1,
                                         [2, 3], [0, 3], [1, 1], [10**9, 1], [2]]),
                        anything),
    "shape": st.one_of(st.lists(st.integers(0, 9), min_size=1, max_size=3),
                       st.sampled_from([[10**12, 10**12], [-1, 3], [], [2**40]]), anything),
    "part": st.sampled_from(["u", "s", "vt", "x"]),
    "name": st.sampled_from(["hann", "kaiser", "tukey", "nope", ""]),
    "how": st.sampled_from(["sum", "mean", "min", "max", "std", "var", "prod", "sem",
                            "inner", "outer", "left", "right", "median"]),
}


def stage_params(info) -> st.SearchStrategy:
    """Some of the op's parameters (the required ones most of the time), sometimes with
    an unknown key besides."""
    fields = {}
    for p in info.params.values():
        value = BY_NAME.get(p.name, by_annotation(p.annotation))
        if info.name == "assign" and p.name == "columns":
            value = st.one_of(st.dictionaries(st.sampled_from(["c", "a", ""]), exprs,
                                              max_size=2), anything)
        elif info.name == "random_table" and p.name == "columns":
            value = st.one_of(st.just({"a": {"distribution": "normal"}, "k": {"keys": 3}}),
                              st.dictionaries(st.sampled_from(COLUMNS),
                                              st.dictionaries(
                                                  st.sampled_from(["distribution", "keys",
                                                                   "low", "high", "loc",
                                                                   "scale", "oops"]),
                                                  st.one_of(st.sampled_from(["normal",
                                                                             "uniform"]),
                                                            floats, ints), max_size=3),
                                              max_size=2))
        elif p.name == "columns":
            value = columns
        fields[p.name] = st.one_of(value, st.just(None)) if not p.required else value
    keep = st.fixed_dictionaries({}, optional=fields)
    extra = st.dictionaries(st.sampled_from(["oops", "input_", "chunk"]), scalars,
                            max_size=1)
    return st.tuples(keep, st.one_of(st.just({}), st.just({}), extra)).map(
        lambda pair: {**pair[0], **pair[1]})


ARRAY_SOURCE = {"id": "src", "op": "random", "shape": [8, 6], "chunks": [4, 3], "seed": 1}
TABLE_SOURCE = {"id": "tab", "op": "random_table", "rows": 30, "partitions": 3, "seed": 1,
                "columns": {"a": {"distribution": "normal"}, "b": {"distribution": "uniform"},
                            "k": {"keys": 4}}}


@st.composite
def workflows(draw) -> dict:
    """A workflow around one op under test: sources, the op, a sink."""
    catalogue = ops.catalogue()
    name = draw(st.sampled_from(sorted(catalogue)))
    info = catalogue[name]
    params = draw(stage_params(info))
    stage = {"id": "t", "op": name, **params}
    feeds = draw(st.lists(st.sampled_from(["src", "tab"]), min_size=1, max_size=2))
    if info.inputs == "input":
        stage["input"] = feeds[0]
    elif info.inputs == "list":
        stage["inputs"] = feeds if len(feeds) == 2 else feeds * 2
    elif info.inputs == "mapping":
        stage["inputs"] = {"a": feeds[0], "x": feeds[-1]}
    stages = [ARRAY_SOURCE, TABLE_SOURCE, stage]
    if info.family != "sink":
        sink = {"id": "w", "op": "write", "input": "t",
                "path": draw(st.sampled_from(["w.npy", "w.parquet", "w.json", "w.zarr",
                                              "w.csv"]))}
        stages.append(sink)
    # the sources unused by the op still run (nothing else reads them: not computed)
    return {"name": "prop", "backend": "cpu", "stages": stages}


def make_files(folder: Path) -> None:
    """The files ``read`` may be pointed at: good ones of each format, and bad ones."""
    np.save(folder / "x.npy", np.arange(24.0).reshape(6, 4))
    table = pd.DataFrame({"a": np.arange(10.0), "b": np.ones(10), "k": np.arange(10) % 3})
    table.to_parquet(folder / "t.parquet")
    table.to_csv(folder / "t.csv", index=False)
    import zarr

    zarr.open_array(str(folder / "z.zarr"), mode="w", shape=(5, 3), dtype="f8")[:] = 1.0
    (folder / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    (folder / "empty.csv").write_text("")
    os.mkfifo(folder / "fifo.csv")


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.slow
@SETTINGS
@given(workflow=workflows())
def test_any_workflow_ends_in_one_line_and_touches_only_its_run_folder(address, workflow):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_files(root)
        (root / "wf.yaml").write_text(yaml.safe_dump(workflow, allow_unicode=True))
        before = listing(root)
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            # trusted, so that a function: reaches its own checks (the generated text
            # holds no ':', so no reference to real code can come out of it)
            code = main(["run", str(root / "wf.yaml"), "--address", address, "--quiet",
                         "--trust-workflow", "--output-dir", str(root / "run")])
        lines = [line for line in err.getvalue().splitlines()
                 if not line.startswith("warning: ")]
        shown = textwrap.indent(yaml.safe_dump(workflow), "    ")
        event(f"exit {code}")  # --hypothesis-show-statistics: how the runs ended
        assert code in (0, 1, 2), shown
        if code == 0:
            assert lines == [], shown
        else:
            assert len(lines) == 1 and lines[0].startswith("error: "), (lines, shown)
        assert "Traceback" not in err.getvalue()
        assert "internal error" not in err.getvalue(), (err.getvalue(), shown)
        new = listing(root) - before
        outside = {p for p in new
                   if not (p == "run" or p.startswith(("run/", "run.history")))}
        assert not outside, (outside, shown)
        if code == 2:
            assert "run" not in new and "run.history" not in new, shown

