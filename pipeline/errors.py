"""Error types that carry the exit-code category and the one-line message format."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of the errors the CLI turns into one line and an exit code.

    The Python API raises these too: :meth:`line` is the line the CLI prints, and
    ``exit_code`` the code it exits with.
    """

    exit_code = 1

    def line(self) -> str:
        return f"error: {self}"


class InputError(PipelineError):
    """Bad input: workflow file, overrides, paths, or an environment asked for but missing.

    Formats as ``error: <file>: <where>: <what> (<hint>)``; parts that are unknown are
    left out.
    """

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None,
                 file: str | None = None):
        self.what, self.where, self.hint, self.file = what, where, hint, file
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.file, self.where) if p]
        text = ": ".join([*parts, self.what])
        return f"error: {text}" + (f" ({self.hint})" if self.hint else "")

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
    """The run itself failed: a stage raised on the workers, or the workers were lost."""

    exit_code = 1
