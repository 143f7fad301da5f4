"""Error types that carry the exit-code category and the one-line message format."""

from __future__ import annotations

import re

# Longest part of an error line: values quoted from a workflow file can be megabytes long.
MAX_PART_CHARS = 400
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def one_line(text: str, limit: int = MAX_PART_CHARS) -> str:
    """``text`` on one line, control characters (newlines, terminal escapes from a hostile
    file) replaced by a space, cut to ``limit`` characters in the middle: a long path or
    value is quoted inside a sentence whose end (the reason) must stay."""
    text = _UNPRINTABLE.sub(" ", str(text)).strip()
    if len(text) <= limit:
        return text
    head = (limit - 3) // 2
    return text[:head] + "..." + text[len(text) - (limit - 3 - head):]


class PipelineError(Exception):
    """Base class of the errors the CLI turns into one line and an exit code.

    Formats as ``error: <file>: <where>: <what> (<hint>)``; parts that are unknown are
    left out, and each is cut to one line of at most :data:`MAX_PART_CHARS`. The Python
    API raises these too: :meth:`line` is the line the CLI prints, and ``exit_code`` the
    code it exits with.
    """

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None,
                 file: str | None = None):
        self.what, self.where, self.hint, self.file = what, where, hint, file
        super().__init__(self.line())

    def line(self) -> str:
        """The one line the CLI prints."""
        parts = [one_line(p) for p in (self.file, self.where, self.what) if p]
        hint = f" ({one_line(self.hint, 2 * MAX_PART_CHARS)})" if self.hint else ""
        return "error: " + ": ".join(parts) + hint


class InputError(PipelineError):
    """Bad input: workflow file, overrides, paths, or an environment asked for but missing."""

    exit_code = 2

    def located(self, *, where: str | None = None, file: str | None = None) -> InputError:
        """The same error with the location filled in where it was missing."""
        if where and self.where and not self.where.startswith(where):
            where = f"{where}.{self.where}"
        elif self.where:
            where = self.where
        return InputError(self.what, where=where, hint=self.hint, file=self.file or file)


class OpError(InputError):
    """Raised by an op while it builds its lazy result: a bad parameter or input shape.

    ``where`` is the parameter name, when one is to blame; the planner prefixes the stage.
    """


class RunFailed(PipelineError):
    """The run itself failed: a stage raised on the workers, the workers were lost, or the
    outputs could not be written. ``where`` names the stage when one is to blame."""

    exit_code = 1
