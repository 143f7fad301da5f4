"""Cached stages: a stage's result kept across runs under a content key (``cache: true``
on a stage, or ``--cache DIR`` for all), and ``python -m pipeline cache ls|clear``.

:mod:`~pipeline.cache.keys` says what a key covers, :mod:`~pipeline.cache.store` how
entries are kept and checked, :mod:`~pipeline.cache.stages` how a run uses them.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.cache.store import Store, default_dir


def root(plan, cache_dir: str | Path | None) -> Path | None:
    """The run's cache folder: ``--cache DIR``, else the default one where a stage says
    ``cache: true``, else None."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return default_dir() if any(s.stage.cache for s in plan.stages) else None


def claim(plan, cache_dir: str | Path | None) -> None:
    """Refuse a cache folder that is not one before the run starts (:meth:`Store.claim`)."""
    folder = root(plan, cache_dir)
    if folder is not None:
        Store(folder).claim()


def for_run(plan, backend, cache_dir: str | Path | None):
    """The run's :class:`~pipeline.cache.stages.StageCache`, or None when no stage is
    cached (no ``--cache DIR``, no ``cache: true``)."""
    folder = root(plan, cache_dir)
    if folder is None:
        return None
    from pipeline.cache.stages import StageCache

    return StageCache(Store(folder), backend, plan.workflow.name,
                      every_stage=cache_dir is not None)


__all__ = ["Store", "claim", "default_dir", "for_run", "root"]
