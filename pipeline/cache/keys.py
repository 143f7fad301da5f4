"""Content keys of stages: what a stage's result depends on, hashed.

A stage's key covers its op, its parameters, its inputs' keys (so a change anywhere
upstream changes every key below it, and nothing above), the pipeline's version and the
digest of its source, the code of a plugin op or a user function (its module's file), the
backend (CPU and GPU random streams differ; GPU chunk sizes follow the device), and for
``read`` the identity of the files: size and modification time, or the ETag of an object.

Files a user function opens by itself (a weights file in ``kwargs``) are not known to the
key: change a parameter, or clear the cache, when they change.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import pipeline
from pipeline.storage import Remote, identity

# Bumped when the layout of entries or of the key document changes.
FORMAT = 1


@functools.lru_cache(maxsize=1)
def package_digest() -> str:
    """sha256 of the pipeline's own source: a code change invalidates every entry."""
    h = hashlib.sha256()
    root = Path(pipeline.__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def code_digest(fn) -> str | None:
    """sha256 of the file that defines ``fn``, for code outside the pipeline (plugin ops,
    user functions); None for the pipeline's own (covered by :func:`package_digest`)."""
    import inspect

    module = getattr(fn, "__module__", "") or ""
    if module == "pipeline" or module.startswith("pipeline."):
        return None
    try:
        source = inspect.getsourcefile(fn)
    except TypeError:  # a builtin: its version is the interpreter's
        return None
    return hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else None


def file_identity(paths) -> list:
    """Size and mtime of each local file (every file of a folder: zarr, parquet parts), or
    the ETag of each object."""
    out: list = []
    for p in paths:
        if isinstance(p, Remote):
            out.extend(_remote_identity(p))
            continue
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            st = f.stat()
            out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _remote_identity(target: Remote) -> list:
    fs, path = target.fs()
    if not fs.isdir(path):
        return [identity(target)]
    return [identity(Remote(fs.unstrip_protocol(f), target.options))
            for f in sorted(fs.find(path))]


def stage_key(ps, params: dict, input_keys: dict[str, str], backend, files: list | None,
              user_code: str | None) -> str:
    """The key of planned stage ``ps`` (see the module's docstring)."""
    doc = {
        "format": FORMAT,
        "pipeline": [pipeline.__version__, package_digest()],
        "op": ps.info.name,
        "op_code": code_digest(ps.info.fn),
        "user_code": user_code,
        "params": params,
        "inputs": input_keys,
        "backend": [backend.name, backend.chunk_bytes],
        "files": files,
    }
    text = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
