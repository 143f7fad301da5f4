"""The pipeline's own Dask config keys: ``pipeline.<key>`` in a Dask config file (such as
``~/.config/dask/pipeline.yaml``) or ``DASK_PIPELINE__<KEY>`` in the environment.

Every key is read here, checked. A bad value is bad input (one line, exit 2) that
:func:`check` finds before any worker starts: never a value silently taken for another
(``fuse: no`` read as true), nor a run that fails on a worker minutes later.
"""

from __future__ import annotations

import math
from datetime import timedelta

from pipeline.errors import InputError

# key -> default
DEFAULTS = {
    "connect-timeout": "10s",  # reaching an existing scheduler
    "workers-timeout": "60s",  # for its first worker to join (containers start slowly)
    "no-workers-timeout": "60s",  # a run with no worker left fails after this
    "progress-heartbeat": "10s",  # plain progress lines: one after this long without any
    "history": 5,  # earlier runs kept in <output_dir>.history/ (0 keeps none)
    "max-chunks": 100_000,  # most chunks (tasks) one stage may make
    "fuse": True,  # let Dask fuse tasks (--no-fuse)
    "performance-report": True,  # write performance-report.html (--no-performance-report)
}
DURATIONS = ("connect-timeout", "workers-timeout", "no-workers-timeout",
             "progress-heartbeat")
MINIMUMS = {"history": 0, "max-chunks": 1}
FLAGS = ("fuse", "performance-report")
# a wait longer than a week is a hang to the user, or a slip (1e30s, 60 read as 60 days)
MAX_SECONDS = 7 * 24 * 3600


def _get(key: str):
    import dask

    return dask.config.get(f"pipeline.{key}", DEFAULTS[key])


def _bad(key: str, value, hint: str) -> InputError:
    return InputError(f"bad value {value!r}", where=f"pipeline.{key} (Dask config)",
                      hint=hint)


def seconds(key: str) -> float:
    """The duration ``pipeline.<key>`` in seconds: more than 0, at most 7 days."""
    from dask.utils import parse_timedelta

    value = _get(key)
    try:
        s = parse_timedelta(value) if isinstance(value, (str, int, float, timedelta)) \
            and not isinstance(value, bool) else None
    except (ValueError, KeyError):
        s = None
    if s is None or not math.isfinite(s) or not 0 < s <= MAX_SECONDS:
        raise _bad(key, value, "a duration such as 30s or 2min, at most 7 days")
    return float(s)


def count(key: str) -> int:
    """The whole number ``pipeline.<key>``, at least its minimum."""
    value = _get(key)
    try:
        n = None if isinstance(value, (bool, float)) else int(value)
    except (TypeError, ValueError):
        n = None
    if n is None or n < MINIMUMS[key]:
        raise _bad(key, value, f"a whole number, {MINIMUMS[key]} or more")
    return n


def flag(key: str) -> bool:
    """The switch ``pipeline.<key>``: true or false (or 1 or 0, as environments say)."""
    value = _get(key)
    if value not in (True, False):  # 1 == True and 0 == False; "no", 2, None are not
        raise _bad(key, value, "true or false")
    return bool(value)


def check() -> None:
    """Read every key, so that a bad one is reported before a run starts.

    Raises
    ------
    InputError
        The first key with a bad value.
    """
    for key in DURATIONS:
        seconds(key)
    for key in MINIMUMS:
        count(key)
    for key in FLAGS:
        flag(key)
