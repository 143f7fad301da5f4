"""Per-stage metrics from the scheduler's spans: wall time, compute time, transfers.

A stage with no span of its own ran no task of its own (its work was shared). Dataframe
stages are the exception, handled by the runner: dask-expr optimizes a dataframe query as a
whole and ignores annotations, so their time cannot be separated.

Each stage's tasks carry the span ``stage:<id>``. The scheduler records when a span's
first task started and its last one ended, and the workers' fine performance metrics
(``context_meter``: compute seconds, and the ``host-to-device`` / ``device-to-host``
bytes and seconds that :class:`pipeline.backends.Backend` records) are summed per span.
Dataframe tasks run in Dask's default span, so their copies name their stage's span in
the label, ``(label, span id)``, and are found in the scheduler's totals instead.
"""

from __future__ import annotations

TRANSFER_LABELS = {"host-to-device": "h2d", "device-to-host": "d2h"}
# Memory pressure: dask-cuda's device->host spills (counted by pipeline/gpu/spill.py) and
# Dask's own host->disk ones, in bytes.
SPILL_FIELDS = {"spill-device-to-host": "spilled_bytes",
                "unspill-host-to-device": "unspilled_bytes", "disk-write": "disk_write_bytes"}
# Time inside task bodies; the rest ("executor", "other", idle) is Dask's own overhead.
COMPUTE_LABELS = ("thread-cpu", "thread-noncpu")


def empty() -> dict:
    """A stage's metrics before (or without) any task of its own."""
    return {"wall_s": 0.0, "compute_s": 0.0, "tasks": 0, "h2d_bytes": 0, "d2h_bytes": 0,
            "h2d_s": 0.0, "d2h_s": 0.0, "start": None, "stop": None,
            **dict.fromkeys(SPILL_FIELDS.values(), 0)}


def stage_metrics(client, span_ids: dict[str, str]) -> dict[str, dict]:
    """``{stage id: metrics}`` for the spans of one run."""
    client.run(_flush_metrics)  # fine metrics reach the scheduler with each heartbeat
    return client.run_on_scheduler(_read_spans, span_ids=span_ids)


async def _flush_metrics(dask_worker) -> None:
    await dask_worker.heartbeat()


def _read_spans(dask_scheduler, span_ids: dict[str, str]) -> dict[str, dict]:
    spans = dask_scheduler.extensions["spans"].spans
    frame_copies = _frame_copies(dask_scheduler.cumulative_worker_metrics)
    out = {}
    for stage_id, span_id in span_ids.items():
        span = spans.get(span_id)
        m = empty()
        if span is not None:
            if span.start and span.stop:
                m["wall_s"] = max(span.stop - span.start, 0.0)
                m["start"], m["stop"] = span.start, span.stop
            m["tasks"] = int(sum(span.states.values()))
            for (context, _prefix, label, unit), value in span.cumulative_worker_metrics.items():
                if context != "execute":
                    continue
                if label in TRANSFER_LABELS:
                    m[_transfer_field(label, unit)] += value
                elif label in COMPUTE_LABELS and unit == "seconds":
                    m["compute_s"] += value
                elif label in SPILL_FIELDS and unit == "bytes":
                    m[SPILL_FIELDS[label]] += int(value)
        for field, value in frame_copies.get(span_id, {}).items():
            m[field] += value
        m["h2d_bytes"], m["d2h_bytes"] = int(m["h2d_bytes"]), int(m["d2h_bytes"])
        out[stage_id] = m
    return out


def _transfer_field(label: str, unit: str) -> str:
    return f"{TRANSFER_LABELS[label]}_{'bytes' if unit == 'bytes' else 's'}"


def _frame_copies(cumulative: dict) -> dict[str, dict[str, float]]:
    """``{span id: {field: value}}`` from the scheduler's totals, whose keys for tasks are
    ``("execute", prefix, label, unit)``: the copies whose label names a span."""
    out: dict[str, dict[str, float]] = {}
    for key, value in cumulative.items():
        if not (isinstance(key, tuple) and len(key) == 4 and key[0] == "execute"):
            continue
        label, unit = key[2], key[3]
        if isinstance(label, tuple) and len(label) == 2 and label[0] in TRANSFER_LABELS:
            fields = out.setdefault(label[1], {})
            field = _transfer_field(label[0], unit)
            fields[field] = fields.get(field, 0) + value
    return out
