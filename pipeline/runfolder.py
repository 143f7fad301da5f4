"""The run folder: outputs that appear together, replace the last run's as a whole, and
never mix with another run's.

``output_dir`` (``--output-dir DIR``) is the run folder. A run builds its new folder
beside it, ``.DIR.staging-<hex>/``, with the sinks' files at their final relative paths
and the reports. When the whole run has succeeded, the previous ``DIR`` moves into
``DIR.history/<its start time>/`` and the new folder is renamed to ``DIR``: no output of
an earlier run is left beside the new ones, and a reader sees either the old folder or
the new one. A failed run leaves ``DIR`` as it was and puts its report in
``DIR.history/<start time>-failed/``. Every history entry is a complete run folder with
its ``report.json``; the newest ``pipeline.history`` entries (Dask config, default 5)
are kept.

An exclusive lock (``flock`` on ``.DIR.lock`` beside the folder, released by the kernel
when the process dies) keeps a second run out of the same folder. With the lock held, no
live run owns a ``.DIR.staging-*`` folder, so those left by a killed run are removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from pipeline import settings
from pipeline.errors import InputError, OpError
from pipeline.perf_report import FILENAME as PERFORMANCE_REPORT

# Files the run itself writes at the top of the run folder; no sink may take their names.
RESERVED = ("report.json", "report.html", PERFORMANCE_REPORT)
NAME_MAX = 255  # bytes in one file name, on the common file systems


def history_of(run_dir: str | Path) -> Path:
    """``DIR.history/`` beside the run folder ``DIR``, where its earlier runs are kept
    (``DIR`` made absolute first: ``.`` has no name to put the suffix on)."""
    run_dir = Path(os.path.abspath(run_dir))
    return run_dir.parent / (run_dir.name + ".history")


def sink_path(path: str, run_dir: Path) -> PurePosixPath:
    """A sink's ``path`` as a path relative to the run folder.

    Raises
    ------
    OpError
        Empty, the run folder itself, outside it, or one of :data:`RESERVED`.
    """
    hint = "a file name inside output_dir, e.g. result.npy"
    if not path or "\0" in path:
        raise OpError(f"bad path {path!r}", where="path", hint=hint)
    full = Path(os.path.normpath(run_dir.absolute() / path))
    if not full.is_relative_to(run_dir.absolute()):
        raise OpError(f"'{path}' is outside the run folder", where="path",
                      hint="write paths are relative to output_dir")
    rel = PurePosixPath(full.relative_to(run_dir.absolute()).as_posix())
    if rel == PurePosixPath("."):
        raise OpError(f"'{path}' is the run folder itself", where="path", hint=hint)
    long = next((part for part in rel.parts if len(part.encode()) > NAME_MAX), None)
    if long is not None:
        raise OpError(f"the name {long[:40]!r}... is longer than {NAME_MAX} bytes",
                      where="path", hint="file systems take names of up to 255 bytes")
    if len(rel.parts) == 1 and rel.name in RESERVED:
        raise OpError(f"'{path}' is the run's own {rel.name}", where="path",
                      hint="choose another name: " + ", ".join(RESERVED) + " are reserved")
    return rel


def check_overlap(rel: PurePosixPath, taken: list[PurePosixPath]) -> None:
    """Refuse a sink path equal to, inside, or holding another sink's path.

    Raises
    ------
    OpError
        Naming the path it clashes with.
    """
    for other in taken:
        if rel == other or rel.is_relative_to(other) or other.is_relative_to(rel):
            clash = "is also written by another stage" if rel == other \
                else f"overlaps '{other}', written by another stage"
            raise OpError(f"'{rel}' {clash}", where="path",
                          hint="each sink writes its own path")


def _stamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _os_error(e: OSError, path: Path, what: str) -> InputError:
    reason = {errno.ENAMETOOLONG: "the name is too long", errno.EROFS: "read-only file system",
              errno.ENOSPC: "no space left on the device"}.get(e.errno, e.strerror or str(e))
    return InputError(f"cannot {what} {path}: {reason}", where="output_dir",
                      hint="choose another folder with --output-dir")


class RunFolder:
    """The run folder ``path``: use as a context manager around a run.

    Entering checks the folder, takes the lock, removes dead runs' staging folders and
    makes this run's staging folder (all before any worker starts). :meth:`commit` swaps
    the staging folder in; :meth:`fail` files a failed run's report in the history.
    Leaving removes what is left of the staging folder, and the folders entering made
    when the run ends without a result (bad input, Ctrl-C), and releases the lock.
    """

    def __init__(self, path: str | Path):
        if "\0" in str(path):
            raise InputError(f"bad path {str(path)!r}", where="output_dir")
        self.path = Path(os.path.abspath(path))
        if not self.path.name:
            raise InputError(f"{self.path} cannot be a run folder", where="output_dir",
                             hint="choose a folder of its own with --output-dir")
        self.history = history_of(self.path)
        self.staging: Path | None = None
        self._lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._lock_fd: int | None = None
        self._made: list[Path] = []  # parent folders this run created
        self._kept = False  # a result (swap or failed report) was left
        self.keep = settings.count("history")

    def __enter__(self) -> RunFolder:
        try:
            self._check()
            self._make_parents()
            self._lock()
            self._clean_stale()
            self.staging = self.path.with_name(
                f".{self.path.name}.staging-{uuid.uuid4().hex[:12]}")
            self.staging.mkdir()
        except OSError as e:
            self.__exit__(None, None, None)
            raise _os_error(e, self.path, "use") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        self._unlock()
        if not self._kept:
            for folder in reversed(self._made):
                try:
                    folder.rmdir()
                except OSError:  # not empty: something else uses it now
                    break

    def _check(self) -> None:
        p = self.path
        for folder in (p, self.history):
            if folder.exists() and not folder.is_dir():
                raise InputError(f"{folder} exists and is not a folder", where="output_dir",
                                 hint="choose another folder with --output-dir")
        if p.is_dir():
            left = [c.name for c in p.iterdir() if not c.name.startswith(".staging-")]
            if left and "report.json" not in left:
                raise InputError(f"{p} is not empty and holds no report.json: it is not a "
                                 "run folder", where="output_dir",
                                 hint="a run replaces its run folder as a whole; choose a "
                                      "new or empty folder with --output-dir")

    def _make_parents(self) -> None:
        missing = []
        for parent in self.path.parents:
            if parent.exists():
                break
            missing.append(parent)
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            except OSError as e:
                raise _os_error(e, folder, "create") from None
            self._made.append(folder)
        if not self.path.parent.is_dir():
            raise InputError(f"{self.path.parent} is not a folder", where="output_dir",
                             hint="choose another folder with --output-dir")
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise InputError(f"cannot write in {self.path.parent}", where="output_dir",
                             hint="choose another folder with --output-dir")

    def _lock(self) -> None:
        while True:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise _os_error(e, self.path.parent, "write in") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise InputError(f"another run (pid {holder}) is writing {self.path}",
                                 where="output_dir",
                                 hint="wait for it to finish, or give this run its own "
                                      "--output-dir") from None
            # The holder before us may have removed the file on release: lock the file
            # that is there now, or we would share nothing with the next run.
            try:
                same = os.stat(self._lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        try:
            self._lock_path.unlink()
        except OSError:
            pass
        os.close(self._lock_fd)  # releases the lock
        self._lock_fd = None

    def _clean_stale(self) -> None:
        """Staging folders of runs that died: ours beside the folder, and the older
        layout's inside it."""
        stale = list(self.path.parent.glob(f".{self.path.name}.staging-*"))
        if self.path.is_dir():
            stale += self.path.parent.glob(f".{self.path.name}.old-*")
            stale += self.path.glob(".staging-*")
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self) -> None:
        """Make the staging folder the run folder; the previous one goes to the history
        (or, with ``pipeline.history`` 0, is deleted).

        Raises
        ------
        OSError
            A rename failed; the previous run folder is then back in place.
        """
        assert self.staging is not None
        old = None
        if self.path.exists():
            if self.keep:
                self.history.mkdir(exist_ok=True)
                old = self._entry(_started(self.path), "")
            else:
                old = self.path.with_name(f".{self.path.name}.old-{uuid.uuid4().hex[:12]}")
            os.rename(self.path, old)
        try:
            os.rename(self.staging, self.path)
        except OSError:
            if old is not None:
                os.rename(old, self.path)
            raise
        self.staging, self._kept = None, True
        if old is not None and not self.keep:
            shutil.rmtree(old, ignore_errors=True)
        self._prune()

    def fail(self, started: datetime, write) -> Path:
        """File a failed run's report: a new history entry gets the reports the run wrote
        (Dask's performance report), then ``write(entry)`` adds its own. The staging
        folder, partial outputs and all, is removed first: on a full disk that is what
        makes room for the report.

        Returns the entry.

        Raises
        ------
        OSError
            The entry could not be written (the staging folder is gone all the same).
        """
        assert self.staging is not None
        self.history.mkdir(exist_ok=True)
        entry = self._entry(started, "-failed")
        entry.mkdir()
        self._kept = True
        for name in RESERVED:
            if (self.staging / name).is_file():
                os.rename(self.staging / name, entry / name)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging = None
        write(entry)
        self._prune(at_least=1)  # this entry: the error line points at it
        return entry

    def _entry(self, started: datetime, suffix: str) -> Path:
        name = _stamp(started) + suffix
        entry, n = self.history / name, 1
        while entry.exists():
            n += 1
            entry = self.history / f"{name}-{n}"
        return entry

    def _prune(self, at_least: int = 0) -> None:
        if not self.history.is_dir():
            return
        entries = sorted(p for p in self.history.iterdir() if p.is_dir())
        for old in entries[:max(len(entries) - max(self.keep, at_least), 0)]:
            shutil.rmtree(old, ignore_errors=True)
        if not any(self.history.iterdir()):
            self.history.rmdir()


def _started(run_dir: Path) -> datetime:
    """When the run in ``run_dir`` started: its report's ``started``, else the folder's
    modification time."""
    try:
        text = (run_dir / "report.json").read_text()
        return datetime.fromisoformat(json.loads(text)["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return datetime.fromtimestamp(run_dir.stat().st_mtime, timezone.utc)
