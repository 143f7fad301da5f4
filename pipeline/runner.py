"""Executes a plan: builds every stage lazily, computes all sinks as one graph, then moves
the outputs into place and writes the report.

Building the whole workflow first means every problem knowable from shapes, dtypes and
file headers is reported before any compute. Computing one graph lets Dask share
intermediates between stages (an intermediate feeding several stages is computed once
and dropped when its last consumer is done) and fuse tasks (:mod:`pipeline.accounting`
keeps per-stage time and transfer bytes exact under fusion). Each stage is built inside a
``stage:<id>`` span, whose id labels its figures; a task that does one stage's work
carries that span on the dashboard.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dask
import dask.array as da

from pipeline import metrics, report, report_html, storage
from pipeline.accounting import graph
from pipeline.accounting.stagemap import StageMap
from pipeline.backends import Backend
from pipeline.memory import MemorySampler
from pipeline.perf_report import PerformanceReport
from pipeline.errors import InputError, RunFailed
from pipeline.ops.context import Context
from pipeline.plan import Plan
from pipeline.watch import WorkerWatch

# The unfused mode (`--no-fuse`, ``pipeline.fuse: false``): one task per stage per chunk,
# each in its stage's span (blockwise fusion of element-wise chains within a stage still
# happens). Also what `advise --measure` builds under, as it reads spans.
COMPUTE_CONFIG = {"optimization.fuse.active": False}


def fuse_default() -> bool:
    """Whether runs fuse tasks: the Dask config key ``pipeline.fuse`` (default true; e.g.
    ``DASK_PIPELINE__FUSE=false``), which ``--no-fuse`` and ``run(fuse=False)`` override."""
    return bool(dask.config.get("pipeline.fuse", True))


@dataclass
class Built:
    values: dict[str, Any] = field(default_factory=dict)
    span_ids: dict[str, str] = field(default_factory=dict)
    sinks: dict[str, Any] = field(default_factory=dict)
    outputs: list[tuple[Path, Path]] = field(default_factory=list)
    run_span: str | None = None
    # span id -> the span annotation its tasks carry (the stages' and the run's)
    spans: dict[str, dict] = field(default_factory=dict)

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
    built = Built()
    with dask.config.set({**backend.dask_config, **COMPUTE_CONFIG}), \
            span(f"run:{wf.name}") as run_span:
        built.run_span = run_span
        built.spans[run_span] = dask.get_annotations()["span"]
        for ps in plan.stages:
            ctx = Context(stage=ps.stage, backend=backend, base_dir=wf.base_dir,
                          output_dir=wf.output_dir, staging_dir=staging_dir,
                          outputs=built.outputs)
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
                    value = cache.load(ps, ctx) if cache else None
                    if value is None:
                        value = ps.info.fn(ctx, *args, **params)
                        if cache:
                            cache.offer(ps, ctx, value)
                except InputError as e:
                    raise e.located(where=ps.stage.where, file=wf.label) from None
                built.spans[span_id] = dask.get_annotations()["span"]
            built.span_ids[ps.id] = span_id
            if ps.info.family == "sink":
                built.sinks[ps.id] = value
            else:
                built.values[ps.id] = value
    return built


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
        cache=None, fuse: bool | None = None) -> dict:
    """Run the plan on ``session``'s cluster and return the report (also written).

    ``progress``: show per-stage progress on stdout (True) or on the given stream: redrawn
    in place on a terminal, plain lines and a heartbeat otherwise. ``cache``: the run's
    :class:`pipeline.cache.stages.StageCache`, if any. ``fuse``: let Dask fuse tasks
    (None: :func:`fuse_default`); False keeps one task per stage per chunk.

    Raises
    ------
    InputError
        Found while building, before any compute.
    RunFailed
        A task raised, or the workers were lost; no output is left behind.
    """
    fuse = fuse_default() if fuse is None else fuse
    wf = plan.workflow
    out_dir = wf.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".staging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    built = None  # nothing is written while building: a failure there leaves nothing
    try:
        built = build(plan, backend, staging, cache)
        computed = _upstream_of_sinks(plan, cache.hits if cache else set())
        if cache:  # entries of the stages computed, written with the sinks
            writes = cache.writes(computed)
            built.sinks.update({f"cache:{sid}": w for sid, w in writes.items()})
        row_counts = {sid: v.shape[0] for sid, v in built.values.items()
                      if sid in computed and hasattr(v, "columns")}
        client = session.client
        if cache or _uses_zarr(plan):
            # zarr 3 imports itself circularly: a fresh worker importing it in two
            # threads at once (a task, and the unpickling of another task's zarr array)
            # can fail with ImportError, and Dask then leaves the task that needed it
            # waiting forever. Importing it once on every worker first avoids both.
            client.run(_import_zarr)
        labels = built.span_ids
        # a cache entry is written by the stage whose result it keeps
        owners = {sid: sid.removeprefix("cache:") for sid in built.sinks}
        perf = PerformanceReport(staging / "performance-report.html", _workflow_text(wf))
        with dask.config.set({**backend.dask_config}), perf, MemorySampler(
                client, device=backend.array_module == "cupy") as memory:
            sinks = list(built.sinks.values())
            stage_map = StageMap.from_build(built.results(plan), labels,
                                            {ps.id: ps.upstream for ps in plan.stages})
            prepared = graph.prepare(
                [*(p.collection for p in sinks), *row_counts.values()],
                [labels[sid] for sid in [*owners.values(), *row_counts]], stage_map,
                fuse=fuse, spans=built.spans, run_label=built.run_span)
            results, watch = _gather(session, prepared, labels, progress)
        rows = dict(zip(row_counts, results[len(sinks):]))
        stage_metrics, other = metrics.stage_metrics(client, labels, built.run_span,
                                                     prepared.tasks)
        perf.render(client)  # the scheduler renders it while this thread writes the rest
        try:
            for pending, result in zip(sinks, results):
                if pending.finish:
                    pending.finish(result)
            files = [{"path": str(final), "bytes": storage.size(staged)
                      if isinstance(staged, storage.Remote) else _size(staged)}
                     for staged, final in built.outputs]
            for ps in plan.stages:
                # tasks identical to an earlier stage's are computed once, counted there
                stage_metrics[ps.id]["shares_with"] = sorted(
                    sid for sid, label in labels.items()
                    if label in stage_map.shared.get(labels[ps.id], ()))
            accounting = {**metrics.accounting(fuse), "scheduler_tasks": prepared.submitted}
            doc = _document(plan, backend, session, built, computed, rows, stage_metrics,
                            memory, watch, started, t0, files, other, accounting, cache)
            report.write_json(staging / "report.json", doc)
            report_html.write(staging / "report.html", doc,  # plots: read where staged
                              {str(final): staged for staged, final in built.outputs})
        finally:
            perf.wait()
        _move_outputs(built.outputs)
        for name in ("performance-report.html", "report.json", "report.html"):
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if cache:
            cache.discard()  # what is not committed (the run failed)
        for staged, _ in built.outputs if built else ():
            if isinstance(staged, storage.Remote):
                storage.discard(staged)  # moved already, or left by the failure
    return doc


def _workflow_text(wf) -> str:
    """The workflow as YAML, for the performance report's "Calling Code" section."""
    import yaml

    return f"# {wf.label or 'a workflow given as a mapping'}\n" \
        + yaml.safe_dump(storage.redacted(wf.raw), sort_keys=False)


def _document(plan: Plan, backend: Backend, session, built: Built, computed: set, rows: dict,
              stage_metrics: dict, memory, watch, started, t0: float, files: list,
              other: dict, accounting: dict, cache=None) -> dict:
    """The report.json document of a finished run. ``other``: what the run's tasks did
    outside every stage's code (:func:`pipeline.metrics.stage_metrics`); ``accounting``:
    what the figures are; ``cache``: the run's StageCache."""
    wf = plan.workflow
    wall = time.perf_counter() - t0
    stages = []
    for ps in plan.stages:
        value = built.values.get(ps.id)
        out = output_info(value) if value is not None else {"kind": "sink"}
        if ps.id in rows:
            out["rows"] = int(rows[ps.id])
        m = stage_metrics[ps.id]
        stages.append({"id": ps.id, "op": ps.info.name, "upstream": list(ps.upstream),
                       "computed": ps.id in computed,
                       "cached": bool(cache and ps.id in cache.hits), **m,
                       **memory.peaks(m["start"], m["stop"]), "output": out})
    totals = {"wall_s": wall, **{k: sum(s[k] or 0 for s in stages)
                                 for k in ("compute_s", "cpu_s", "h2d_bytes", "d2h_bytes",
                                           *metrics.SPILL_FIELDS.values())},
              **memory.peaks(-float("inf"), float("inf")), "other": other}
    totals["compute_s"] += other["compute_s"]
    totals["cpu_s"] += other["cpu_s"]
    doc = {
        "workflow": {"name": wf.name, "description": wf.description, "path": wf.label,
                     "spec": storage.redacted(wf.raw)},
        "backend": backend.name,
        "cluster": {"kind": session.kind, "address": session.address,
                    "n_workers": session.n_workers, "dashboard": session.dashboard_link,
                    "array_chunk_bytes": backend.chunk_bytes},
        "versions": report.versions(),
        "started": started.isoformat(timespec="seconds"),
        "accounting": accounting,
        "stages": stages,
        "totals": totals,
        "outputs": files,
        "warnings": list(plan.warnings) + (cache.warnings if cache else []),
        "lost_workers": watch.lost,
    }
    return doc


def _gather(session, prepared: graph.Prepared, labels: dict[str, str],
            progress) -> tuple[list, WorkerWatch]:
    """Submit the prepared graph and wait for it, showing progress; its results, and the
    stopped watch of the workers lost meanwhile.

    Raises
    ------
    RunFailed
        A task raised, or the workers were lost.
    """
    from distributed import wait

    client = session.client
    shown = None
    if progress:
        from pipeline import progress as show

        shown = show.start(client, prepared, labels, None if progress is True else progress)
    futures = graph.submit(client, prepared)
    watch = WorkerWatch(client, futures, session.address).start()
    report_html.prefetch()
    try:
        if shown:
            shown.wait(futures)
        wait(futures)  # raises when the run was cancelled (no worker left)
        return client.gather(futures), watch
    except Exception as e:  # a task's own exception, re-raised by gather
        raise RunFailed(watch.failure or f"the run failed: {type(e).__name__}: {e}") from e
    finally:
        watch.stop()
        if shown:
            shown.stop()


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


def _move_outputs(outputs: list[tuple[Path, Path]]) -> None:
    """Rename each staged output onto its final path (replacing an older one)."""
    for staged, final in outputs:
        if isinstance(final, storage.Remote):
            storage.promote(staged, final)
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(staged, final)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
