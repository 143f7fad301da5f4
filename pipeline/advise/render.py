"""The text ``advise`` prints: the table, each stage's reasons, the assumptions."""

from __future__ import annotations

import os

from pipeline import advise
from pipeline.report import human_bytes


def render(estimates, rates, measured: dict | None = None) -> str:
    """``measured``: ``{backend name: ({stage: Sample}, {stage: reason left out})}``."""
    measured = measured or {}
    head = ["stage", "op", "compute s", "GFLOP", "bytes", "flop/B", "H2D", "D2H", "verdict"]
    for name in measured:
        head += [f"{name} share", f"{name} pred s", f"{name} meas s"]
    rows = []
    for e in estimates:
        row = [e.stage, e.op, f"{e.compute_s:.3g}", f"{e.flops / 1e9:.3g}",
               human_bytes(e.bytes), f"{e.intensity:.2f}", human_bytes(e.h2d),
               human_bytes(e.d2h), e.verdict]
        for plans, _ in measured.values():
            p = plans.get(e.stage)
            row += ["-", "-", "-"] if p is None else \
                [f"{p.share:.1%}", f"{p.predicted_s:.2g}", f"{p.measured_s:.2g}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for e in estimates:
        lines.append(f"{e.stage}: {e.verdict}: " + "; ".join(e.reasons + e.notes))
    for name, (plans, skipped) in measured.items():
        if plans:
            pred = sum(p.predicted_s for p in plans.values())
            meas = sum(p.measured_s for p in plans.values())
            lines.append(f"\n{name} sample: predicted {pred:.3g} s, measured {meas:.3g} s "
                         f"({'CPU' if name == 'cpu' else 'wall'} seconds, one thread)")
        for stage, why in skipped.items():
            lines.append(f"  {stage}: not sampled: {why}")
    lines += ["", _overall(estimates), "", "assumptions:", *_assumptions(rates)]
    return "\n".join(lines)


def _overall(estimates) -> str:
    cores = os.cpu_count() or 1
    compute = sum(e.compute_s for e in estimates)
    cpu = sum(e.cpu_s for e in estimates)
    gpu = sum(e.gpu_s for e in estimates)
    worthy = sum(e.bytes for e in estimates if e.verdict == "GPU-worthy")
    total = sum(e.bytes for e in estimates) or 1
    verdict = "worth a GPU" if cpu / max(gpu, 1e-12) >= advise.WORTHY_SPEEDUP \
        and worthy / total > 0.5 else "not worth a GPU"
    return (f"workflow: est. {compute:.3g} s of compute (CPU seconds summed over threads, "
            f"as report.json's compute_s), about {cpu:.3g} s on {cores} cores; "
            f"{gpu:.3g} s on one GPU -> {verdict}")


def _assumptions(rates) -> list[str]:
    return [
        f"- CPU: rates per kernel {rates.source} (python -m pipeline advise --calibrate "
        "measures this host's); the run's workers as many as cores, one thread each;",
        "- compute counts the workers' tasks, not start-up, scheduling or the report; a "
        "filter keeps every row; a groupby's result is small;",
        f"- GPU: nominal, not measured: {advise.GPU_FLOPS / 1e12:g} TFLOP/s and "
        f"{advise.GPU_BANDWIDTH / 1e12:g} TB/s at {advise.GPU_EFFICIENCY:.0%} efficiency, "
        f"PCIe {advise.PCIE_BANDWIDTH / 1e9:g} GB/s, {advise.GPU_TASK_S * 1e3:g} ms per "
        "task (pipeline/advise/__init__.py).",
    ]
