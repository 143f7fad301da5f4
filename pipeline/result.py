"""What :func:`pipeline.run` returns: the report, the sinks' files, and their small values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

# .values reads back outputs up to this size; larger ones stay files (see .outputs).
VALUES_MAX_BYTES = 64 * 2**20
# Formats .values reads back (plots and other files are left out).
DATA_SUFFIXES = (".npy", ".zarr", ".json", ".parquet", ".csv")


@dataclass(frozen=True)
class Result:
    """A finished run.

    Attributes
    ----------
    report : dict
        What report.json holds: workflow, backend, cluster, versions, per-stage metrics,
        totals, outputs.
    outputs : dict
        ``{sink stage id: path}`` of every file the run wrote (a
        :class:`pipeline.storage.Remote` for a URL).
    run_folder : Path
        The run folder (``output_dir``), as given.
    values : dict
        ``{sink stage id: value}`` for the data files of at most 64 MiB, read back: a
        NumPy array (.npy, .zarr, .json arrays; a .json scalar as a Python number) or a
        pandas DataFrame (.parquet, .csv, .json records). Read on first access.
    """

    report: dict
    outputs: dict[str, Any]
    run_folder: Path

    @cached_property
    def values(self) -> dict[str, Any]:
        # report.json gives local outputs relative to the run folder, remote ones as URLs
        folder = Path(self.run_folder).resolve()
        sizes = {o["path"] if "://" in o["path"] else str(folder / o["path"]): o["bytes"]
                 for o in self.report.get("outputs", ())}
        return {sid: read_value(path) for sid, path in self.outputs.items()
                if path.suffix in DATA_SUFFIXES
                and sizes.get(str(path), VALUES_MAX_BYTES + 1) <= VALUES_MAX_BYTES}

    def __repr__(self) -> str:
        totals = self.report.get("totals", {})
        return (f"Result({self.report['workflow']['name']!r}, backend="
                f"{self.report.get('backend')!r}, wall_s={totals.get('wall_s', 0):.2f}, "
                f"outputs={sorted(self.outputs)})")


def read_value(path):
    """A written output (a local path or a :class:`pipeline.storage.Remote`) read back
    into host memory (see :attr:`Result.values`)."""
    from pipeline.storage import Remote

    remote = isinstance(path, Remote)
    options = {"storage_options": dict(path.options)} if remote else {}
    suffix = path.suffix
    if suffix == ".zarr":
        import zarr

        return zarr.open_array(str(path), mode="r", **options)[...]
    if suffix in (".parquet", ".csv"):
        import pandas as pd

        read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
        return read(str(path), **options)
    with path.open("rb") if remote else open(path, "rb") as f:
        if suffix == ".npy":
            import numpy as np

            return np.load(f)
        doc = json.load(f)
    if isinstance(doc, dict):  # a scalar: {"value": x}
        return doc["value"]
    if doc and all(isinstance(r, dict) for r in doc):  # table records
        import pandas as pd

        return pd.DataFrame.from_records(doc)
    import numpy as np

    return np.asarray(doc)
