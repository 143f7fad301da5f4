"""Progress in the terminal while a run computes: per stage, tasks done / total and elapsed.

The figures come from the scheduler's spans (every stage's tasks carry ``stage:<id>``),
the same source as the report and the dashboard's per-span pages, so the three agree. The
block is redrawn in place with plain ANSI cursor moves; it is drawn only on a terminal
(the CLI passes ``progress`` only when stdout is a tty and ``--quiet`` is not given).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Task states that count as finished (TaskGroup.done uses the same set).
DONE_STATES = ("memory", "erred", "released", "forgotten")
BAR_WIDTH = 24
INTERVAL_S = 0.5


def wait(client, futures, span_ids: dict[str, str], stream: TextIO | None = None, *,
         interval: float = INTERVAL_S) -> None:
    """Wait for ``futures`` to finish, redrawing each stage's progress on ``stream``.

    Returns when every future is finished or erred (like ``distributed.wait``); task
    errors are left to the caller's ``gather``.
    """
    from distributed import wait as dask_wait

    display = Display(list(span_ids), stream or sys.stdout)
    t0 = time.monotonic()
    while True:
        try:
            dask_wait(futures, timeout=interval)
            finished = True
        except TimeoutError:
            finished = False
        if display.on:
            try:
                states = client.run_on_scheduler(read_progress, span_ids=span_ids)
            except OSError:  # the scheduler went away; gather reports why
                display.on = False
            else:
                display.draw(states, time.monotonic() - t0, final=finished)
        if finished:
            return


def read_progress(dask_scheduler, span_ids: dict[str, str]) -> dict[str, dict | None]:
    """On the scheduler: ``{stage: {done, total, erred, elapsed_s}}``; None for a stage
    with no tasks on the scheduler (not computed, or not submitted yet). ``elapsed_s`` is
    None until the stage's first task has finished."""
    spans = dask_scheduler.extensions["spans"].spans
    out: dict[str, dict | None] = {}
    for stage, span_id in span_ids.items():
        span = spans.get(span_id)
        if span is None:
            out[stage] = None
            continue
        states = span.states
        start = span.start  # 0 until the stage's first task has finished
        out[stage] = {"done": sum(states.get(s, 0) for s in DONE_STATES),
                      "total": sum(states.values()), "erred": states.get("erred", 0),
                      "elapsed_s": span.stop - start if start else None}
    return out


class Display:
    """The progress block: one line per stage plus a total, redrawn in place."""

    def __init__(self, stages: list[str], stream: TextIO):
        self.stages = stages
        self.stream = stream
        self.on = True
        self.drawn = 0  # lines on screen from the previous frame
        self.width = max([len(s) for s in stages] + [5])

    def lines(self, states: dict[str, dict | None], elapsed: float,
              final: bool = False) -> list[str]:
        out = []
        done_all = total_all = 0
        for stage in self.stages:
            st = states.get(stage)
            if st is None or not st["total"]:
                # (a stage can have no tasks of its own: a no-op copy on the CPU, or a
                # stage no sink needs)
                note = "no tasks" if final else "waiting"
                out.append(f"  {stage:<{self.width}}  {'':<{BAR_WIDTH + 2}}  {note}")
                continue
            done, total = st["done"], st["total"]
            done_all, total_all = done_all + done, total_all + total
            fill = BAR_WIDTH * done // total
            bar = "[" + "#" * fill + "." * (BAR_WIDTH - fill) + "]"
            count = f"{done}/{total} tasks"
            note = f", {st['erred']} erred" if st["erred"] else ""
            took = "     -" if st["elapsed_s"] is None else f"{st['elapsed_s']:6.1f}"
            out.append(f"  {stage:<{self.width}}  {bar}  {count:>15}  {took} s{note}")
        out.append(f"  {'total':<{self.width}}  {'':<{BAR_WIDTH + 2}}  "
                   f"{f'{done_all}/{total_all} tasks':>15}  {elapsed:6.1f} s")
        return out

    def draw(self, states: dict[str, dict | None], elapsed: float,
             final: bool = False) -> None:
        lines = self.lines(states, elapsed, final)
        # back to the top of the previous frame, then overwrite each line (ESC[2K clears)
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.stream.flush()
        self.drawn = len(lines)
