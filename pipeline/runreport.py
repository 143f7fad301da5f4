"""A run's report.json and report.html: of a finished run, written into its new run
folder before that is swapped in; or of a failed one, filed in the run folder's history
with why it failed (:mod:`pipeline.failure`) and the figures measured until then."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from pipeline import failure, metrics, report, report_html, storage
from pipeline.errors import RunFailed
from pipeline.perf_report import FILENAME as PERFORMANCE_REPORT


def workflow_text(wf) -> str:
    """The workflow as YAML, for the performance report's "Calling Code" section."""
    import yaml

    return f"# {wf.label or 'a workflow given as a mapping'}\n" \
        + yaml.safe_dump(storage.redacted(wf.raw), sort_keys=False)


def document(plan, backend, session, built, *, computed: set[str], rows: dict,
             stage_metrics: dict, other: dict, started: datetime, wall: float, memory,
             watch, accounting: dict | None, cache, performance_report: bool,
             found: failure.Failure | None = None) -> dict:
    """The report.json document: of a finished run, or (``found``) of a failed one, with
    what was measured before it failed. ``other``: what the run's tasks did outside every
    stage's code (:func:`pipeline.metrics.stage_metrics`); ``accounting``: what the
    figures are; ``cache``: the run's StageCache, if any; ``performance_report``: whether
    the folder has performance-report.html."""
    from pipeline.runner import output_info

    wf = plan.workflow
    no_peaks = {"peak_host_bytes": None, "peak_device_bytes": None}
    stages = []
    for ps in plan.stages:
        value = built.values.get(ps.id)
        out = output_info(value) if value is not None else {"kind": "sink"}
        if ps.id in rows:
            out["rows"] = int(rows[ps.id])
        m = stage_metrics.get(ps.id) or metrics.empty()
        peaks = memory.peaks(m["start"], m["stop"]) if memory else no_peaks
        stages.append({"id": ps.id, "op": ps.info.name, "upstream": list(ps.upstream),
                       "computed": ps.id in computed,
                       "cached": bool(cache and ps.id in cache.hits), **m, **peaks,
                       "output": out})
    totals = {"wall_s": wall, **{k: sum(s[k] or 0 for s in stages)
                                 for k in ("compute_s", "cpu_s", "h2d_bytes", "d2h_bytes",
                                           *metrics.SPILL_FIELDS.values())},
              **(memory.peaks(-float("inf"), float("inf")) if memory else no_peaks),
              "other": other}
    totals["compute_s"] += other["compute_s"]
    totals["cpu_s"] += other["cpu_s"]
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
        **({"accounting": accounting} if accounting else {}),
        "stages": stages,
        "totals": totals,
        # local ones relative to the run folder, so they hold wherever it is moved
        "outputs": [] if found else outputs(built),
        "performance_report": PERFORMANCE_REPORT if performance_report else None,
        "reads_outside_workflow_folder": list(built.outside_reads),
        "warnings": list(plan.warnings) + (cache.warnings if cache else []),
        "lost_workers": watch.lost if watch else [],
        **({"failure": found.as_dict()} if found else {}),
    }


def outputs(built) -> list[dict]:
    """The outputs of a finished run and their sizes, read where they are staged."""
    return [*({"path": str(rel), "bytes": _size(staged)} for rel, staged in built.staged()),
            *({"path": final.url, "bytes": storage.size(staged)}
              for staged, final in built.remote_outputs)]


def write(folder: Path, doc: dict, built=None) -> None:
    """report.json and report.html into ``folder``; ``built``: read the plots it embeds
    where the run staged them."""
    report.write_json(folder / "report.json", doc)
    report_html.write(folder / "report.html", doc,
                      {str(rel): staged for rel, staged in built.staged()} if built else None)


def failed(error: Exception, folder, *, plan, backend, session, built, computed: set[str],
           started: datetime, t0: float, futures, watch, memory, memory_limit: int | None,
           perf, prepared) -> RunFailed:
    """File the failed run's report in the run folder's history (with Dask's performance
    report of it, where the scheduler can still render it); the error to raise."""
    found = failure.diagnose(error, client=session.client, futures=futures, plan=plan,
                             built=built, memory_limit=memory_limit,
                             lost_all=watch.failure if watch else None,
                             members=prepared.members if prepared else None)
    stage_metrics, other = {}, {**metrics.empty(), "dask_s": 0.0}
    if prepared is not None:
        try:
            stage_metrics, other = metrics.stage_metrics(session.client, built.span_ids,
                                                         built.run_span, prepared.tasks)
        except Exception:  # noqa: BLE001 - the scheduler may be gone; report what we know
            pass
    rendered = perf.enabled
    try:
        perf.render(session.client)
        perf.wait()
    except Exception:  # noqa: BLE001 - not started, or the scheduler is gone: no report
        rendered = False
    doc = document(plan, backend, session, built, computed=computed, rows={},
                   stage_metrics=stage_metrics, other=other, started=started,
                   wall=time.perf_counter() - t0, memory=memory, watch=watch,
                   accounting=None, cache=None, performance_report=rendered, found=found)
    try:
        entry = folder.fail(started, lambda into: write(into, doc))
        where = f"report: {entry / 'report.json'}"
    except OSError as e:  # e.g. the disk is still full: the line says it all
        where = f"no report written: {e.strerror or e}"
    return RunFailed(f"the run failed: {found.exception[:300]}",
                     where=f"stages.{found.stage}" if found.stage else None,
                     hint=f"{found.cause}; fix: {found.fix}; {where}")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
