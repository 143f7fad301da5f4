"""Builds the graph a run submits: optimized (fused by default), materialized here, every
task callable wrapped in :class:`~pipeline.accounting.meter.Metered` under its stage's
label, and each task annotated with the span of the stage whose result it makes (for a
fused task, its last stage): the dashboard groups tasks by it, and what Dask records
around a task's code (storing its result, spilling) lands there.

Optimizing here rather than on the scheduler is what makes the stages findable: a fused
task still holds its members as inner tasks under their own keys, and the optimized
dataframe query is at hand to trace rewritten expressions back to their stages. This
module uses Dask internals (the task spec, expression sequences, dask-expr's blockwise
fusion) of the pinned Dask version.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field

import dask

from pipeline.accounting.meter import Metered
from pipeline.accounting.stagemap import StageMap, key_name, propagate


@dataclass
class Prepared:
    """A run's graph, ready to submit, and what progress and the report need of it."""

    graph: object  # HighLevelGraph
    keys: list  # one output key per collection, in order
    tasks: Counter = field(default_factory=Counter)  # label -> its tasks (before fusion)
    # top-level key -> {label: tasks of that stage inside it}: progress's table
    members: dict = field(default_factory=dict)

    @property
    def submitted(self) -> int:
        """Tasks the scheduler runs (after fusion)."""
        return len(self.members)


def prepare(collections: list, outputs: list[str], stages: StageMap, *, fuse: bool,
            spans: dict[str, dict], run_label: str) -> Prepared:
    """Optimize, materialize and meter ``collections`` as one graph.

    ``outputs``: the label of the stage each collection is the result of (its
    finalizing task belongs there). ``spans``: label -> that stage's span annotation, the
    run's under ``run_label``. ``fuse``: Dask's low-level fusion and dask-expr's blockwise
    fusion on (blockwise fusion of array layers happens either way).
    """
    from dask._expr import FinalizeCompute
    from dask._task_spec import convert_legacy_graph
    from dask.base import collections_to_expr

    dsk, annotations = {}, {}
    keys: list = [None] * len(collections)
    # dask-expr collections and graph-backed ones are optimized apart, as Dask asks (one
    # sequence of both would materialize the expressions unoptimized); keys they share
    # are the same tasks, computed once
    for is_expr in (True, False):
        picked = [i for i, c in enumerate(collections) if hasattr(c, "expr") == is_expr]
        if not picked:
            continue
        with dask.config.set({"optimization.fuse.active": fuse}):
            expr = FinalizeCompute(collections_to_expr([collections[i] for i in picked]))
            expr = expr.optimize()
            if is_expr and fuse:
                from dask.dataframe.dask_expr._expr import optimize_blockwise_fusion

                expr = optimize_blockwise_fusion(expr)  # renames what it rebuilds
            for i, key in zip(picked, expr.__dask_keys__()):
                keys[i] = _single_key(key)
                # its finalizing task, unless a stage owns it
                stages.add(key_name(keys[i]), outputs[i], weak=True)
            if is_expr:
                stages.learn(expr)
            dsk.update(convert_legacy_graph(expr.__dask_graph__()))  # some are tuples
            for kind, by_key in expr.__dask_annotations__().items():
                if kind != "span":
                    for key, value in by_key.items():
                        annotations.setdefault(key, {})[kind] = value
    prepared = Prepared(graph=None, keys=keys)
    layers: dict[str, tuple[dict, dict]] = {}
    defaults = _task_labels(dsk, stages)
    for key, node in dsk.items():
        counts: Counter = Counter()
        node = _meter(node, stages, defaults.get(key, run_label), counts)
        prepared.tasks.update(counts)
        if counts:
            prepared.members[key] = dict(counts)
        ann = {**annotations.get(key, {}), "span": spans[defaults.get(key, run_label)]}
        layer = layers.setdefault(repr(sorted(ann.items(), key=str)), ({}, ann))
        layer[0][key] = node
    prepared.graph = _graph(layers)
    return prepared


def submit(client, prepared: Prepared) -> list:
    """Send the graph; futures of the collections' results, in order."""
    return client.get(prepared.graph, prepared.keys, sync=False)


def _single_key(keys):
    from dask.core import flatten

    flat = list(flatten(keys)) if isinstance(keys, list) else [keys]
    if len(flat) != 1:
        raise AssertionError(f"a finalized collection has one output key, not {flat!r}")
    return flat[0]


def _graph(layers: dict[str, tuple[dict, dict]]):
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

    named = {f"pipeline-{i}": MaterializedLayer(tasks, annotations=ann)
             for i, (tasks, ann) in enumerate(layers.values())}
    return HighLevelGraph(named, {name: set() for name in named})


def _task_labels(dsk: dict, stages: StageMap) -> dict:
    """Top-level key -> the stage its tasks belong to unless they say otherwise: its own
    key's, a fused task's output member's, or for tasks Dask made up (a shuffle's
    partitioning steps, say) its neighbours' (:func:`stagemap.propagate`)."""
    from dask._task_spec import Task, _execute_subgraph

    known, consumers, inputs = {}, {}, {}
    for key, node in dsk.items():
        fused = isinstance(node, Task) and node.func is _execute_subgraph
        label = stages.label(node.args[1] if fused else key)
        if label is not None:
            known[key] = label
        inputs[key] = list(node.dependencies)
        for dep in inputs[key]:
            consumers.setdefault(dep, []).append(key)
    return {**known, **propagate([k for k in dsk if k not in known], consumers, inputs, known)}


def _meter(node, stages: StageMap, label: str, counts: Counter):
    """``node`` with every callable in it metered: a keyed task under its key's stage
    (``label`` where it has none), an inline one under its enclosing task's."""
    from dask._task_spec import NestedContainer, Task, _execute_subgraph

    if not isinstance(node, Task):
        return node  # an alias or a literal: nothing runs
    if node.func is _execute_subgraph:  # a fused task: its members keep their keys
        inner = {k: _meter(t, stages, label, counts) for k, t in node.args[0].items()}
        return _replace(node, node.func, (inner, *node.args[1:]), node.kwargs)
    if node.key is not None:
        label = stages.label(node.key) or label
        counts[label] += 1
    args, kwargs = node.args, node.kwargs
    if any(isinstance(a, Task) for a in args):  # inline tasks: most args are refs or data
        args = tuple(_meter(a, stages, label, counts) for a in args)
    if any(isinstance(v, Task) for v in kwargs.values()):
        kwargs = {k: _meter(v, stages, label, counts) for k, v in kwargs.items()}
    wrap = not isinstance(node, NestedContainer) and not inspect.iscoroutinefunction(node.func)
    return _replace(node, Metered(node.func, label) if wrap else node.func, args, kwargs)


def _replace(node, func, args, kwargs):
    """A copy of ``node`` (any Task subclass, slots kept) with new func / args / kwargs.
    Copied, not changed: Dask's graphs share task objects with the collections."""
    new = object.__new__(type(node))
    new.__setstate__(node.__getstate__())
    new.func, new.args, new.kwargs = func, args, kwargs
    new._token = new._repr = new._is_coro = None
    return new
