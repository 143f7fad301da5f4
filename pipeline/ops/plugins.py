"""Third-party ops: packages register them through the entry-point group ``pipeline.ops``.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."pipeline.ops"]
    tiles = "my_package.ops"

and ``my_package/ops.py`` registers its ops with the same decorator as the built-in ones
(``from pipeline.ops import op``). The entry points are loaded once, with the catalogue,
so plugin ops appear in ``ops``, ``validate``, ``schema`` and ``advise`` like any other.
A plugin that fails to load does not take the catalogue down: its error is kept, and
named when a workflow asks for an op that is unknown (perhaps because of it).
"""

from __future__ import annotations

from importlib import metadata

from pipeline.ops.functions import one_line

GROUP = "pipeline.ops"
# entry point name -> "value: error" of the plugins that failed to load
FAILED: dict[str, str] = {}
_loaded = False


def load() -> None:
    """Import every ``pipeline.ops`` entry point (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in metadata.entry_points(group=GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plugin is reported, never fatal
            FAILED[ep.name] = f"{ep.value}: {type(e).__name__}: {one_line(e)}"


def origin(fn) -> str | None:
    """The distribution that ships op function ``fn``, or None for a built-in op."""
    module = getattr(fn, "__module__", "") or ""
    if module == "pipeline" or module.startswith("pipeline."):
        return None
    top = module.partition(".")[0]
    dists = metadata.packages_distributions().get(top)
    return dists[0] if dists else top


def failures_hint() -> str | None:
    """A hint naming the plugins that failed to load, if any."""
    if not FAILED:
        return None
    return "; ".join(f"plugin '{name}' failed to load ({error})"
                     for name, error in sorted(FAILED.items()))
