"""What an op sees besides its inputs: the stage, the backend, and where files go."""

from __future__ import annotations

import glob
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline import runfolder
from pipeline.backends import Backend
from pipeline.errors import OpError
from pipeline.spec import Stage
from pipeline.storage import Remote, check_writable, expand, location


@dataclass
class Context:
    """Per-stage context handed to an op.

    Sinks never write to their final path: :meth:`output` gives the path in the run's
    staging folder, which becomes the run folder only when the whole run has succeeded
    (:mod:`pipeline.runfolder`), so a failed run leaves nothing partial; an output at a
    URL is staged beside its final object and moved into place then. ``outputs``,
    ``remote_outputs`` and ``outside_reads`` are shared by every stage of a run: the
    sinks' paths relative to the run folder, the ``(staged, final)`` URLs, and the files
    read from outside the workflow's folder.
    """

    stage: Stage
    backend: Backend
    base_dir: Path
    output_dir: Path
    staging_dir: Path
    outputs: list[PurePosixPath] = field(default_factory=list)
    remote_outputs: list[tuple[Remote, Remote]] = field(default_factory=list)
    outside_reads: list[str] = field(default_factory=list)

    def input_paths(self, path: str, storage_options: dict | None = None
                    ) -> list[Path] | list[Remote]:
        """Files a ``read`` path names: relative to the workflow's folder, or URLs
        (:mod:`pipeline.storage`); globs expanded.

        Only regular files and folders (parquet parts, zarr stores) are read: a device
        such as /dev/zero, or a FIFO, would never end. Files outside the workflow's
        folder (URLs included) are allowed, and listed in the report (``outside_reads``).

        Raises
        ------
        OpError
            Nothing matches, a match is not a regular file or folder, or a URL cannot be
            reached.
        """
        if "\0" in path:
            raise OpError(f"bad path {path!r}: it holds a NUL character", where="path")
        full = location(path, storage_options, self.base_dir)
        if isinstance(full, Remote):
            found = expand(full)
            self._outside([_USERINFO.sub("//", r.url) for r in found])
            return found
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
        self._outside([str(p) for p in found if not p.resolve().is_relative_to(base)])
        return found

    def _outside(self, names: list[str]) -> None:
        self.outside_reads.extend(n for n in names if n not in self.outside_reads)

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

    def output(self, path: str, storage_options: dict | None = None, *,
               remote: bool = False) -> Path | Remote:
        """Where a sink writes ``path``: the same place in the staging folder, or for a
        URL (``remote``: the sink can write there) a staging name beside it.

        Raises
        ------
        OpError
            The path is not a file of its own inside the run folder: empty, the folder
            itself, outside it, a report's name, or another sink's path (or inside it);
            or a URL the sink cannot write, or that another sink writes.
        """
        final = destination(self.output_dir, path, storage_options)
        if isinstance(final, Remote):
            if not remote:
                raise OpError(f"{path}: this sink writes local files only", where="path",
                              hint="a path relative to output_dir")
            if any(other.url == final.url for _, other in self.remote_outputs):
                raise OpError(f"{final.url} is also written by another stage", where="path",
                              hint="each sink writes its own path")
            check_writable(final)
            staged = final.with_name(f"{self.staging_dir.name}-{len(self.remote_outputs)}-"
                                     f"{final.name}")
            self.remote_outputs.append((staged, final))
            return staged
        rel = PurePosixPath(final.relative_to(self.output_dir.resolve()).as_posix())
        runfolder.check_overlap(rel, self.outputs)
        self.outputs.append(rel)
        return self.staging_dir / rel


# user:password@ in a URL: not copied into the report
_USERINFO = re.compile(r"//[^/@]*@")


def destination(output_dir: Path, path: str, storage_options: dict | None = None
                ) -> Path | Remote:
    """Where a sink's ``path`` lands: a file of its own inside the run folder
    ``output_dir`` (:func:`pipeline.runfolder.sink_path`), or a URL.

    Raises
    ------
    OpError
        The path is empty, the run folder itself, outside it, or a report's name;
        storage_options for a local path.
    """
    where = location(path, storage_options, output_dir)
    if isinstance(where, Remote):
        return where
    return output_dir.resolve() / runfolder.sink_path(path.removeprefix("file://"),
                                                      output_dir)
