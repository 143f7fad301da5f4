"""Why a run failed, in the workflow's terms: the stage, the task's exception, the likely
cause and the fix.

Dask names a failed task by its key (``standard_normal-a39b...``), which means nothing to
the workflow's author. The scheduler knows which task the failure started at (a task
whose input failed is blamed on that input) and the span its group ran in; a stage's
tasks run in the span ``stage:<id>``. Dataframe tasks run in Dask's default span
(dask-expr drops annotations), so for them the key's name is looked up among the names in
each dataframe stage's own expression.
"""

from __future__ import annotations

import errno
import re
from dataclasses import asdict, dataclass

from dask.utils import format_bytes

from pipeline import limits
from pipeline.accounting import meter
from pipeline.errors import one_line

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Exceptions whose text means a file's bytes are not what its format says.
CORRUPT = re.compile(r"thrift|magic bytes|corrupt|invalid parquet|ArrowInvalid|"
                     r"Unexpected end of stream|Malformed|decompress", re.IGNORECASE)
CSV_LINE = re.compile(r"Error tokenizing data.*?line (\d+)", re.IGNORECASE)


@dataclass
class Failure:
    """What report.json says of a failed run (``failure``) and the error line is made of."""

    stage: str | None  # None: not one stage's (every worker lost, a file the client wrote)
    op: str | None
    task: str | None  # the Dask key the failure started at
    exception: str
    cause: str
    fix: str

    def as_dict(self) -> dict:
        return asdict(self)


def blamed(dask_scheduler, keys: list) -> list[dict]:
    """On the scheduler: the tasks the failure of ``keys`` started at, first those the
    erred of ``keys`` are blamed on, then every other task of their graphs that failed
    of itself (a dead worker fails every task it was running, but a sink's future is
    blamed on only the first of its inputs to fail)."""
    found: dict[str, dict] = {}

    def add(ts) -> None:
        if str(ts.key) not in found:
            found[str(ts.key)] = {"key": str(ts.key), "prefix": ts.prefix.name,
                                  "span": ts.group.span_id,
                                  "exception": str(ts.exception_text)}

    roots = [ts for key in keys if (ts := dask_scheduler.tasks.get(key)) is not None]
    for ts in roots:
        if ts.exception_blame is not None:
            add(ts.exception_blame)
    todo, seen = list(roots), set()
    while todo:
        ts = todo.pop()
        if ts.key in seen:
            continue
        seen.add(ts.key)
        if ts.exception_blame is ts:
            add(ts)
        todo.extend(ts.dependencies)
    return list(found.values())


def diagnose(error: BaseException, *, client=None, futures=(), plan, built,
             memory_limit: int | None = None, lost_all: str | None = None,
             members: dict | None = None) -> Failure:
    """The :class:`Failure` behind ``error``, raised while computing or writing the run.

    ``lost_all``: the worker watch's message when the run was cancelled for want of
    workers. ``members``: each submitted task's stages (``{key: {label: tasks}}``, from
    :class:`pipeline.accounting.graph.Prepared`): a fused task runs several.
    """
    tasks: list[dict] = []
    if client is not None:
        try:
            tasks = client.run_on_scheduler(blamed, keys=[f.key for f in futures])
        except Exception:  # noqa: BLE001 - the scheduler is gone; say what we know
            tasks = []
    task = tasks[0] if tasks else None
    by_label = {label: sid for sid, label in built.span_ids.items()}
    # the stage whose code raised, named by its meter; else the task's span (a fused
    # task's is its last stage's)
    stage = by_label.get(getattr(error, meter.STAGE_ATTR, None)) \
        or (_stage(task, built, plan) if task else None)
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if CSV_LINE.search(text) or CORRUPT.search(text):
        stage = _reader_of(stage, plan)
    killed = type(error).__name__ == "KilledWorker"
    if killed and tasks:
        # The memory of every task the dead worker ran (a sink's small task may have been
        # running beside the one that filled it), fused tasks by their stages: blame the
        # stage of largest chunks.
        runs = {str(k): v for k, v in (members or {}).items()}
        ran = [by_label[label] for t in tasks for label in runs.get(t["key"], {})
               if label in by_label]
        ran += [sid for t in tasks if (sid := _stage(t, built, plan))]
        stage = _largest(stage, ran, built)
    op = next((ps.info.name for ps in plan.stages if ps.id == stage), None)
    cause, fix = _cause(error, text, stage, built, memory_limit, lost_all)
    return Failure(stage=stage, op=op, task=task["key"] if task else None,
                   exception=one_line(lost_all or text, 1000), cause=cause, fix=fix)


def _stage(task: dict, built, plan) -> str | None:
    by_span = {span: sid for sid, span in built.span_ids.items()}
    if task["span"] in by_span:
        return by_span[task["span"]]
    # a dataframe task: the first stage (in DAG order) whose own expression makes it
    seen: set[str] = set()
    for ps in plan.stages:
        value = built.values.get(ps.id)
        if ps.id in built.sinks:
            value = built.sinks[ps.id].collection
        if not hasattr(value, "expr"):
            continue
        names = {_prefix(e._name) for e in value.expr.walk()}
        if task["prefix"] in names - seen:
            return ps.id
        seen |= names
    return None


def _largest(stage: str | None, stages: list[str], built) -> str | None:
    """Of ``stages`` (those a dead worker's tasks ran), the one whose chunks are largest."""
    sizes = {sid: limits.largest_chunk(built.values[sid]) or 0 for sid in stages
             if hasattr(built.values.get(sid), "chunks")}
    return max(sizes, key=sizes.get) if sizes else stage


def _reader_of(stage: str | None, plan) -> str | None:
    """Bad data comes from a file: the one ``read`` stage upstream of ``stage`` (Dask
    fuses a table's read with the stages after it into one task, named after the last),
    or ``stage`` itself when that is not clear."""
    by_id = {ps.id: ps for ps in plan.stages}
    todo = [stage] if stage in by_id else list(by_id)
    reads, seen = [], set()
    while todo:
        sid = todo.pop()
        if sid in seen:
            continue
        seen.add(sid)
        if by_id[sid].info.name == "read":
            reads.append(sid)
        todo.extend(by_id[sid].upstream)
    return reads[0] if len(reads) == 1 else stage


def _prefix(name: str) -> str:
    from dask.utils import key_split

    return key_split(name)


def _cause(error: BaseException, text: str, stage: str | None, built,
           memory_limit: int | None, lost_all: str | None) -> tuple[str, str]:
    where = f"stages.{stage}" if stage else "the stage"
    if lost_all:
        return ("every worker was lost",
                "check that the workers are running and can reach the scheduler; a worker "
                "that dies running a task is often out of memory")
    if isinstance(error, OSError) and error.errno in DISK_FULL or "No space left" in text:
        return ("the disk is full (or a file size limit was reached)",
                "free space where the run folder is, or use --output-dir on a larger disk")
    killed = type(error).__name__ == "KilledWorker"
    if killed or isinstance(error, MemoryError) or "Unable to allocate" in text:
        return _memory(killed, where, stage, built, memory_limit)
    if "deserialization of the task graph" in text:
        return ("the scheduler could not load this run's task graph: its Python "
                "environment differs from this one",
                "install the same pipeline, dask and library versions on the scheduler "
                "and workers (the Dockerfile does)")
    line = CSV_LINE.search(text)
    if line:
        return (f"bad data at line {line.group(1)} of a csv block (the file's line number "
                "when the file is one block)",
                "fix or remove that row, or clean the file before reading it")
    if CORRUPT.search(text):
        return ("a file's contents are damaged or not in the format its name says",
                "check the file (re-create or re-download it)")
    return ("the op raised an exception on a worker",
            f"check {where}'s parameters and input data against the exception")


def _memory(killed: bool, where: str, stage: str | None, built,
            memory_limit: int | None) -> tuple[str, str]:
    value = built.values.get(stage) if stage else None
    chunk = limits.largest_chunk(value) if hasattr(value, "chunks") else None
    sizes = []
    if chunk:
        sizes.append(f"its chunks are up to {format_bytes(chunk)}")
    if memory_limit:
        sizes.append(f"a worker may use {format_bytes(memory_limit)}")
    detail = f" ({'; '.join(sizes)})" if sizes else ""
    died = "workers died running it" if killed else "a worker could not allocate memory"
    return (f"out of memory: {died}{detail}",
            f"use smaller chunks for {where} (or its input), or give workers more memory "
            "(cluster.memory_limit, or fewer workers)")
