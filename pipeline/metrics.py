"""Per-stage figures of a run, read back from the cluster once it is done.

Every task callable ran inside :class:`pipeline.accounting.meter.Metered` under its
stage's label (the stage's span id), fused or not, so:

- ``compute_s``: the time in the stage's callables, less the copies made inside them,
  from Dask's fine performance metrics ``("compute", label)``. Exact under fusion.
- ``cpu_s``: the CPU seconds (thread time) of the same callables, copies included; less
  than ``compute_s`` where the workers waited for a core (a loaded host).
- ``h2d_bytes`` / ``d2h_bytes`` and their seconds: every copy
  :class:`pipeline.backends.Backend` makes is labelled ``(kind, label)`` the same way.
- ``tasks``: the stage's tasks before fusion (each application of one of its callables).
- ``start`` / ``stop`` / ``wall_s``: the first start and last stop of the stage's callables
  on any worker. Stages that run at the same time (a fused chain runs all its stages
  chunk by chunk) overlap, so wall times add up to more than the run.

The run's span holds every task's metrics (each task carries a stage's span or the run's),
so a long-lived cluster's other runs are not counted. What the run's tasks spent outside
any stage's callable (Dask's own work inside tasks, tasks of no stage) is ``other``.

Spilling (dask-cuda's device->host moves, counted by :mod:`pipeline.gpu.spill`, and
Dask's own host->disk writes) happens while a task's result is stored or its inputs
loaded, outside the task's code: it is read from the span the task carries, that of the
stage whose result the task makes (for a fused task, its last stage's).
"""

from __future__ import annotations

from collections import Counter

from pipeline.accounting import meter

KINDS = {meter.COMPUTE: "compute", meter.CPU: "cpu", "host-to-device": "h2d",
         "device-to-host": "d2h"}
# Memory pressure: dask-cuda's device->host spills (counted by pipeline/gpu/spill.py) and
# Dask's own host->disk ones, in bytes.
SPILL_FIELDS = {"spill-device-to-host": "spilled_bytes",
                "unspill-host-to-device": "unspilled_bytes", "disk-write": "disk_write_bytes"}
# Time inside a task but outside the metered callables: Dask's own work.
THREAD_LABELS = ("thread-cpu", "thread-noncpu")
FIGURES = ("compute_s", "cpu_s", "h2d_bytes", "h2d_s", "d2h_bytes", "d2h_s")


def accounting(fuse: bool) -> dict:
    """What report.json's per-stage figures are, for a fused or unfused run."""
    return {
        "fused": fuse,
        "exact": ["tasks", *FIGURES],
        "spill": "bytes spilled while storing a task's result or loading its inputs, under "
                 "the stage whose result the task makes" + (" (a fused task's last stage)"
                                                            if fuse else ""),
        "wall": "first start to last stop of the stage's tasks; stages that run at the "
                "same time overlap, so their wall times add up to more than the run",
        "memory": "per-stage peaks are the whole cluster's memory while the stage ran, "
                  "shared with any stage running at the same time"
                  + ("; fused tasks run several stages at once, so they are approximate"
                     if fuse else ""),
    }


def empty() -> dict:
    """A stage's figures before (or without) any task of its own: a failed run's report
    has them for the stages it could not measure."""
    return {"wall_s": 0.0, "tasks": 0, "start": None, "stop": None, **_figures({}, "")}


def stage_metrics(client, labels: dict[str, str], run_label: str,
                  tasks: Counter) -> tuple[dict[str, dict], dict]:
    """``({stage id: figures}, other)`` for one run. ``labels``: stage id -> label;
    ``tasks``: label -> tasks (from :class:`pipeline.accounting.graph.Prepared`)."""
    client.run(_flush_metrics)  # fine metrics reach the scheduler with each heartbeat
    sums = client.run_on_scheduler(_read_run, run_label=run_label,
                                   labels=list(labels.values()))
    windows: dict[str, list[float]] = {}
    wanted = [*labels.values(), run_label]
    for found in client.run(meter.take_windows, wanted).values():
        for label, (start, stop) in found.items():
            w = windows.setdefault(label, [start, stop])
            w[0], w[1] = min(w[0], start), max(w[1], stop)
    out = {}
    for stage, label in labels.items():
        m = {"wall_s": 0.0, "tasks": int(tasks.get(label, 0)), "start": None, "stop": None,
             **_figures(sums, label)}
        if label in windows:
            m["start"], m["stop"] = windows[label]
            m["wall_s"] = m["stop"] - m["start"]
        out[stage] = m
    other = _figures(sums, run_label)
    other["dask_s"] = sums.get("dask_s", 0.0)
    other["compute_s"] += other["dask_s"]
    other["tasks"] = int(tasks.get(run_label, 0))
    return out, other


def _figures(sums: dict, label: str) -> dict:
    m = {f: sums.get((f, label), 0.0) for f in FIGURES}
    m["h2d_bytes"], m["d2h_bytes"] = int(m["h2d_bytes"]), int(m["d2h_bytes"])
    m.update({f: int(sums.get((f, label), 0)) for f in SPILL_FIELDS.values()})
    return m


async def _flush_metrics(dask_worker) -> None:
    await dask_worker.heartbeat()


def _read_run(dask_scheduler, run_label: str, labels: list[str]) -> dict:
    """On the scheduler: ``{(figure, label): value}`` summed over the run's span tree (the
    spills per span: the stages', and what is left of the run's), and ``"dask_s"``: the
    tasks' time outside every metered callable."""
    spans = dask_scheduler.extensions["spans"].spans
    out: dict = {}
    if run_label not in spans:
        return out

    def add(field, label, value):
        out[field, label] = out.get((field, label), 0.0) + value

    for span_label in [run_label, *labels]:
        span = spans.get(span_label)
        for key, value in (span.cumulative_worker_metrics.items() if span else ()):
            if len(key) != 4 or key[0] != "execute":
                continue
            label, unit = key[2], key[3]
            if label in SPILL_FIELDS and unit == "bytes":  # the run's span holds them all
                add(SPILL_FIELDS[label], span_label, value)
                if span_label != run_label:
                    add(SPILL_FIELDS[label], run_label, -value)
            elif span_label != run_label:
                continue
            elif isinstance(label, tuple) and len(label) == 2 and label[0] in KINDS:
                add(f"{KINDS[label[0]]}_{'bytes' if unit == 'bytes' else 's'}", label[1],
                    value)
            elif label in THREAD_LABELS and unit == "seconds":
                out["dask_s"] = out.get("dask_s", 0.0) + value
    return out
