"""The op registry: ``@op("fft", family="array")`` records a function and its signature.

An op is a function ``fn(ctx, *inputs, **params)`` whose keyword-only parameters are the
stage's parameters. Their annotations are checked against the YAML values when a stage is
bound (at load time), so the function body receives values of the declared types. Adding an
op is one function in one module of this package.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

from pipeline.errors import InputError
from pipeline.spec import did_you_mean, unknown_key

FAMILIES = ("source", "array", "frame", "sink")
# How a stage names its inputs: none (a source), input (one), list, mapping.
INPUT_STYLES = ("none", "input", "list", "mapping")


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any
    default: Any
    required: bool

    def describe(self) -> str:
        text = f"{self.name}: {type_name(self.annotation)}"
        return text if self.required else f"{text} = {self.default!r}"


@dataclass(frozen=True)
class OpInfo:
    """A registered op. ``n_inputs`` is the exact count for ``list`` inputs, when fixed.

    ``stage_refs`` names parameters that may hold a stage id instead of a value (e.g.
    ``convolve``'s ``kernel``); the planner adds those as DAG edges. ``takes`` is the kind
    of input the op works on: ``array``, ``frame`` or ``any``.
    """

    name: str
    family: str
    inputs: str
    n_inputs: int | None
    fn: Callable
    params: Mapping[str, Param]
    stage_refs: tuple[str, ...]
    takes: str = "any"

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.fn) or ""
        return doc.splitlines()[0] if doc else ""

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check a stage's parameters against the signature; defaults filled in.

        Raises
        ------
        InputError
            ``where`` is the parameter's name; the caller prefixes the stage.
        """
        accepted = list(self.params)
        for key in params:
            if key not in self.params:
                raise unknown_key(key, accepted or ["(none)"], "")
        bound = {}
        for p in self.params.values():
            if p.name not in params:
                if p.required:
                    raise InputError(f"missing required parameter '{p.name}'",
                                     where=p.name, hint=p.describe())
                bound[p.name] = p.default
                continue
            value = params[p.name]
            if p.name in self.stage_refs and isinstance(value, str):
                bound[p.name] = value  # a stage id; resolved by the runner
                continue
            if not matches(value, p.annotation):
                raise InputError(f"expected {type_name(p.annotation)}, got {value!r}",
                                 where=p.name)
            bound[p.name] = value
        return bound


REGISTRY: dict[str, OpInfo] = {}
# The modules that register ops (pipeline.ops.<name>), imported on the first lookup.
MODULES = ("sources", "array_io", "arrays", "convolve", "signal", "layout", "stencil",
           "frame_io", "frames", "random_table", "plots", "sinks", "user")


def catalogue() -> dict[str, OpInfo]:
    """Every registered op, by name (importing the op modules and the plugins' the first
    time: :mod:`pipeline.ops.plugins`)."""
    from pipeline.ops import plugins

    for module in MODULES:
        importlib.import_module(f"pipeline.ops.{module}")
    plugins.load()
    return REGISTRY


def op(name: str, *, family: str, inputs: str = "input", n_inputs: int | None = None,
       stage_refs: tuple[str, ...] = (), takes: str | None = None):
    """Register ``fn`` as op ``name`` (built-in ops and plugins' alike); it ``takes`` the
    inputs of its family (arrays for array ops, tables for frame ops, either for sinks)
    unless told otherwise.

    Raises
    ------
    ValueError
        A bad family or input style, a parameter annotation the registry cannot check,
        or a name another module's op already has (a plugin cannot replace an op).
    """
    if family not in FAMILIES or inputs not in INPUT_STYLES:
        raise ValueError(f"op '{name}': family must be one of {FAMILIES} and inputs one "
                         f"of {INPUT_STYLES}")
    takes = takes or {"array": "array", "frame": "frame"}.get(family, "any")

    def register(fn: Callable) -> Callable:
        hints = typing.get_type_hints(fn)
        params = {}
        for p in inspect.signature(fn).parameters.values():
            if p.kind is not inspect.Parameter.KEYWORD_ONLY:
                continue
            required = p.default is inspect.Parameter.empty
            ann = hints.get(p.name, Any)
            try:
                matches(None, ann)
            except TypeError as e:
                raise ValueError(f"op '{name}', parameter '{p.name}': {e}") from None
            params[p.name] = Param(p.name, ann, None if required else p.default, required)
        old = REGISTRY.get(name)
        if old is not None and _where(old.fn) != _where(fn):
            raise ValueError(f"op '{name}' is already registered by {_where(old.fn)}")
        REGISTRY[name] = OpInfo(name, family, inputs, n_inputs, fn, params, stage_refs, takes)
        return fn

    return register


def _where(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def get(name: str) -> OpInfo:
    """The op called ``name``.

    Raises
    ------
    InputError
        Unknown op, with a did-you-mean.
    """
    from pipeline.ops import plugins

    known = catalogue()
    try:
        return known[name]
    except KeyError:
        raise InputError(f"unknown op '{name}'{did_you_mean(name, known)}", where="op",
                         hint=plugins.failures_hint() or "python -m pipeline ops lists them"
                         ) from None


def matches(value: Any, ann: Any) -> bool:
    """Whether a YAML value fits an annotation (a small subset of typing)."""
    if ann is Any:
        return True
    if ann is None or ann is type(None):
        return value is None
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in typing.get_args(ann))
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(ann))
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ann is str:
        return isinstance(value, str)
    if origin is list or ann is list:
        args = typing.get_args(ann)
        return isinstance(value, list) and all(matches(v, args[0]) for v in value if args)
    if origin is dict or ann is dict:
        args = typing.get_args(ann)
        return isinstance(value, dict) and all(
            matches(k, args[0]) and matches(v, args[1]) for k, v in value.items() if args)
    raise TypeError(f"annotation {ann!r} is not supported by the registry")


def type_name(ann: Any) -> str:
    """A short, user-facing name of an annotation (YAML words: null, list, mapping)."""
    if ann is Any:
        return "any value"
    if ann is None or ann is type(None):
        return "null"
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(ann))
    if origin is Literal:
        return " | ".join(str(a) if not isinstance(a, str) else a for a in typing.get_args(ann))
    if origin is list:
        args = typing.get_args(ann)
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        args = typing.get_args(ann)
        return f"mapping of {type_name(args[0])} -> {type_name(args[1])}" if args else "mapping"
    return {int: "integer", float: "number", str: "string", bool: "true/false",
            list: "list", dict: "mapping"}.get(ann, getattr(ann, "__name__", str(ann)))
