"""Expressions over a frame's columns, evaluated partition by partition.

The expression language (:mod:`pipeline.expr`) is parsed once per process and evaluated on
each partition with :data:`FRAME_FUNCTIONS`, which act on pandas and cuDF Series alike:
NumPy ufuncs dispatch on both through ``__array_ufunc__`` (cuDF hands them to CuPy), and
the rest (where, clip, round, isnan...) use methods both Series types have.
"""

from __future__ import annotations

import ast
from functools import lru_cache

import numpy as np

from pipeline import expr as expr_lang
from pipeline import kernels
from pipeline.kernels import blocked
from pipeline.errors import InputError, OpError
from pipeline.spec import did_you_mean


def is_series(v) -> bool:
    """A pandas or cuDF Series (not a scalar, not a frame)."""
    return hasattr(v, "index") and hasattr(v, "where") and getattr(v, "ndim", 0) == 1


def _full(like, value):
    """A Series shaped like ``like`` holding ``value`` (pandas or cuDF, as ``like``)."""
    return type(like)(value, index=like.index)


def _real(x):
    if is_series(x):
        return _full(x, np.real(x.to_numpy())) if x.dtype.kind == "c" else x
    return np.real(x)


def _imag(x):
    if is_series(x):
        return _full(x, np.imag(x.to_numpy())) if x.dtype.kind == "c" else \
            _full(x, x.dtype.type(0))
    return np.imag(x)


def _conj(x):
    if is_series(x):
        return _full(x, np.conj(x.to_numpy())) if x.dtype.kind == "c" else x
    return np.conj(x)


def _angle(x):
    return np.arctan2(_imag(x), _real(x)) if is_series(x) else np.angle(x)


def _where(cond, a, b):
    # np.where would drop the index (and is no ufunc cuDF dispatches); Series.where keeps it
    if not is_series(cond):
        return a if cond else b
    if is_series(a):
        return a.where(cond, b)
    if is_series(b):
        return b.where(~cond, a)
    return _full(cond, a).where(cond, b)


def _clip(x, low, high):
    return x.clip(low, high) if is_series(x) else np.clip(x, low, high)


def _round(x, decimals=0):
    return x.round(decimals) if is_series(x) else np.round(x, decimals)


def _isnan(x):
    # missing values count as NaN, as pandas' isna() (and cuDF's nulls) have it
    return x.isna() if is_series(x) else np.isnan(x)


def _isfinite(x):
    return np.isfinite(x).fillna(False) if is_series(x) else np.isfinite(x)


# The expression language's functions, acting on one partition's columns (pandas or cuDF
# Series) and on scalars. Ufuncs dispatch on both Series types; the rest use Series methods.
FRAME_FUNCTIONS = {
    "abs": abs, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log1p": np.log1p,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "arctan2": np.arctan2, "real": _real,
    "imag": _imag, "conj": _conj, "angle": _angle, "maximum": np.maximum,
    "minimum": np.minimum, "where": _where, "clip": _clip, "floor": np.floor,
    "ceil": np.ceil, "round": _round, "isnan": _isnan, "isfinite": _isfinite,
}
assert set(FRAME_FUNCTIONS) == set(expr_lang.FUNCTIONS)


def require_columns(df, names, where: str, side: str = "") -> None:
    """Raise when any of ``names`` is not a column of ``df``, listing those that are.

    Raises
    ------
    OpError
        ``where`` is the parameter that named the column.
    """
    have = [str(c) for c in df.columns]
    for name in names:
        if name not in df.columns:
            raise OpError(f"no column '{name}'{side}{did_you_mean(name, have)}", where=where,
                          hint="columns: " + (", ".join(have) or "none"))


@lru_cache(maxsize=256)
def _parsed(text: str, names: tuple[str, ...]) -> expr_lang.Expr:
    return expr_lang.parse(text, names)


def evaluate(part, text: str, names: tuple[str, ...]):
    """``text`` over one partition. NaN / inf results are values, as in pandas arithmetic."""
    parsed = _parsed(text, names)
    with np.errstate(all="ignore"):
        fast = _blocked(parsed, part)
        if fast is not None:
            return fast
        return parsed(FRAME_FUNCTIONS, {n: part[n] for n in parsed.names})


def _blocked(parsed, part):
    """The expression on the columns' NumPy arrays in cache-sized blocks
    (:mod:`pipeline.kernels.blocked`), where that measured faster than pandas (about 2x on
    arithmetic, docs/benchmarks.md): pandas partitions, float64 columns, a float64 result,
    two operations or more. None elsewhere: a true/false result (pandas' comparisons are
    as fast), other dtypes (pandas' rules differ from NumPy's: integer division by zero is
    inf, float32 with a Python number can become float64), cuDF (its columns are not
    NumPy arrays)."""
    if not type(part).__module__.startswith("pandas") or not parsed.names:
        return None
    columns = [part[n] for n in parsed.names]
    if any(c.dtype != np.float64 for c in columns) \
            or any(isinstance(n, ast.Constant) and isinstance(n.value, str)
                   for n in ast.walk(parsed.tree)) \
            or len(kernels.operations(parsed.tree)) < 2:
        return None
    arrays = {n: c.to_numpy() for n, c in zip(parsed.names, columns)}
    dtype = np.asarray(parsed(blocked.NUMPY_FUNCTIONS,
                              {n: a[:1] for n, a in arrays.items()})).dtype
    if dtype != np.float64:
        return None
    out = blocked.evaluate(parsed, arrays, {}, dtype)
    return type(columns[0])(out, index=part.index)


def check_expr(df, text: str, where: str = "expr"):
    """Parse ``text`` against ``df``'s columns and try it on a few fake rows.

    Returns the names the expression may use and its value on ``df._meta_nonempty``.

    Raises
    ------
    OpError
        An unknown column (listing the columns), a bad expression, or one whose types
        do not fit the columns' dtypes.
    """
    names = tuple(str(c) for c in df.columns)
    try:
        tree = ast.parse(text.strip(), mode="eval") if isinstance(text, str) else None
    except (SyntaxError, RecursionError, MemoryError):
        tree = None  # parse() below reports it (too deep: the parser's own stack)
    if tree is not None:
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Name) and id(n) not in called and n.id not in names \
                    and not n.id.startswith("__") and n.id not in expr_lang.FUNCTIONS:
                require_columns(df, [n.id], where)
    try:
        _parsed(text, names)
    except InputError as e:
        raise OpError(e.what, where=where, hint=e.hint) from None
    try:
        sample = evaluate(df._meta_nonempty, text, names)
    except (TypeError, ValueError, ArithmeticError, NotImplementedError) as e:
        raise OpError(f"cannot evaluate {text!r} on these columns: {e}", where=where,
                      hint="dtypes: " + ", ".join(f"{c} {t}" for c, t in
                                                   df.dtypes.astype(str).items())) from None
    return names, sample
