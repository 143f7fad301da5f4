"""The safe expression language of ``elementwise``, ``filter`` and ``assign``.

An expression is parsed with :mod:`ast` and compiled into a tree of Python closures; it
is never passed to ``eval``. Names are the stage's variables (inputs, columns, params);
calls are limited to :data:`FUNCTIONS`, whose implementations come from a namespace the
caller supplies (``dask.array`` functions for arrays, NumPy ufuncs for table columns), so
one parsed expression serves every backend.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Callable, Iterable, Mapping

from pipeline.errors import InputError

# name -> (min args, max args)
FUNCTIONS: Mapping[str, tuple[int, int]] = {
    "abs": (1, 1), "sqrt": (1, 1), "exp": (1, 1), "log": (1, 1), "log1p": (1, 1),
    "sin": (1, 1), "cos": (1, 1), "tan": (1, 1), "arctan2": (2, 2),
    "real": (1, 1), "imag": (1, 1), "conj": (1, 1), "angle": (1, 1),
    "maximum": (2, 2), "minimum": (2, 2), "where": (3, 3), "clip": (3, 3),
    "floor": (1, 1), "ceil": (1, 1), "round": (1, 2), "isnan": (1, 1), "isfinite": (1, 1),
}


def _positive(x):
    """Unary +. The arrays ``cupy.fuse`` traces (pipeline/kernels/cupy_gpu.py) have no
    ``__pos__`` (seen on an H200); CuPy's ufunc ``positive`` is the same operation."""
    if type(x).__name__ == "_ArrayProxy" and type(x).__module__.startswith("cupy"):
        import cupy  # only reached inside cupy.fuse, so CuPy is there

        return cupy.positive(x)
    return +x


_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: _positive, ast.Invert: operator.invert}
_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_OP_TEXT = {ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@",
            ast.Not: "not", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
            ast.NotIn: "not in"}

# An expression is short: these bound the work and memory a hostile one can cost.
MAX_CHARS = 10_000
MAX_DEPTH = 100
INT_BITS = 63  # integer constants, given or computed, must fit a signed 64-bit integer

# A compiled node: (function namespace, variable values) -> value
Node = Callable[[Mapping[str, Callable], Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Expr:
    """A parsed expression. Call it with a function namespace and the variables' values.

    ``tree`` is the validated syntax tree, for compilers (:mod:`pipeline.kernels`)."""

    text: str
    names: frozenset[str]
    _fn: Node
    tree: ast.AST = field(compare=False, repr=False, default=None)

    def __call__(self, functions: Mapping[str, Callable], variables: Mapping[str, Any]):
        return self._fn(functions, variables)


def parse(text: str, variables: Iterable[str]) -> Expr:
    """Parse ``text`` allowing only ``variables`` as names.

    Raises
    ------
    InputError
        Naming the offending token, with ``where='expr'``.
    """
    allowed = frozenset(variables)
    if not isinstance(text, str) or not text.strip():
        raise _err("must be a non-empty expression string", text)
    if len(text) > MAX_CHARS:
        raise _err(f"the expression is {len(text):,} characters long, more than "
                   f"{MAX_CHARS:,}", text, hint="split it over several stages")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise _err(f"syntax error in {text!r} at column {e.offset}", text) from None
    except (RecursionError, MemoryError):  # the parser's own stack
        raise _err("the expression is nested too deeply", text,
                   hint=f"at most {MAX_DEPTH} levels") from None
    tree.body = _fold(tree.body, text, 0)
    used: set[str] = set()
    fn = _compile(tree.body, allowed, used, text)
    return Expr(text=text, names=frozenset(used), _fn=fn, tree=tree.body)


def _err(what: str, text, hint: str | None = None) -> InputError:
    return InputError(what, where="expr", hint=hint or
                      "allowed: names of the inputs/columns/params, numbers, + - * / // % **, "
                      "comparisons, & | ~, and the functions of 'python -m pipeline ops elementwise'")


def _fold(node: ast.AST, text: str, depth: int) -> ast.AST:
    """Check the tree's depth and its use of strings, and compute the parts made of
    constants only, once, under limits: ``10**10**10`` or ``'a' * 10**10`` would
    otherwise be computed with Python's unbounded integers and strings while the graph is
    built (minutes, gigabytes). A folded part becomes one constant."""
    if depth > MAX_DEPTH:
        raise _err(f"the expression is nested more than {MAX_DEPTH} levels deep", text,
                   hint="split it over several stages")
    for name, value in ast.iter_fields(node):
        if isinstance(value, ast.AST):
            setattr(node, name, _fold(value, text, depth + 1))
        elif isinstance(value, list):
            value[:] = [_fold(v, text, depth + 1) if isinstance(v, ast.AST) else v
                        for v in value]
    if isinstance(node, ast.Constant):
        _check_int(node.value, text)
    operands = [node.left, node.right] if isinstance(node, ast.BinOp) \
        else [node.operand] if isinstance(node, ast.UnaryOp) else []
    if any(isinstance(o, ast.Constant) and isinstance(o.value, str) for o in operands):
        raise _err("strings can only be compared (==, !=, <, ...)", text)
    if not operands or not all(isinstance(o, ast.Constant) for o in operands):
        return node
    fn = (_BINARY if isinstance(node, ast.BinOp) else _UNARY).get(type(node.op))
    if fn is None:
        return node  # a refused operator: _compile names it
    values = [o.value for o in operands]
    if isinstance(node.op, ast.Pow):
        _check_power(*values, text)
    try:
        result = fn(*values)
    except ZeroDivisionError:
        raise _err("division by zero in the constants", text) from None
    except OverflowError:
        raise _err("a constant overflows a float", text) from None
    except TypeError as e:
        raise _err(f"bad constants: {e}", text,
                   hint="& | ~ take booleans or integers") from None
    _check_int(result, text)
    return ast.copy_location(ast.Constant(result), node)


def _check_int(value, text: str) -> None:
    if isinstance(value, int) and not -(1 << INT_BITS) <= value < 1 << INT_BITS:
        raise _err(f"the integer constant {value} does not fit 64 bits", text,
                   hint="write large numbers as floats, e.g. 1e30")


def _check_power(base, exponent, text: str) -> None:
    """Refuse an integer power too large to compute before computing it."""
    if all(isinstance(v, int) for v in (base, exponent)) and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > INT_BITS:
            raise _err(f"{base}**{exponent} does not fit 64 bits", text,
                       hint="write large numbers as floats, e.g. 1e30")


def _compile(node: ast.AST, allowed: frozenset, used: set, text: str) -> Node:
    def sub(n):
        return _compile(n, allowed, used, text)

    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or isinstance(value, (int, float, complex, str)):
            return lambda f, v: value
        raise _err(f"constant {value!r} is not allowed", text)
    if isinstance(node, ast.Name):
        name = node.id
        if name.startswith("__"):
            raise _err(f"name '{name}' is not allowed", text)
        if name in FUNCTIONS and name not in allowed:
            raise _err(f"function '{name}' must be called, e.g. {name}(x)", text)
        if name not in allowed:
            raise _err(f"unknown name '{name}'", text,
                       hint="known names: " + (", ".join(sorted(allowed)) or "none"))
        used.add(name)
        return lambda f, v: v[name]
    if isinstance(node, ast.BinOp):
        op = _BINARY.get(type(node.op))
        if op is None:
            raise _err(f"operator '{_OP_TEXT.get(type(node.op), type(node.op).__name__)}' "
                       "is not allowed", text)
        left, right = sub(node.left), sub(node.right)
        return lambda f, v: op(left(f, v), right(f, v))
    if isinstance(node, ast.UnaryOp):
        op = _UNARY.get(type(node.op))
        if op is None:
            raise _err("'not' is not allowed", text, hint="use ~ for logical not")
        operand = sub(node.operand)
        return lambda f, v: op(operand(f, v))
    if isinstance(node, ast.BoolOp):
        word = "and" if isinstance(node.op, ast.And) else "or"
        raise _err(f"'{word}' is not allowed", text,
                   hint="use & and | with parentheses, e.g. (a > 0) & (b < 1)")
    if isinstance(node, ast.Compare):
        return _compare(node, sub, text)
    if isinstance(node, ast.Call):
        return _call(node, sub, text)
    if isinstance(node, ast.Attribute):
        raise _err(f"attribute access '.{node.attr}' is not allowed", text)
    if isinstance(node, ast.Subscript):
        raise _err("subscripts ('x[...]') are not allowed", text)
    if isinstance(node, ast.Lambda):
        raise _err("'lambda' is not allowed", text)
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        raise _err("comprehensions are not allowed", text)
    raise _err(f"'{type(node).__name__}' expressions are not allowed", text)


def _compare(node: ast.Compare, sub, text: str) -> Node:
    ops = []
    for op in node.ops:
        fn = _COMPARE.get(type(op))
        if fn is None:
            raise _err(f"comparison '{_OP_TEXT.get(type(op), type(op).__name__)}' "
                       "is not allowed", text)
        ops.append(fn)
    operands = [sub(node.left)] + [sub(c) for c in node.comparators]

    # a < b < c means (a < b) & (b < c), element by element
    def compare(f, v):
        values = [o(f, v) for o in operands]
        parts = [op(values[i], values[i + 1]) for i, op in enumerate(ops)]
        return reduce(operator.and_, parts)

    return compare


def _call(node: ast.Call, sub, text: str) -> Node:
    if not isinstance(node.func, ast.Name):
        if isinstance(node.func, ast.Attribute):
            raise _err(f"attribute access '.{node.func.attr}' is not allowed", text)
        raise _err("only calls of the listed functions are allowed", text)
    name = node.func.id
    if name.startswith("__"):
        raise _err(f"name '{name}' is not allowed", text)
    if name not in FUNCTIONS:
        raise _err(f"unknown function '{name}'", text,
                   hint="functions: " + ", ".join(FUNCTIONS))
    if node.keywords:
        raise _err(f"keyword arguments are not allowed in '{name}(...)'", text)
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise _err(f"'*' arguments are not allowed in '{name}(...)'", text)
    lo, hi = FUNCTIONS[name]
    if not lo <= len(node.args) <= hi:
        count = str(lo) if lo == hi else f"{lo} to {hi}"
        raise _err(f"'{name}' takes {count} arguments, got {len(node.args)}", text)
    args = [sub(a) for a in node.args]
    return lambda f, v: f[name](*(a(f, v) for a in args))
