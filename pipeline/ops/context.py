"""What an op sees besides its inputs: the stage, the backend, and where files go."""

from __future__ import annotations

import glob
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline import runfolder
from pipeline.backends import Backend
from pipeline.errors import OpError
from pipeline.spec import Stage


@dataclass
class Context:
    """Per-stage context handed to an op.

    Sinks never write to their final path: :meth:`output` gives the path in the run's
    staging folder, which becomes the run folder only when the whole run has succeeded
    (:mod:`pipeline.runfolder`), so a failed run leaves nothing partial. ``outputs`` and
    ``outside_reads`` are shared by every stage of a run: the sinks' paths relative to
    the run folder, and the files read from outside the workflow's folder.
    """

    stage: Stage
    backend: Backend
    base_dir: Path
    output_dir: Path
    staging_dir: Path
    outputs: list[PurePosixPath] = field(default_factory=list)
    outside_reads: list[str] = field(default_factory=list)

    def input_paths(self, path: str) -> list[Path]:
        """Files a ``read`` path names: relative to the workflow's folder; globs expanded.

        Only regular files and folders (parquet parts, zarr stores) are read: a device
        such as /dev/zero, or a FIFO, would never end. Files outside the workflow's
        folder are allowed, and listed in the report (``outside_reads``).

        Raises
        ------
        OpError
            Nothing matches, or a match is not a regular file or folder.
        """
        if "\0" in path:
            raise OpError(f"bad path {path!r}: it holds a NUL character", where="path")
        full = Path(path) if Path(path).is_absolute() else self.base_dir / path
        try:
            found = self._matches(path, full)
            modes = [p.stat().st_mode for p in found]
        except OSError as e:  # a name too long, a folder that cannot be read...
            raise OpError(f"cannot read '{path}': {e.strerror or e}", where="path") from None
        base = self.base_dir.resolve()
        for p, mode in zip(found, modes):
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise OpError(f"'{p}' is not a regular file or folder (a device or pipe)",
                              where="path", hint="read files that hold the data")
            if not p.resolve().is_relative_to(base) and str(p) not in self.outside_reads:
                self.outside_reads.append(str(p))
        return found

    def _matches(self, path: str, full: Path) -> list[Path]:
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
        """Where a sink writes ``path``: the same place in the staging folder.

        Raises
        ------
        OpError
            The path is not a file of its own inside the run folder: empty, the folder
            itself, outside it, a report's name, or another sink's path (or inside it).
        """
        rel = runfolder.sink_path(path, self.output_dir)
        runfolder.check_overlap(rel, self.outputs)
        self.outputs.append(rel)
        return self.staging_dir / rel
