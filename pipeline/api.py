"""The Python API: load a workflow, run it, or build its lazy Dask collections.

```python
import pipeline

wf = pipeline.load("workflows/spectrum.yaml",
                   overrides={"stages.signal.shape": [1024, 256], "backend": "cpu"})
result = pipeline.run(wf, output_dir="runs/notebook")
result.values["save"]            # the mean power spectrum, as a NumPy array
result.report["stages"][1]       # per-stage time, transfers, output
lazy = pipeline.build(wf)        # {stage id: dask array / dataframe}, nothing computed
```

The command line is a thin layer over these functions. Bad input raises
:class:`pipeline.InputError`, whose ``str()`` is the one line ``python -m pipeline``
prints; a failed run raises :class:`pipeline.RunFailed`. Only :mod:`pipeline.spec` (YAML)
is imported with this module: Dask and the rest load on the first call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from pipeline import settings, spec
from pipeline.errors import InputError
from pipeline.result import Result
from pipeline.spec import Workflow

Echo = Callable[[str], Any]


def load(source: str | Path | Mapping, overrides: Mapping[str, Any] | list[str] | None = None,
         *, output_dir: str | Path | None = None, base_dir: str | Path | None = None,
         trust_workflow: bool = False) -> Workflow:
    """Load and validate a workflow from a YAML file or a mapping.

    Parameters
    ----------
    source : str, Path or mapping
        The workflow file, or the workflow itself as a mapping (as the YAML would parse).
    overrides : mapping or list of str, optional
        ``{"stages.signal.shape": [1024, 256]}`` (values used as they are), or
        ``["stages.signal.shape=[1024,256]"]`` as ``--set`` takes them (values parsed as
        YAML).
    output_dir : str or Path, optional
        The run folder, instead of the workflow's ``output_dir``.
    base_dir : str or Path, optional
        Where relative ``read`` paths resolve: default the file's folder, or the current
        folder for a mapping.
    trust_workflow : bool
        Let a file set ``cluster.address``, ``cluster.security`` and a dashboard open to
        other machines (``--trust-workflow``; README: trust). A mapping is the caller's
        own, and may set them.

    Returns
    -------
    Workflow
        Frozen and validated; ops and parameters are checked when it is run or built.

    Raises
    ------
    InputError
        A missing or malformed file, a bad override or field; a file that sets what it
        may not on its own.
    """
    _check_arguments(overrides=overrides, output_dir=output_dir, base_dir=base_dir,
                     trust_workflow=trust_workflow)
    items = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides or ())
    if isinstance(source, Mapping):
        return spec.from_mapping(source, items, output_dir, base_dir=base_dir)
    if not isinstance(source, (str, Path)) or source == "":  # "": read as "." before
        what = "an empty path" if source == "" else type(source).__name__
        raise InputError(f"cannot load a workflow from {what}",
                         hint="give a YAML file's path or a mapping")
    return spec.load(source, items, output_dir, base_dir=base_dir,
                     trust_workflow=trust_workflow)


def run(workflow: Workflow | str | Path | Mapping, *, client=None, backend: str | None = None,
        output_dir: str | Path | None = None, progress: bool | Any = False,
        cache: str | Path | None = None, address: str | None = None,
        dashboard_address: str | None = "keep", echo: Echo | None = None,
        fuse: bool | None = None, performance_report: bool | None = None,
        trust_workflow: bool = False) -> Result:
    """Run a workflow on a Dask cluster and return its report and outputs.

    Parameters
    ----------
    workflow : Workflow, path or mapping
        What :func:`load` returns, or what it takes.
    client : distributed.Client, optional
        Run on this client's cluster, as it is (never closed). Default: start a
        LocalCluster (CPU) or LocalCUDACluster (GPU) for the run, or connect to
        ``address``.
    backend : {"auto", "cpu", "gpu"}, optional
        Instead of the workflow's.
    output_dir : str or Path, optional
        The run folder, instead of the workflow's.
    progress : bool or text stream
        Show per-stage progress on stdout (True) or on the given stream: redrawn in place
        on a terminal, plain lines and a heartbeat otherwise.
    cache : str or Path, optional
        Keep every stage's result in this folder and reuse it in later runs
        (``--cache DIR``); stages marked ``cache: true`` use the default folder
        (``$PIPELINE_CACHE_DIR`` or ``~/.cache/pipeline``) without it.
    address : str, optional
        The scheduler of an existing cluster (``--address``).
    dashboard_address : str or None
        For a cluster started here: ``"keep"`` (the workflow's), an address, or None
        (no dashboard).
    echo : callable, optional
        Called with each status line the command line prints: the dashboard link, the
        backend chosen and why, warnings (``"warning: ..."``).
    fuse : bool, optional
        Let Dask fuse tasks (default: the Dask config ``pipeline.fuse``, true); False
        keeps one task per stage per chunk (``--no-fuse``). Per-stage figures are exact
        either way.
    performance_report : bool, optional
        Write Dask's performance report, performance-report.html (default: the Dask
        config ``pipeline.performance-report``, true); False saves its rendering, 1 to 2 s
        of a run on 2 cores (``--no-performance-report``).
    trust_workflow : bool
        For a workflow file: see :func:`load`.

    Returns
    -------
    Result
        ``.report`` (as report.json), ``.outputs`` (sink stage id -> file), ``.values``
        (sink stage id -> the small results, read back).

    Raises
    ------
    InputError
        Bad input (also a bad ``pipeline.*`` Dask config value), found before any
        compute.
    RunFailed
        A stage raised on the workers, or the workers were lost: the run folder is left as
        it was, and the failed run's report is filed in its history
        (``<output_dir>.history/<start>-failed/``).
    """
    from pipeline import cache as stage_cache
    from pipeline import plan, runner
    from pipeline.report import human_bytes
    from pipeline.runfolder import RunFolder

    _check_arguments(output_dir=output_dir, progress=progress, cache=cache, address=address,
                     dashboard_address=dashboard_address, echo=echo, fuse=fuse,
                     performance_report=performance_report, trust_workflow=trust_workflow)
    say = echo or (lambda line: None)
    settings.check()
    wf = _workflow(workflow, trust_workflow)
    if backend is not None or output_dir is not None:
        wf = spec.revise(wf, [("backend", backend)] if backend is not None else [],
                         output_dir)
    p = plan.build(wf)
    for w in p.warnings:
        say(f"warning: {w}")
    if client is not None and address is not None:
        raise InputError("give client or address, not both", where="address")
    stage_cache.claim(p, cache)  # a folder that is not a cache: refused before any worker
    # the run folder is checked and locked before any worker starts
    with RunFolder(wf.output_dir) as folder, \
            _session(client, wf, address, dashboard_address, p.table_stages) as session:
        if session.dashboard_link:  # first thing, so a user can open it while it runs
            say(f"dashboard: {session.dashboard_link}")
        sized = session.backend.chunk_bytes
        say(f"workflow '{wf.name}': backend {session.backend_why}"
            + (f"; chunks: auto = {human_bytes(sized)}, from the GPU's memory" if sized else ""))
        cached = stage_cache.for_run(p, session.backend, cache)
        doc = runner.run(p, session.backend, session, progress=progress, cache=cached,
                         fuse=fuse, performance_report=performance_report, folder=folder)
    for w in doc["warnings"][len(p.warnings):]:  # found while running: the cache's
        say(f"warning: {w}")
    return Result(doc, _destinations(p), wf.output_dir)


_PATH = ((str, os.PathLike), "a path")
_SWITCH = ((bool,), "True or False")
# load()'s and run()'s arguments: the types each takes (None aside), as said in the error
_ARGUMENTS = {"output_dir": _PATH, "base_dir": _PATH, "cache": _PATH,
              "overrides": ((Mapping, list, tuple), "a mapping or a list of K=V strings"),
              "address": ((str,), "a scheduler address"),
              "dashboard_address": ((str,), "an address such as 127.0.0.1:8787"),
              "fuse": _SWITCH, "performance_report": _SWITCH, "trust_workflow": _SWITCH}


def _check_arguments(**given) -> None:
    """A wrong type passed to :func:`load` or :func:`run` is bad input, said before
    anything starts: not a TypeError from deep inside, a folder named "5", nor a run
    failed "on a worker"."""
    for name, value in given.items():
        if name == "progress":
            ok = isinstance(value, bool) or callable(getattr(value, "write", None))
            what = "True, False or a text stream"
        elif name == "echo":
            ok, what = value is None or callable(value), "a function of one line"
        else:
            types, what = _ARGUMENTS[name]
            ok = value is None and name != "trust_workflow" or isinstance(value, types)
        if not ok:
            raise InputError(f"{name} must be {what}, got {value!r}", where=name)
        if value == "":  # an unset variable in a script ("$OUT"): never "the default"
            raise InputError(f"{name} is empty", where=name,
                             hint="give a value, or leave it out")


def build(workflow: Workflow | str | Path | Mapping, client=None) -> dict[str, Any]:
    """The workflow's stages as lazy Dask collections, to compute or extend by hand.

    Chunks are CuPy arrays / cuDF frames on the GPU backend, NumPy / pandas on the CPU
    one. Sinks are left out (nothing is written); compute what you need with your own
    client.

    Parameters
    ----------
    workflow : Workflow, path or mapping
        What :func:`load` returns, or what it takes.
    client : distributed.Client, optional
        Resolve the backend on this client's workers; default: on this machine.

    Returns
    -------
    dict
        ``{stage id: dask.array.Array | dask.dataframe.DataFrame}`` in DAG order.

    Raises
    ------
    InputError
        Bad input: an unknown op or parameter, a shape mismatch, a missing file...
    """
    from pipeline import backends, cluster, plan, runner

    wf = _workflow(workflow, trust_workflow=True)  # build connects nowhere
    p = plan.build(wf)
    if client is not None:
        backend = cluster.attach(client, wf.backend, p.table_stages).backend
    else:
        backend, _ = backends.resolve(wf.backend, tables=p.table_stages)
        backend = backends.sized_for_device(backend, backends.device_memory(), 2)
    built = runner.build(p, backend, wf.output_dir / ".build")
    return {ps.id: built.values[ps.id] for ps in p.stages if ps.id in built.values}


def _workflow(workflow, trust_workflow: bool) -> Workflow:
    return workflow if isinstance(workflow, Workflow) \
        else load(workflow, trust_workflow=trust_workflow)


def _session(client, wf: Workflow, address, dashboard_address, tables):
    from contextlib import nullcontext

    from pipeline import cluster

    if client is not None:
        return nullcontext(cluster.attach(client, wf.backend, tables))
    return cluster.connect(wf.cluster, wf.backend, address=address,
                           dashboard_address=dashboard_address, tables=tables)


def _destinations(p) -> dict[str, Any]:
    """Each sink stage's final file (sinks without a ``path`` are left out)."""
    from pipeline.ops.context import destination

    return {ps.id: destination(p.workflow.output_dir, ps.params["path"],
                               ps.params.get("storage_options"))
            for ps in p.stages if ps.info.family == "sink" and "path" in ps.params}
