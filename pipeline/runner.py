"""Executes a plan: builds every stage lazily, computes all sinks as one graph, then moves
the outputs into place and writes the report.

Building the whole workflow first means every problem knowable from shapes, dtypes and
file headers is reported before any compute. Computing one graph lets Dask share
intermediates between stages (an intermediate feeding several stages is computed once
and dropped when its last consumer is done) and fuse element-wise chains. Each stage's
tasks are tagged with a ``stage:<id>`` span, which is how per-stage times and transfer
bytes are measured, and how the dashboard groups them.
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import dask
import dask.array as da

from pipeline import failure, limits, metrics, report, report_html, storage
from pipeline.backends import Backend
from pipeline.errors import InputError, OpError, RunFailed
from pipeline.memory import MemorySampler
from pipeline.ops.context import Context
from pipeline.perf_report import PerformanceReport
from pipeline.plan import Plan
from pipeline.runfolder import RunFolder
from pipeline.watch import WorkerWatch

# Dask's low-level task fusion drops span annotations; blockwise fusion (element-wise
# chains into one task per chunk) still happens with it off.
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

    def staged(self) -> list[tuple[PurePosixPath, Path]]:
        """Each output's relative path and where it is written in the staging folder."""
        return [(rel, self.staging_dir / rel) for rel in self.outputs]


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
    with dask.config.set({**backend.dask_config, **COMPUTE_CONFIG}), span(f"run:{wf.name}"):
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
                # dask-expr warns that it ignores annotations; metrics.py accounts for it
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
        cache=None, folder: RunFolder | None = None) -> dict:
    """Run the plan on ``session``'s cluster and return the report (also written).

    ``progress``: draw per-stage progress on stdout (True) or on the given terminal stream.
    ``cache``: the run's :class:`pipeline.cache.stages.StageCache`, if any.
    ``folder``: the entered :class:`RunFolder` of ``output_dir`` (:func:`pipeline.run`
    opens it before the cluster starts); by default the run opens its own.

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
            return run(plan, backend, session, progress=progress, cache=cache, folder=own)
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
                        progress, cache)
    finally:
        if cache:
            cache.close()  # drops what is not committed (the run failed)
        for staged, _ in built.remote_outputs if built else ():
            storage.discard(staged)  # moved already, or left by the failure


def _execute(plan: Plan, backend: Backend, session, folder: RunFolder, built: Built,
             computed: set[str], memory_limit: int | None, progress, cache) -> dict:
    """Compute the built plan, write its reports and swap the run folder in; or file the
    failed run's report and raise :class:`RunFailed`."""
    from distributed import wait

    client, staging = session.client, folder.staging
    row_counts = {sid: v.shape[0] for sid, v in built.values.items()
                  if sid in computed and hasattr(v, "columns")}
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    futures, watch, memory = [], None, None
    perf = PerformanceReport(staging / "performance-report.html", _workflow_text(plan.workflow))
    try:
        if cache or _uses_zarr(plan):
            # zarr 3 imports itself circularly: a fresh worker importing it in two
            # threads at once (a task, and the unpickling of another task's zarr array)
            # can fail with ImportError, and Dask then leaves the task that needed it
            # waiting forever. Importing it once on every worker first avoids both.
            client.run(_import_zarr)
        for rel in built.outputs:  # the sinks write in place inside the staging folder
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        with dask.config.set({**backend.dask_config, **COMPUTE_CONFIG}), perf, \
                MemorySampler(client) as memory:
            sinks = list(built.sinks.values())
            futures = _compute(client, [*(p.collection for p in sinks), *row_counts.values()])
            watch = WorkerWatch(client, futures, session.address).start()
            report_html.prefetch()
            try:
                if progress:
                    from pipeline import progress as show

                    show.wait(client, futures, built.span_ids,
                              None if progress is True else progress)
                wait(futures)  # raises when the run was cancelled (no worker left)
                results = client.gather(futures)
            finally:
                watch.stop()
        rows = dict(zip(row_counts, results[len(sinks):]))
        stage_metrics = metrics.stage_metrics(client, built.span_ids)
        perf.render(client)  # the scheduler renders it while this thread writes the rest
        try:
            for pending, result in zip(sinks, results):
                if pending.finish:
                    pending.finish(result)
            doc = _document(plan, backend, session, built, computed, rows, stage_metrics,
                            started, time.perf_counter() - t0, memory, watch, None, cache)
            _write_reports(staging, doc)
        finally:
            perf.wait()
        for staged, final in built.remote_outputs:  # URLs first: the fallible part
            storage.promote(staged, final)
        folder.commit()
    except InputError:
        raise
    except Exception as e:  # a task's own exception re-raised by gather, or a write's
        raise _failed(e, folder, started, t0, plan=plan, backend=backend, session=session,
                      built=built, computed=computed, futures=futures, watch=watch,
                      memory=memory, memory_limit=memory_limit, perf=perf) from e
    return doc


def _workflow_text(wf) -> str:
    """The workflow as YAML, for the performance report's "Calling Code" section."""
    import yaml

    return f"# {wf.label or 'a workflow given as a mapping'}\n" \
        + yaml.safe_dump(storage.redacted(wf.raw), sort_keys=False)


def _failed(error: Exception, folder: RunFolder, started: datetime, t0: float, *, plan,
            backend, session, built, computed, futures, watch, memory, memory_limit,
            perf: PerformanceReport) -> RunFailed:
    """File the failed run's report in the run folder's history (with Dask's performance
    report of it, where the scheduler can still render it); the error to raise."""
    found = failure.diagnose(error, client=session.client, futures=futures, plan=plan,
                             built=built, memory_limit=memory_limit,
                             lost_all=watch.failure if watch else None)
    try:
        stage_metrics = metrics.stage_metrics(session.client, built.span_ids)
    except Exception:  # noqa: BLE001 - the scheduler may be gone; report what we know
        stage_metrics = {}
    try:
        perf.render(session.client)
        perf.wait()
    except Exception:  # noqa: BLE001 - not started, or the scheduler is gone: no report
        pass
    doc = _document(plan, backend, session, built, computed, {}, stage_metrics, started,
                    time.perf_counter() - t0, memory, watch, found, None)
    try:
        entry = folder.fail(started, lambda into: _write_reports(into, doc))
        where = f"report: {entry / 'report.json'}"
    except OSError as e:  # e.g. the disk is still full: the line says it all
        where = f"no report written: {e.strerror or e}"
    return RunFailed(f"the run failed: {found.exception[:300]}",
                     where=f"stages.{found.stage}" if found.stage else None,
                     hint=f"{found.cause}; fix: {found.fix}; {where}")


def _memory_limit(client) -> int | None:
    """The smallest worker's memory limit in bytes (None: no worker has one)."""
    limits_ = [w.get("memory_limit") for w in client.scheduler_info()["workers"].values()]
    return min((m for m in limits_ if m), default=None)


def _document(plan: Plan, backend: Backend, session, built: Built, computed: set[str],
              rows: dict, stage_metrics: dict, started: datetime, wall: float, memory, watch,
              found: failure.Failure | None, cache) -> dict:
    """The report.json document: of a finished run, or (``found``) of a failed one, with
    what was measured before it failed. ``cache``: the run's StageCache, if any."""
    wf = plan.workflow
    no_peaks = {"peak_host_bytes": None, "peak_device_bytes": None}
    stages = []
    for ps in plan.stages:
        value = built.values.get(ps.id)
        out = output_info(value) if value is not None else {"kind": "sink"}
        if ps.id in rows:
            out["rows"] = int(rows[ps.id])
        m = stage_metrics.get(ps.id) or metrics.empty()
        if _touches_frame(built, ps):
            m.update(wall_s=None, compute_s=None)  # not separated: see _touches_frame
        peaks = memory.peaks(m["start"], m["stop"]) if memory else no_peaks
        stages.append({"id": ps.id, "op": ps.info.name, "computed": ps.id in computed,
                       "cached": bool(cache and ps.id in cache.hits), **m, **peaks,
                       "output": out})
    totals = {"wall_s": wall, **{k: sum(s[k] or 0 for s in stages)
                                 for k in ("compute_s", "h2d_bytes", "d2h_bytes",
                                           *metrics.SPILL_FIELDS.values())},
              **(memory.peaks(-float("inf"), float("inf")) if memory else no_peaks)}
    return {
        "status": "failed" if found else "ok",
        "workflow": {"name": wf.name, "description": wf.description, "path": wf.label,
                     "spec": storage.redacted(wf.raw)},
        "backend": backend.name,
        "cluster": {"kind": session.kind, "address": session.address,
                    "n_workers": session.n_workers, "dashboard": session.dashboard_link,
                    "array_chunk_bytes": backend.chunk_bytes},
        "versions": report.versions(),
        "started": started.isoformat(timespec="seconds"),
        "stages": stages,
        "totals": totals,
        # local ones relative to the run folder, so they hold wherever it is moved
        "outputs": [] if found else _outputs(built),
        "reads_outside_workflow_folder": list(built.outside_reads),
        "warnings": list(plan.warnings) + (cache.warnings if cache else []),
        "lost_workers": watch.lost if watch else [],
        **({"failure": found.as_dict()} if found else {}),
    }


def _outputs(built: Built) -> list[dict]:
    """The outputs of a finished run and their sizes, read where they are staged."""
    return [*({"path": str(rel), "bytes": _size(staged)} for rel, staged in built.staged()),
            *({"path": final.url, "bytes": storage.size(staged)}
              for staged, final in built.remote_outputs)]


def _write_reports(folder: Path, doc: dict) -> None:
    report.write_json(folder / "report.json", doc)
    report_html.write(folder / "report.html", doc)


def _compute(client, collections: list) -> list:
    """``client.compute`` the collections, dask-expr ones (dataframes) and graph-backed ones
    (arrays, delayed) in separate calls, as Dask asks; identical keys are still shared on
    the scheduler. Futures come back in the order of ``collections``."""
    futures: list = [None] * len(collections)
    for is_expr in (True, False):
        picked = [i for i, c in enumerate(collections) if hasattr(c, "expr") == is_expr]
        if picked:
            sent = [c if is_expr else _Configured(c, COMPUTE_CONFIG)
                    for c in (collections[i] for i in picked)]
            for i, f in zip(picked, client.compute(sent)):
                futures[i] = f
    return futures


class _Configured:
    """A graph-backed collection whose graph is optimized under ``config`` wherever that
    happens. The scheduler optimizes the graphs it is sent, under its own Dask config: a
    scheduler in another process (``--address``) has low-level fusion on, which fuses
    each stage's tasks with its neighbours' and drops their stage spans, and every
    stage's metrics came out 0."""

    def __init__(self, collection, config: dict):
        self.collection, self.config = collection, dict(config)

    def __dask_graph__(self):
        return self.collection.__dask_graph__()

    def __dask_keys__(self):
        return self.collection.__dask_keys__()

    def __dask_postcompute__(self):
        return self.collection.__dask_postcompute__()

    def __dask_tokenize__(self):
        return dask.base.tokenize(self.collection), sorted(self.config.items())

    @property
    def __dask_optimize__(self):
        return functools.partial(_optimize_under, self.collection.__dask_optimize__,
                                 self.config)


def _optimize_under(optimize, config: dict, dsk, keys, **kwargs):
    """``optimize(dsk, keys)`` under ``config`` (runs on the scheduler)."""
    with dask.config.set(config):
        return optimize(dsk, keys, **kwargs)


def _touches_frame(built: Built, ps) -> bool:
    """Whether a stage makes or takes a dataframe. dask-expr plans a dataframe query as a
    whole and ignores span annotations, so such a stage's time is not separated."""
    values = [built.values.get(ps.id), *(built.values.get(r) for r in ps.upstream)]
    return any(hasattr(v, "columns") for v in values)


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


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
