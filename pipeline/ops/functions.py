"""User functions named in a workflow (``function: "package.module:name"``).

A workflow with ``function:`` runs that code: importing the module runs its top level
(``validate`` imports it too), and its function runs on every worker. The expression
language (``expr``) stays the safe way to compute.

The reference is resolved on the client while the stage is built, so a module or name
that does not exist is bad input found before any compute; the workers import it again
by name to run it (it must be installed, or on PYTHONPATH, there too).
"""

from __future__ import annotations

import functools
import importlib
import re
import traceback

from pipeline.errors import OpError
from pipeline.spec import did_you_mean

REF_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
HINT = "is it installed, or on PYTHONPATH, for this process and the workers?"


class FunctionFailed(Exception):
    """A user function raised, or returned something its stage cannot use, on a worker.

    Carries one line naming the stage and the function; the original exception is its
    cause where it was raised in this process.
    """


def one_line(text: str) -> str:
    """The first non-empty line of ``text`` (exception messages may span several)."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def resolve(ref: str):
    """The callable named by ``ref`` (``"package.module:name"``, ``name`` may be dotted).

    Raises
    ------
    OpError
        A malformed reference, a module that cannot be imported (with the import error),
        a missing name, or an object that is not callable; ``where`` is ``function``.
    """
    if not REF_RE.match(ref):
        raise OpError(f"bad function reference {ref!r}", where="function",
                      hint="write 'package.module:name', e.g. 'mypkg.tiles:classify'")
    try:
        return load(ref)
    except ImportError as e:
        module = ref.partition(":")[0]
        raise OpError(f"cannot import '{module}': {one_line(e)}", where="function",
                      hint=HINT) from None
    except _Missing as e:
        raise OpError(str(e), where="function", hint=e.hint) from None
    except Exception as e:  # the module's own code raised while it was imported
        raise OpError(f"importing '{ref.partition(':')[0]}' raised {type(e).__name__}: "
                      f"{one_line(e)}", where="function") from None


class _Missing(LookupError):
    def __init__(self, what: str, hint: str | None = None):
        super().__init__(what)
        self.hint = hint


@functools.lru_cache(maxsize=256)
def load(ref: str):
    """Import ``ref``'s module and look up its name (cached per process)."""
    module_name, _, attr_path = ref.partition(":")
    obj = importlib.import_module(module_name)
    for depth, attr in enumerate(attr_path.split(".")):
        if not hasattr(obj, attr):
            owner = module_name if depth == 0 else attr_path.rsplit(".", 1)[0]
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise _Missing(f"'{owner}' has no '{attr}'{did_you_mean(attr, public)}",
                           hint=f"check the name after ':' in {ref!r}")
        obj = getattr(obj, attr)
    if not callable(obj):
        raise _Missing(f"{ref!r} is a {type(obj).__name__}, not a function",
                       hint="name a function (or another callable)")
    return obj


def call(ref: str, stage: str, args: tuple, kwargs: dict):
    """``ref(*args, **kwargs)`` on a worker; any failure becomes one FunctionFailed line
    naming the stage, the function and where in the user's code it raised."""
    try:
        fn = load(ref)
    except Exception as e:  # importable on the client, not on this worker
        raise FunctionFailed(f"stage '{stage}': cannot load {ref} on this worker: "
                             f"{type(e).__name__}: {one_line(e)} ({HINT})") from None
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        raise FunctionFailed(f"stage '{stage}': {ref} raised {type(e).__name__}: "
                             f"{one_line(e)}{_origin(e)}") from e


def probe(fn, ref: str, sample, kwargs: dict, what: str, hint: str):
    """``fn(sample, **kwargs)`` on the client, to infer the output's ``what``.

    Raises
    ------
    OpError
        The function raised; ``where`` is ``what``, the hint says how to declare it.
    """
    try:
        return fn(sample, **kwargs)
    except Exception as e:
        raise OpError(f"cannot infer the output {what}: {ref} raised {type(e).__name__} on "
                      f"a sample: {one_line(e)}{_origin(e)}", where=what, hint=hint) from None


def _origin(e: BaseException) -> str:
    """`` (at file.py:12)``: the innermost frame of the traceback, where it raised."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno})"


def refuse(stage: str, ref: str, what: str) -> FunctionFailed:
    """A function returned something its stage cannot use."""
    return FunctionFailed(f"stage '{stage}': {ref} {what}")
