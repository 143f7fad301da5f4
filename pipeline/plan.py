"""Workflow -> Plan: ops looked up, parameters bound, DAG checked and ordered."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Mapping

from pipeline import ops, runfolder, storage
from pipeline.errors import InputError
from pipeline.spec import Stage, Workflow, did_you_mean

STYLE_WORDS = {"none": "no inputs", "input": "'input: <id>'",
               "list": "'inputs: [<id>, ...]'", "mapping": "'inputs: {name: <id>}'"}


@dataclass(frozen=True)
class PlannedStage:
    stage: Stage
    info: ops.OpInfo
    params: Mapping[str, Any]
    upstream: tuple[str, ...]  # inputs, then stage ids named by stage_refs params

    @property
    def id(self) -> str:
        return self.stage.id


@dataclass(frozen=True)
class Plan:
    workflow: Workflow
    stages: tuple[PlannedStage, ...]  # topological order, file order where free
    warnings: tuple[str, ...]

    def consumers(self, stage_id: str) -> list[str]:
        return [s.id for s in self.stages if stage_id in s.upstream]

    @property
    def table_stages(self) -> tuple[str, ...]:
        """The stages that make or transform tables (dataframes): on a GPU they need
        cuDF, which array stages do not."""
        return tuple(s.id for s in self.stages if _makes_table(s))


def build(workflow: Workflow) -> Plan:
    """Bind every stage to its op and order the DAG.

    Raises
    ------
    InputError
        Unknown op or parameter, bad parameter type, wrong kind of inputs, unknown or
        cyclic references, a sink used as an input, no sink at all.
    """
    try:
        planned = {s.id: _bind(s) for s in workflow.stages}
        _check_refs(planned)
        order = _toposort(planned)
    except InputError as e:
        raise e.located(file=workflow.label) from None
    sinks = [s for s in order if s.info.family == "sink"]
    if not sinks:
        raise InputError("no sink stage: nothing would be computed", where="stages",
                         hint="add a 'write' stage", file=workflow.label)
    _check_sink_paths(sinks, workflow)
    warnings = tuple(
        f"stage '{s.id}' feeds no other stage and is not a sink: it will not be computed"
        for s in order if s.info.family != "sink" and
        not any(s.id in t.upstream for t in order))
    return Plan(workflow=workflow, stages=tuple(order), warnings=warnings)


def _makes_table(ps: PlannedStage) -> bool:
    if ps.info.family == "frame" or ps.info.name == "random_table":
        return True
    if ps.info.name != "read":
        return False
    from pipeline.ops.formats import READ_KINDS, READERS, format_of

    try:
        return READ_KINDS[format_of(ps.params["path"], ps.params.get("format"), READERS)] \
            == "frame"
    except InputError:  # an unknown format: reported when the stage is built
        return False


def _check_sink_paths(sinks: list[PlannedStage], workflow: Workflow) -> None:
    """Each sink's own path inside the run folder, or its own URL, known from the file
    alone: checked here so that ``validate`` reports it and ``run`` before any worker
    starts (the sinks check again as they are built, see
    :meth:`pipeline.ops.context.Context.output`)."""
    taken: list = []
    urls: set[str] = set()
    for ps in sinks:
        path = ps.params.get("path")
        if not isinstance(path, str):
            continue
        try:
            if storage.scheme(path) is not None:
                if path in urls:
                    raise InputError(f"{path} is also written by another stage",
                                     where="path", hint="each sink writes its own path")
                urls.add(path)
                continue
            rel = runfolder.sink_path(path.removeprefix("file://"), workflow.output_dir)
            runfolder.check_overlap(rel, taken)
        except InputError as e:
            raise e.located(where=ps.stage.where, file=workflow.label) from None
        taken.append(rel)


def _bind(stage: Stage) -> PlannedStage:
    try:
        info = ops.get(stage.op)
    except InputError as e:
        raise e.located(where=stage.where) from None
    if stage.input_style != info.inputs:
        raise InputError(f"op '{info.name}' takes {STYLE_WORDS[info.inputs]}, "
                         f"got {STYLE_WORDS[stage.input_style]}", where=stage.where)
    if info.n_inputs is not None and len(stage.inputs) != info.n_inputs:
        raise InputError(f"op '{info.name}' takes {info.n_inputs} inputs, "
                         f"got {len(stage.inputs)}", where=f"{stage.where}.inputs")
    try:
        params = info.bind(stage.params)
    except InputError as e:
        raise e.located(where=stage.where) from None
    refs = tuple(params[k] for k in info.stage_refs if isinstance(params.get(k), str))
    return PlannedStage(stage, info, params, tuple(i for _, i in stage.inputs) + refs)


def _check_refs(planned: dict[str, PlannedStage]) -> None:
    for ps in planned.values():
        for ref in ps.upstream:
            if ref not in planned:
                raise InputError(f"unknown stage id '{ref}'{did_you_mean(ref, planned)}",
                                 where=ps.stage.where, hint="stage ids: " + ", ".join(planned))
            if ref == ps.id:
                raise InputError("a stage cannot take itself as input", where=ps.stage.where)
            if planned[ref].info.family == "sink":
                raise InputError(f"'{ref}' is a sink ({planned[ref].info.name}) and has no "
                                 "output to take", where=ps.stage.where)


def _toposort(planned: dict[str, PlannedStage]) -> list[PlannedStage]:
    indegree = {sid: len(set(ps.upstream)) for sid, ps in planned.items()}
    ready = [(ps.stage.index, sid) for sid, ps in planned.items() if indegree[sid] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, sid = heapq.heappop(ready)
        order.append(planned[sid])
        for other in planned.values():
            if sid in other.upstream:
                indegree[other.id] -= 1
                if indegree[other.id] == 0:
                    heapq.heappush(ready, (other.stage.index, other.id))
    if len(order) < len(planned):
        left = {sid for sid in planned if sid not in {p.id for p in order}}
        raise InputError("cycle between stages " + " -> ".join(_cycle(planned, left)),
                         where="stages", hint="stages must form a DAG")
    return order


def _cycle(planned: dict[str, PlannedStage], left: set[str]) -> list[str]:
    """One cycle among ``left``, as a path that returns to its start."""
    start = min(left, key=lambda s: planned[s].stage.index)
    path, seen = [start], {start}
    while True:
        nxt = next(u for u in planned[path[-1]].upstream if u in left)
        if nxt in seen:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
        seen.add(nxt)
