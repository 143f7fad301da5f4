"""The pictures of report.html drawn as inline SVG: the stage timeline and the DAG.

SVG is text inside the page: it needs no script, no network and no image library, stays
sharp at any zoom, shows each element's figures on hover (``<title>``), and a test (or a
script) reads the figures back from the elements' ``data-*`` attributes.
"""

from __future__ import annotations

import html
import math

BAR = "#4c72b0"  # the wall-time blue of the chart
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def timeline(stages: list[dict], width: int = 960) -> str:
    """A Gantt chart: one row per stage, a bar from its first task's start to its last
    task's end (seconds from the first stage's start). Stages without times say why."""
    timed = {s["id"] for s in stages if s.get("start") is not None
             and s.get("stop") is not None}
    if not timed:
        return ""
    t0 = min(s["start"] for s in stages if s["id"] in timed)
    span = max(max(s["stop"] for s in stages if s["id"] in timed) - t0, 1e-9)
    label_w, row_h, top = 170, 20, 24
    plot_w = width - label_w - 20
    height = top + row_h * len(stages) + 10
    parts = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" {FONT} role="img" '
             f'aria-label="stage timeline">']
    for tick in _ticks(span):
        x = label_w + tick / span * plot_w
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 8}" '
                     'stroke="#e4e4e4"/>')
        parts.append(f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle" '
                     f'fill="#666">{_tick_text(tick)}</text>')
    for i, s in enumerate(stages):
        y = top + i * row_h
        parts.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end">'
                     f'{_e(_short(s["id"], 24))}</text>')
        if s["id"] in timed:
            start, stop = s["start"] - t0, s["stop"] - t0
            x = label_w + start / span * plot_w
            w = max((stop - start) / span * plot_w, 1.5)  # an instant still shows
            tip = (f"{s['id']} ({s.get('op', '')}): {stop - start:.3f} s, from "
                   f"{start:.3f} s to {stop:.3f} s" + _compute_note(s))
            parts.append(f'<rect class="bar" data-stage="{_e(s["id"])}" '
                         f'data-start="{start:.6f}" data-stop="{stop:.6f}" x="{x:.1f}" '
                         f'y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{BAR}">'
                         f'<title>{_e(tip)}</title></rect>')
        else:
            why = "not computed (no sink needs it)" if s.get("computed") is False \
                else "no separate time (its tasks are another stage's or the query's)"
            parts.append(f'<text class="untimed" data-stage="{_e(s["id"])}" '
                         f'x="{label_w + 4}" y="{y + 14}" fill="#888">{_e(why)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _compute_note(s: dict) -> str:
    compute = s.get("compute_s")
    return "" if compute is None else f"; compute {compute:.3f} s over threads"


def _ticks(span: float) -> list[float]:
    """About six round tick values in [0, span]."""
    raw = span / 6
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(span / step) + 1)]


def _tick_text(t: float) -> str:
    return f"{t:g} s"


def dag(stages: list[dict], edges: list[tuple[str, str]]) -> str:
    """The stage DAG, top to bottom: a row per depth (longest path from a source), each
    node shaded by its share of the run's compute time."""
    ids = [s["id"] for s in stages]
    ups = {sid: [a for a, b in edges if b == sid and a in ids] for sid in ids}
    depth: dict[str, int] = {}
    for sid in ids:  # the report lists stages in DAG order: inputs come first
        depth[sid] = 1 + max((depth[u] for u in ups[sid] if u in depth), default=-1)
    layers = _order_layers(ids, ups, depth)
    node_w, node_h, gap_x, gap_y, pad = 140, 34, 14, 26, 10
    widest = max(len(layer) for layer in layers)
    width = pad * 2 + widest * (node_w + gap_x) - gap_x
    height = pad * 2 + len(layers) * (node_h + gap_y) - gap_y
    pos = {}
    for r, layer in enumerate(layers):
        left = (width - len(layer) * (node_w + gap_x) + gap_x) / 2  # each layer centred
        for c, sid in enumerate(layer):
            pos[sid] = (left + c * (node_w + gap_x), pad + r * (node_h + gap_y))
    total = sum(s.get("compute_s") or 0 for s in stages) or 1.0
    parts = [f'<svg id="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" {FONT} role="img" '
             'aria-label="stage graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>']
    for a, b in edges:
        if a in pos and b in pos:
            (xa, ya), (xb, yb) = pos[a], pos[b]
            x1, y1, x2, y2 = xa + node_w / 2, ya + node_h, xb + node_w / 2, yb
            mid = (y1 + y2) / 2
            parts.append(f'<path class="edge" data-from="{_e(a)}" data-to="{_e(b)}" '
                         f'd="M {x1:.1f} {y1} C {x1:.1f} {mid}, {x2:.1f} {mid}, {x2:.1f} '
                         f'{y2 - 1}" fill="none" stroke="#888" marker-end="url(#arrow)"/>')
    for s in stages:
        x, y = pos[s["id"]]
        share = (s.get("compute_s") or 0) / total
        tip = f"{s['id']} ({s.get('op', '')})" + _compute_note(s) + \
            (f", {share:.0%} of the run's" if s.get("compute_s") is not None else "")
        parts.append(f'<g class="node" data-stage="{_e(s["id"])}" data-op="{_e(s.get("op"))}">'
                     f'<title>{_e(tip)}</title>'
                     f'<rect x="{x:.1f}" y="{y}" width="{node_w}" height="{node_h}" rx="5" '
                     f'fill="{_heat(share)}" stroke="#777"/>'
                     f'<text x="{x + 8:.1f}" y="{y + 14}" font-weight="600">'
                     f'{_e(_short(s["id"], 19))}</text>'
                     f'<text x="{x + 8:.1f}" y="{y + 28}" fill="#555">'
                     f'{_e(_short(s.get("op", ""), 20))}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)


def _order_layers(ids: list[str], ups: dict[str, list[str]],
                  depth: dict[str, int]) -> list[list[str]]:
    """Nodes per layer, each layer sorted by the mean place of its inputs in theirs
    (fewer edge crossings), first-listed first among equals."""
    layers: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for sid in ids:
        layers[depth[sid]].append(sid)
    place = {sid: i / len(layer) for layer in layers for i, sid in enumerate(layer)}
    for layer in layers[1:]:
        layer.sort(key=lambda sid: (sum(place[u] for u in ups[sid]) / len(ups[sid])
                                    if ups[sid] else 0.0, ids.index(sid)))
        place.update({sid: i / len(layer) for i, sid in enumerate(layer)})
    return layers


def _heat(share: float) -> str:
    """White for no compute, through to orange for all of it."""
    r, g, b = (255, 255, 255)
    tr, tg, tb = (0xdd, 0x84, 0x52)
    f = min(max(share, 0.0), 1.0) ** 0.5  # small shares still visible
    return f"#{round(r + (tr - r) * f):02x}{round(g + (tg - g) * f):02x}" \
           f"{round(b + (tb - b) * f):02x}"


def _short(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def _e(value) -> str:
    return html.escape(str(value), quote=True)
