"""``advise``: what each stage of a workflow will cost, and is it worth a GPU?

For every stage, from the lazily built collections' shapes and dtypes (nothing is
computed): the work it does in units of a few kernels (:mod:`.costs`), priced with this
host's calibrated CPU rates (:mod:`.calibrate`) as **compute seconds**, the same quantity
as ``report.json``'s ``compute_s`` (summed over worker threads); textbook flops and bytes
touched for a roofline on a nominal GPU; the bytes it would move between host and device;
and a verdict with its reasons. ``--measure`` times a sample of each stage
(:mod:`.sample`) next to the prediction for that same sample.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import dask.array as da

from pipeline.advise import costs
from pipeline.advise.calibrate import Rates

# Nominal GPU figures (assumptions, not measurements: no GPU has been measured): an
# H100-class device's fp32 throughput and memory bandwidth at the fraction kernels
# typically reach, PCIe 4/5 x16 copies, and Dask's cost per task (scheduling, launch).
GPU_FLOPS = 25e12
GPU_BANDWIDTH = 2.0e12
GPU_EFFICIENCY = 0.5
PCIE_BANDWIDTH = 20e9
GPU_TASK_S = 1e-3
# Below this much data and work, per-task overhead and kernel launches dominate.
SMALL_BYTES = 64 << 20
SMALL_FLOPS = 1e9
WORTHY_SPEEDUP = 2.0
FRAME_ROW_BYTES = 8  # per column, for tables whose dtypes are numeric


@dataclass
class Estimate:
    stage: str
    op: str
    compute_s: float = 0.0  # predicted CPU seconds, summed over threads
    flops: float = 0.0
    bytes: float = 0.0
    h2d: float = 0.0
    d2h: float = 0.0
    tasks: int = 1
    size: float | None = None  # output bytes, when known
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # wall seconds on this host's cores
    gpu_s: float = 0.0

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0


def _nbytes(value, rows: float | None) -> float | None:
    if isinstance(value, da.Array):
        return None if any(s != s for s in value.shape) else float(value.nbytes)
    if isinstance(value, dict):
        sizes = [_nbytes(v, None) for v in value.values()]
        return None if None in sizes else float(sum(sizes))
    if hasattr(value, "columns"):
        return None if rows is None else float(rows * len(value.columns) * FRAME_ROW_BYTES)
    return None


def _tasks(value) -> int:
    return int(getattr(value, "npartitions", 1) or 1)


def estimate(plan, built, rates: Rates) -> list[Estimate]:
    """One :class:`Estimate` per stage, from the lazily built collections."""
    cores = os.cpu_count() or 1
    out = []
    rows: dict[str, float | None] = {}
    for ps in plan.stages:
        value = built.values.get(ps.id)
        inputs = [built.values[r] for _, r in ps.stage.inputs]
        params = {k: built.values.get(v, v) if k in ps.info.stage_refs and isinstance(v, str)
                  else v for k, v in ps.params.items()}
        view = costs.View(ps.info.name, params, value, inputs,
                          [n for n, _ in ps.stage.inputs],
                          [rows.get(r) for _, r in ps.stage.inputs], plan.workflow.base_dir)
        work = costs.work(view)
        rows[ps.id] = work.rows
        size = _nbytes(value, work.rows)
        in_bytes = sum(_nbytes(i, r) or 0 for i, r in zip(inputs, view.input_rows))
        e = Estimate(ps.id, ps.info.name, compute_s=work.seconds(rates), flops=work.flops,
                     bytes=in_bytes + (size or 0), size=size, notes=work.notes,
                     tasks=_tasks(value if value is not None else (inputs or [None])[0]))
        if ps.info.name == "read":
            e.h2d = size or 0
        if ps.info.family == "sink":
            e.d2h = in_bytes
        e.cpu_s = e.compute_s / cores
        e.gpu_s = max(e.flops / GPU_FLOPS, e.bytes / GPU_BANDWIDTH) / GPU_EFFICIENCY \
            + e.tasks * GPU_TASK_S + (e.h2d + e.d2h) / PCIE_BANDWIDTH
        _judge(e)
        out.append(e)
    return out


def run(load, *, measure: bool = False, rates: Rates | None = None):
    """Estimate the workflow that ``load(overrides=())`` plans and, with ``measure``,
    sample it on each backend present: ``(estimates, {backend: (samples, left out)})``.

    ``load`` takes extra ``--set`` overrides (the samples' finer chunks) and returns a
    :class:`pipeline.plan.Plan`; ``rates``: this host's (:func:`calibrate.load`) if not
    given. Nothing is computed without ``measure``.
    """
    from pipeline import backends, runner
    from pipeline.advise import calibrate, sample

    rates = rates or calibrate.load()

    def built(backend, extra=()):
        p = load(extra)
        b = runner.build(p, backend, p.workflow.output_dir / ".advise")
        return p, b, estimate(p, b, rates)

    p, b, estimates = built(backends.CPU)
    measured = {}
    if measure:
        found = [backends.CPU]
        det = backends.detect()
        if not det.problem and not det.missing_libs:
            found.append(backends.GPU)
        for backend in found:
            again = built(backend) if backend is not backends.CPU else (p, b, estimates)
            measured[backend.name] = sample.measure(
                *again[:2], backend, estimates,
                lambda extra, backend=backend: built(backend, extra))
    return estimates, measured


def _judge(e: Estimate) -> None:
    from pipeline.report import human_bytes

    transfer = (e.h2d + e.d2h) / PCIE_BANDWIDTH
    speedup = e.cpu_s / e.gpu_s if e.gpu_s else 0.0
    e.reasons.append(f"intensity {e.intensity:.2f} flop/B; est. {e.compute_s:.3g} s of CPU "
                     f"compute ({e.cpu_s:.3g} s on this host's cores), GPU {e.gpu_s:.3g} s "
                     f"(x{speedup:.1f})")
    on_device = max(e.flops / GPU_FLOPS, e.bytes / GPU_BANDWIDTH) / GPU_EFFICIENCY
    if e.bytes < SMALL_BYTES and e.flops < SMALL_FLOPS:
        e.verdict = "too small"
        e.reasons.append(f"touches {human_bytes(e.bytes)} and {e.flops / 1e9:.2g} GFLOP: "
                         "task and kernel-launch overheads dominate")
    elif transfer > on_device:
        e.verdict = "transfer-bound"
        e.reasons.append(f"moving {human_bytes(e.h2d + e.d2h)} over PCIe (~{transfer:.3g} s) "
                         f"outweighs its ~{on_device:.3g} s on the device")
    elif speedup >= WORTHY_SPEEDUP:
        e.verdict = "GPU-worthy"
        bound = "compute" if e.flops / GPU_FLOPS > e.bytes / GPU_BANDWIDTH else "memory"
        e.reasons.append(f"{bound}-bound on the GPU; data stays on the device")
    else:
        e.verdict = "marginal"
        e.reasons.append(f"a GPU would gain less than x{WORTHY_SPEEDUP:g}")
