"""Remote files through fsspec: ``s3://``, ``gs://``, ``http(s)://``, ``memory://``...

A ``read`` or ``write`` path with a scheme is a :class:`Remote`: the URL plus the stage's
``storage_options`` (credentials, ``endpoint_url``, ``anon``...), which fsspec hands to
the filesystem (s3fs, gcsfs, aiohttp for http...). Local paths stay :class:`pathlib.Path`.
Errors name the URL and say why in one line: not found (no such bucket / key), access
denied, unreachable, or the fsspec package the scheme needs.

Remote outputs are written under a staging name beside the final one and moved into place
when the whole run has succeeded, as local ones are; on object stores the move is a copy
and delete, so it is not atomic.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Mapping

from pipeline.errors import OpError

SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# Object stores whose first path component is a bucket: writes check it exists.
BUCKETS = ("s3", "s3a", "gs", "gcs", "abfs", "az", "oss")
READ_ONLY = ("http", "https")
# storage_options keys whose values are secrets: report.json shows them as "***".
SECRET_RE = re.compile(r"key|secret|token|password|credential|passphrase|sas", re.I)
INSTALL = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "abfs": "adlfs",
           "az": "adlfs", "http": "aiohttp", "https": "aiohttp"}


def scheme(path: str) -> str | None:
    """The URL scheme of ``path`` (``s3``...), or None for a local path."""
    m = SCHEME_RE.match(path) if isinstance(path, str) else None
    return m.group(1).lower() if m and m.group(1).lower() != "file" else None


@dataclass(frozen=True)
class Remote:
    """A file or folder at an fsspec URL, with the options to reach it."""

    url: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __str__(self) -> str:
        return self.url

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def with_name(self, name: str) -> Remote:
        return Remote(self.url.rstrip("/").rsplit("/", 1)[0] + "/" + name, self.options)

    def fs(self):
        """``(filesystem, path inside it)``.

        Raises
        ------
        OpError
            Unknown scheme, its package missing, or options the filesystem refuses.
        """
        import fsspec

        try:
            return fsspec.core.url_to_fs(self.url, **dict(self.options))
        except ImportError as e:
            package = INSTALL.get(scheme(self.url) or "", "the fsspec package for it")
            raise OpError(f"{self.url}: {scheme(self.url)}:// needs {package} ({e})",
                          where="path", hint=f"pip install {package}") from None
        except ValueError as e:
            raise OpError(f"{self.url}: {e}", where="path",
                          hint="a URL fsspec knows: s3://, gs://, http(s)://, memory://...") \
                from None
        except TypeError as e:
            raise OpError(f"{self.url}: bad storage_options: {e}", where="storage_options") \
                from None

    def open(self, mode: str):
        fs, path = self.fs()
        return fs.open(path, mode)


def location(path: str, options: Mapping[str, Any] | None, base: Path) -> Path | Remote:
    """``path`` as a :class:`Remote` (a URL) or a local path resolved against ``base``.

    Raises
    ------
    OpError
        ``storage_options`` given for a local path.
    """
    if scheme(path) is None:
        if options:
            raise OpError("storage_options apply to URLs only (s3://, gs://, ...)",
                          where="storage_options")
        local = Path(path.removeprefix("file://"))
        return local if local.is_absolute() else base / local
    return Remote(path, MappingProxyType(dict(options or {})))


CONNECTION_ERRORS = {"ConnectionError", "ClientConnectorError", "EndpointConnectionError",
                     "ConnectTimeoutError", "ConnectionRefusedError", "TimeoutError",
                     "ServerTimeoutError", "ClientOSError"}


def reason(e: BaseException) -> str:
    """Why a storage call failed, in a few words (the exception's own text appended).

    The chain of causes is read too: fsspec's HTTP filesystem reports every failure as
    FileNotFoundError, caused by aiohttp's error (a 403, a refused connection...).
    """
    chain = [e]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)
    for err in chain:
        text = " ".join(str(err).split())
        status = getattr(err, "status", None)  # aiohttp's ClientResponseError (HTTP)
        if status in (401, 403):
            return f"access denied (HTTP {status})"
        if isinstance(status, int) and status != 404:
            return f"HTTP {status} ({text})"
        if {c.__name__ for c in type(err).__mro__} & CONNECTION_ERRORS:
            return f"unreachable ({text})"
    text = " ".join(str(e).split())
    if isinstance(e, FileNotFoundError) or any(getattr(x, "status", 0) == 404 for x in chain):
        return "not found" + (f" ({text})" if "does not exist" in text else "")
    if isinstance(e, PermissionError):
        return f"access denied ({text})" if text else "access denied"
    return f"{type(e).__name__}: {text}"


def failure(target: Remote, e: BaseException, where: str = "path") -> OpError:
    """An OpError naming ``target``'s URL and why ``e`` happened."""
    if isinstance(e, TypeError):  # filesystems take their options when first used
        return OpError(f"{target.url}: bad storage_options: {' '.join(str(e).split())}",
                       where="storage_options")
    why = reason(e)
    hint = ("check the credentials (storage_options, or the environment)"
            if why.startswith("access denied") else
            "check the address (storage_options endpoint_url) and the network"
            if why.startswith("unreachable") else None)
    return OpError(f"{target.url}: {why}", where=where, hint=hint)


def expand(target: Remote) -> list[Remote]:
    """The objects a URL names: a glob expanded, or the one object, which must exist.

    Raises
    ------
    OpError
        Nothing matches, or the store cannot be reached or read.
    """
    import glob

    fs, path = target.fs()
    try:
        if not glob.has_magic(path):
            fs.info(path)  # raises when it is not there, or cannot be reached
            return [target]
        found = sorted(fs.glob(path))
    except Exception as e:  # each filesystem raises its own types: reason() sorts them
        raise failure(target, e) from None
    if not found:
        raise OpError(f"{target.url}: no object matches", where="path")
    return [Remote(fs.unstrip_protocol(p), target.options) for p in found]


def check_writable(target: Remote) -> None:
    """Before any compute: the store exists and answers (a bucket's existence; reads of
    http(s) only).

    Raises
    ------
    OpError
        A read-only scheme, no such bucket, denied, unreachable.
    """
    kind = scheme(target.url)
    if kind in READ_ONLY:
        raise OpError(f"{target.url}: {kind}:// is read-only here", where="path",
                      hint="write to a local path or an object store (s3://, gs://...)")
    fs, path = target.fs()
    if kind in BUCKETS:
        bucket = path.split("/", 1)[0]
        try:
            fs.info(bucket)
        except FileNotFoundError:
            raise OpError(f"{target.url}: no such bucket '{bucket}'", where="path",
                          hint="create it first, or check the name") from None
        except Exception as e:
            raise failure(target, e) from None


def identity(target: Remote) -> dict:
    """What identifies the object's content: its ETag, else size and modification time.

    Raises
    ------
    OpError
        The object cannot be reached.
    """
    fs, path = target.fs()
    try:
        info = fs.info(path)
    except Exception as e:
        raise failure(target, e) from None
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return {"url": target.url, "etag": str(etag)}
    mtime = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    return {"url": target.url, "size": info.get("size"), "mtime": str(mtime)}


def size(target: Remote) -> int:
    """The bytes an object, or every object under a prefix, holds."""
    fs, path = target.fs()
    fs.invalidate_cache()  # the workers wrote it, not this process
    return int(fs.du(path)) if fs.isdir(path) else int(fs.size(path))


def promote(staged: Remote, final: Remote) -> int:
    """Replace ``final`` with ``staged`` (a copy and delete on object stores); returns
    the bytes it holds."""
    fs, src = staged.fs()
    _, dst = final.fs()
    fs.invalidate_cache()  # the workers wrote what this process may have listed before
    if fs.exists(dst):
        fs.rm(dst, recursive=True)
    if not fs.isdir(src):
        fs.mv(src, dst)
        return int(fs.size(dst))
    # object by object: a recursive mv also tries to copy the folder's own (absent) key
    for path in fs.find(src):
        fs.copy(path, dst + path[len(src):])
    fs.rm(src, recursive=True)
    fs.invalidate_cache()
    return int(fs.du(dst))


def discard(staged: Remote) -> None:
    """Remove what a failed run staged at ``staged``, if anything. Best effort: the run's
    own error is what the user needs to see, so a failure here is logged, not raised."""
    try:
        fs, path = staged.fs()
        if fs.exists(path):
            fs.rm(path, recursive=True)
    except Exception as e:  # any filesystem's error: cleanup must not mask the run's
        logging.getLogger("pipeline").warning("could not remove %s: %s", staged.url,
                                              reason(e))


def parquet_filesystem(target: Remote):
    """The filesystem dask's parquet reader should use for ``target``, or None for
    fsspec's own. Over http(s), dask 2026.7.1 opens files with ``default_cache="none"``,
    which fsspec's HTTP filesystem passes on to aiohttp, which refuses it: this one takes
    the option and drops it."""
    if scheme(target.url) not in READ_ONLY:
        return None
    return __getattr__("HTTPForParquet")(**dict(target.options))


def __getattr__(name: str):
    # defined on first use, so that importing this module does not import aiohttp;
    # workers unpickling the filesystem find the class by this name
    if name != "HTTPForParquet":
        raise AttributeError(name)
    from fsspec.implementations.http import HTTPFileSystem

    class HTTPForParquet(HTTPFileSystem):
        def _open(self, path, mode="rb", *args, default_cache=None, **kwargs):
            return super()._open(path, mode, *args, **kwargs)

    HTTPForParquet.__module__, HTTPForParquet.__qualname__ = __name__, name
    globals()[name] = HTTPForParquet
    return HTTPForParquet


def redacted(raw: Mapping) -> dict:
    """The workflow document with secret-looking ``storage_options`` values hidden."""
    doc = {k: v for k, v in raw.items()}
    stages = []
    for st in doc.get("stages") or []:
        if isinstance(st, Mapping) and isinstance(st.get("storage_options"), Mapping):
            st = {**st, "storage_options": _hide(st["storage_options"])}
        stages.append(st)
    if "stages" in doc:
        doc["stages"] = stages
    return doc


def _hide(options: Mapping) -> dict:
    return {k: ("***" if SECRET_RE.search(str(k)) else
                _hide(v) if isinstance(v, Mapping) else v) for k, v in options.items()}
