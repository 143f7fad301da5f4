"""Workers lost during a run: which ones left, and a bounded wait when none is left.

Dask recomputes what a lost worker held or was running, so a run survives losing some of
its workers; the report names them. With no worker left, a Dask client waits forever for
one to join; :class:`WorkerWatch` cancels the run instead once the cluster has had no
worker for ``pipeline.no-workers-timeout`` seconds (a restarted container that rejoins
within that time lets the run go on).
"""

from __future__ import annotations

import threading
import time

POLL_S = 0.25


class WorkerWatch:
    """Watches the cluster while a run's ``futures`` compute: ``start()`` before waiting
    on them, ``stop()`` after (also a context manager).

    After ``stop()``, ``lost`` lists the workers the scheduler removed meanwhile (from its
    ``remove-worker`` events); ``failure`` says why the run was cancelled, if it was.
    """

    def __init__(self, client, futures, address: str, timeout_s: float | None = None):
        from pipeline import settings

        self.client, self.futures, self.address = client, list(futures), address
        self.timeout_s = settings.seconds("no-workers-timeout") if timeout_s is None else timeout_s
        self.lost: list[dict] = []
        self.failure: str | None = None
        self._stop = threading.Event()
        # a daemon thread: it also ends by itself once every future is done or cancelled
        self._thread = threading.Thread(target=self._watch, name="pipeline-worker-watch",
                                        daemon=True)
        self._since = 0.0

    def start(self) -> WorkerWatch:
        self._since = _last_event_time(self.client.get_events("all"))
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        try:
            events = self.client.get_events("all")
        except OSError:  # scheduler gone: the run's own error says so; no list to give
            return
        self.lost = lost_workers(events, self._since)

    def __enter__(self) -> WorkerWatch:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _watch(self) -> None:
        empty_since = None
        while not self._stop.wait(POLL_S):
            if all(f.done() for f in self.futures):
                return
            try:
                n = len(self.client.nthreads())
            except OSError:  # scheduler unreachable: counts as no worker
                n = 0
            if n:
                empty_since = None
                continue
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= self.timeout_s:
                self.failure = (f"every worker of {self.address} was lost and "
                                f"none joined within {self.timeout_s:g} s "
                                f"(pipeline.no-workers-timeout)")
                self.client.cancel(self.futures)
                return


def _last_event_time(events) -> float:
    return max((t for t, _ in events), default=0.0)


def lost_workers(events, since: float) -> list[dict]:
    """The ``remove-worker`` events after ``since`` (scheduler time), oldest first."""
    out = []
    for t, msg in events:
        if t > since and isinstance(msg, dict) and msg.get("action") == "remove-worker":
            out.append({"worker": msg.get("worker"), "time": t,
                        "graceful": bool(msg.get("expected")),
                        "tasks_running": len(msg.get("processing-tasks") or ()),
                        "results_recomputed": len(msg.get("lost-computed-tasks") or ())})
    return out
