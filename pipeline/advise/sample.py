"""``advise --measure``: time a sample of each stage next to its prediction.

A stage's sample is its first output chunk and the tasks that chunk needs. So that a
sample is a small part of the run, the workflow is first built again with its large
chunked sources' first axis cut finer (``--set stages.<source>.chunks=[...]``), aiming
at one chunk of :data:`CHUNK_SHARE` of the budget. The graph is optimized once; each
sample is priced before anything runs (each stage's estimate times the share of its
tasks the sample needs) and samples are taken in DAG order while all of them together,
run twice (a warm-up, then timed), stay within :data:`BUDGET` of the whole run's
predicted compute. A stage whose sample needs more (a reduction over the chunked axis
needs its whole input) is left out and says so. The chosen tasks run on Dask's
synchronous scheduler in this process; each task's CPU seconds (wall seconds on a GPU,
after synchronizing) count for the stage whose ``stage:<id>`` span it carries. Table
stages are not sampled: dask-expr drops the span annotations that attribute tasks.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from dataclasses import dataclass

import dask.array as da

BUDGET = 0.05  # of the predicted compute, both passes together
MIN_BUDGET_S = 0.5  # small workflows may spend this much
CHUNK_SHARE = 0.25  # of the budget: the cost of one chunk of the finer-cut sources
CHUNKED_SOURCES = ("random", "read", "arange")  # sources with a 'chunks' parameter
LARGE_SOURCE = 0.1  # sources this large, against the largest, are cut finer


@dataclass
class Sample:
    share: float  # of the stage's whole (predicted) compute
    predicted_s: float  # the sample's share of the stage's estimate
    measured_s: float | None = None


def budget(estimates) -> float:
    return max(BUDGET * sum(e.compute_s for e in estimates), MIN_BUDGET_S)


def finer_chunks(plan, built, estimates, budget_s: float) -> list[str]:
    """``--set`` overrides cutting the large chunked array sources' first axis by one
    common factor (sources that meet keep aligned chunks), so that one chunk of the run
    costs about :data:`CHUNK_SHARE` of the budget."""
    sources = {ps.id: built.values[ps.id] for ps in plan.stages
               if ps.info.name in CHUNKED_SOURCES
               and isinstance(built.values.get(ps.id), da.Array)
               and built.values[ps.id].ndim and not math.isnan(built.values[ps.id].size)}
    if not sources:
        return []
    largest = max(v.size for v in sources.values())
    large = {sid: v for sid, v in sources.items() if v.size >= LARGE_SOURCE * largest}
    pieces = sum(e.compute_s for e in estimates) / (CHUNK_SHARE * budget_s)
    factor = math.ceil(pieces / max(v.npartitions for v in large.values()))
    if factor <= 1:
        return []
    out = []
    for sid, v in large.items():
        chunks = [max(1, math.ceil(v.chunks[0][0] / factor)), *(c[0] for c in v.chunks[1:])]
        out.append(f"stages.{sid}.chunks=[{','.join(map(str, chunks))}]")
    return out


class Graph:
    """The optimized graph of a build's arrays: tasks, their stages, their inputs."""

    def __init__(self, built):
        from dask.base import collections_to_expr

        self.arrays = {s: v for s, v in built.values.items() if isinstance(v, da.Array)}
        self.dsk, self.owner = {}, {}
        if not self.arrays:  # a tables-only workflow
            self.total = Counter()
            return
        expr = collections_to_expr(list(self.arrays.values())).optimize()
        self.dsk = dict(expr.__dask_graph__())
        for key, annotation in expr.__dask_annotations__().get("span", {}).items():
            name = annotation["name"][-1]
            if name.startswith("stage:"):
                self.owner[key] = name.removeprefix("stage:")
        self.total = Counter(self.owner.values())

    def needs(self, key) -> set:
        """``key`` and every task it depends on."""
        from dask.core import get_dependencies

        seen, todo = set(), [key]
        while todo:
            k = todo.pop()
            if k not in seen and k in self.dsk:
                seen.add(k)
                todo.extend(get_dependencies(self.dsk, k))
        return seen


def plan_samples(graph: Graph, estimates, budget_s: float):
    """``(keys to compute, {stage: Sample}, {stage: reason left out})``."""
    predicted = {e.stage: e.compute_s for e in estimates}
    run = sum(predicted.values())

    def cost(keys) -> float:
        """The stages' shares of their estimates; or, where more, the run's estimate by
        the share of all tasks (a stage's work labelled as another's is still paid)."""
        counts = Counter(graph.owner.get(k) for k in keys)
        shares = sum(predicted.get(s, 0.0) * n / graph.total[s]
                     for s, n in counts.items() if s and graph.total[s])
        return max(shares, run * len(keys) / max(len(graph.dsk), 1))

    chosen, keys, skipped = [], set(), {}
    for stage in predicted:
        value = graph.arrays.get(stage)
        if value is None:  # a sink, or a table stage
            continue
        first = _first_key(value)
        union = keys | graph.needs(first)
        if 2 * cost(union) > budget_s:  # a warm-up pass, a timed one
            need = sum(graph.owner.get(k) == stage for k in union) / max(graph.total[stage], 1)
            skipped[stage] = (f"its first chunk needs {need:.0%} of its tasks, and with "
                              f"its inputs more than the budget ({budget_s:.2g} s)")
            continue
        chosen.append(first)
        keys = union
    counts = Counter(graph.owner.get(k) for k in keys)
    plans = {s: Sample(n / graph.total[s], predicted.get(s, 0.0) * n / graph.total[s])
             for s, n in counts.items() if s and graph.total[s]}
    return chosen, keys, plans, skipped


def measure(plan, built, backend, estimates, rebuild=None, budget_s: float | None = None):
    """Run the samples on ``backend``: ``({stage: Sample}, {stage: reason left out})``.

    ``rebuild(overrides) -> (plan, built, estimates)``: the workflow built again with
    more ``--set`` overrides, for :func:`finer_chunks`; without it the run's own chunks
    are sampled. Shares and predictions are relative to ``estimates`` (the run's).
    """
    import dask

    from pipeline.runner import COMPUTE_CONFIG

    budget_s = budget(estimates) if budget_s is None else budget_s
    whole = {e.stage: e.compute_s for e in estimates}
    finer = finer_chunks(plan, built, estimates, budget_s) if rebuild else []
    if finer:
        with warnings.catch_warnings():  # finer sources meeting coarse ones: expected
            warnings.simplefilter("ignore", da.PerformanceWarning)
            plan, built, estimates = rebuild(finer)
    with dask.config.set({**backend.dask_config, **COMPUTE_CONFIG}):
        graph = Graph(built)
        chosen, keys, plans, skipped = plan_samples(graph, estimates, budget_s)
        measured = _timed(graph, chosen, keys, backend)
    for stage, value in built.values.items():
        if stage in whole and hasattr(value, "columns") and not isinstance(value, da.Array):
            skipped[stage] = "table stages are not sampled (no stage labels on their tasks)"
    for stage, p in plans.items():
        p.measured_s = measured.get(stage, 0.0)
        p.share = p.predicted_s / whole[stage] if whole.get(stage) else p.share
    return plans, skipped


def _timed(graph: Graph, chosen: list, keys: set, backend) -> dict[str, float]:
    """Seconds per stage of computing ``chosen`` (after one untimed warm-up: imports,
    FFT plans, kernel compilation)."""
    from dask.callbacks import Callback
    from dask.local import get_sync

    if not chosen:
        return {}
    xp = backend.xp
    gpu = hasattr(xp, "cuda")
    clock = time.perf_counter if gpu else time.thread_time  # GPU kernels are async
    sync = xp.cuda.Device().synchronize if gpu else (lambda: None)
    spent: dict = {}

    class Timer(Callback):
        def _pretask(self, key, dsk, state):
            spent[key] = clock()

        def _posttask(self, key, result, dsk, state, id):
            sync()  # a task ends when its kernels do
            spent[key] = clock() - spent[key]

    culled = {k: graph.dsk[k] for k in keys}
    get_sync(culled, chosen)
    with Timer():
        get_sync(culled, chosen)
    out: dict[str, float] = {}
    for key, seconds in spent.items():
        stage = graph.owner.get(key)
        if stage:
            out[stage] = out.get(stage, 0.0) + seconds
    return out


def _first_key(value: da.Array):
    keys = value.__dask_keys__()
    while isinstance(keys, list):
        keys = keys[0]
    return keys
