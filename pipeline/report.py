"""The run's report: ``report.json`` (written atomically) and the end-of-run table."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path

from pipeline import __version__

VERSIONED = ("dask", "distributed", "numpy", "pandas", "pyarrow", "zarr", "scipy", "bokeh",
             "dask-cuda", "cuda-core", "cuda-bindings", "cupy-cuda12x", "cupy-cuda13x",
             "cudf-cu12", "cudf-cu13", "dask-cudf-cu12", "dask-cudf-cu13", "rmm-cu12",
             "rmm-cu13")


def versions() -> dict[str, str]:
    """Installed versions of the pipeline's stack (absent packages left out)."""
    out = {"python": platform.python_version(), "pipeline": __version__}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name, so it is never half-written."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, doc: dict) -> None:
    """Write ``doc`` to ``path`` as indented JSON, atomically."""
    write_atomic(path, json.dumps(doc, indent=2, default=str) + "\n")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def describe_output(out: dict) -> str:
    if "shape" in out:
        shape = "x".join(str(s) for s in out["shape"]) or "scalar"
        return f"{shape} {out['dtype']}"
    if "rows" in out:
        return f"{out['rows']:,} rows x {len(out.get('columns', []))} cols"
    return out.get("kind", "")


def seconds(value: float | None, digits: int = 2) -> str:
    """Seconds for display; None (not measured) as "-"."""
    return "-" if value is None else f"{value:.{digits}f}"


# Row labels besides the stages': parenthesized, so no stage id (letters, digits, _ and -)
# can take them.
OTHER, RUN = "(other)", "(run)"


def table(stages: list[dict], totals: dict) -> str:
    """The per-stage table printed at the end of a run, with what its columns mean.

    ``start`` is when a stage's first task began, from the first task of the run; a stage
    with no task of its own shows "-". The ``(other)`` row is what tasks spent outside
    every stage's code (Dask's own work); ``(run)`` is the whole run.
    """
    ran = [s for s in stages if s.get("start") is not None]
    t0 = min((s["start"] for s in ran), default=0.0)
    head = ("stage", "op", "tasks", "start s", "wall s", "compute s", "H2D", "D2H", "output")
    rows = []
    for s in stages:
        timed = s.get("start") is not None
        rows.append((s["id"], s["op"] + (" (cached)" if s.get("cached") else ""),
                     str(s.get("tasks", "")),
                     seconds(s["start"] - t0) if timed else "-",
                     seconds(s["wall_s"]) if timed else "-", seconds(s["compute_s"]),
                     human_bytes(s["h2d_bytes"]), human_bytes(s["d2h_bytes"]),
                     describe_output(s["output"]) if s.get("computed", True)
                     else "not computed (no sink needs it)"))
    other = other_row(totals)
    if other:
        rows.append((OTHER, "", str(other["tasks"] or ""), "", "", seconds(other["compute_s"]),
                     human_bytes(other["h2d_bytes"]), human_bytes(other["d2h_bytes"]),
                     "Dask's own work inside tasks"))
    rows.append((RUN, "", str(sum(s.get("tasks", 0) for s in stages)), "",
                 seconds(totals["wall_s"]), seconds(totals["compute_s"]),
                 human_bytes(totals["h2d_bytes"]), human_bytes(totals["d2h_bytes"]), ""))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, 1, 8) else f"{{:>{w}}}"
                    for i, w in enumerate(widths))
    rule = fmt.format(*("-" * w for w in widths))
    lines = [fmt.format(*head), rule, *(fmt.format(*r) for r in rows[:-1]), rule,
             fmt.format(*rows[-1])]
    lines += ["compute s: time in the stage's own code, exact whether Dask fuses tasks or not",
              "start s: its first task's start, from the run's first; wall s: to its last end",
              *figure_notes(stages)]
    return "\n".join(line.rstrip() for line in lines)


def other_row(totals: dict) -> dict | None:
    """``totals["other"]`` (what tasks spent outside every stage's code) where it is worth
    a row of its own in a table: some compute time or tasks of its own; else None."""
    other = totals.get("other")
    return other if other and (other["compute_s"] >= 0.005 or other["tasks"]) else None


def figure_notes(stages: list[dict]) -> list[str]:
    """What a reader of the per-stage figures must know: where stage wall times overlap,
    and which stages share tasks (computed once, counted at the first)."""
    ran = [s for s in stages if s.get("start") is not None]
    notes = []
    if len(ran) > 1:
        span = max(s["stop"] for s in ran) - min(s["start"] for s in ran)
        walls = sum(s["wall_s"] for s in ran)
        if walls > span * 1.01:
            notes.append(f"stages overlap: their wall times add up to {walls:.2f} s in "
                         f"{span:.2f} s of computing")
    notes += [f"{s['id']} shares tasks with {', '.join(s['shares_with'])} (computed once, "
              f"counted there)" for s in stages if s.get("shares_with")]
    return notes
