"""The cache folder: one entry per content key, written whole or not at all.

```
<cache dir>/entries/<key>/entry.json       what it holds, and each file's size and CRC-32
<cache dir>/entries/<key>/data.zarr/        an array (zarr), or
<cache dir>/entries/<key>/data.parquet/     a table (parquet parts)
<cache dir>/tmp/<key>-<id>/                 an entry being written
```

An entry is written under ``tmp/`` by the workers while the run computes, its manifest
(``entry.json``, the last file) added by the client when the run has succeeded, and the
folder renamed into ``entries/``. Before an entry is used, every file is checked against
the manifest (size and CRC-32; about 1 s per GB): an entry that does not match, or has no
readable manifest, is corrupt, set aside, and its stage recomputed. CRC-32 catches
truncation and damage, not deliberate tampering: the cache is as trusted as its folder.

Each run using the cache holds a shared lock on ``<cache dir>/.lock`` (``flock``, released
by the kernel when the process dies). A run that finds no other holder first removes what
killed runs left half-written under ``tmp/``; ``cache clear`` needs the lock alone.

Since a run and ``cache clear`` delete whatever is under ``tmp/`` and ``entries/``, a
folder is used as a cache only if it is new, empty, or already one: it has a
``CACHEDIR.TAG`` (the cache directory tag backup tools know, written when the cache is
made), or, made before the tag, nothing but ``.lock``, ``entries`` and ``tmp``; or it is the
pipeline's own folder (:func:`own_dir`, the default). Any other folder is refused (``--cache .`` in a project with a ``tmp/`` folder deleted it before).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.cache.keys import FORMAT
from pipeline.errors import InputError

MANIFEST = "entry.json"
CHUNK = 8 * 2**20
TAG = "CACHEDIR.TAG"  # https://bford.info/cachedir/
TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This file is a cache directory tag created by the pipeline's stage cache\n"
            "# (python -m pipeline cache ls|clear). See https://bford.info/cachedir/\n")
OWN = {".lock", "entries", "tmp", TAG}  # all a cache folder holds


def default_dir() -> Path:
    """``$PIPELINE_CACHE_DIR``, else :func:`own_dir`."""
    if os.environ.get("PIPELINE_CACHE_DIR"):
        return Path(os.environ["PIPELINE_CACHE_DIR"]).expanduser()
    return own_dir()


def own_dir() -> Path:
    """``$XDG_CACHE_HOME/pipeline``, else ``~/.cache/pipeline``: the pipeline's own folder,
    where advise's rates and the compiled kernels live beside the default stage cache."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pipeline"


@dataclass(frozen=True)
class Entry:
    path: Path
    meta: dict

    @property
    def data(self) -> Path:
        return self.path / self.meta["data"]


class Store:
    """Entries under ``root`` (created on first write)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.entries = self.root / "entries"
        self.tmp = self.root / "tmp"
        self._lock_fd: int | None = None

    def attach(self) -> None:
        """Use the cache for a run, until :meth:`detach`: take the shared lock, having
        removed the half-written entries of dead runs if no other run holds it.

        Raises
        ------
        InputError
            The cache folder cannot be created or written.
        """
        fd = self._lock_file()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # other runs write under tmp/ now: leave it
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while another run cleans up
        self._lock_fd = fd

    def detach(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def claim(self) -> None:
        """Make ``root`` the cache folder, or refuse a folder that is not one (see the
        module's docstring): nothing in it is touched then.

        Raises
        ------
        InputError
            A folder holding other files, or one that cannot be created or written.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not self.check():
                (self.root / TAG).write_text(TAG_TEXT)
        except OSError as e:
            raise self._unusable(e) from None

    def check(self) -> bool:
        """Whether ``root`` is tagged as a cache; raises where it holds other files (an
        absent or empty folder is not tagged, and fine).

        Raises
        ------
        InputError
            A folder that is not a cache (see the module's docstring).
        """
        names = set(os.listdir(self.root)) if self.root.is_dir() else set()
        if TAG in names:
            return True
        ours = self.root == own_dir()  # advise-rates.json and kernels/ live there too
        if names and not ours and not (".lock" in names and names <= OWN):
            shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
            raise InputError(f"{self.root} is not a cache folder: it holds {shown} and no "
                             f"{TAG}", where="cache",
                             hint="give a new or empty folder: a cache deletes what it "
                                  "finds in its tmp/ and entries/")
        return False

    def _lock_file(self) -> int:
        self.claim()
        try:
            return os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise self._unusable(e) from None

    def _unusable(self, e: OSError) -> InputError:
        return InputError(f"cannot use the cache folder {self.root}: {e.strerror or e}",
                          where="cache",
                          hint="choose another with --cache DIR or PIPELINE_CACHE_DIR")

    def lookup(self, key: str) -> tuple[Entry | None, str | None]:
        """``(entry, None)`` for a sound entry, ``(None, None)`` when there is none, and
        ``(None, why)`` for a corrupt one, which is set aside (never returned)."""
        path = self.entries / key
        if not path.exists():
            return None, None
        problem = _check(path, key)
        if problem is None:
            return Entry(path, json.loads((path / MANIFEST).read_text())), None
        self._set_aside(path)
        return None, problem

    def staging(self, key: str) -> Path:
        """A new folder to write ``key``'s entry into."""
        path = self.tmp / f"{key}-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    def commit(self, key: str, staged: Path, meta: dict) -> None:
        """Add the manifest to ``staged`` and make it ``key``'s entry (an entry another run
        committed meanwhile is kept, and this copy dropped)."""
        files = {}
        for f in sorted(p for p in staged.rglob("*") if p.is_file()):
            files[f.relative_to(staged).as_posix()] = [f.stat().st_size, _crc(f)]
        doc = {**meta, "format": FORMAT, "key": key, "files": files,
               "bytes": sum(size for size, _ in files.values())}
        (staged / MANIFEST).write_text(json.dumps(doc, indent=1))
        self.entries.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staged, self.entries / key)
        except OSError:  # there already (a concurrent run): keep the one in place
            shutil.rmtree(staged, ignore_errors=True)

    def list(self) -> list[dict]:
        """Every entry's manifest (a corrupt one as ``{"key", "problem"}``), newest first;
        entries still being written, as ``{"key", "problem": "incomplete"}``.

        Raises
        ------
        InputError
            ``root`` is not a cache folder.
        """
        self.check()
        out = []
        for path in sorted(self.entries.glob("*")) if self.entries.exists() else []:
            try:
                meta = json.loads((path / MANIFEST).read_text())
                out.append({**meta, "key": path.name})
            except (OSError, ValueError):
                out.append({"key": path.name, "problem": "no readable manifest"})
        out.sort(key=lambda m: m.get("created", ""), reverse=True)
        for path in sorted(self.tmp.glob("*")) if self.tmp.exists() else []:
            out.append({"key": path.name.rsplit("-", 1)[0], "problem": "incomplete",
                        "bytes": _size(path)})
        return out

    def clear(self) -> tuple[int, int]:
        """Remove every entry (and anything half-written); ``(entries, bytes)`` removed.

        Raises
        ------
        InputError
            A run is using the cache.
        """
        if not self.root.exists():
            return 0, 0
        fd = self._lock_file()
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(f"a run is using the cache {self.root}", where="cache",
                                 hint="clear it when no run is going") from None
            found = self.list()
            freed = sum(int(m.get("bytes") or 0) for m in found)
            for folder in (self.entries, self.tmp):
                shutil.rmtree(folder, ignore_errors=True)
            return len(found), freed
        finally:
            os.close(fd)

    def _set_aside(self, path: Path) -> None:
        aside = self.tmp / f"{path.name}-corrupt-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir(parents=True, exist_ok=True)
        os.rename(path, aside)
        shutil.rmtree(aside, ignore_errors=True)


def _check(path: Path, key: str) -> str | None:
    """Why the entry at ``path`` cannot be used, or None when every file matches."""
    try:
        meta = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return f"no readable manifest ({type(e).__name__})"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != key:
        return "a manifest of another format or key"
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        return "a manifest without files"
    for rel, expected in files.items():
        f = path / rel
        try:
            size = f.stat().st_size
        except OSError:
            return f"{rel} is missing"
        if [size, _crc(f) if size == expected[0] else None] != list(expected):
            return f"{rel} does not match its size and CRC-32"
    return None


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            crc = zlib.crc32(block, crc)
    return crc


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
