"""What an op sees besides its inputs: the stage, the backend, and where files go."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.backends import Backend
from pipeline.errors import OpError
from pipeline.spec import Stage
from pipeline.storage import Remote, check_writable, expand, location


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

    def input_paths(self, path: str, storage_options: dict | None = None
                    ) -> list[Path] | list[Remote]:
        """Files a ``read`` path names: relative to the workflow's folder, or URLs
        (:mod:`pipeline.storage`); globs expanded.

        Raises
        ------
        OpError
            Nothing matches, or a URL cannot be reached.
        """
        full = location(path, storage_options, self.base_dir)
        if isinstance(full, Remote):
            return expand(full)
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

    def output(self, path: str, storage_options: dict | None = None, *,
               remote: bool = False) -> Path | Remote:
        """A staging path for a sink's output; the runner moves it to ``path`` at the end.

        ``remote``: the sink can write to URLs (then staged beside the final object).

        Raises
        ------
        OpError
            The path leaves the run folder, or is a URL the sink cannot write.
        """
        final = destination(self.output_dir, path, storage_options)
        if isinstance(final, Remote):
            if not remote:
                raise OpError(f"{path}: this sink writes local files only", where="path",
                              hint="a path relative to output_dir")
            check_writable(final)
            staged = final.with_name(f"{self.staging_dir.name}-{len(self.outputs)}-"
                                     f"{final.name}")
            self.outputs.append((staged, final))
            return staged
        staged = self.staging_dir / f"{len(self.outputs)}-{final.name}"
        self.outputs.append((staged, final))
        return staged


def destination(output_dir: Path, path: str, storage_options: dict | None = None
                ) -> Path | Remote:
    """Where a sink's ``path`` lands: inside the run folder ``output_dir``, or at a URL.

    Raises
    ------
    OpError
        The path leaves the run folder; storage_options for a local path.
    """
    where = location(path, storage_options, output_dir)
    if isinstance(where, Remote):
        return where
    final = where.resolve()
    if not final.is_relative_to(output_dir.resolve()):
        raise OpError(f"'{path}' is outside the run folder", where="path",
                      hint="write paths are relative to output_dir")
    return final
