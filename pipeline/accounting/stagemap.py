"""Which stage a task belongs to, from its key, however Dask optimized the graph.

Array stages build ``HighLevelGraph`` layers inside their ``stage:<id>`` span, so each
layer's span annotation names its stage, and a task key's name is its layer's name (or,
inside a blockwise-fused subgraph, that name with ``_.i_.j`` block suffixes, or within a
renamed key, its layer's 32-hex token).

Dataframe stages build dask-expr expressions, which carry no annotations. A stage owns the
expressions its output has and its inputs do not. Dask's optimizer then rewrites the
query (column projection, lowering a groupby into chunk / tree-reduce steps, a merge into
a blockwise or hash join), and a rewritten expression has a new name. Its stage is found
in order:

1. its name is one a stage owns (untouched by the optimizer);
2. it is of the class of (or a subclass of) an expression a stage owns, and agrees with it
   on the most parameters (a node renamed because something below it changed, a merge
   lowered to a blockwise merge);
3. else (a lowered step, an inserted projection): the stage of the expressions that
   consume it, when they agree; failing that, of those it consumes (:func:`propagate`).

Tasks that no layer or expression names (a shuffle's partitioning and barrier tasks) are
placed the same way, from their neighbours in the task graph. Identical tasks that two
stages built are computed once by Dask and counted under the first; :attr:`StageMap.shared`
says which later stages shared them.
"""

from __future__ import annotations

import re

_BLOCK_SUFFIX = re.compile(r"(_\.\d+)+$")
_TOKEN = re.compile(r"[0-9a-f]{32}")


def key_name(key) -> str:
    return str(key[0] if isinstance(key, tuple) else key)


class StageMap:
    """Task key names -> stage labels (the stages' span ids)."""

    def __init__(self):
        self.names: dict[str, str] = {}
        self._tokens: dict[str, str] = {}
        self._owned: list[tuple[str, object]] = []  # (label, dask-expr node) per stage
        # name -> the labels of the later stages that built the same tasks (Dask computes
        # identical tasks once; they are counted under the first stage)
        self._sharers: dict[str, set[str]] = {}
        # label -> labels of the stages it shares computed tasks with (see :meth:`label`)
        self.shared: dict[str, set[str]] = {}

    @classmethod
    def from_build(cls, values: dict[str, object], labels: dict[str, str],
                   inputs: dict[str, list[str]]) -> StageMap:
        """``values``: each stage's lazy result (an array, a dataframe, a dict of arrays, a
        sink's collection), in DAG order; ``labels``: stage id -> span id; ``inputs``:
        stage id -> the stages it reads."""
        self = cls()
        span_stage = set(labels.values())
        expr_nodes: dict[str, dict] = {}
        for stage, value in values.items():
            label = labels[stage]
            expr_nodes[stage] = {}
            for coll in _collections(value):
                expr = getattr(coll, "expr", None)
                if expr is not None and hasattr(expr, "walk"):
                    expr_nodes[stage].update(_expr_nodes(expr))
                elif hasattr(coll, "__dask_graph__"):
                    for name, layer in coll.__dask_graph__().layers.items():
                        ids = ((layer.annotations or {}).get("span") or {}).get("ids", ())
                        owner = next((i for i in reversed(ids) if i in span_stage), None)
                        if owner is not None:
                            for task_name in _names(name, layer):
                                self._own(task_name, owner)
            inherited = set().union(*(expr_nodes.get(i, ()) for i in inputs.get(stage, ())))
            for name, node in expr_nodes[stage].items():
                if name not in inherited and self._own(name, label):
                    self._owned.append((label, node))
        return self

    def _own(self, name: str, label: str) -> bool:
        """Map ``name`` to the first stage that built it; a later one shares it."""
        first = self.names.get(name)
        if first is None:
            self.add(name, label)
            return True
        if first != label:
            self._sharers.setdefault(name, set()).add(label)
        return False

    def add(self, name: str, label: str, *, weak: bool = False) -> None:
        """Map ``name``; ``weak``: unless it is mapped already."""
        if weak and name in self.names:
            return
        self.names[name] = label
        token = _TOKEN.search(name)
        if token:
            self._tokens.setdefault(token.group(), label)

    def label(self, key) -> str | None:
        """The label of the stage owning task ``key``, or None (Dask's own tasks). Notes
        in :attr:`shared` the later stages that built the same task."""
        name = key_name(key)
        for candidate in (name, _BLOCK_SUFFIX.sub("", name)):
            if candidate in self.names:
                found = self.names[candidate]
                for other in self._sharers.get(candidate, ()):
                    self.shared.setdefault(other, set()).add(found)
                return found
        for token in _TOKEN.findall(name):
            if token in self._tokens:
                return self._tokens[token]
        return None

    def learn(self, optimized) -> None:
        """Map the expressions of an optimized dask-expr query (see the module's doc)."""
        outputs: dict[str, str] = {}
        nodes = _expr_nodes(optimized, outputs)
        for fused, first in outputs.items():  # a fused group's output is its first member's
            if fused in self.names and first not in self.names:
                self.add(first, self.names[fused])
        consumers: dict[str, list[str]] = {name: [] for name in nodes}
        for name, node in nodes.items():
            for dep in _inputs(node):
                consumers.setdefault(dep._name, []).append(name)
        pending = []
        for name, node in nodes.items():
            if name not in self.names:
                match = self._match(node)
                if match:
                    self.add(name, match)
                else:
                    pending.append(name)
        inputs = {name: [d._name for d in _inputs(node)] for name, node in nodes.items()}
        for name, label in propagate(pending, consumers, inputs, self.names).items():
            self.add(name, label)

    def _match(self, node) -> str | None:
        best, best_score, tie = None, -1, False
        params = _params(node)
        for label, owned in self._owned:
            if not isinstance(node, type(owned)):
                continue
            theirs = _params(owned)
            score = sum(1 for k, v in params.items() if k in theirs and _same(v, theirs[k]))
            if score > best_score:
                best, best_score, tie = label, score, False
            elif score == best_score and label != best:
                tie = True
        return None if tie else best


def propagate(pending, consumers: dict, inputs: dict, known: dict) -> dict:
    """Labels for the ``pending`` nodes of a graph from their neighbours' (``known``): a
    node that some stage's work consumes belongs to that stage (a lowered step, a shuffle's
    transfer), when all its mapped consumers agree; failing that, to the stage of all it
    consumes. Returns the labels found; ``known`` is not changed."""
    found: dict = {}

    def label(name):
        return found.get(name) or known.get(name)

    pending = list(pending)
    for neighbours in (consumers, inputs):
        while pending:
            left = []
            for name in pending:
                agreed = _agreed(label(n) for n in neighbours.get(name, ()))
                if agreed is None:
                    left.append(name)
                else:
                    found[name] = agreed
            if len(left) == len(pending):
                break
            pending = left
    return found


def _names(name: str, layer) -> list[str]:
    """The task names of a layer: its own, and for a materialized one (a delayed object's
    graph, say), every key's."""
    from dask.highlevelgraph import MaterializedLayer

    if isinstance(layer, MaterializedLayer):
        return [name, *{key_name(k) for k in layer}]
    return [name]


def _collections(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _collections(v)
    elif value is not None:
        yield getattr(value, "collection", value)  # a sink's Pending


def _expr_nodes(expr, outputs: dict[str, str] | None = None) -> dict[str, object]:
    """Every node of a dask-expr tree; a fused group stands for its members (the tasks
    of a fused task are its members', under their own names). ``outputs`` gets each fused
    group's name -> its first member's (the one whose result is the group's)."""
    out: dict[str, object] = {}
    stack = [expr]
    while stack:
        node = stack.pop()
        if node._name in out:
            continue
        if _is_fused(node):
            if outputs is not None:
                outputs[node._name] = node.exprs[0]._name
            stack.extend(node.exprs)
            continue
        out[node._name] = node
        stack.extend(node.dependencies())
    return out


def _is_fused(node) -> bool:
    from dask.dataframe.dask_expr._expr import Fused

    return isinstance(node, Fused)


def _inputs(node) -> list:
    """What ``node`` uses; a fused group's output is its first member."""
    return [d.exprs[0] if _is_fused(d) else d for d in node.dependencies()]


def _params(node) -> dict:
    from dask._expr import Expr

    return {k: v for k, v in zip(node._parameters, node.operands)
            if not isinstance(v, Expr)}


def _same(a, b) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (str, int, float, bool)):
        return a == b
    return _token(a) == _token(b)  # frames, functions, containers of them


def _token(value) -> str:
    from dask.tokenize import tokenize

    return tokenize(value)


def _agreed(labels) -> str | None:
    found = {label for label in labels if label is not None}
    return found.pop() if len(found) == 1 else None
