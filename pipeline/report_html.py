"""``report.html``: the run's report as one self-contained page.

Written from the ``report.json`` document, so the two always agree: a timeline of the
stages, the stage DAG, a chart of time (and of host<->device bytes, where any moved) per
stage, the figures table, the run's PNG outputs, cluster, versions and the workflow. The
page loads nothing from the network (no scripts at all, inline CSS, SVG drawings, PNGs
as ``data:`` URIs): it opens the same on an air-gapped cluster node, attached to an
e-mail, from a CI artifact, or after the run folder has moved.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from pipeline import report_svg
from pipeline.report import (OTHER, RUN, describe_output, figure_notes, human_bytes,
                             other_row, seconds, write_atomic)

# A PNG output larger than this is linked instead of embedded (plots are ~50 KiB).
EMBED_MAX_BYTES = 8 << 20

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em;
       color: #222; max-width: 84em; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: left;
         white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; border-top: 2px solid #999; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1.2em; }
dt { color: #666; } dd { margin: 0; }
img { max-width: 100%; border: 1px solid #eee; }
.scroll { overflow-x: auto; }
figure { margin: 1em 0; } figcaption { color: #666; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.warn { color: #a40; }
"""


def write(path: Path, doc: dict, files: dict | None = None) -> None:
    """Write ``report.html`` for the report document ``doc``, atomically.

    ``files``: where to read outputs named in ``doc`` (final path -> the staged file,
    before the outputs are moved into place)."""
    write_atomic(path, render(doc, files))


def render(doc: dict, files: dict | None = None) -> str:
    """The page for ``doc`` (a ``report.json`` document); ``files`` as for :func:`write`."""
    wf = doc["workflow"]
    title = f"{wf['name']}: run report"
    stages = doc["stages"]
    timeline = report_svg.timeline(stages)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(wf.get("description") or "")}</p>',
        _failure(doc.get("failure")),
        _summary(doc),
        "<h2>Timeline</h2>",
        f'<div class="scroll">{timeline}</div>' if timeline else
        '<p class="sub">No stage has a time of its own in this run.</p>',
        '<p class="sub">Each bar runs from the stage\'s first task starting to its last one '
        "ending; stages overlap where Dask runs them side by side.</p>" if timeline else "",
        "<h2>Stage graph</h2>",
        f'<div class="scroll">{report_svg.dag(stages, edges(doc))}</div>',
        '<p class="sub">Shade: the stage\'s share of the compute time.</p>',
        _chart_section(stages),
        "<h2>Stages</h2>",
        _stage_table(stages, doc["totals"]),
        _outputs(doc.get("outputs", [])),
        _plots(doc.get("outputs", []), files or {}),
        _notes(doc),
        "<h2>Cluster</h2>",
        _dl(_cluster_items(doc.get("cluster", {}))),
        "<h2>Versions</h2>",
        _dl(sorted(doc.get("versions", {}).items())),
        "<h2>Workflow</h2>",
        f"<pre>{_e(_yaml(wf.get('spec', {})))}</pre>",
        _performance_link(doc.get("performance_report")),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def edges(doc: dict) -> list[tuple[str, str]]:
    """``(from, to)`` stage ids: each stage's ``upstream`` (inputs and stage-valued
    parameters, as the planner found them), or for a report without it, the inputs
    named in the workflow."""
    out = []
    specs = {st.get("id"): st for st in (doc["workflow"].get("spec") or {}).get("stages", [])
             if isinstance(st, dict)}
    for s in doc["stages"]:
        ups = s.get("upstream")
        if ups is None:
            st = specs.get(s["id"], {})
            named = st.get("inputs", [st["input"]] if "input" in st else [])
            ups = list(named.values()) if isinstance(named, dict) else list(named)
        out += [(str(u), s["id"]) for u in ups]
    return out


def prefetch() -> None:
    """Import matplotlib and draw a throw-away figure in a background thread, while the
    workers compute and this process mostly waits, so the chart at the end does not pay
    the 0.3 to 0.4 s of import and font loading after the run."""
    import threading

    def warm():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(1, 1))
        fig.subplots().set_title("warm-up")
        fig.savefig(io.BytesIO(), format="png")

    # not a daemon: the interpreter waits for it at exit instead of killing it mid-import
    threading.Thread(target=warm, name="pipeline-chart-prefetch").start()


def _chart_section(stages: list[dict]) -> str:
    panels = chart_panels(stages)
    if not panels:
        return ""
    heading = {"time": "time", "transfers": "transfers", "rows": "rows"}
    title = "Per stage: " + ", ".join(heading[p] for p in panels)
    note = "" if "transfers" in panels else (
        '<p class="sub">No bytes moved between host and device (chunks stay where they '
        "are made).</p>")
    png = chart_png(stages)
    return (f"<h2>{title}</h2>\n"
            f'<img id="chart" alt="{_e(title.lower())}" data-panels="{" ".join(panels)}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode()}">{note}')


def chart_panels(stages: list[dict]) -> list[str]:
    """The chart's panels, each only where it has something to show: time (any stage
    timed), transfers (any bytes moved host<->device), rows (table stages' output)."""
    panels = []
    if any(s.get("wall_s") is not None or s.get("compute_s") is not None for s in stages):
        panels.append("time")
    if any(s.get("h2d_bytes") or s.get("d2h_bytes") for s in stages):
        panels.append("transfers")
    if any((s.get("output") or {}).get("rows") is not None for s in stages):
        panels.append("rows")
    return panels


def chart_png(stages: list[dict]) -> bytes:
    """Bars per stage, one panel per :func:`chart_panels` entry, sharing the stage axis."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    panels = chart_panels(stages)
    ids = [s["id"] for s in stages][::-1]  # first stage at the top
    y = list(range(len(ids)))
    fig = Figure(figsize=(2 + 4 * len(panels), 1.6 + 0.3 * len(ids)), dpi=100,
                 layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        {"time": _time_panel, "transfers": _transfer_panel, "rows": _rows_panel}[panel](
            ax, stages[::-1], y)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].set_yticks(y, ids)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


BAR_H = 0.38  # two bars side by side per stage


def _time_panel(ax, stages: list[dict], y: list[int]) -> None:
    wall = [s.get("wall_s") for s in stages]
    compute = [s.get("compute_s") for s in stages]
    ax.barh([v + BAR_H / 2 for v in y], [w or 0 for w in wall], BAR_H,
            label="wall (first task to last)", color="#4c72b0")
    ax.barh([v - BAR_H / 2 for v in y], [c or 0 for c in compute], BAR_H,
            label="compute (sum over threads)", color="#dd8452")
    longest = max([w or 0 for w in wall] + [c or 0 for c in compute])
    ax.set_xlim(0, longest * 1.05 if longest > 0 else 1)
    for v, w, c in zip(y, wall, compute):
        if w is None and c is None:  # say so, rather than draw a bar of 0
            ax.text(0, v, " not separated", va="center", color="#888", fontsize="small")
    ax.set_xlabel("seconds")
    ax.set_title("time")
    ax.legend(loc="best", fontsize="small")


def _transfer_panel(ax, stages: list[dict], y: list[int]) -> None:
    h2d = [s.get("h2d_bytes") or 0 for s in stages]
    d2h = [s.get("d2h_bytes") or 0 for s in stages]
    scale, unit = _byte_unit(max([*h2d, *d2h, 1]))
    ax.barh([v + BAR_H / 2 for v in y], [b / scale for b in h2d], BAR_H,
            label="host -> device", color="#55a868")
    ax.barh([v - BAR_H / 2 for v in y], [b / scale for b in d2h], BAR_H,
            label="device -> host", color="#c44e52")
    ax.set_xlabel(unit)
    ax.set_title("bytes host <-> device")
    ax.legend(loc="best", fontsize="small")


def _rows_panel(ax, stages: list[dict], y: list[int]) -> None:
    rows = [(s.get("output") or {}).get("rows") for s in stages]
    ax.barh(y, [r or 0 for r in rows], 2 * BAR_H, color="#8172b3")
    ax.set_xscale("symlog", linthresh=1)  # 16 airlines and 20 million flights alike
    ax.set_xlim(0, max(r or 0 for r in rows) * 8)  # room for the counts' labels
    for v, r in zip(y, rows):
        if r is not None:
            ax.text(r, v, f" {r:,}", va="center", fontsize="small")
    ax.set_xlabel("rows (log scale)")
    ax.set_title("table rows out")


def _byte_unit(largest: float) -> tuple[float, str]:
    for i, unit in enumerate(("bytes", "KiB", "MiB", "GiB")):
        if largest < 1024 ** (i + 1) or unit == "GiB":
            return float(1024 ** i), unit
    raise AssertionError("unreachable")


def _failure(failure: dict | None) -> str:
    """A failed run's cause and fix, first thing on the page."""
    if not failure:
        return ""
    stage = failure.get("stage")
    items = [("stage", f"{stage} ({failure.get('op')})" if stage else "not one stage's"),
             ("exception", failure["exception"]), ("likely cause", failure["cause"]),
             ("fix", failure["fix"]), ("Dask task", failure.get("task") or "")]
    return '<h2 class="warn" id="failure">The run failed</h2>' + _dl(items)


def _summary(doc: dict) -> str:
    t = doc["totals"]
    items = [("backend", doc.get("backend", "")), ("started", doc.get("started", "")),
             ("wall time", f"{t['wall_s']:.3f} s"),
             ("compute time", f"{t['compute_s']:.3f} s (summed over worker threads)"),
             ("host -> device", _plain_bytes(t["h2d_bytes"])),
             ("device -> host", _plain_bytes(t["d2h_bytes"]))]
    for key, label in (("peak_host_bytes", "peak host memory"),
                       ("peak_device_bytes", "peak device memory")):
        if t.get(key) is not None:
            items.append((label, _plain_bytes(t[key])))
    return _dl(items)


def _stage_table(stages: list[dict], totals: dict) -> str:
    peaks = any(s.get("peak_host_bytes") is not None for s in stages)
    head = ["stage", "op", "wall s", "compute s", "tasks", "host -> device",
            "device -> host", *(["peak host mem"] if peaks else []), "output", "output size"]
    numeric = {"wall s", "compute s", "tasks", "host -> device", "device -> host",
               "peak host mem", "output size"}
    rows = ["<table id=\"stages\"><thead><tr>"
            + "".join(f'<th class="n">{h}</th>' if h in numeric else f"<th>{h}</th>"
                      for h in head) + "</tr></thead><tbody>"]
    for s in stages:
        out = s.get("output", {})
        timed = s.get("start") is not None  # else no task of its own: no wall time
        cells = [_td(s["id"]), _td(s["op"]), _num(seconds(s["wall_s"] if timed else None, 3)),
                 _num(seconds(s["compute_s"], 3)), _num(str(s.get("tasks", ""))),
                 _num(_bytes(s["h2d_bytes"])), _num(_bytes(s["d2h_bytes"]))]
        if peaks:
            peak = s.get("peak_host_bytes")
            cells.append(_num("" if peak is None else _bytes(peak)))
        size = out.get("bytes")
        cells += [_td(describe_output(out)), _num("" if size is None else _bytes(size))]
        rows.append(f'<tr id="stage-{_e(s["id"])}">{"".join(cells)}</tr>')
    other = other_row(totals)
    if other:  # as in the terminal's table: the stages' compute plus this is the run's
        rows.append('<tr id="other">' + "".join(
            [_td(OTHER), _td(""), _num(""), _num(seconds(other["compute_s"], 3)),
             _num(str(other["tasks"] or "")), _num(_bytes(other["h2d_bytes"])),
             _num(_bytes(other["d2h_bytes"])), *([_num("")] if peaks else []),
             _td("Dask's own work inside tasks"), _num("")]) + "</tr>")
    rows.append('<tr class="total">' + "".join(
        [_td(RUN), _td(""), _num(f"{totals['wall_s']:.3f}"),
         _num(f"{totals['compute_s']:.3f}"), _num(str(sum(s.get("tasks", 0) for s in stages))),
         _num(_bytes(totals["h2d_bytes"])), _num(_bytes(totals["d2h_bytes"])),
         *([_num("")] if peaks else []), _td(""), _num("")]) + "</tr>")
    rows.append("</tbody></table>")
    rows += [f'<p class="sub">{_e(n)}</p>' for n in figure_notes(stages)]
    return "\n".join(rows)


def _performance_link(name: str | None) -> str:
    if not name:  # skipped (--no-performance-report), or a failed run's scheduler was gone
        return ""
    return ("<p class=\"sub\">Dask's own view of the run (task stream, worker profiles) is "
            f'in <a href="{_e(name)}">{_e(name)}</a>.</p>')


def _outputs(files: list[dict]) -> str:
    if not files:
        return ""
    items = "".join(f"<li><code>{_e(Path(f['path']).name)}</code> ({_bytes(f['bytes'])})</li>"
                    for f in files)
    return f"<h2>Outputs</h2><ul id=\"outputs\">{items}</ul>"


def _plots(outputs: list[dict], files: dict) -> str:
    """The run's PNG outputs, embedded, so the page shows them wherever it is opened."""
    figures = []
    for f in outputs:
        name = Path(f["path"]).name
        staged = files.get(f["path"], f["path"])
        if not name.lower().endswith(".png") or not isinstance(staged, (str, Path)):
            continue  # not a plot, or one on remote storage: linked from outputs only
        path = Path(staged)
        try:
            data = path.read_bytes() if path.stat().st_size <= EMBED_MAX_BYTES else None
        except OSError:
            continue  # moved or deleted since the run: the outputs list still names it
        name = _e(name)
        img = (f'<img alt="{name}" src="data:image/png;base64,'
               f'{base64.b64encode(data).decode()}">' if data is not None else
               f'<a href="{name}">{name}</a> (too large to embed)')
        figures.append(f'<figure class="plot" data-file="{name}">{img}'
                       f"<figcaption>{name}</figcaption></figure>")
    return "<h2>Plots</h2>" + "".join(figures) if figures else ""


def _notes(doc: dict) -> str:
    notes = [f"warning: {w}" for w in doc.get("warnings", [])]
    notes += [f"read from outside the workflow's folder: {path}"
              for path in doc.get("reads_outside_workflow_folder", [])]
    for lost in doc.get("lost_workers", []) or []:
        notes.append(f"worker {lost.get('worker')} left or was lost during the run; "
                     "Dask recomputed its tasks elsewhere")
    if not notes:
        return ""
    return "<ul>" + "".join(f'<li class="warn">{_e(n)}</li>' for n in notes) + "</ul>"


def _cluster_items(cluster: dict) -> list[tuple[str, str]]:
    return [(k, "" if v is None else str(v)) for k, v in cluster.items()]


def _dl(items) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"


def _bytes(n: int) -> str:
    # human units, with the exact count on hover
    return f'<span title="{int(n):,} bytes">{human_bytes(n)}</span>'


def _plain_bytes(n: int) -> str:
    return f"{human_bytes(n)} ({int(n):,} bytes)"


def _td(text: str) -> str:
    return f"<td>{_e(text)}</td>"


def _num(inner: str) -> str:
    return f'<td class="n">{inner}</td>'  # callers pass escaped / generated markup


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _yaml(spec: dict) -> str:
    import yaml

    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=None)
