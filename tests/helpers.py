"""Calling ops directly in tests, through the registry's parameter binding; loading a
workflow written in a test; a test-only op whose tasks take a known time."""

from __future__ import annotations

import textwrap
import time

import numpy as np
import pytest

from pipeline import ops, plan, spec
from pipeline.ops.registry import REGISTRY

# dask 2026.7.1's parquet reader (dask/dataframe/io/parquet/arrow.py) calls
# DataFrame.reset_index(inplace=True), which pandas 3.1 deprecates; our code cannot avoid
# it. Only that warning, only from that module, is let through.
dask_parquet_inplace = pytest.mark.filterwarnings(
    "ignore:The inplace keyword in DataFrame.reset_index is deprecated"
    ":DeprecationWarning:dask.dataframe.io.parquet.arrow")


def call(ctx, op_name: str, *inputs, **params):
    """Bind ``params`` like a workflow stage would, then call the op (lazy result)."""
    info = ops.get(op_name)
    return info.fn(ctx, *inputs, **info.bind(params))


def host(x) -> np.ndarray:
    """Compute a Dask array (any backend) and bring it to the host as NumPy."""
    value = x.compute(scheduler="sync") if hasattr(x, "compute") else x
    get = getattr(value, "get", None)
    return np.asarray(get() if callable(get) else value)


# A spectrum whose 256 MiB complex chunk cannot fit a worker given 300 MB: its worker is
# killed for memory (tests of which stage a dead worker is blamed on).
OOM_WORKFLOW = """\
name: oom
stages:
  - {id: signal, op: random, shape: [4096, 4096], chunks: [4096, 4096]}
  - {id: spectrum, op: fft, input: signal}
  - {id: power, op: elementwise, inputs: {z: spectrum}, expr: "real(z)**2"}
  - {id: w, op: write, input: power, path: p.npy}
"""


def load_workflow(tmp_path, text: str):
    """The plan of the workflow ``text`` (YAML, indented as in the test), run folder
    ``tmp_path/out``."""
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text))
    return plan.build(spec.load(path, output_dir=tmp_path / "out"))


# (seconds asked, seconds the nap took) of each `sleepy` chunk: on an in-process cluster
# the workers' threads append here, so a test knows what each stage's code really took
NAPS: list[tuple[float, float]] = []


def _nap(block, seconds):
    t0 = time.perf_counter()
    time.sleep(seconds)
    NAPS.append((seconds, time.perf_counter() - t0))
    return block + 1


@pytest.fixture
def sleepy_op():
    """A test-only op, ``sleepy``: ``x + 1`` after a nap of ``seconds`` per chunk (see
    :data:`NAPS`)."""
    @ops.op("sleepy", family="array")
    def sleepy(ctx, x, *, seconds: float):
        """Naps, then adds one."""
        return x.map_blocks(_nap, seconds, dtype=x.dtype)

    NAPS.clear()
    yield NAPS
    del REGISTRY["sleepy"]
