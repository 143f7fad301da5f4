"""What an op sees besides its inputs: the stage, the backend, and where files go."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.backends import Backend
from pipeline.errors import OpError
from pipeline.spec import Stage


@dataclass
class Context:
    """Per-stage context handed to an op.

    Sinks never write to their final path: :meth:`output` gives a path in the run's
    staging folder, and the runner renames it into place only when the whole run has
    succeeded, so a failed run leaves nothing partial.
    """

    stage: Stage
    backend: Backend
    base_dir: Path
    output_dir: Path
    staging_dir: Path
    outputs: list[tuple[Path, Path]] = field(default_factory=list)

    def input_paths(self, path: str) -> list[Path]:
        """Files a ``read`` path names: relative to the workflow's folder; globs expanded.

        Raises
        ------
        OpError
            Nothing matches.
        """
        full = Path(path) if Path(path).is_absolute() else self.base_dir / path
        if glob.has_magic(str(full)):
            found = sorted(Path(p) for p in glob.glob(str(full)))
            if not found:
                raise OpError(f"no file matches '{path}'", where="path",
                              hint=f"looked in {full.parent}")
            return found
        if not full.exists():
            raise OpError(f"file not found: '{path}'", where="path",
                          hint=f"relative paths resolve against {self.base_dir}")
        return [full]

    def output(self, path: str) -> Path:
        """A staging path for a sink's output; the runner moves it to ``path`` at the end.

        Raises
        ------
        OpError
            The path leaves the run folder.
        """
        final = destination(self.output_dir, path)
        staged = self.staging_dir / f"{len(self.outputs)}-{final.name}"
        self.outputs.append((staged, final))
        return staged


def destination(output_dir: Path, path: str) -> Path:
    """Where a sink's ``path`` lands: inside the run folder ``output_dir``.

    Raises
    ------
    OpError
        The path leaves the run folder.
    """
    final = (output_dir / path).resolve()
    if not final.is_relative_to(output_dir.resolve()):
        raise OpError(f"'{path}' is outside the run folder", where="path",
                      hint="write paths are relative to output_dir")
    return final
