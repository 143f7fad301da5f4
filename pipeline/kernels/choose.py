"""Which engine computes an expression on CPU chunks, predicted from measured costs.

Engines: ``numpy`` (the interpreted path: one NumPy call and one chunk-sized temporary
per operation, as dask.array's functions run it), ``blocked`` (the same calls on
cache-sized slices, :mod:`pipeline.kernels.blocked`) and ``numba`` (one compiled loop,
:mod:`pipeline.kernels.numba_cpu`). Each engine's time per element is the sum of its
measured cost per operation (:mod:`pipeline.kernels.costs`, written by
``benchmarks/expr_costs.py``) plus its pass over memory; numba also pays, once per worker
process, its start-up (import, LLVM, loading or compiling the kernel), which is why it
wins only when a worker has enough elements to earn it back.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass

from pipeline.kernels.costs import COSTS

ENGINES = ("numpy", "blocked", "numba")
ENV = "PIPELINE_EXPR_ENGINE"  # auto | numpy | blocked | numba: force one (benchmarks, tests)

_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
            ast.Mod: "%", ast.Pow: "**", ast.BitAnd: "&", ast.BitOr: "|"}


@dataclass(frozen=True)
class Choice:
    engine: str
    reason: str
    predicted_s: dict[str, float]  # engine -> seconds per worker, as predicted


def operations(tree: ast.AST) -> list[str]:
    """The operations of an expression tree, by kind (``+``, ``compare``, ``sqrt``...)."""
    kinds = []
    for n in ast.walk(tree):
        if isinstance(n, ast.BinOp):
            kinds.append(_SYMBOLS[type(n.op)])
        elif isinstance(n, ast.UnaryOp):
            kinds.append("neg" if isinstance(n.op, (ast.USub, ast.UAdd)) else "~")
        elif isinstance(n, ast.Compare):
            kinds += ["compare"] * len(n.ops) + ["&"] * (len(n.ops) - 1)
        elif isinstance(n, ast.Call):
            kinds.append(n.func.id)
    return kinds


def predict(kinds: list[str], dtype: str, elements_per_worker: float) -> dict[str, float]:
    """Seconds per worker for each engine (numba with its start-up)."""
    table = COSTS["ns_per_element"].get(dtype, COSTS["ns_per_element"]["float64"])

    def ns(engine: str) -> float:
        costs = table[engine]
        return costs["pass"] + sum(costs.get(k, costs["default"]) for k in kinds)

    out = {e: ns(e) * elements_per_worker * 1e-9 for e in ENGINES}
    out["numba"] += COSTS["numba_start_s"]
    return out


def pick(kinds: list[str], dtype: str, elements: int, workers: int,
           numba_reason: str | None) -> Choice:
    """The engine for an expression with operations ``kinds`` over ``elements`` outputs
    spread on ``workers``; ``numba_reason`` says why numba cannot compile it (None: it can).
    ``PIPELINE_EXPR_ENGINE`` forces an engine (numba only where it can compile)."""
    forced = os.environ.get(ENV, "auto")
    predicted = predict(kinds, dtype, elements / max(1, workers))
    if forced in ENGINES and (forced != "numba" or numba_reason is None):
        return Choice(forced, f"{ENV}={forced}", predicted)
    if len(kinds) < 2:
        return Choice("numpy", "one operation: nothing to fuse", predicted)
    candidates = ["numpy", "blocked"] + (["numba"] if numba_reason is None else [])
    best = min(candidates, key=predicted.__getitem__)
    why = f"predicted {predicted[best]:.3g} s per worker"
    if numba_reason is not None:
        why += f"; numba: {numba_reason}"
    return Choice(best, why, predicted)
