"""Transfer accounting, proven without a GPU: a NumPy / pandas backend whose host<->device
copies are real copies, counted like the GPU backend's. It shows where the runner puts
copies."""

import json

import numpy as np
import pandas as pd
import pytest
from distributed.metrics import context_meter
from pipeline import backends, runner
from tests.helpers import dask_parquet_inplace, load_workflow

# Host and "device" are both NumPy / pandas here, but every crossing really copies and is
# counted.
COPYING = backends.Backend("cpu-copying", "numpy", "pandas", copies=True)


def run(tmp_path, session, text, backend=COPYING, fuse=True):
    doc = runner.run(load_workflow(tmp_path, text), backend, session, fuse=fuse)
    return {s["id"]: s for s in doc["stages"]}, doc


# each copy is counted under the stage whose code made it, whatever task Dask fused it into
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_generated_data_never_crosses_until_the_sink(tmp_path, session, fuse):
    stages, doc = run(tmp_path, session, fuse=fuse, text="""
        name: spectrum
        stages:
          - {id: signal, op: random, shape: [512, 64], chunks: [100, 64], dtype: float32}
          - {id: spectrum, op: rfft, input: signal, axis: 1}
          - {id: power, op: elementwise, inputs: {z: spectrum}, expr: "real(z)**2 + imag(z)**2"}
          - {id: mean_power, op: reduce, input: power, how: mean, axis: 0}
          - {id: save, op: write, input: mean_power, path: m.npy}
    """)
    assert doc["totals"]["h2d_bytes"] == 0
    assert stages["save"]["d2h_bytes"] == 33 * 4  # only the final float32 vector
    assert doc["totals"]["d2h_bytes"] == 33 * 4


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_read_moves_each_byte_in_once_and_the_written_bytes_out(tmp_path, session, fuse):
    data = np.random.default_rng().standard_normal((300, 40))
    np.save(tmp_path / "x.npy", data)
    stages, doc = run(tmp_path, session, fuse=fuse, text="""
        name: copy
        stages:
          - {id: x, op: read, path: x.npy, chunks: [64, 40]}
          - {id: y, op: elementwise, inputs: {a: x}, expr: "a * 2"}
          - {id: s, op: reduce, input: y, how: sum, axis: 1}
          - {id: w1, op: write, input: y, path: y.npy}
          - {id: w2, op: write, input: s, path: s.json}
    """)
    assert stages["x"]["h2d_bytes"] == data.nbytes  # y feeds two sinks; x is read once
    assert doc["totals"]["h2d_bytes"] == data.nbytes
    assert stages["w1"]["d2h_bytes"] == data.nbytes
    assert stages["w2"]["d2h_bytes"] == 300 * 8
    assert stages["x"]["h2d_s"] > 0
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "y.npy"), data * 2)


TABLE_TO_JSON = """
    name: per_key
    stages:
      - id: table
        op: random_table
        rows: 2000
        partitions: 4
        seed: 3
        columns: {k: {keys: 7}, x: {distribution: normal, null_fraction: 0.1}}
      - {id: per_key, op: groupby, input: table, by: k, agg: {x: [mean, count]}}
      - {id: save, op: write, input: per_key, path: per_key.json}
"""

PARQUET_FILTER = """
    name: filtered
    stages:
      - {id: flights, op: read, path: "in/*.parquet"}
      - {id: long, op: filter, input: flights, expr: "distance > 0"}
      - {id: save, op: write, input: long, path: long.parquet}
"""


def _flights(tmp_path) -> list:
    """Two parquet files (two partitions), with a string column so deep sizes count."""
    rng = np.random.default_rng(1)
    (tmp_path / "in").mkdir()
    files = []
    for i, rows in enumerate((300, 500)):
        pd.DataFrame({"distance": rng.standard_normal(rows),
                      "carrier": rng.choice(["UA", "DL", "AA-long-name"], rows)}
                     ).to_parquet(tmp_path / "in" / f"{i}.parquet", index=False)
        files.append(tmp_path / "in" / f"{i}.parquet")
    return files


def _bytes(stages) -> dict:
    return {sid: (s["h2d_bytes"], s["d2h_bytes"]) for sid, s in stages.items()}


def test_a_generated_table_crosses_once_as_the_json_result(tmp_path, session):
    stages, _ = run(tmp_path, session, TABLE_TO_JSON)
    records = json.loads((tmp_path / "out" / "per_key.json").read_text())
    result = pd.DataFrame(records)  # the one partition the sink brought to the host
    out = int(result.memory_usage(index=True, deep=True).sum())
    assert _bytes(stages) == {"table": (0, 0), "per_key": (0, 0), "save": (0, out)}
    assert stages["save"]["d2h_s"] > 0


@dask_parquet_inplace
def test_a_table_read_counts_its_partitions_in_and_the_written_files_out(tmp_path, session):
    files = _flights(tmp_path)
    stages, _ = run(tmp_path, session, PARQUET_FILTER)
    read = sum(int(pd.read_parquet(f).memory_usage(index=True, deep=True).sum())
               for f in files)
    written = sum(p.stat().st_size for p in (tmp_path / "out" / "long.parquet").iterdir())
    assert _bytes(stages) == {"flights": (read, 0), "long": (0, 0), "save": (0, written)}
    assert stages["save"]["d2h_s"] > 0


@dask_parquet_inplace
def test_the_cpu_backend_counts_no_table_copies(tmp_path, session):
    _flights(tmp_path)
    for text in (TABLE_TO_JSON, PARQUET_FILTER):
        stages, _ = run(tmp_path, session, text, backends.CPU)
        assert set(_bytes(stages).values()) == {(0, 0)}


def test_the_cpu_backend_passes_partitions_through_unrecorded(tmp_path):
    part = pd.DataFrame({"x": [1.0, 2.0]})
    recorded = []
    with context_meter.add_callback(lambda *metric: recorded.append(metric)):
        assert backends.CPU.frame_to_host(part, "span") is part
        assert backends.CPU.frame_read(part, "span") is part
        backends.CPU.frame_write(part.to_parquet, str(tmp_path / "p.parquet"), "span")
    assert recorded == []
    assert (tmp_path / "p.parquet").is_file()
