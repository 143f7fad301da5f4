"""``performance-report.html``: Dask's performance report of the run, readable offline and
kept off the critical path as far as Dask allows.

Dask renders the report on the scheduler (Bokeh models, serialised to one HTML file).
Three things made it cost the user 0.5 to 1 s after every run, and a blank page without
network:

- Bokeh's JavaScript came from a CDN: ``mode="inline"`` embeds it (about 1.7 MB), so the
  file opens on an air-gapped node or from a CI artefact;
- importing ``bokeh.models`` and Dask's dashboard components (0.3 to 0.5 s when the
  dashboard is off) happened after the run: :meth:`PerformanceReport.__enter__` imports
  them in a background thread while the workers compute and this process mostly waits;
- the rendering blocked the run's remaining work: :meth:`PerformanceReport.render` starts
  it in a thread once the scheduler is no longer needed for results or metrics, while the
  runner writes the outputs, report.json and report.html; :meth:`PerformanceReport.wait`
  joins it before the file is moved into place.

What remains (0.75 s or more of Bokeh models built and serialised on the scheduler,
whatever the run's size; 1 to 2 s of a run's wall clock on 2 cores, README) can be most
of a small run: ``--no-performance-report`` or the
Dask config ``pipeline.performance-report: false`` skips the report.
"""

from __future__ import annotations

import threading
from pathlib import Path

FILENAME = "performance-report.html"  # in the run folder


def _warm_imports() -> None:
    # what Scheduler.performance_report imports, in the order it does
    from bokeh.models import Div, TabPanel, Tabs  # noqa: F401
    from bokeh.plotting import output_file, save  # noqa: F401
    from distributed.dashboard.components.scheduler import (  # noqa: F401
        BandwidthTypes, BandwidthWorkers, SchedulerLogs, task_stream_figure)
    from distributed.dashboard.components.shared import SystemMonitor  # noqa: F401


class PerformanceReport:
    """Collect Dask's performance report from ``__enter__`` on; :meth:`render` writes it
    to ``path`` in a background thread, :meth:`wait` waits for the file.

    ``code`` is shown in the report's "Calling Code" section (the workflow's YAML). Not
    ``enabled``, it does nothing and writes nothing."""

    def __init__(self, path: Path, code: str, enabled: bool = True):
        from distributed import performance_report

        self.path, self.code, self.enabled = path, code, enabled
        self._report = performance_report(filename=str(path), mode="inline")
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # not a daemon: an interpreter exiting mid-import would wait for it anyway
        self._prefetch = threading.Thread(target=_warm_imports, name="pipeline-report-prefetch")

    def __enter__(self) -> "PerformanceReport":
        if self.enabled:
            self._prefetch.start()
            self._report.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        return None  # rendered by render(), only for a run that succeeded

    def render(self, client) -> None:
        """Start writing the report (call once the scheduler's answers are in)."""
        if not self.enabled:
            return
        self._prefetch.join()  # the scheduler imports the same modules: not both at once

        def run():
            try:
                client.sync(self._report.__aexit__, None, None, None, code=self.code)
            except BaseException as e:  # noqa: BLE001 - handed to wait()
                self._error = e

        self._thread = threading.Thread(target=run, name="pipeline-performance-report")
        self._thread.start()

    def wait(self) -> None:
        """Wait for the file :meth:`render` writes.

        Raises
        ------
        Exception
            Whatever rendering the report raised.
        """
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
