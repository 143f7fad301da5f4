"""Workflow file -> frozen, validated :class:`Workflow`.

This module checks what can be checked without knowing the ops: YAML syntax, the top-level
fields, the cluster options, stage ids and the shape of ``input`` / ``inputs``. Binding a
stage's parameters to its op, and the DAG checks, happen in :mod:`pipeline.plan`, which
knows the op registry. Nothing here imports dask, cupy or the ops.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from pipeline import trust
from pipeline.errors import InputError

# Used with fullmatch: `$` would also accept a trailing newline.
NAME_RE = re.compile(r"[a-z0-9_-]+")
ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# A workflow is a page of YAML. These bound the time and memory a hostile file can cost:
# its size, and its values once YAML aliases are expanded (an "alias bomb" of a few
# hundred bytes expands to billions of values as soon as anything walks it).
MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 100_000
BACKENDS = ("auto", "cpu", "gpu")
PROTOCOLS = ("tcp", "ucx")
TOP_KEYS = ("name", "description", "backend", "cluster", "output_dir", "stages")
CLUSTER_DEFAULTS: Mapping[str, Any] = MappingProxyType({
    "address": None,
    "n_workers": "auto",
    "threads_per_worker": "auto",
    "memory_limit": "auto",
    "device_memory_limit": "auto",
    "rmm_pool_size": None,
    "protocol": "tcp",
    "dashboard_address": "127.0.0.1:8787",
    "security": None,
    "enable_cudf_spill": False,
})
# cluster.security: the TLS settings of distributed.security.Security the client uses.
SECURITY_FILES = ("tls_ca_file", "tls_client_cert", "tls_client_key")
SECURITY_KEYS = (*SECURITY_FILES, "require_encryption")
# Keys every stage may carry; every other key is a parameter of its op. ``cache``: reuse
# the stage's result across runs (pipeline.cache).
STAGE_KEYS = ("id", "op", "input", "inputs", "cache")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans only: YAML 1.1 reads on/off/yes/no as booleans, which would turn
    a stage key like ``on:`` (``join``) into ``True``. A key given twice in one mapping
    is an error (YAML says keys are unique; PyYAML lets the last one win silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given on line "
                        f"{seen[key].line + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def parse_yaml(text: str):
    """The YAML value of ``text``.

    Raises
    ------
    yaml.YAMLError
        Bad syntax or a duplicate key, with its line.
    InputError
        Nested too deeply, more than :data:`MAX_VALUES` values once aliases are expanded,
        or an alias that contains itself.
    """
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise InputError("the YAML is nested too deeply", hint="a workflow is a few levels "
                         "deep: stages, their parameters, lists") from None
    _check_size(value)
    return value


def _check_size(value) -> None:
    """Count ``value``'s values the way anything that walks it (a copy, a message, the
    report) would: an aliased part once per appearance. Each shared part is counted once
    and remembered, so an alias bomb costs no more than its text."""
    counted: dict[int, int] = {}
    active: set[int] = set()

    def size(v) -> int:
        if not isinstance(v, (list, dict)):
            return 1
        if id(v) in counted:
            return counted[id(v)]
        if id(v) in active:
            raise InputError("a YAML alias refers to a value that contains it",
                             hint="anchors (&a) may only be used after their value ends")
        active.add(id(v))
        n = 1 + sum(size(item) for item in (v.values() if isinstance(v, dict) else v))
        active.discard(id(v))
        counted[id(v)] = n
        return n

    n = size(value)
    if n > MAX_VALUES:
        raise InputError(f"the document holds {n:,} values once its aliases are expanded, "
                         f"more than {MAX_VALUES:,}",
                         hint="a workflow is a page of YAML; is this an alias bomb?")


def read_text(path: Path) -> str:
    """The text of the workflow file ``path``: a regular file of at most
    :data:`MAX_FILE_BYTES`, UTF-8.

    Raises
    ------
    InputError
        Missing, unreadable, not a regular file (a folder, a device like /dev/zero, a FIFO
        that would block), too large, or not text.
    """
    try:
        # O_NONBLOCK: opening a FIFO for reading would wait for a writer forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError("workflow file not found", file=str(path),
                         hint="check the path") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise InputError(f"cannot read workflow file: {e}", file=str(path)) from None
    # asked of the descriptor, before fdopen: Python refuses to open a folder's
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError("not a regular file (a folder, device or pipe)", file=str(path),
                         hint="give the path of a workflow YAML file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise InputError(f"cannot read workflow file: {e}", file=str(path)) from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"larger than {MAX_FILE_BYTES >> 10} KiB", file=str(path),
                         hint="a workflow is a page of YAML; data belongs in files that "
                              "'read' stages name")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", file=str(path),
                         hint="is this a workflow YAML file?") from None


def did_you_mean(word: str, choices) -> str:
    """`` ; did you mean 'x'?`` when a close match exists, else an empty string."""
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_key(key: str, accepted, where: str) -> InputError:
    return InputError(f"unknown key '{key}'{did_you_mean(key, accepted)}", where=where,
                      hint="accepted keys: " + ", ".join(accepted))


@dataclass(frozen=True)
class Stage:
    """One stage: its op, its inputs as ``(name, stage id)`` pairs, its raw parameters.

    ``input_style`` records how the inputs were written: ``none``, ``input`` (one),
    ``list`` or ``mapping``; ops declare which they accept. ``cache``: the stage's
    ``cache:`` key (None when not given, so ``--cache DIR`` decides).
    """

    id: str
    op: str
    inputs: tuple[tuple[str, str], ...]
    input_style: str
    params: Mapping[str, Any]
    index: int
    cache: bool | None = None

    @property
    def where(self) -> str:
        return f"stages.{self.id}"


@dataclass(frozen=True)
class ClusterSpec:
    address: str | None
    n_workers: int | str
    threads_per_worker: int | str  # "auto" or a count
    memory_limit: str | int | float
    device_memory_limit: str | int | float
    rmm_pool_size: str | int | float | None
    protocol: str
    dashboard_address: str | None
    security: Mapping[str, Any] | None = None
    enable_cudf_spill: bool = False


@dataclass(frozen=True)
class Workflow:
    """A validated workflow. ``raw`` is the document after overrides, kept for the report.

    ``path`` is the workflow file, or None for a workflow given as a mapping (the Python
    API); ``base_dir`` is the folder relative ``read`` paths resolve against: the file's
    folder, or the one given with the mapping.
    """

    name: str
    description: str
    backend: str
    cluster: ClusterSpec
    output_dir: Path
    stages: tuple[Stage, ...]
    path: Path | None
    raw: Mapping[str, Any]
    base_dir: Path

    @property
    def label(self) -> str | None:
        """How messages name the workflow: its file, or nothing for a mapping."""
        return None if self.path is None else str(self.path)

    def stage(self, stage_id: str) -> Stage:
        return next(s for s in self.stages if s.id == stage_id)


def load(path: str | Path, overrides=(), output_dir: str | Path | None = None,
         base_dir: str | Path | None = None, *, trust_workflow: bool = False) -> Workflow:
    """Read, override and validate a workflow file.

    Parameters
    ----------
    path : str or Path
        The workflow YAML file.
    overrides : iterable of str or of (key, value) pairs
        ``KEY=VALUE`` strings (``--set``; the value is parsed as YAML), or pairs.
    output_dir : str or Path, optional
        Replaces the file's ``output_dir`` (``--output-dir``).
    base_dir : str or Path, optional
        Where relative ``read`` paths resolve, instead of the file's folder.
    trust_workflow : bool
        Accept the settings that reach other machines (scheduler address, TLS settings, a
        dashboard open beyond loopback) from the file itself (:mod:`pipeline.trust`).

    Raises
    ------
    InputError
        For any problem with the file, an override or a field, located by file and key;
        a setting the file may not make on its own.
    """
    path = Path(path)
    text = read_text(path)
    try:
        raw = parse_yaml(text)
    except InputError as e:
        raise e.located(file=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"invalid YAML: {problem}", where=where, file=str(path),
                         hint="check the indentation and quoting there") from None
    if isinstance(raw, Mapping):  # else from_mapping says what the file must be
        try:
            trust.check(raw, (_override_key(item) for item in overrides), trust_workflow)
        except InputError as e:
            raise e.located(file=str(path)) from None
    return from_mapping(raw, overrides, output_dir, path=path, base_dir=base_dir)


def _override_key(item) -> str:
    """The field an override sets: ``KEY=VALUE`` or a ``(key, value)`` pair."""
    return item.partition("=")[0].strip() if isinstance(item, str) else str(item[0]).strip()


def from_mapping(raw, overrides=(), output_dir: str | Path | None = None, *,
                 path: Path | None = None, base_dir: str | Path | None = None) -> Workflow:
    """Override and validate a workflow document (the parsed YAML).

    ``overrides``: ``KEY=VALUE`` strings (the value parsed as YAML) or ``(key, value)``
    pairs (the value used as is). ``path``: the file it came from, if any; ``base_dir``
    (default: the file's folder, else the current one) is where relative ``read`` paths
    resolve. The mapping itself is not changed. A mapping given in Python is the caller's
    own: the settings :mod:`pipeline.trust` keeps from files are checked in :func:`load`.

    Raises
    ------
    InputError
        For any problem with an override or a field, located by file and key.
    """
    label = None if path is None else str(path)
    try:
        if not isinstance(raw, Mapping):
            what = "the file must be a YAML mapping" if path else "the workflow must be a mapping"
            raise InputError(f"{what} with 'name' and 'stages'",
                             hint="see workflows/spectrum.yaml for an example")
        raw = copy.deepcopy(_plain(raw))
        for item in overrides:
            if isinstance(item, str):
                apply_override(raw, item)
            else:
                set_field(raw, *item)
        if output_dir is not None:
            raw["output_dir"] = str(output_dir)
        base = Path(base_dir) if base_dir is not None else \
            path.resolve().parent if path is not None else Path.cwd()
        return _validate(raw, None if path is None else path.resolve(), base.resolve())
    except InputError as e:
        raise e.located(file=label) from None


def revise(wf: Workflow, overrides=(), output_dir: str | Path | None = None) -> Workflow:
    """``wf`` validated anew with more overrides (see :func:`from_mapping`).

    Raises
    ------
    InputError
        A bad override.
    """
    return from_mapping(wf.raw, overrides, output_dir, path=wf.path, base_dir=wf.base_dir)


def _plain(node):
    """Read-only mappings (a Workflow's ``raw``) as plain dicts, so they deep-copy and
    take overrides."""
    if isinstance(node, Mapping):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def apply_override(raw: dict, item: str) -> None:
    """Apply one ``--set KEY=VALUE``; ``stages.<id>.<key>`` addresses a stage by id."""
    key, sep, value_text = item.partition("=")
    if not sep or not key.strip():
        raise InputError(f"bad override '{item}'", where="--set",
                         hint="write KEY=VALUE, e.g. --set stages.signal.shape=[1024,256]")
    try:
        value = parse_yaml(value_text) if value_text.strip() else None
    except yaml.YAMLError:
        raise InputError(f"bad override value '{value_text}'", where=f"--set {key}",
                         hint="the value is parsed as YAML: quote strings with spaces") from None
    except InputError as e:
        raise e.located(where=f"--set {key}") from None
    set_field(raw, key, value)


def set_field(raw: dict, key: str, value: Any) -> None:
    """Set the field ``key`` (dotted; ``stages.<id>.<key>`` addresses a stage by id).

    Raises
    ------
    InputError
        The key names no field that can be set.
    """
    if not isinstance(key, str) or not key.strip():
        raise InputError(f"bad override key {key!r}", where="overrides",
                         hint="a dotted field name, e.g. stages.signal.shape")
    parts = key.strip().split(".")
    if parts[0] not in TOP_KEYS:
        raise unknown_key(parts[0], TOP_KEYS, f"--set {key}")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):  # the stages list: address a stage by id (or index)
            node = _find_stage(node, part, key)
        elif isinstance(node, dict):
            node = node.setdefault(part, [] if part == "stages" and depth == 0 else {})
        else:
            raise InputError(f"'{'.'.join(parts[:depth + 1])}' is not a mapping",
                             where=f"--set {key}")
    last = parts[-1]
    if isinstance(node, list):
        raise InputError("cannot replace a whole stage", where=f"--set {key}",
                         hint="set one of its keys: stages.<id>.<key>=VALUE")
    if not isinstance(node, dict):
        raise InputError(f"cannot set '{last}' inside a non-mapping", where=f"--set {key}")
    node[last] = value


def _find_stage(stages: list, ref: str, key: str) -> dict:
    for st in stages:
        if isinstance(st, dict) and str(st.get("id")) == ref:
            return st
    if ref.isdigit() and int(ref) < len(stages):
        return stages[int(ref)]
    ids = [str(s.get("id")) for s in stages if isinstance(s, dict)]
    raise InputError(f"no stage with id '{ref}'{did_you_mean(ref, ids)}", where=f"--set {key}",
                     hint="stage ids: " + ", ".join(ids))


def _validate(raw: dict, path: Path | None, base_dir: Path) -> Workflow:
    for key in raw:
        if key not in TOP_KEYS:
            raise unknown_key(key, TOP_KEYS, "top level")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InputError(f"bad name {name!r}", where="name",
                         hint="required; lowercase letters, digits, '_' and '-'")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise InputError("must be a string", where="description")
    backend = raw.get("backend", "auto")
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}{did_you_mean(backend, BACKENDS)}",
                         where="backend", hint="one of: " + ", ".join(BACKENDS))
    cluster = _cluster(raw.get("cluster") or {}, base_dir)
    out = raw.get("output_dir") or f"runs/{name}"
    if not isinstance(out, str):
        raise InputError("must be a path string", where="output_dir")
    stages = _stages(raw.get("stages"))
    return Workflow(name=name, description=description, backend=backend, cluster=cluster,
                    output_dir=Path(out), stages=stages, path=path,
                    raw=MappingProxyType(raw), base_dir=base_dir)


def _auto_or_count(cluster: dict, key: str, hint: str) -> None:
    value = cluster[key]
    if not (value == "auto" or (isinstance(value, int) and not isinstance(value, bool)
                                and value >= 1)):
        raise InputError(f"bad value {value!r}", where=f"cluster.{key}", hint=hint)


def _cluster(raw, base_dir: Path) -> ClusterSpec:
    if not isinstance(raw, dict):
        raise InputError("must be a mapping", where="cluster")
    for key in raw:
        if key not in CLUSTER_DEFAULTS:
            raise unknown_key(key, list(CLUSTER_DEFAULTS), "cluster")
    c = {**CLUSTER_DEFAULTS, **raw}
    _auto_or_count(c, "n_workers", "'auto' or a positive integer")
    _auto_or_count(c, "threads_per_worker",
                   "'auto' (1 per CPU worker, 2 per GPU worker) or a positive integer")
    if c["protocol"] not in PROTOCOLS:
        raise InputError(f"unknown protocol {c['protocol']!r}", where="cluster.protocol",
                         hint="one of: " + ", ".join(PROTOCOLS))
    for key in ("address", "dashboard_address"):
        if c[key] is not None and not isinstance(c[key], str):
            raise InputError(f"bad value {c[key]!r}", where=f"cluster.{key}",
                             hint="a string like 'tcp://host:8786', or null")
    if c["dashboard_address"] is not None:
        trust.listen_hosts(c["dashboard_address"], "cluster.dashboard_address")
    c["security"] = _security(c["security"], base_dir)
    _size_setting(c, "memory_limit", "'auto', a fraction of the host's memory like 0.5, a "
                  "size like \"8GB\", or 0 / null (no limit)")
    _size_setting(c, "device_memory_limit", "'auto' (spill above 80% of the GPU), a fraction "
                  "like 0.8, a size like \"20GB\", or 0 (never spill)")
    _size_setting(c, "rmm_pool_size", "null, a fraction like 0.8 or a size like \"20GB\"")
    if not isinstance(c["enable_cudf_spill"], bool):
        raise InputError(f"bad value {c['enable_cudf_spill']!r}",
                         where="cluster.enable_cudf_spill", hint="true or false")
    return ClusterSpec(**c)


# what dask.utils.parse_bytes reads: "20GB", "20 GiB", "5000M", "512kB"...
SIZE_RE = re.compile(r"^\s*\d+(\.\d+)?\s*([kmgtp]i?b?|b)?\s*$", re.IGNORECASE)


def _size_setting(cluster: dict, key: str, hint: str) -> None:
    """A GPU memory setting: its form only (whether it fits the GPU is checked against
    the device before a GPU cluster starts, pipeline/gpu/preflight.py)."""
    value = cluster[key]
    ok = (value is None and key in ("rmm_pool_size", "memory_limit")) \
        or (value == "auto" and key != "rmm_pool_size") \
        or (isinstance(value, str) and SIZE_RE.match(value) is not None) \
        or (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0
            and (value > 0 or key != "rmm_pool_size"))
    if not ok:
        raise InputError(f"bad value {value!r}", where=f"cluster.{key}", hint=hint)


def _security(raw, base_dir: Path) -> Mapping[str, Any] | None:
    """``cluster.security``: PEM file paths (relative ones resolve against the workflow
    file's folder) and ``require_encryption``."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InputError("must be a mapping", where="cluster.security",
                         hint="keys: " + ", ".join(SECURITY_KEYS))
    out: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"cluster.security.{key}"
        if key not in SECURITY_KEYS:
            raise unknown_key(key, SECURITY_KEYS, "cluster.security")
        if key == "require_encryption":
            if not isinstance(value, bool):
                raise InputError(f"bad value {value!r}", where=where, hint="true or false")
            out[key] = value
            continue
        if not isinstance(value, str) or not value:
            raise InputError(f"bad value {value!r}", where=where, hint="a PEM file path")
        file = base_dir / Path(value).expanduser()
        if not file.is_file():
            raise InputError(f"file not found: {value!r}", where=where,
                             hint=f"relative paths resolve against {base_dir}")
        out[key] = str(file)
    return MappingProxyType(out)


def _stages(raw) -> tuple[Stage, ...]:
    if not isinstance(raw, list) or not raw:
        raise InputError("required: a non-empty list of stages", where="stages",
                         hint="each stage is a mapping with 'id' and 'op'")
    seen: set[str] = set()
    stages = []
    for i, st in enumerate(raw):
        where = f"stages[{i}]"
        if not isinstance(st, dict):
            raise InputError("each stage must be a mapping with 'id' and 'op'", where=where)
        sid = st.get("id")
        if not isinstance(sid, str) or not ID_RE.fullmatch(sid):
            raise InputError(f"bad or missing id {sid!r}", where=where,
                             hint="a name of letters, digits, '_' and '-'")
        where = f"stages.{sid}"
        if sid in seen:
            raise InputError(f"duplicate stage id '{sid}'", where=where,
                             hint="stage ids must be unique")
        seen.add(sid)
        op = st.get("op")
        if not isinstance(op, str):
            raise InputError("missing 'op'", where=where,
                             hint="python -m pipeline ops lists them")
        if "input" in st and "inputs" in st:
            raise InputError("give 'input' or 'inputs', not both", where=where)
        inputs, style = _inputs(st, where)
        cache = st.get("cache")
        if cache is not None and not isinstance(cache, bool):
            raise InputError(f"bad value {cache!r}", where=f"{where}.cache",
                             hint="true (reuse the result across runs) or false")
        params = {k: v for k, v in st.items() if k not in STAGE_KEYS}
        stages.append(Stage(id=sid, op=op, inputs=inputs, input_style=style,
                            params=MappingProxyType(params), index=i, cache=cache))
    return tuple(stages)


def _inputs(st: dict, where: str) -> tuple[tuple[tuple[str, str], ...], str]:
    if "input" in st:
        ref = st["input"]
        if not isinstance(ref, str):
            raise InputError(f"must be a stage id, got {ref!r}", where=f"{where}.input")
        return (("input", ref),), "input"
    if "inputs" not in st:
        return (), "none"
    refs = st["inputs"]
    if isinstance(refs, list) and refs and all(isinstance(r, str) for r in refs):
        return tuple((str(i), r) for i, r in enumerate(refs)), "list"
    if isinstance(refs, dict) and refs and all(isinstance(r, str) for r in refs.values()):
        for name in refs:
            if not isinstance(name, str) or not name.isidentifier():
                raise InputError(f"input name {name!r} is not a valid name",
                                 where=f"{where}.inputs", hint="use letters, digits and '_'")
        return tuple(refs.items()), "mapping"
    raise InputError(f"bad inputs {refs!r}", where=f"{where}.inputs",
                     hint="a list of stage ids, or a mapping name -> stage id")
