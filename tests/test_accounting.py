"""Per-stage accounting with Dask's fusion on (the default) and off: every stage's time,
tasks and copies land on that stage, whatever task Dask fused its work into."""

import pytest

from pipeline import backends, runner
from pipeline.accounting import graph
from pipeline.accounting.stagemap import StageMap
from pipeline.report import table
from tests.conftest import GPU_PROBLEM
from tests.helpers import load_workflow, sleepy_op  # noqa: F401 - a fixture

# seconds each chunk of a `sleepy` stage spends in its own code
NAP = {"slow": 0.12, "slower": 0.24}
CHUNKS = 4


CHAIN = f"""
    name: chain
    stages:
      - {{id: x, op: random, shape: [{CHUNKS * 10}, 5], chunks: [10, 5]}}
      - {{id: slow, op: sleepy, input: x, seconds: {NAP['slow']}}}
      - {{id: flip, op: transpose, input: slow}}
      - {{id: slower, op: sleepy, input: flip, seconds: {NAP['slower']}}}
      - {{id: total, op: reduce, input: slower, how: sum, axis: null}}
      - {{id: save, op: write, input: total, path: total.json}}
"""


def _prepared(p, built, fuse):
    stage_map = StageMap.from_build(built.results(p), built.span_ids,
                                    {ps.id: ps.upstream for ps in p.stages})
    return graph.prepare([s.collection for s in built.sinks.values()],
                         [built.span_ids[s] for s in built.sinks], stage_map, fuse=fuse,
                         spans=built.spans, run_label=built.run_span)


def test_fusion_merges_stages_into_shared_tasks(tmp_path, sleepy_op):
    p = load_workflow(tmp_path, CHAIN)
    built = runner.build(p, backends.CPU, tmp_path / "staging")
    fused, unfused = _prepared(p, built, True), _prepared(p, built, False)
    assert fused.tasks == unfused.tasks  # each stage's callables, fused or not
    assert set(fused.tasks) == set(built.span_ids.values())  # no task of no stage
    assert fused.submitted < unfused.submitted
    # a fused task holds x, slow, flip and slower for one chunk
    assert any(len(counts) >= 4 for counts in fused.members.values())
    assert all(len(counts) == 1 for counts in unfused.members.values())


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_each_stage_gets_its_own_time_under_fusion(tmp_path, session, sleepy_op, fuse):
    doc = runner.run(load_workflow(tmp_path, CHAIN), backends.CPU, session, fuse=fuse)
    stages = {s["id"]: s for s in doc["stages"]}
    for sid, nap in NAP.items():
        # what the naps measured themselves, duplicates included (a stolen task can run
        # twice; Dask books the discarded run as "cancelled", not to the stage)
        took = sum(t for asked, t in sleepy_op if asked == nap)
        # at least the naps, at most what they took plus the metering's microseconds:
        # far from another stage's naps (>= 0.48 s), which a stage would get if time
        # leaked between stages
        assert nap * CHUNKS <= stages[sid]["compute_s"] < took + 0.3, sid
        assert stages[sid]["tasks"] == CHUNKS
        # a nap spends no CPU: cpu_s is the stage's thread time, not its wall time
        assert stages[sid]["cpu_s"] < 0.5 * nap * CHUNKS, sid
    assert stages["x"]["compute_s"] < 0.4 and stages["flip"]["compute_s"] < 0.4
    assert doc["accounting"]["fused"] is fuse
    assert stages["slow"]["start"] < stages["slower"]["stop"]


def test_a_stage_named_total_makes_one_total_row(tmp_path, session, sleepy_op):
    doc = runner.run(load_workflow(tmp_path, CHAIN), backends.CPU, session)
    lines = table(doc["stages"], doc["totals"]).splitlines()
    assert [line.split()[0] for line in lines].count("total") == 1  # the stage
    assert lines[-4].split()[0] == "(run)" and "stages overlap" not in lines[-4]
    assert sum(line.startswith("(run)") for line in lines) == 1


def test_svd_of_a_gram_matrix_computes_its_input_once(tmp_path, session):
    # da.linalg.svd of one chunk goes through dask.delayed, which embedded a renamed copy
    # of the whole upstream graph: the data was generated twice and the Gram matrix's
    # work showed up under the svd
    doc = runner.run(load_workflow(tmp_path, """
        name: pca
        stages:
          - {id: x, op: random, shape: [400, 6], chunks: [100, 6]}
          - {id: xt, op: transpose, input: x}
          - {id: gram, op: matmul, inputs: [xt, x]}
          - {id: sv, op: svd, input: gram}
          - {id: sq, op: elementwise, inputs: {a: x}, expr: "a * a"}
          - {id: total, op: reduce, input: sq, how: sum, axis: null}
          - {id: w1, op: write, input: sv, path: sv.npy}
          - {id: w2, op: write, input: total, path: total.json}
    """), backends.CPU, session)
    stages = {s["id"]: s for s in doc["stages"]}
    assert stages["x"]["tasks"] == 4
    assert stages["gram"]["tasks"] >= 4 and stages["sv"]["tasks"] >= 1


TABLE = """
    name: table
    stages:
      - id: flights
        op: random_table
        rows: 4000
        partitions: 4
        seed: 0
        columns:
          carrier: {keys: 5}
          delay: {distribution: normal}
          distance: {distribution: uniform, low: 100, high: 900}
      - {id: long, op: filter, input: flights, expr: "distance > 200"}
      - {id: paced, op: assign, input: long, columns: {pace: "delay / distance"}}
      - {id: per_carrier, op: groupby, input: paced, by: carrier, agg: {pace: [mean]}}
      - {id: save, op: write, input: per_carrier, path: per_carrier.parquet}
"""


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_table_stages_are_counted_and_timed(tmp_path, session, fuse):
    doc = runner.run(load_workflow(tmp_path, TABLE), backends.CPU, session, fuse=fuse)
    for s in doc["stages"]:
        assert s["tasks"] > 0 and s["start"] is not None, s["id"]
        assert s["compute_s"] > 0 and s["cpu_s"] > 0, s["id"]
    totals = doc["totals"]
    assert totals["cpu_s"] == pytest.approx(
        sum(s["cpu_s"] for s in doc["stages"]) + totals["other"]["cpu_s"])
    stages = {s["id"]: s for s in doc["stages"]}
    assert stages["flights"]["tasks"] >= 4  # one per partition at least
    assert stages["long"]["output"]["rows"] < 4000


@pytest.mark.standin
@pytest.mark.skipif(GPU_PROBLEM is None, reason="a real GPU is present: the stand-in is not")
def test_a_gpu_task_is_timed_until_its_kernels_are_done():
    """CuPy returns before its kernels finish: a metered callable giving a CuPy array
    waits for its device (the stand-in records the wait), one giving NumPy does not."""
    import cupy
    import numpy as np

    from pipeline.accounting.meter import Metered

    cupy.cuda._events.clear()
    Metered(lambda x: x * 2, "label")(cupy.arange(4))
    assert cupy.cuda._events == [("device_synchronize", None)]
    cupy.cuda._events.clear()
    Metered(lambda x: x * 2, "label")(np.arange(4))
    assert cupy.cuda._events == []
