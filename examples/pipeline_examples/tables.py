"""A user function for ``op: map_partitions``: it gets one partition at a time, a pandas
DataFrame on the CPU backend or a cuDF one on the GPU backend (same methods here)."""

from __future__ import annotations

UNITS = {"kmh": 1.609344 * 60, "mph": 60.0}


def add_speed(part, *, unit: str = "mph"):
    """``part`` with a ``speed`` column: ``distance`` (miles) / ``air_time`` (minutes)."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; one of {sorted(UNITS)}")
    out = part[["distance", "air_time"]].copy()
    out["speed"] = out["distance"] / out["air_time"] * UNITS[unit]
    return out
