"""Checks of a GPU cluster's options against the GPUs NVML reports, before any start.

A LocalCUDACluster that is asked for more memory than its device has, or for devices that
do not exist, fails late and obscurely inside the workers; these checks turn that into one
line and exit 2 while nothing has started yet.
"""

from __future__ import annotations

import importlib.util
from typing import Mapping

from dask.utils import format_bytes, parse_bytes

from pipeline.gpu import extras, nvml
from pipeline.backends import Detection
from pipeline.errors import InputError
from pipeline.spec import ClusterSpec


def visible_gpus(det: Detection, environ: Mapping[str, str]) -> list[nvml.Gpu]:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` selects (all of them when it is unset).

    Raises
    ------
    InputError
        It names an index or UUID that NVML does not report.
    """
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return list(det.gpus)
    chosen = []
    for item in nvml.visible_entries(value):
        gpu = nvml.match(item, det.gpus)
        if gpu is None:
            present = ", ".join(str(g.index) for g in det.gpus) or "none"
            raise InputError(f"CUDA_VISIBLE_DEVICES names '{item}', which is not a GPU here",
                             where="CUDA_VISIBLE_DEVICES",
                             hint=f"GPUs present: {present}; python -m pipeline doctor lists them")
        chosen.append(gpu)
    if not chosen:
        raise InputError("CUDA_VISIBLE_DEVICES is set but selects no GPU",
                         where="CUDA_VISIBLE_DEVICES", hint="unset it, or list device indices")
    return chosen


def _size(value, total: int, where: str) -> int | None:
    """Bytes for ``auto`` / a fraction of ``total`` / a byte count / "20GB"; None for auto."""
    if value in (None, "auto"):
        return None
    try:
        if isinstance(value, str):
            return parse_bytes(value)
        if isinstance(value, bool):
            raise ValueError(value)
        if 0 < value <= 1:
            return int(value * total)
        return int(value)
    except (ValueError, TypeError):
        raise InputError(f"bad size {value!r}", where=where,
                         hint="'auto', a fraction like 0.8, or a size like \"20GB\"") from None


def check_local_gpu_cluster(spec: ClusterSpec, det: Detection,
                            environ: Mapping[str, str]) -> None:
    """Raise InputError when ``spec`` cannot work on the GPUs that are visible.

    Raises
    ------
    InputError
        Bad ``CUDA_VISIBLE_DEVICES``; more workers than GPUs; ``device_memory_limit`` or
        ``rmm_pool_size`` larger than the smallest visible GPU; ``ucx`` without UCX.
    """
    gpus = visible_gpus(det, environ)
    if spec.n_workers != "auto" and spec.n_workers > len(gpus):
        raise InputError(f"{spec.n_workers} workers asked for, but {len(gpus)} GPU(s) are "
                         "visible", where="cluster.n_workers",
                         hint="LocalCUDACluster runs one worker per GPU; use auto")
    smallest = min(g.memory_total for g in gpus)
    for key in ("device_memory_limit", "rmm_pool_size"):
        size = _size(getattr(spec, key), smallest, f"cluster.{key}")
        if size is not None and size > smallest:
            raise InputError(f"{format_bytes(size)} is more than the GPU's "
                             f"{format_bytes(smallest)}", where=f"cluster.{key}",
                             hint="use a fraction like 0.8, or a smaller size")
    line = extras.cuda_line(det.cuda_major)
    if spec.enable_cudf_spill and importlib.util.find_spec("cudf") is None:
        raise InputError("enable_cudf_spill asked for, but cuDF is not installed",
                         where="cluster.enable_cudf_spill",
                         hint=f"{extras.install(det.cuda_major, True)}, or set it to false "
                              "(dask-cuda still spills device->host above "
                              "device_memory_limit)")
    if spec.protocol == "ucx" and importlib.util.find_spec("ucxx") is None \
            and importlib.util.find_spec("ucp") is None:
        raise InputError("protocol ucx asked for, but UCX (ucxx) is not installed",
                         where="cluster.protocol",
                         hint=f"pip install distributed-ucxx-cu{line}, or use protocol: tcp")
