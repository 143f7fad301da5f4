"""``report.html``: the run's report as one self-contained page, chart included.

Written from the ``report.json`` document, so the two always agree. The page loads
nothing from the network (no scripts at all, inline CSS, the chart as a ``data:`` PNG):
it opens the same on an air-gapped cluster node, attached to an e-mail or from a CI
artifact.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from pipeline.report import describe_output, human_bytes, seconds, write_atomic

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em;
       color: #222; max-width: 72em; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 600; border-top: 2px solid #999; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1.2em; }
dt { color: #666; } dd { margin: 0; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.warn { color: #a40; }
"""


def write(path: Path, doc: dict) -> None:
    """Write ``report.html`` for the report document ``doc``, atomically."""
    write_atomic(path, render(doc))


def render(doc: dict) -> str:
    """The page for ``doc`` (a ``report.json`` document)."""
    wf = doc["workflow"]
    title = f"{wf['name']}: run report"
    png = chart_png(doc["stages"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(wf.get("description") or "")}</p>',
        _failure(doc.get("failure")),
        _summary(doc),
        "<h2>Time and transfers per stage</h2>",
        f'<img id="chart" alt="time and bytes host&lt;-&gt;device per stage" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode()}">',
        "<h2>Stages</h2>",
        _stage_table(doc["stages"], doc["totals"]),
        _outputs(doc.get("outputs", [])),
        _notes(doc),
        "<h2>Cluster</h2>",
        _dl(_cluster_items(doc.get("cluster", {}))),
        "<h2>Versions</h2>",
        _dl(sorted(doc.get("versions", {}).items())),
        "<h2>Workflow</h2>",
        f"<pre>{_e(_yaml(wf.get('spec', {})))}</pre>",
        "<p class=\"sub\">Dask's own view of the run (task stream, worker profiles) is in "
        '<a href="performance-report.html">performance-report.html</a>.</p>',
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


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


def chart_png(stages: list[dict]) -> bytes:
    """Two bar charts side by side: seconds and bytes host<->device, per stage."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    ids = [s["id"] for s in stages][::-1]  # first stage at the top
    y = list(range(len(ids)))
    fig = Figure(figsize=(10, 1.6 + 0.42 * len(ids)), dpi=100, layout="constrained")
    t_ax, b_ax = fig.subplots(1, 2, sharey=True)
    h = 0.38
    # None: a dataframe stage whose time dask-expr does not separate; drawn as no bar
    wall = [s["wall_s"] or 0 for s in stages][::-1]
    compute = [s["compute_s"] or 0 for s in stages][::-1]
    t_ax.barh([v + h / 2 for v in y], wall, h, label="wall (first task to last)",
              color="#4c72b0")
    t_ax.barh([v - h / 2 for v in y], compute, h, label="compute (sum over threads)",
              color="#dd8452")
    t_ax.set_xlabel("seconds")
    t_ax.set_title("time per stage")
    t_ax.set_yticks(y, ids)
    t_ax.legend(loc="best", fontsize="small")

    h2d = [s["h2d_bytes"] for s in stages][::-1]
    d2h = [s["d2h_bytes"] for s in stages][::-1]
    scale, unit = _byte_unit(max([*h2d, *d2h, 1]))
    b_ax.barh([v + h / 2 for v in y], [b / scale for b in h2d], h, label="host -> device",
              color="#55a868")
    b_ax.barh([v - h / 2 for v in y], [b / scale for b in d2h], h, label="device -> host",
              color="#c44e52")
    b_ax.set_xlabel(unit)
    b_ax.set_title("bytes moved host <-> device per stage")
    b_ax.legend(loc="best", fontsize="small")
    if not any(h2d) and not any(d2h):
        b_ax.set_xlim(0, 1)
        b_ax.text(0.5, 0.5, "no host<->device copies\n(chunks stay where they are made)",
                  transform=b_ax.transAxes, ha="center", va="center", color="#666")
    for ax in (t_ax, b_ax):
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


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
        cells = [_td(s["id"]), _td(s["op"]), _num(seconds(s["wall_s"], 3)),
                 _num(seconds(s["compute_s"], 3)), _num(str(s.get("tasks", ""))),
                 _num(_bytes(s["h2d_bytes"])), _num(_bytes(s["d2h_bytes"]))]
        if peaks:
            peak = s.get("peak_host_bytes")
            cells.append(_num("" if peak is None else _bytes(peak)))
        size = out.get("bytes")
        cells += [_td(describe_output(out)), _num("" if size is None else _bytes(size))]
        rows.append(f'<tr id="stage-{_e(s["id"])}">{"".join(cells)}</tr>')
    rows.append('<tr class="total">' + "".join(
        [_td("total"), _td(""), _num(f"{totals['wall_s']:.3f}"),
         _num(f"{totals['compute_s']:.3f}"), _num(str(sum(s.get("tasks", 0) for s in stages))),
         _num(_bytes(totals["h2d_bytes"])), _num(_bytes(totals["d2h_bytes"])),
         *([_num("")] if peaks else []), _td(""), _num("")]) + "</tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _outputs(files: list[dict]) -> str:
    if not files:
        return ""
    items = "".join(f"<li><code>{_e(Path(f['path']).name)}</code> ({_bytes(f['bytes'])})</li>"
                    for f in files)
    return f"<h2>Outputs</h2><ul id=\"outputs\">{items}</ul>"


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
