"""``advise``: is each stage of a workflow worth a GPU?

For every stage, from the lazily built collections' shapes and dtypes (nothing is
computed): estimated floating-point operations and bytes touched, arithmetic intensity,
the bytes it would have to move between host and device, and a verdict with its reasons.
The verdict compares simple roofline times on a nominal CPU (this host's cores) and GPU,
plus PCIe transfers. With ``--measure`` it also times one sample chunk of each stage on the
backends present and puts the measurement next to the prediction.
"""

from __future__ import annotations

import ast
import math
import os
from collections import Counter
from dataclasses import dataclass, field

import dask.array as da

# Nominal machine figures (documented assumptions, not measurements): what NumPy achieves
# per CPU core on element-wise / FFT work with its temporaries (far below peak); an
# H100-class GPU's effective fp32 throughput and memory bandwidth; PCIe 4/5 x16 copies.
CPU_FLOPS_PER_CORE = 2e9
CPU_BANDWIDTH_PER_CORE = 4e9
GPU_FLOPS = 25e12
GPU_BANDWIDTH = 2.0e12
PCIE_BANDWIDTH = 20e9
# Below this much data and work, per-task overhead and kernel launches dominate.
SMALL_BYTES = 64 << 20
SMALL_FLOPS = 1e9
WORTHY_SPEEDUP = 2.0
FRAME_ROW_BYTES = 8  # per column, for tables whose dtypes are numeric


@dataclass
class Estimate:
    stage: str
    op: str
    flops: float = 0.0
    bytes: float = 0.0
    h2d: float = 0.0
    d2h: float = 0.0
    size: float | None = None  # output bytes, when known
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    gpu_s: float = 0.0
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0


def _nbytes(value) -> float | None:
    if isinstance(value, da.Array):
        return None if any(math.isnan(s) for s in value.shape) else float(value.nbytes)
    if isinstance(value, dict):
        sizes = [_nbytes(v) for v in value.values()]
        return None if None in sizes else float(sum(sizes))
    if hasattr(value, "columns"):
        rows = _rows(value)
        return None if rows is None else float(rows * len(value.columns) * FRAME_ROW_BYTES)
    return None


def _rows(df) -> int | None:
    from pipeline.ops.frames import known_lengths

    lengths = known_lengths(df)
    return None if lengths is None else sum(lengths)


def _expr_ops(text: str) -> int:
    """Operations in an expression (operators and calls): its flops per element."""
    nodes = ast.walk(ast.parse(text.strip(), mode="eval"))
    return max(1, sum(isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call))
                      for n in nodes))


def _fft_flops(x: da.Array, lengths: list[int], real: bool) -> float:
    n = math.prod(lengths)
    if n <= 1:
        return 0.0
    per = 5 * n * math.log2(n) * (0.5 if real else 1.0)
    return per * (x.size / n)


def _flops(op: str, params: dict, inputs: list, out) -> float:
    """Floating-point operations of one stage (standard textbook counts)."""
    x = inputs[0] if inputs else None
    n_in = float(sum(getattr(i, "size", 0) or 0 for i in inputs if isinstance(i, da.Array)))
    n_out = float(out.size) if isinstance(out, da.Array) and not math.isnan(out.size) else 0.0
    if op == "random":
        return 20.0 * n_out  # generator + transform per sample
    if op in ("fft", "ifft", "rfft", "irfft"):
        src = x if op != "irfft" else out
        return _fft_flops(src, [src.shape[params.get("axis", -1)]], op in ("rfft", "irfft"))
    if op in ("fft2", "ifft2"):
        axes = params.get("axes") or [-2, -1]
        return _fft_flops(x, [x.shape[a] for a in axes], False)
    if op == "matmul":
        a, b = inputs
        k = a.shape[-1]
        return 2.0 * n_out * k
    if op == "convolve":
        kernel = params.get("kernel")
        k = float(getattr(kernel, "size", None) or len(str(kernel).split(",")))
        direct = 2.0 * n_out * k
        padded = max(n_out, 1.0)
        return min(direct, 3 * 5 * padded * math.log2(max(padded, 2)))
    if op in ("elementwise", "filter"):
        return (n_out or n_in) * _expr_ops(params["expr"])
    if op == "assign":
        return sum(_expr_ops(e) for e in params["columns"].values()) * (_rows(x) or 0)
    if op in ("reduce", "cumsum", "cumprod"):
        return n_in
    if op == "quantile":
        return n_in * math.log2(max(n_in, 2))
    if op == "histogram":
        return n_in * math.log2(max(params.get("bins") if isinstance(params.get("bins"), int)
                                    else len(params.get("bins") or [2]), 2))
    if op == "svd":
        m, n = x.shape
        return 4.0 * m * n * min(m, n)
    if op in ("groupby", "join", "sort"):
        rows = sum(_rows(i) or 0 for i in inputs)
        return 10.0 * rows * (math.log2(max(rows, 2)) if op == "sort" else 1.0)
    return n_out  # data movement ops (transpose, rechunk, pick, to_array...) and others


def estimate(plan, built) -> list[Estimate]:
    """One :class:`Estimate` per stage, from the lazily built collections."""
    cores = os.cpu_count() or 1
    out = []
    for ps in plan.stages:
        value = built.values.get(ps.id)
        inputs = [built.values[r] for _, r in ps.stage.inputs]
        params = {k: built.values.get(v, v) if k in ps.info.stage_refs and isinstance(v, str)
                  else v for k, v in ps.params.items()}
        size = _nbytes(value)
        in_bytes = sum(_nbytes(i) or 0 for i in inputs)
        e = Estimate(ps.id, ps.info.name, size=size,
                     flops=_flops(ps.info.name, params, inputs, value),
                     bytes=in_bytes + (size or 0))
        if ps.info.name == "read":
            e.h2d = size or 0
        if ps.info.family == "sink":
            e.d2h = in_bytes
        e.cpu_s = max(e.flops / CPU_FLOPS_PER_CORE, e.bytes / CPU_BANDWIDTH_PER_CORE) / cores
        e.gpu_s = max(e.flops / GPU_FLOPS, e.bytes / GPU_BANDWIDTH) \
            + (e.h2d + e.d2h) / PCIE_BANDWIDTH
        _judge(e)
        out.append(e)
    return out


def _judge(e: Estimate) -> None:
    from pipeline.report import human_bytes

    transfer = (e.h2d + e.d2h) / PCIE_BANDWIDTH
    speedup = e.cpu_s / e.gpu_s if e.gpu_s else 0.0
    e.reasons.append(f"intensity {e.intensity:.2f} flop/B; est. CPU {e.cpu_s:.3g} s, "
                     f"GPU {e.gpu_s:.3g} s (x{speedup:.1f})")
    on_device = max(e.flops / GPU_FLOPS, e.bytes / GPU_BANDWIDTH)
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


def measure(plan, built, backend) -> dict[str, tuple[float, float]]:
    """Time each stage's first output chunk (and what it needs) on ``backend``.

    All samples are computed together with the synchronous scheduler, once to warm up
    (imports, FFT plans, kernel compilation) and once under Dask's profiler. Each task is
    attributed to its stage through the stage's span annotation; a stage's result is
    ``(seconds, share of the stage's tasks that ran)``, since a sample of a reduction
    needs all of its input.
    """
    import dask
    from dask.diagnostics import Profiler

    from pipeline.runner import COMPUTE_CONFIG

    xp = backend.xp
    sync = xp.cuda.Device().synchronize if hasattr(xp, "cuda") else (lambda: None)

    class SyncProfiler(Profiler):
        def _posttask(self, key, value, dsk, state, id):
            sync()  # GPU kernels run asynchronously: a task ends when its kernels do
            super()._posttask(key, value, dsk, state, id)

    samples = [v for v in map(_first_chunk, built.values.values()) if v is not None]
    with dask.config.set({**backend.dask_config, **COMPUTE_CONFIG, "scheduler": "sync"}):
        all_tasks = _stage_of_keys(list(built.values.values()))
        sample_tasks = _stage_of_keys(samples)
        dask.compute(*samples)
        with SyncProfiler() as prof:
            dask.compute(*samples)
    seconds: dict[str, float] = {}
    for r in prof.results:
        stage = sample_tasks.get(r.key)
        if stage:
            seconds[stage] = seconds.get(stage, 0.0) + r.end_time - r.start_time
    ran, total = Counter(sample_tasks.values()), Counter(all_tasks.values())
    return {stage: (t, ran[stage] / total[stage]) for stage, t in seconds.items()}


def _stage_of_keys(collections) -> dict:
    """Task key -> stage id, from the ``stage:<id>`` span each task carries."""
    from dask.base import collections_to_expr

    spans = collections_to_expr(collections).optimize().__dask_annotations__().get("span", {})
    out = {}
    for key, annotation in spans.items():
        name = annotation["name"][-1]
        if name.startswith("stage:"):
            out[key] = name.removeprefix("stage:")
    return out


def _first_chunk(value):
    if isinstance(value, da.Array):
        return value.blocks[(0,) * value.ndim] if value.ndim else value
    if hasattr(value, "partitions"):
        return value.partitions[0]
    return None


def render(estimates: list[Estimate], measured: dict[str, dict[str, tuple[float, float]]]) -> str:
    """The table ``advise`` prints, then each stage's reasons and the overall verdict."""
    from pipeline.report import human_bytes

    head = ["stage", "op", "GFLOP", "bytes", "flop/B", "H2D", "D2H", "verdict"]
    for name in measured:
        head += [f"{name} sample pred s", f"{name} sample meas s"]
    rows = []
    for e in estimates:
        row = [e.stage, e.op, f"{e.flops / 1e9:.3g}", human_bytes(e.bytes),
               f"{e.intensity:.2f}", human_bytes(e.h2d), human_bytes(e.d2h), e.verdict]
        for name, times in measured.items():
            seconds, share = times.get(e.stage, (None, 0.0))
            row += ["-" if seconds is None else f"{_sample_prediction(e, share, name):.2g}",
                    "-" if seconds is None else f"{seconds:.2g}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for e in estimates:
        lines.append(f"{e.stage}: {e.verdict}: " + "; ".join(e.reasons))
    cpu = sum(e.cpu_s for e in estimates)
    gpu = sum(e.gpu_s for e in estimates)
    worthy = sum(e.bytes for e in estimates if e.verdict == "GPU-worthy")
    total = sum(e.bytes for e in estimates) or 1
    overall = "worth a GPU" if cpu / max(gpu, 1e-12) >= WORTHY_SPEEDUP and worthy / total > 0.5 \
        else "not worth a GPU"
    lines.append(f"\nworkflow: est. {cpu:.3g} s on {os.cpu_count()} CPU cores vs {gpu:.3g} s "
                 f"on one GPU -> {overall} (nominal figures: see pipeline/advise.py)")
    return "\n".join(lines)


def _sample_prediction(e: Estimate, share: float, backend_name: str) -> float:
    """Predicted seconds for the share of a stage that measure() ran, on one core (the
    synchronous scheduler) or one GPU."""
    if backend_name == "gpu":
        return e.gpu_s * share
    return max(e.flops / CPU_FLOPS_PER_CORE, e.bytes / CPU_BANDWIDTH_PER_CORE) * share
