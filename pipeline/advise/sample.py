"""``advise --measure``: time a sample of each stage next to its prediction.

A stage's sample is its first output chunk and what that chunk needs. So that a sample
is a small part of the run, the workflow is first built again with its chunked sources'
first axis cut finer (``--set stages.<source>.chunks=[...]``), aiming at a chunk of
:data:`CHUNK_SHARE` of the budget. Before anything runs, each sample is priced (each
stage's estimate times the share of its tasks the sample needs) and samples are taken in
DAG order while all of them together, run twice (a warm-up, then timed), stay within
:data:`BUDGET` of the whole run's predicted compute. A stage whose sample needs more (a
reduction over the chunked axis needs its whole input) is left out and says so. Samples
run on Dask's synchronous scheduler in this process; each task's CPU seconds (wall
seconds on a GPU, after synchronizing) are attributed to its stage through the
``stage:<id>`` span it carries. Table stages are not sampled: dask-expr drops the span
annotations that attribute tasks to stages.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass

import dask.array as da

BUDGET = 0.05  # of the predicted compute, both passes together
MIN_BUDGET_S = 0.5  # small workflows may spend this much
CHUNK_SHARE = 0.25  # of the budget: the cost of one chunk of the finer-cut sources
CHUNKED_SOURCES = ("random", "read", "arange")  # sources with a 'chunks' parameter


@dataclass
class Sample:
    share: float  # of the stage's whole (predicted) compute
    predicted_s: float  # the sample's share of the stage's estimate
    measured_s: float | None = None


def budget(estimates) -> float:
    return max(BUDGET * sum(e.compute_s for e in estimates), MIN_BUDGET_S)


def finer_chunks(plan, built, estimates, budget_s: float) -> list[str]:
    """``--set`` overrides cutting each chunked array source's first axis finer, so
    that one chunk of the run costs about :data:`CHUNK_SHARE` of the budget."""
    total = sum(e.compute_s for e in estimates)
    pieces = total / (CHUNK_SHARE * budget_s)  # chunks the run should have
    out = []
    for ps in plan.stages:
        value = built.values.get(ps.id)
        if ps.info.name not in CHUNKED_SOURCES or not isinstance(value, da.Array) \
                or not value.ndim or value.npartitions >= pieces:
            continue
        split = math.ceil(pieces / value.npartitions)
        first = max(1, math.ceil(value.chunks[0][0] / split))
        chunks = [first, *(c[0] for c in value.chunks[1:])]
        out.append(f"stages.{ps.id}.chunks=[{','.join(map(str, chunks))}]")
    return out


def plan_samples(built, estimates, budget_s: float):
    """``(samples to run, {stage: Sample}, {stage: reason left out})``."""
    predicted = {e.stage: e.compute_s for e in estimates}
    total = Counter(_stage_of_keys(list(built.values.values())).values())
    chosen, keys, skipped = [], {}, {}
    for stage, value in built.values.items():
        if not isinstance(value, da.Array):
            skipped[stage] = "table stages are not sampled (no stage labels on their tasks)"
            continue
        sample = _first_chunk(value)
        union = {**keys, **_stage_of_keys([sample])}
        if 2 * _cost(union, total, predicted) > budget_s:  # a warm-up pass, a timed one
            need = Counter(union.values())[stage] / max(total[stage], 1)
            skipped[stage] = (f"its first chunk needs {need:.0%} of its tasks, and with "
                              f"its inputs more than the budget ({budget_s:.2g} s)")
            continue
        chosen.append(sample)
        keys = union
    counts = Counter(keys.values())
    plans = {s: Sample(counts[s] / total[s], predicted.get(s, 0.0) * counts[s] / total[s])
             for s in counts if total[s]}
    return chosen, plans, skipped


def _cost(keys: dict, total: Counter, predicted: dict) -> float:
    counts = Counter(keys.values())
    return sum(predicted.get(s, 0.0) * n / total[s] for s, n in counts.items() if total[s])


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
        plan, built, estimates = rebuild(finer)
    with dask.config.set({**backend.dask_config, **COMPUTE_CONFIG, "scheduler": "sync"}):
        samples, plans, skipped = plan_samples(built, estimates, budget_s)
        measured = _timed(samples, backend)
    for stage, p in plans.items():
        p.measured_s = measured.get(stage, 0.0)
        p.share = p.predicted_s / whole[stage] if whole.get(stage) else p.share
    return plans, skipped


def _timed(samples: list, backend) -> dict[str, float]:
    """Seconds per stage of computing ``samples`` (after one untimed warm-up: imports,
    FFT plans, kernel compilation)."""
    import dask
    from dask.callbacks import Callback

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

    if not samples:
        return {}
    owner = _stage_of_keys(samples)
    dask.compute(*samples)
    with Timer():
        dask.compute(*samples)
    out: dict[str, float] = {}
    for key, seconds in spent.items():
        stage = owner.get(key)
        if stage:
            out[stage] = out.get(stage, 0.0) + seconds
    return out


def _stage_of_keys(collections) -> dict:
    """Task key -> stage id, from the ``stage:<id>`` span each task carries."""
    from dask.base import collections_to_expr

    if not collections:
        return {}
    spans = collections_to_expr(collections).optimize().__dask_annotations__().get("span", {})
    out = {}
    for key, annotation in spans.items():
        name = annotation["name"][-1]
        if name.startswith("stage:"):
            out[key] = name.removeprefix("stage:")
    return out


def _first_chunk(value: da.Array):
    return value.blocks[(0,) * value.ndim] if value.ndim else value
