"""Progress while a run computes, per stage: tasks done / total and elapsed time.

The counts come from a scheduler plugin (:class:`StageProgress`) that knows, for every
task of the submitted graph, how many tasks of which stage it holds (a fused task holds
several stages' tasks; see :mod:`pipeline.accounting.graph`), so array and dataframe
stages are counted alike, fused or not, and agree with the report's ``tasks``.

On a terminal the block is redrawn in place and always fits the window (finished stages
collapse into one line, overflow into a count), so the screen never scrolls; elsewhere
(CI logs, ``| tee``) a plain line is printed per stage event, and a heartbeat line when
nothing was said for ``pipeline.progress-heartbeat`` (:mod:`pipeline.settings`).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections import Counter
from typing import TextIO

from distributed.diagnostics.plugin import SchedulerPlugin

from pipeline import settings

BAR_WIDTH = 20
INTERVAL_S = 0.5  # terminal redraw
POLL_S = 1.0  # plain lines: how soon an event is printed


class StageProgress(SchedulerPlugin):
    """On the scheduler: per stage label, tasks done / erred and when they ran.

    ``members``: top-level task key -> {label: tasks of that stage inside it}.
    """

    def __init__(self, name: str, members: dict):
        self.name = name
        self.members = members
        self.total: Counter = Counter()
        for counts in members.values():
            self.total.update(counts)
        self.done: Counter = Counter()
        self.erred: Counter = Counter()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self._finished: set = set()

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        counts = self.members.get(key)
        if not counts:
            return
        now = time.time()
        if finish == "processing":
            for label in counts:
                self.first.setdefault(label, now)
        elif finish in ("memory", "erred") and key not in self._finished:
            self._finished.add(key)  # once: a result recomputed after a lost worker
            tally = self.done if finish == "memory" else self.erred
            for label, n in counts.items():
                tally[label] += n
                self.first.setdefault(label, now)
                self.last[label] = now

    def snapshot(self) -> dict[str, dict]:
        """``{label: {done, erred, total, elapsed_s}}``; elapsed_s is None until a task of
        the stage starts, then runs until its last task finishes."""
        now = time.time()
        out = {}
        for label, total in self.total.items():
            first = self.first.get(label)
            finished = self.done[label] + self.erred[label] >= total
            end = self.last.get(label, now) if finished else now
            out[label] = {"done": self.done[label], "erred": self.erred[label],
                          "total": total, "elapsed_s": None if first is None else end - first}
        return out


def _snapshot(dask_scheduler, name: str) -> dict:
    return dask_scheduler.plugins[name].snapshot()


class Shown:
    """Progress of one run: made by :func:`start` before the graph is submitted."""

    def __init__(self, client, name: str, view):
        self.client, self.name, self.view = client, name, view
        self.t0 = time.monotonic()

    def wait(self, futures) -> None:
        """Return once every future is finished or erred (like ``distributed.wait``),
        showing progress meanwhile; task errors are left to the caller's ``gather``."""
        from distributed import wait as dask_wait

        while True:
            try:
                dask_wait(futures, timeout=self.view.interval)
                finished = True
            except TimeoutError:
                finished = False
            try:
                states = self.client.run_on_scheduler(_snapshot, name=self.name)
            except OSError:  # the scheduler went away; gather reports why
                return
            self.view.update(states, time.monotonic() - self.t0, final=finished)
            if finished:
                return

    def stop(self) -> None:
        try:
            self.client.unregister_scheduler_plugin(self.name)
        except (OSError, ValueError):  # scheduler gone, or never registered
            pass


def start(client, prepared, labels: dict[str, str], stream: TextIO | None = None) -> Shown:
    """Register the counting plugin for ``prepared``'s graph; ``labels``: stage id ->
    label, in DAG order. A terminal ``stream`` gets a :class:`Screen`, any other
    :class:`Lines`."""
    stream = stream or sys.stdout
    name = f"pipeline-progress-{uuid.uuid4().hex[:12]}"
    client.register_plugin(StageProgress(name, prepared.members), name=name)
    view_cls = Screen if _isatty(stream) else Lines
    return Shown(client, name, view_cls(labels, stream))


def _isatty(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _state(st: dict | None) -> str:
    if not st:
        return "none"
    if st["done"] + st["erred"] >= st["total"]:
        return "done"
    return "waiting" if st["elapsed_s"] is None else "running"


def _count(st: dict) -> str:
    return f"{st['done'] + st['erred']}/{st['total']} tasks" \
        + (f", {st['erred']} erred" if st["erred"] else "")


class Screen:
    """The block redrawn in place on a terminal: stages running or waiting, one line each
    while the window has room; finished stages and those with no tasks of their own
    collapsed into one line each; a total line last. Never taller than the window minus
    one line, never wider than it, so redrawing cannot scroll."""

    interval = INTERVAL_S

    def __init__(self, labels: dict[str, str], stream: TextIO):
        self.labels, self.stream = labels, stream
        self.drawn = 0
        self.width = max([len(s) for s in labels] + [5])

    def size(self) -> tuple[int, int]:
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, ValueError, OSError):  # not a real terminal (tests)
            size = shutil.get_terminal_size()
        return max(size.columns, 20), max(size.lines, 4)

    def lines(self, states: dict, elapsed: float, final: bool = False,
              size: tuple[int, int] = (80, 24)) -> list[str]:
        columns, rows = size
        by_state: dict[str, list[str]] = {"done": [], "none": [], "running": [], "waiting": []}
        for stage, label in self.labels.items():
            by_state[_state(states.get(label))].append(stage)
        done_all = sum(s["done"] + s["erred"] for s in states.values())
        total_all = sum(s["total"] for s in states.values())
        erred_all = sum(s["erred"] for s in states.values())
        out = []
        if by_state["done"]:
            out.append(f"  done ({len(by_state['done'])}): " + ", ".join(by_state["done"]))
        if by_state["none"]:
            out.append(f"  no tasks of their own ({len(by_state['none'])}): "
                       + ", ".join(by_state["none"]))
        active = by_state["running"] + by_state["waiting"]
        # rows - 1 lines at most, the total line last; on a very short window the
        # collapsed lines give way to the running stages
        while out and len(out) + 1 + bool(active) > rows - 1:
            out.pop()
        room = rows - 2 - len(out)
        shown = active if len(active) <= room else active[:max(room - 1, 0)]
        width = min(self.width, max(columns // 3, 8))
        for stage in shown:
            st = states[self.labels[stage]]
            fill = BAR_WIDTH * (st["done"] + st["erred"]) // st["total"]
            bar = "[" + "#" * fill + "." * (BAR_WIDTH - fill) + "]"
            took = "     -" if st["elapsed_s"] is None else f"{st['elapsed_s']:6.1f}"
            count = f"{st['done'] + st['erred']}/{st['total']} tasks"
            erred = f", {st['erred']} erred" if st["erred"] else ""
            out.append(f"  {stage[:width]:<{width}}  {bar}  {count:>15}  {took} s{erred}")
        if len(shown) < len(active) and room > 0:
            rest = active[len(shown):]
            running = sum(1 for s in rest if s in by_state["running"])
            out.append(f"  ... {len(rest)} more ({running} running, {len(rest) - running} "
                       f"waiting)")
        status = "finished" if final else "running"
        out.append(f"  {status}: {done_all}/{total_all} tasks"
                   + (f", {erred_all} erred" if erred_all else "") + f", {elapsed:.1f} s")
        return [line if len(line) < columns else line[:columns - 4] + "..." for line in out]

    def update(self, states: dict, elapsed: float, final: bool = False) -> None:
        lines = self.lines(states, elapsed, final, self.size())
        # back to the top of the previous frame (ESC[nF), overwrite each line (ESC[2K
        # clears it), then clear whatever the previous, taller frame left below (ESC[J)
        up = f"\x1b[{self.drawn}F" if self.drawn else ""
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines) + "\x1b[J")
        self.stream.flush()
        self.drawn = len(lines)


class Lines:
    """Plain lines, for logs: one when a stage starts, finishes or has a task fail, and a
    heartbeat when nothing was said for ``heartbeat`` seconds."""

    interval = POLL_S

    def __init__(self, labels: dict[str, str], stream: TextIO, heartbeat: float | None = None):
        self.labels, self.stream = labels, stream
        self.heartbeat = settings.seconds("progress-heartbeat") if heartbeat is None \
            else heartbeat
        self.seen: dict[str, str] = {}
        self.erred: dict[str, int] = {}
        self.said = 0.0

    def events(self, states: dict, elapsed: float, final: bool = False) -> list[str]:
        out = []
        if not self.seen:
            idle = [s for s, label in self.labels.items() if _state(states.get(label)) == "none"]
            if idle:
                out.append(f"no tasks of their own: {', '.join(idle)}")
        for stage, label in self.labels.items():
            st = states.get(label)
            state = _state(st)
            before = self.seen.get(stage, "none" if state == "none" else "waiting")
            if state == "running" and before == "waiting":
                out.append(f"{stage} started ({st['total']} task"
                           f"{'' if st['total'] == 1 else 's'})")
            if st and st["erred"] > self.erred.get(stage, 0):
                out.append(f"{st['erred']} task(s) of {stage} failed")
                self.erred[stage] = st["erred"]
            if state == "done" and before != "done":
                out.append(f"{stage} done: {_count(st)} in {st['elapsed_s']:.1f} s")
            self.seen[stage] = state
        done_all = sum(s["done"] + s["erred"] for s in states.values())
        total_all = sum(s["total"] for s in states.values())
        if final:
            out.append(f"finished: {done_all}/{total_all} tasks")
        elif not out and elapsed - self.said >= self.heartbeat:
            running = [f"{s} {_count(states[self.labels[s]])}" for s, state in
                       self.seen.items() if state == "running"]
            more = f" +{len(running) - 3} more" if len(running) > 3 else ""
            out.append(f"still running: {done_all}/{total_all} tasks"
                       + (f"; {', '.join(running[:3])}{more}" if running else ""))
        return out

    def update(self, states: dict, elapsed: float, final: bool = False) -> None:
        lines = self.events(states, elapsed, final)
        if lines:
            self.said = elapsed
            self.stream.write("".join(f"[{elapsed:7.1f} s] {line}\n" for line in lines))
            self.stream.flush()
