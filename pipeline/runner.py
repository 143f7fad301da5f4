"""Executes a plan: builds every stage lazily, computes all sinks as one graph in the run's
staging folder, then writes the report and swaps the folder in (:mod:`pipeline.runfolder`).

Building the whole workflow first means every problem knowable from shapes, dtypes and
file headers is reported before any compute. Computing one graph lets Dask share
intermediates between stages (an intermediate feeding several stages is computed once
and dropped when its last consumer is done) and fuse tasks (:mod:`pipeline.accounting`
keeps per-stage time and transfer bytes exact under fusion). Each stage is built inside a
``stage:<id>`` span, whose id labels its figures; a task that does one stage's work
carries that span on the dashboard. A run that fails files its report in the run folder's
history (:mod:`pipeline.runreport`) and leaves the folder as it was.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import dask
import dask.array as da

from pipeline import limits, metrics, report_html, runreport, settings, storage
from pipeline.accounting import graph
from pipeline.accounting.stagemap import StageMap
from pipeline.backends import Backend
from pipeline.errors import InputError, OpError
from pipeline.memory import MemorySampler
from pipeline.ops.context import Context
from pipeline.perf_report import FILENAME as PERFORMANCE_REPORT, PerformanceReport
from pipeline.plan import Plan
from pipeline.runfolder import RunFolder
from pipeline.watch import WorkerWatch

# The unfused mode (`--no-fuse`, ``pipeline.fuse: false``): one task per stage per chunk,
# each in its stage's span (blockwise fusion of element-wise chains within a stage still
# happens). Also what `advise --measure` builds under, as it reads spans.
COMPUTE_CONFIG = {"optimization.fuse.active": False}


@dataclass
class Built:
    """A built plan: each stage's lazy result, span and (sinks) pending work; the sinks'
    paths relative to the run folder, and their ``(staged, final)`` URLs; the files read
    from outside the workflow's folder."""

    staging_dir: Path
    values: dict[str, Any] = field(default_factory=dict)
    span_ids: dict[str, str] = field(default_factory=dict)
    sinks: dict[str, Any] = field(default_factory=dict)
    outputs: list[PurePosixPath] = field(default_factory=list)
    remote_outputs: list[tuple[storage.Remote, storage.Remote]] = field(default_factory=list)
    outside_reads: list[str] = field(default_factory=list)
    run_span: str | None = None
    # span id -> the span annotation its tasks carry (the stages' and the run's)
    spans: dict[str, dict] = field(default_factory=dict)

    def staged(self) -> list[tuple[PurePosixPath, Path]]:
        """Each output's relative path and where it is written in the staging folder."""
        return [(rel, self.staging_dir / rel) for rel in self.outputs]

    def results(self, plan: Plan) -> dict[str, Any]:
        """Each stage's lazy result (a sink's collection for a sink), in DAG order."""
        return {ps.id: built if (built := self.values.get(ps.id)) is not None
                else self.sinks[ps.id].collection for ps in plan.stages}


def build(plan: Plan, backend: Backend, staging_dir: Path, cache=None) -> Built:
    """Call every op in DAG order, each inside its stage's span. Nothing is computed.

    ``cache``: a :class:`pipeline.cache.stages.StageCache`; a stage it holds is read from
    it instead of calling the op, and the others' results are offered to it.

    Raises
    ------
    InputError
        An op rejected its parameters or inputs (shape, dtype, axis, missing file...).
    """
    from distributed import span

    wf = plan.workflow
    built = Built(staging_dir)
    with dask.config.set({**backend.dask_config, **COMPUTE_CONFIG}), \
            span(f"run:{wf.name}") as run_span:
        built.run_span = run_span
        built.spans[run_span] = dask.get_annotations()["span"]
        for ps in plan.stages:
            ctx = Context(stage=ps.stage, backend=backend, base_dir=wf.base_dir,
                          output_dir=wf.output_dir, staging_dir=staging_dir,
                          outputs=built.outputs, remote_outputs=built.remote_outputs,
                          outside_reads=built.outside_reads)
            params = {k: built.values[v] if k in ps.info.stage_refs and isinstance(v, str)
                      else v for k, v in ps.params.items()}
            inputs = [built.values[ref] for _, ref in ps.stage.inputs]
            args = [dict(zip((n for n, _ in ps.stage.inputs), inputs))] \
                if ps.info.inputs == "mapping" else inputs
            with span(f"stage:{ps.id}") as span_id, warnings.catch_warnings():
                # dask-expr warns that it ignores annotations; pipeline.accounting maps
                # its expressions to stages instead
                warnings.filterwarnings("ignore", "Dask annotations .* detected")
                try:
                    _check_kinds(ps, built.values)
                    value = cache.load(ps, ctx) if cache else None
                    if value is None:
                        value = ps.info.fn(ctx, *args, **params)
                        if cache:
                            cache.offer(ps, ctx, value)
                    _check_size(value)
                except InputError as e:
                    raise e.located(where=ps.stage.where, file=wf.label) from None
                built.spans[span_id] = dask.get_annotations()["span"]
            built.span_ids[ps.id] = span_id
            if ps.info.family == "sink":
                built.sinks[ps.id] = value
            else:
                built.values[ps.id] = value
    return built


def _check_kinds(ps, values: dict) -> None:
    """Arrays into array ops, tables into table ops (the op's ``takes``).

    Raises
    ------
    OpError
        Naming the input of the wrong kind and the op that converts it.
    """
    refs = [("inputs" if len(ps.stage.inputs) > 1 else "input", ref)
            for _, ref in ps.stage.inputs]
    refs += [(k, ps.params[k]) for k in ps.info.stage_refs if isinstance(ps.params[k], str)]
    for where, ref in refs:
        kind = "frame" if hasattr(values[ref], "columns") else "array"
        wanted = "array" if where in ps.info.stage_refs else ps.info.takes
        if wanted != "any" and kind != wanted:
            words = {"array": ("arrays", "an array", "to_frame"),
                     "frame": ("tables", "a table", "to_array")}
            raise OpError(f"op '{ps.info.name}' takes {words[wanted][0]}, but '{ref}' is "
                          f"{words[kind][1]}", where=where,
                          hint=f"{words[kind][2]} converts {words[kind][1]}")


def _check_size(value) -> None:
    """Every stage's result is held to the chunk limit, whatever op made it."""
    for x in value.values() if isinstance(value, dict) else [value]:
        n = getattr(x, "npartitions", None)
        if isinstance(n, int):
            limits.check_count(n, "this stage's result", where="")


def output_info(value) -> dict:
    """What the report says of a stage's output, known without computing it."""
    if isinstance(value, da.Array):
        shape = [None if s != s else int(s) for s in value.shape]  # NaN: unknown
        nbytes = None if None in shape else int(value.nbytes)
        return {"kind": "array", "shape": shape, "dtype": str(value.dtype), "bytes": nbytes,
                "chunks": int(value.npartitions)}
    if isinstance(value, dict):
        return {"kind": "arrays", "parts": {k: output_info(v) for k, v in value.items()}}
    if hasattr(value, "columns"):
        return {"kind": "frame", "columns": [str(c) for c in value.columns],
                "partitions": int(value.npartitions)}
    return {"kind": "sink"}


def run(plan: Plan, backend: Backend, session, *, progress: bool | Any = False,
        cache=None, fuse: bool | None = None, performance_report: bool | None = None,
        folder: RunFolder | None = None) -> dict:
    """Run the plan on ``session``'s cluster and return the report (also written).

    ``progress``: show per-stage progress on stdout (True) or on the given stream: redrawn
    in place on a terminal, plain lines and a heartbeat otherwise. ``cache``: the run's
    :class:`pipeline.cache.stages.StageCache`, if any. ``fuse``: let Dask fuse tasks
    (None: the Dask config ``pipeline.fuse``); False keeps one task per stage per chunk.
    ``performance_report``: write performance-report.html (None: the Dask config
    ``pipeline.performance-report``). ``folder``: the entered :class:`RunFolder` of
    ``output_dir`` (:func:`pipeline.run` opens it before the cluster starts); by default
    the run opens its own.

    Raises
    ------
    InputError
        Found while building, before any compute.
    RunFailed
        A task raised, the workers were lost, or the outputs could not be written: the run
        folder is left as it was, and the failed run's report is filed in its history.
    """
    if folder is None:
        with RunFolder(plan.workflow.output_dir) as own:
            return run(plan, backend, session, progress=progress, cache=cache, fuse=fuse,
                       performance_report=performance_report, folder=own)
    fuse = settings.flag("fuse") if fuse is None else fuse
    performance_report = settings.flag("performance-report") if performance_report is None \
        else performance_report
    built = None  # nothing is written while building: a failure there leaves nothing
    try:
        built = build(plan, backend, folder.staging, cache)
        computed = _upstream_of_sinks(plan, cache.hits if cache else set())
        if cache:  # entries of the stages computed, written with the sinks
            writes = cache.writes(computed)
            built.sinks.update({f"cache:{sid}": w for sid, w in writes.items()})
        memory_limit = _memory_limit(session.client)
        try:
            limits.check_fits({sid: v for sid, v in built.values.items() if sid in computed},
                              memory_limit)
        except InputError as e:
            raise e.located(file=plan.workflow.label) from None
        return _execute(plan, backend, session, folder, built, computed, memory_limit,
                        progress, cache, fuse, performance_report)
    finally:
        if cache:
            cache.close()  # drops what is not committed (the run failed)
        for staged, _ in built.remote_outputs if built else ():
            storage.discard(staged)  # moved already, or left by the failure


def _execute(plan: Plan, backend: Backend, session, folder: RunFolder, built: Built,
             computed: set[str], memory_limit: int | None, progress, cache,
             fuse: bool, performance_report: bool) -> dict:
    """Compute the built plan, write its reports and swap the run folder in; or file the
    failed run's report and raise :class:`RunFailed`."""
    client, staging = session.client, folder.staging
    row_counts = {sid: v.shape[0] for sid, v in built.values.items()
                  if sid in computed and hasattr(v, "columns")}
    labels = built.span_ids
    # a cache entry is written by the stage whose result it keeps
    owners = {sid: sid.removeprefix("cache:") for sid in built.sinks}
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    run = _Submitted()
    memory, prepared = None, None
    perf = PerformanceReport(staging / PERFORMANCE_REPORT,
                             runreport.workflow_text(plan.workflow), performance_report)
    try:
        if cache or _uses_zarr(plan):
            # zarr 3 imports itself circularly: a fresh worker importing it in two
            # threads at once (a task, and the unpickling of another task's zarr array)
            # can fail with ImportError, and Dask then leaves the task that needed it
            # waiting forever. Importing it once on every worker first avoids both.
            client.run(_import_zarr)
        for rel in built.outputs:  # the sinks write in place inside the staging folder
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        with dask.config.set({**backend.dask_config}), perf, MemorySampler(
                client, device=backend.array_module == "cupy") as memory:
            sinks = list(built.sinks.values())
            stage_map = StageMap.from_build(built.results(plan), labels,
                                            {ps.id: ps.upstream for ps in plan.stages})
            prepared = graph.prepare(
                [*(p.collection for p in sinks), *row_counts.values()],
                [labels[sid] for sid in [*owners.values(), *row_counts]], stage_map,
                fuse=fuse, spans=built.spans, run_label=built.run_span)
            results = run.gather(session, prepared, labels, progress)
        rows = dict(zip(row_counts, results[len(sinks):]))
        stage_metrics, other = metrics.stage_metrics(client, labels, built.run_span,
                                                     prepared.tasks)
        perf.render(client)  # the scheduler renders it while this thread writes the rest
        try:
            for pending, result in zip(sinks, results):
                if pending.finish:
                    pending.finish(result)
            for ps in plan.stages:
                # tasks identical to an earlier stage's are computed once, counted there
                stage_metrics[ps.id]["shares_with"] = sorted(
                    sid for sid, label in labels.items()
                    if label in stage_map.shared.get(labels[ps.id], ()))
            accounting = {**metrics.accounting(fuse), "scheduler_tasks": prepared.submitted}
            doc = runreport.document(
                plan, backend, session, built, computed=computed, rows=rows,
                stage_metrics=stage_metrics, other=other, started=started,
                wall=time.perf_counter() - t0, memory=memory, watch=run.watch,
                accounting=accounting, cache=cache, performance_report=perf.enabled)
            runreport.write(staging, doc, built)  # plots: read where staged
        finally:
            perf.wait()
        for staged, final in built.remote_outputs:  # URLs first: the fallible part
            storage.promote(staged, final)
        folder.commit()
    except InputError:
        raise
    except Exception as e:  # a task's own exception re-raised by gather, or a write's
        raise runreport.failed(
            e, folder, plan=plan, backend=backend, session=session, built=built,
            computed=computed, started=started, t0=t0, futures=run.futures,
            watch=run.watch, memory=memory, memory_limit=memory_limit, perf=perf,
            prepared=prepared) from e
    return doc


@dataclass
class _Submitted:
    """The run's futures and worker watch, kept for the diagnosis when it fails."""

    futures: list = field(default_factory=list)
    watch: WorkerWatch | None = None

    def gather(self, session, prepared: graph.Prepared, labels: dict[str, str],
               progress) -> list:
        """Submit the prepared graph and wait for it, showing progress; its results.

        Raises
        ------
        Exception
            A task's own exception (re-raised by gather), or CancelledError when the
            workers were lost (``watch.failure`` says so).
        """
        from distributed import wait

        client = session.client
        shown = None
        if progress:
            from pipeline import progress as show

            shown = show.start(client, prepared, labels,
                               None if progress is True else progress)
        self.futures = graph.submit(client, prepared)
        self.watch = WorkerWatch(client, self.futures, session.address).start()
        report_html.prefetch()
        try:
            if shown:
                shown.wait(self.futures)
            wait(self.futures)  # raises when the run was cancelled (no worker left)
            return client.gather(self.futures)
        finally:
            self.watch.stop()
            if shown:
                shown.stop()


def _memory_limit(client) -> int | None:
    """The smallest worker's memory limit in bytes (None: no worker has one)."""
    limits_ = [w.get("memory_limit") for w in client.scheduler_info()["workers"].values()]
    return min((m for m in limits_ if m), default=None)


def _import_zarr() -> None:
    import zarr  # noqa: F401


def _uses_zarr(plan: Plan) -> bool:
    return any(str(ps.params.get("path", "")).rstrip("/*").endswith(".zarr")
               or ps.params.get("format") == "zarr" for ps in plan.stages)


def _upstream_of_sinks(plan: Plan, cached: set[str] = frozenset()) -> set[str]:
    """The stages the sinks need, not looking above a stage read from the cache."""
    needed: set[str] = set()
    todo = [s.id for s in plan.stages if s.info.family == "sink"]
    by_id = {s.id: s for s in plan.stages}
    while todo:
        sid = todo.pop()
        if sid not in needed:
            needed.add(sid)
            if sid not in cached:
                todo.extend(by_id[sid].upstream)
    return needed
