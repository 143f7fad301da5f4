"""``advise --measure``: time a sample of each stage next to its prediction.

A stage's sample is its first output chunk and what that chunk needs. Before anything
runs, the prediction prices each sample (each upstream stage's estimate times the share
of its tasks the sample needs): samples are taken in DAG order while all of them together,
run twice (a warm-up, then timed), stay within :data:`BUDGET` of the whole run's
predicted compute. A stage whose sample needs more (a reduction's first chunk needs its
whole input) is left out and says so. Samples run on Dask's synchronous scheduler in
this process; each task's CPU seconds (wall seconds on a GPU, after synchronizing) are
attributed to its stage through the ``stage:<id>`` span it carries. Table stages are not
sampled: dask-expr drops the span annotations that attribute tasks to stages.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import dask.array as da

BUDGET = 0.05  # of the predicted compute, both passes together
MIN_BUDGET_S = 0.5  # small workflows may spend this much


@dataclass
class Sample:
    share: float  # of the stage's tasks in the sample
    predicted_s: float  # the stage's estimate x share
    measured_s: float | None = None


def plan_samples(built, estimates, budget_s: float | None = None):
    """``(samples to run, {stage: Sample}, {stage: reason left out})``."""
    predicted = {e.stage: e.compute_s for e in estimates}
    budget = max(BUDGET * sum(predicted.values()), MIN_BUDGET_S) \
        if budget_s is None else budget_s
    total = Counter(_stage_of_keys(list(built.values.values())).values())
    chosen, keys, skipped = [], {}, {}
    for stage, value in built.values.items():
        if not isinstance(value, da.Array):
            skipped[stage] = "table stages are not sampled (no stage labels on their tasks)"
            continue
        sample = _first_chunk(value)
        union = {**keys, **_stage_of_keys([sample])}
        cost = _cost(union, total, predicted)
        if 2 * cost > budget:  # a warm-up pass and a timed one
            need = Counter(union.values())[stage] / max(total[stage], 1)
            skipped[stage] = (f"its sample needs {need:.0%} of its tasks and upstream work "
                              f"beyond the budget ({budget:.2g} s)")
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


def measure(plan, built, backend, estimates, budget_s: float | None = None):
    """Run the samples on ``backend``: ``({stage: Sample}, {stage: reason left out})``."""
    import dask
    from dask.callbacks import Callback

    from pipeline.runner import COMPUTE_CONFIG

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

    with dask.config.set({**backend.dask_config, **COMPUTE_CONFIG, "scheduler": "sync"}):
        samples, plans, skipped = plan_samples(built, estimates, budget_s)
        owner = _stage_of_keys(samples)
        if samples:
            dask.compute(*samples)  # warm-up: imports, FFT plans, kernel compilation
            with Timer():
                dask.compute(*samples)
    measured: dict[str, float] = {}
    for key, seconds in spent.items():
        stage = owner.get(key)
        if stage:
            measured[stage] = measured.get(stage, 0.0) + seconds
    for stage, p in plans.items():
        p.measured_s = measured.get(stage, 0.0)
    return plans, skipped


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
