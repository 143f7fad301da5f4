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
    """Seconds for display; None (a dataframe stage's time, not separated) as "-"."""
    return "-" if value is None else f"{value:.{digits}f}"


def table(stages: list[dict], totals: dict) -> str:
    """The per-stage table printed at the end of a run."""
    head = ("stage", "op", "wall s", "compute s", "H2D", "D2H", "output")
    rows = [(s["id"], s["op"] + (" (cached)" if s.get("cached") else ""),
             seconds(s["wall_s"]), seconds(s["compute_s"]),
             human_bytes(s["h2d_bytes"]), human_bytes(s["d2h_bytes"]),
             describe_output(s["output"])) for s in stages]
    rows.append(("total", "", f"{totals['wall_s']:.2f}", f"{totals['compute_s']:.2f}",
                 human_bytes(totals["h2d_bytes"]), human_bytes(totals["d2h_bytes"]), ""))
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i in (0, 1, 6) else f"{{:>{w}}}"
                    for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
