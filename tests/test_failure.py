"""Which stage a failed run is blamed on (pipeline/failure.py), from what the scheduler
says of the failed tasks."""

from __future__ import annotations

from types import SimpleNamespace

from distributed.scheduler import KilledWorker

from pipeline import backends, failure, runner
from tests.helpers import OOM_WORKFLOW, load_workflow


class Scheduler:
    """Answers ``run_on_scheduler(failure.blamed, ...)`` with the given blamed tasks."""

    def __init__(self, tasks):
        self.tasks = tasks

    def run_on_scheduler(self, fn, **kwargs):
        assert fn is failure.blamed
        return self.tasks


def test_a_dead_worker_is_blamed_on_the_largest_chunks_it_ran_whichever_task_comes_first(
        tmp_path):
    # A worker killed for memory was running the sink's small file-creating task beside the
    # fused random -> fft -> power task that filled it: the scheduler blames both, in either
    # order. The stage of largest chunks (fft's complex output) is named, not the sink.
    plan = load_workflow(tmp_path, OOM_WORKFLOW)
    built = runner.build(plan, backends.CPU, tmp_path / "staging")
    span = built.span_ids
    sink = {"key": "_create_npy-1", "prefix": "_create_npy", "span": span["w"],
            "exception": "KilledWorker"}
    fused = {"key": "fused-2", "prefix": "fused", "span": span["power"],
             "exception": "KilledWorker"}
    members = {"fused-2": {span["signal"]: 1, span["spectrum"]: 1, span["power"]: 1}}
    dead = SimpleNamespace(address="tcp://127.0.0.1:1")
    for tasks in ([sink, fused], [fused, sink]):
        found = failure.diagnose(KilledWorker(tasks[0]["key"], dead, 0),
                                 client=Scheduler(tasks), futures=[], plan=plan,
                                 built=built, memory_limit=300_000_000, members=members)
        assert (found.stage, found.op, found.task) == ("spectrum", "fft", tasks[0]["key"])
        assert found.cause.startswith("out of memory: workers died running it "
                                      "(its chunks are up to 256.00 MiB")


def _fail(name):
    raise ValueError(name)


def _join(*parts):
    return parts


def test_the_scheduler_names_every_task_that_failed_of_itself(session):
    # a sink's future is blamed on the first of its inputs to fail; a dead worker fails
    # every task it was running, so every one of them is looked at
    from distributed import wait

    client = session.client
    a = client.submit(_fail, "a", key="fail-a")
    b = client.submit(_fail, "b", key="fail-b")
    end = client.submit(_join, a, b, key="join-1")
    wait([a, b, end])  # both failed (a dead worker fails its tasks at once)
    found = client.run_on_scheduler(failure.blamed, keys=[end.key])
    assert {t["key"] for t in found} == {"fail-a", "fail-b"}
    assert sorted(t["exception"] for t in found) == ["ValueError('a')", "ValueError('b')"]
