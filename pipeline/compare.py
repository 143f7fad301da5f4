"""``python -m pipeline compare RUN_A RUN_B``: what changed between two runs.

Works from the two runs' ``report.json`` alone: the workflow settings that differ (after
``--set`` overrides), the backend, cluster, library versions and how it ran (fused,
performance report) that differ, then stage by stage the time, compute, tasks, bytes
host<->device and output, with B's change relative to A. A run is a run folder (or its
``report.json``); given one run folder only, the newest earlier run kept beside it in
``<folder>.history/`` is A.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import InputError
from pipeline.runfolder import history_of
from pipeline.report import RUN, describe_output, human_bytes, seconds

HOW = ("fused", "performance report")  # compared only where both reports say
PEAK_NOISE = 0.10  # memory peaks are sampled (every 0.2 s): smaller changes are not shown


def load(path: str | Path) -> tuple[Path, dict]:
    """A run's ``report.json``: ``(its path, the document)``.

    Raises
    ------
    InputError
        No report there, or one that is not a pipeline report.
    """
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    where = str(path)
    if not file.is_file():
        hint = "a run folder (it holds report.json) or a report.json file"
        raise InputError("no report.json here" if path.is_dir() else "not found",
                         file=where, hint=hint)
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read the report: {e}", file=str(file)) from None
    if not (isinstance(doc, dict) and isinstance(doc.get("stages"), list)
            and all(isinstance(s, dict) and "id" in s for s in doc["stages"])):
        raise InputError("not a pipeline report (no list of stages)", file=str(file))
    return file, doc


def previous(run_dir: str | Path) -> Path:
    """The newest earlier run of ``run_dir`` kept in ``<run_dir>.history/``.

    Raises
    ------
    InputError
        No history beside ``run_dir``.
    """
    history = history_of(run_dir)
    runs = sorted((d for d in history.glob("*") if (d / "report.json").is_file()),
                  key=lambda d: (_started(d), d.name)) if history.is_dir() else []
    if not runs:
        raise InputError(f"no earlier run in {history}", file=str(run_dir),
                         hint="name two runs: compare RUN_A RUN_B")
    return runs[-1]


def _started(run: Path) -> str:
    try:
        return str(json.loads((run / "report.json").read_text()).get("started", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def render(a: dict, b: dict, label_a: str = "A", label_b: str = "B") -> str:
    """The comparison of report ``a`` with report ``b`` as text."""
    lines = [f"A: {label_a}  ({_headline(a)})", f"B: {label_b}  ({_headline(b)})"]
    changes = _setting_changes(a, b)
    lines.append("")
    lines.append("settings that differ:" if changes else "settings: the same")
    lines += [f"  {key}: {va} -> {vb}" for key, va, vb in changes]
    lines.append("")
    lines += _stage_table(a, b)
    return "\n".join(lines)


def _headline(doc: dict) -> str:
    wf = doc.get("workflow") or {}
    cluster = doc.get("cluster") or {}
    parts = [str(wf.get("name", "?")), f"backend {doc.get('backend', '?')}",
             f"{cluster.get('n_workers', '?')} workers", f"started {doc.get('started', '?')}"]
    return ", ".join(parts)


def _setting_changes(a: dict, b: dict) -> list[tuple[str, str, str]]:
    """``(key, A's value, B's value)`` for the workflow fields, backend, cluster and
    versions that differ; stages addressed by id, as ``--set`` does."""
    def flat(doc):
        spec = dict((doc.get("workflow") or {}).get("spec") or {})
        stages = spec.pop("stages", None) or []
        out = _flatten(spec, "")
        for st in stages if isinstance(stages, list) else []:
            if isinstance(st, dict):
                body = {k: v for k, v in st.items() if k != "id"}
                out.update(_flatten(body, f"stages.{st.get('id')}."))
        out["backend"] = doc.get("backend")
        for key in ("kind", "n_workers", "array_chunk_bytes"):
            out[f"cluster: {key}"] = (doc.get("cluster") or {}).get(key)
        for name, version in (doc.get("versions") or {}).items():
            out[f"version: {name}"] = version
        # how it ran (--no-fuse, --no-performance-report): both change the wall times
        if doc.get("accounting"):  # not in a failed run's report
            out["fused"] = doc["accounting"].get("fused")
        if "performance_report" in doc:  # not in reports older than the field
            out["performance report"] = doc["performance_report"] is not None
        return out

    fa, fb = flat(a), flat(b)
    missing = "(absent)"
    return [(key, _show(fa.get(key, missing)), _show(fb.get(key, missing)))
            for key in [*fa, *(k for k in fb if k not in fa)]
            if fa.get(key, missing) != fb.get(key, missing)
            and (key not in HOW or key in fa and key in fb)]  # unknown on one side: not said


def _flatten(mapping: dict, prefix: str) -> dict:
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _stage_table(a: dict, b: dict) -> list[str]:
    stages_a = {s["id"]: s for s in a["stages"]}
    stages_b = {s["id"]: s for s in b["stages"]}
    order = [*stages_a, *(sid for sid in stages_b if sid not in stages_a)]
    head = ("stage", "wall s A -> B", "", "compute s A -> B", "", "other differences")
    rows = []
    for sid in order:
        sa, sb = stages_a.get(sid), stages_b.get(sid)
        if sa is None or sb is None:
            rows.append((sid, "", "", "", "", f"only in {'B' if sa is None else 'A'}"))
            continue
        rows.append((sid, *_change(sa.get("wall_s"), sb.get("wall_s")),
                     *_change(sa.get("compute_s"), sb.get("compute_s")),
                     "; ".join(_other_changes(sa, sb))))
    ta, tb = a.get("totals") or {}, b.get("totals") or {}
    rows.append((RUN, *_change(ta.get("wall_s"), tb.get("wall_s")),
                 *_change(ta.get("compute_s"), tb.get("compute_s")),
                 "; ".join(_other_changes(ta, tb))))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(-1, lines[1])
    lines.append("\nwall: first task to last (stages overlap); compute: summed over "
                 "worker threads; -: not measured")
    return lines


def _change(va, vb) -> tuple[str, str]:
    """``("1.20 -> 0.90", "-25%")``; no percentage when either side is unknown or zero."""
    text = f"{seconds(va)} -> {seconds(vb)}"
    if va is None or vb is None or not va:
        return text, ""
    return text, f"{(vb - va) / va:+.0%}"


def _other_changes(sa: dict, sb: dict) -> list[str]:
    out = []
    if sa.get("op") != sb.get("op"):
        out.append(f"op {sa.get('op')} -> {sb.get('op')}")
    if sa.get("tasks") != sb.get("tasks") and "tasks" in sa:
        out.append(f"tasks {sa.get('tasks')} -> {sb.get('tasks')}")
    for key, label in (("h2d_bytes", "H2D"), ("d2h_bytes", "D2H")):
        va, vb = sa.get(key), sb.get(key)
        if va != vb and (va or vb):
            out.append(f"{label} {_bytes(va)} -> {_bytes(vb)}")
    for key, label in (("peak_host_bytes", "peak host"), ("peak_device_bytes", "peak device")):
        va, vb = sa.get(key), sb.get(key)
        # sampled figures: a few percent either way is noise, not a change
        if (va is None) != (vb is None) or va and vb and abs(vb - va) > PEAK_NOISE * va:
            out.append(f"{label} {_bytes(va)} -> {_bytes(vb)}")
    oa, ob = sa.get("output"), sb.get("output")
    if oa is not None and ob is not None and describe_output(oa) != describe_output(ob):
        out.append(f"output {describe_output(oa)} -> {describe_output(ob)}")
    return out


def _bytes(n) -> str:
    return "-" if n is None else human_bytes(n)
