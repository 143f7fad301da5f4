"""Cached stages: a stage's result kept across runs under a content key (``cache: true``
on a stage, or ``--cache DIR`` for all), and ``python -m pipeline cache ls|clear``.

:mod:`~pipeline.cache.keys` says what a key covers, :mod:`~pipeline.cache.store` how
entries are kept and checked, :mod:`~pipeline.cache.stages` how a run uses them.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cache.store import Store, default_dir


def for_run(plan, backend, cache_dir: str | Path | None):
    """The run's :class:`~pipeline.cache.stages.StageCache`, or None when no stage is
    cached (no ``--cache DIR``, no ``cache: true``)."""
    every = cache_dir is not None
    if not every and not any(s.stage.cache for s in plan.stages):
        return None
    from pipeline.cache.stages import StageCache

    root = Path(cache_dir).expanduser() if every else default_dir()
    return StageCache(Store(root), backend, plan.workflow.name, every_stage=every)


__all__ = ["Store", "default_dir", "for_run"]
