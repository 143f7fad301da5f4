"""Cached stages within one run: each stage's key, the entries read instead of computing,
and the entries written while computing.

The runner asks, stage by stage in DAG order, for a cached value (:meth:`StageCache.load`)
before calling the op, and offers each value it built (:meth:`StageCache.offer`). After
building, :meth:`StageCache.writes` keeps the writes of the stages the run will compute:
a stage whose result comes from the cache needs nothing above it, so nothing above it is
computed or written.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.cache import keys
from pipeline.cache.store import Store
from pipeline.ops.formats import READERS, WRITERS, Pending


class StageCache:
    """The cache of one run. ``every_stage``: ``--cache DIR`` (each stage unless it says
    ``cache: false``); otherwise only stages with ``cache: true``."""

    def __init__(self, store: Store, backend, workflow: str, *, every_stage: bool):
        self.store, self.backend, self.workflow = store, backend, workflow
        self.every_stage = every_stage
        self.keys: dict[str, str | None] = {}
        self.hits: set[str] = set()
        self.warnings: list[str] = []
        self._writes: dict[str, tuple[Pending, Path]] = {}
        store.attach()

    def enabled(self, ps) -> bool:
        wanted = ps.stage.cache
        return ps.info.family != "sink" and (wanted if wanted is not None
                                              else self.every_stage)

    def key(self, ps, ctx) -> str | None:
        """The stage's content key; None when its result is not reproducible (a random
        source without a seed, or an input that is not)."""
        if ps.info.family == "sink":
            return None
        params = dict(ps.params)
        if "seed" in ps.info.params and params.get("seed") is None:
            self._refuse(ps, "its seed is null: a new random draw each run")
            return None
        inputs = {}
        for name, ref in [*ps.stage.inputs, *((k, params[k]) for k in ps.info.stage_refs
                                              if isinstance(params.get(k), str))]:
            if self.keys.get(ref) is None:
                self._refuse(ps, f"its input '{ref}' is not cached reproducibly")
                return None
            inputs[name] = self.keys[ref]
            if name in params:
                params[name] = inputs[name]
        files = keys.file_identity(ctx.input_paths(params["path"],
                                                   params.get("storage_options"))) \
            if ps.info.name == "read" else None
        user_code = None
        if isinstance(params.get("function"), str):
            from pipeline.ops.functions import resolve

            user_code = keys.code_digest(resolve(params["function"]))
        return keys.stage_key(ps, params, inputs, self.backend, files, user_code)

    def load(self, ps, ctx) -> Any | None:
        """The stage's result read from its entry, or None (no entry, not enabled, or
        corrupt: then recomputed, and a warning says so)."""
        key = self.keys[ps.id] = self.key(ps, ctx)
        if key is None or not self.enabled(ps):
            return None
        entry, problem = self.store.lookup(key)
        if problem:
            self.warnings.append(f"stage '{ps.id}': cache entry {key[:12]} is corrupt "
                                 f"({problem}); recomputing it")
        if entry is None:
            return None
        self.hits.add(ps.id)
        meta = entry.meta
        if meta["kind"] == "array":
            return READERS["zarr"](ctx, [entry.data], chunks=meta["chunks"], columns=None,
                                   blocksize=None)
        return READERS["parquet"](ctx, [entry.data], chunks=None, columns=None,
                                  blocksize=None)

    def offer(self, ps, ctx, value) -> None:
        """Prepare writing the stage's computed ``value`` into its entry (kept only if the
        run computes the stage: see :meth:`writes`)."""
        key = self.keys.get(ps.id)
        if key is None or ps.id in self.hits or not self.enabled(ps):
            return
        kind = _kind(value)
        if kind is None:
            self._refuse(ps, "its output is neither an array of known shape nor a table")
            return
        staged = self.store.staging(key)
        data = staged / f"data.{'zarr' if kind == 'array' else 'parquet'}"
        pending = WRITERS[("zarr", "array") if kind == "array" else ("parquet", "frame")](
            ctx, value, data)
        meta = {"kind": kind, "data": data.name, "workflow": self.workflow, "stage": ps.id,
                "op": ps.info.name, **_describe(value)}
        self._writes[ps.id] = (Pending(pending.collection, finish=lambda _: self._commit(
            key, staged, meta)), staged)

    def writes(self, needed: set[str]) -> dict[str, Pending]:
        """The entry writes of the stages in ``needed``; the others' staging is dropped."""
        out = {}
        for sid, (pending, staged) in list(self._writes.items()):
            if sid in needed:
                out[sid] = pending
            else:
                del self._writes[sid]
                _remove(staged)
        return out

    def close(self) -> None:
        """End the run's use of the cache: drop every entry not committed (the run
        failed), and let go of the store."""
        for _, staged in self._writes.values():
            _remove(staged)
        self._writes.clear()
        self.store.detach()

    def _commit(self, key: str, staged: Path, meta: dict) -> None:
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.store.commit(key, staged, {**meta, "created": created})

    def _refuse(self, ps, why: str) -> None:
        if ps.stage.cache:  # asked for explicitly: say why it is not cached
            self.warnings.append(f"stage '{ps.id}' is not cached: {why}")


def _kind(value) -> str | None:
    import dask.array as da

    if isinstance(value, da.Array):
        return None if any(math.isnan(s) for s in value.shape) else "array"
    return "frame" if hasattr(value, "columns") and hasattr(value, "npartitions") else None


def _describe(value) -> dict:
    if _kind(value) == "array":
        return {"shape": list(value.shape), "dtype": str(value.dtype),
                "chunks": [list(c) for c in value.chunks]}
    return {"columns": {str(c): str(t) for c, t in value.dtypes.items()}}


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
