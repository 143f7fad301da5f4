"""``python -m pipeline schema``: the JSON Schema of the workflow format.

Built from the op registry at the time it is asked for, so every registered op (third
party ones included) gets its parameters, types, defaults and required keys, and from
:mod:`pipeline.spec`'s key lists, so the schema cannot drift from what ``validate``
accepts. Editors use it for completion and checking as you type (the YAML language
server reads a ``# yaml-language-server: $schema=<file>`` comment at the top of a
workflow file). It checks what is knowable from the file alone; shapes, files and
expressions are still checked by ``validate``.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pipeline import spec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_AUTO_OR_COUNT = {"anyOf": [{"const": "auto"}, {"type": "integer", "minimum": 1}]}
_SIZE = {"anyOf": [{"type": "string"}, {"type": "number", "minimum": 0}]}
# cluster: key -> (schema, description); README.md documents the same keys.
CLUSTER: dict[str, tuple[dict, str]] = {
    "address": ({"type": ["string", "null"]},
                "scheduler of an existing Dask cluster (tcp://host:8786); null starts a "
                "local one"),
    "n_workers": (_AUTO_OR_COUNT, "workers of a local cluster; auto: one per GPU (gpu) "
                                  "or per core (cpu)"),
    "threads_per_worker": (_AUTO_OR_COUNT, "auto: 1 (a GPU worker's device work is on "
                                           "one CUDA stream)"),
    "memory_limit": ({"anyOf": [_SIZE, {"type": "null"}]},
                     "host memory per worker: auto, '8GB', a fraction of the host's "
                     "memory like 0.5, or 0 / null (no limit)"),
    "device_memory_limit": (_SIZE, "gpu: spill device -> host memory above this: auto "
                                   "(80% of the GPU), a fraction, '20GB', or 0 (never)"),
    "rmm_pool_size": ({"anyOf": [{"type": "string"}, {"type": "number", "exclusiveMinimum": 0},
                                 {"type": "null"}]},
                      "gpu: each worker's RMM pool, which CuPy allocates from ('20GB' or "
                      "0.8); null: none"),
    "protocol": ({"enum": list(spec.PROTOCOLS)}, "tcp, or ucx between GPU workers"),
    "dashboard_address": ({"type": ["string", "null"]},
                          "where the dashboard listens; null turns it off"),
    "enable_cudf_spill": ({"type": "boolean"}, "gpu: cuDF's own spilling (needs cuDF)"),
    "security": ({"anyOf": [{"type": "null"}, {
        "type": "object", "additionalProperties": False,
        "properties": {**{k: {"type": "string"} for k in spec.SECURITY_FILES},
                       "require_encryption": {"type": "boolean"}}}]},
                 "TLS with an existing cluster: tls_ca_file, tls_client_cert, "
                 "tls_client_key (PEM paths, relative to the workflow file), "
                 "require_encryption"),
}


def _anchored(regex) -> str:
    """A regex spec.py uses with ``fullmatch`` as a JSON Schema pattern, which matches
    anywhere in the string unless anchored (ECMA-262's ``$`` is the very end)."""
    return f"^(?:{regex.pattern})$"


# Stage keys other than the op's parameters; keys spec.STAGE_KEYS gains later are
# accepted with any value until they are described here.
STAGE_KEYS: dict[str, dict] = {
    "id": {"type": "string", "pattern": _anchored(spec.ID_RE),
           "description": "unique; later stages name it in input / inputs"},
    "op": {"type": "string", "description": "python -m pipeline ops lists them"},
    "cache": {"type": "boolean",
              "description": "reuse the stage's result across runs (true), or never (false)"},
}
INPUTS: dict[str, dict] = {
    "input": {"input": {"type": "string", "description": "the id of the input stage"}},
    "list": {"inputs": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                        "description": "the ids of the input stages, in order"}},
    "mapping": {"inputs": {"type": "object", "minProperties": 1,
                           "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                           "additionalProperties": {"type": "string"},
                           "description": "name -> id of an input stage"}},
    "none": {},
}


def workflow_schema(catalogue: dict | None = None) -> dict:
    """The JSON Schema (draft 2020-12) of a workflow file.

    ``catalogue``: ``{name: OpInfo}``; the op registry's (:func:`pipeline.ops.catalogue`)
    when not given.
    """
    if catalogue is None:
        from pipeline import ops

        catalogue = ops.catalogue()
    names = sorted(catalogue)
    defs = {f"op-{name}": _op_schema(catalogue[name]) for name in names}
    stage_keys = {k: STAGE_KEYS.get(k, {}) for k in spec.STAGE_KEYS if k not in INPUTS}
    defs["stage"] = {
        "type": "object",
        "required": ["id", "op"],
        "properties": {**stage_keys, "op": {**STAGE_KEYS["op"], "enum": names}},
        "allOf": [{"if": {"properties": {"op": {"const": name}}, "required": ["op"]},
                   "then": {"$ref": f"#/$defs/op-{name}"}} for name in names],
    }
    return {
        "$schema": DRAFT,
        "title": "pipeline workflow",
        "description": "A DAG of stages run by `python -m pipeline run`.",
        "type": "object",
        "required": ["name", "stages"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": _anchored(spec.NAME_RE)},
            "description": {"type": ["string", "null"]},
            "backend": {"enum": list(spec.BACKENDS), "default": "auto"},
            "cluster": {"type": ["object", "null"], "additionalProperties": False,
                        "properties": {k: _cluster_key(k) for k in spec.CLUSTER_DEFAULTS}},
            "output_dir": {"type": ["string", "null"], "description": "default runs/<name>"},
            "stages": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/stage"}},
        },
        "$defs": defs,
    }


def _cluster_key(key: str) -> dict:
    schema, description = CLUSTER.get(key, ({}, ""))
    out = {**schema, "default": spec.CLUSTER_DEFAULTS[key]}
    return {**out, "description": description} if description else out


def _op_schema(info) -> dict:
    """One op's stage: its input keys, its parameters, nothing else."""
    import inspect

    from pipeline.optext import clean

    params = {}
    for p in info.params.values():
        schema = annotation_schema(p.annotation)
        if p.name in info.stage_refs:  # a value, or the id of a stage that makes it
            schema = {"anyOf": [schema, {"type": "string"}]}
        if not p.required:
            schema["default"] = p.default
        params[p.name] = schema
    inputs = dict(INPUTS[info.inputs])
    if info.inputs == "list" and info.n_inputs is not None:
        inputs["inputs"] = {**inputs["inputs"], "minItems": info.n_inputs,
                            "maxItems": info.n_inputs}
    stage_keys = {k: STAGE_KEYS.get(k, {}) for k in spec.STAGE_KEYS if k not in INPUTS}
    required = [*inputs, *(p.name for p in info.params.values() if p.required)]
    return {"description": clean(inspect.getdoc(info.fn) or info.name),
            "properties": {**stage_keys, **inputs, **params},
            "required": required, "additionalProperties": False}


def annotation_schema(ann: Any) -> dict:
    """The JSON Schema of a registry annotation (the subset :func:`registry.matches` takes).

    Raises
    ------
    TypeError
        An annotation the registry does not support either.
    """
    if ann is Any:
        return {}
    if ann is None or ann is type(None):
        return {"type": "null"}
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [annotation_schema(a) for a in typing.get_args(ann)]}
    if origin is Literal:
        return {"enum": list(typing.get_args(ann))}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string",
              list: "array", dict: "object"}
    if ann in simple:
        return {"type": simple[ann]}
    args = typing.get_args(ann)
    if origin is list:
        return {"type": "array", "items": annotation_schema(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": annotation_schema(args[1])}
    raise TypeError(f"annotation {ann!r} has no JSON Schema here")
