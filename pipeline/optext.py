"""``python -m pipeline ops``: the op catalogue as plain text for a terminal.

Op docstrings are written for the API docs (numpydoc, reStructuredText literals, a
fenced YAML example); a terminal shows them without the markup: ````x```` and
``:func:`x``` become ``x``, the fence lines go and the example is indented.
"""

from __future__ import annotations

import inspect
import re
import textwrap

from pipeline.ops.registry import FAMILIES, OpInfo, type_name

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")
WIDTH = 79  # the listing fits an 80-column terminal
_YAML_WORDS = {None: "null", True: "true", False: "false"}


def clean(doc: str) -> str:
    """``doc`` without reStructuredText markup or Markdown fences."""
    out, prose = [], []
    fenced = False

    def flush():
        text = _ROLE.sub(r"\1", "\n".join(prose))  # literals may span lines
        out.extend(_LITERAL.sub(lambda m: m.group(1) or m.group(2), text).splitlines())
        prose.clear()

    for line in doc.splitlines():
        if line.strip().startswith("```"):
            flush()
            if not fenced and out and out[-1]:
                out.append("")  # the example set apart from the prose
            fenced = not fenced
        elif fenced:
            out.append(f"    {line}" if line.strip() else "")
        else:
            prose.append(line)
    flush()
    return "\n".join(out).strip("\n")


def yaml_value(value) -> str:
    """A default as it is written in a workflow file (null, true, [-2, -1], 'auto')."""
    if isinstance(value, bool) or value is None:
        return _YAML_WORDS[value]
    if isinstance(value, str):
        return value
    return repr(value)


def describe(info: OpInfo, origin=lambda fn: None) -> str:
    """One op: its family, how it takes inputs, its documentation and its parameters.
    ``origin(fn)``: the distribution a plugin op comes from (None: built in)."""
    takes = {"none": "no inputs (a source)", "input": "input: <id>",
             "list": "inputs: [<id>, ...]", "mapping": "inputs: {name: <id>, ...}"}[info.inputs]
    if info.inputs == "list" and info.n_inputs:
        takes += f" ({info.n_inputs} ids)"
    source = origin(info.fn)
    plugin = f"; plugin: {source}" if source else ""
    lines = [f"{info.name}  ({info.family} op; takes {takes}{plugin})", "",
             clean(inspect.getdoc(info.fn) or ""), "", "parameters:"]
    if not info.params:
        lines.append("  (none)")
    width = max((len(p.name) for p in info.params.values()), default=0)
    for p in info.params.values():
        kind = type_name(p.annotation)
        if p.name in info.stage_refs:
            kind += ", or the id of a stage that makes it"
        need = "required" if p.required else f"default {yaml_value(p.default)}"
        lines.append(f"  {p.name:<{width}}  {kind}; {need}")
    return "\n".join(lines)


def listing(catalogue: dict[str, OpInfo], origin=lambda fn: None) -> str:
    """Every op, grouped by family, with its one-line summary and parameter names, and
    the distribution of each plugin op (``origin``)."""
    lines = []
    width = max((len(name) for name in catalogue), default=0)
    indent = " " * (width + 4)
    for family in FAMILIES:
        members = sorted((i for i in catalogue.values() if i.family == family),
                         key=lambda i: i.name)
        if not members:
            continue
        lines.append(f"{family}:")
        for info in members:
            source = origin(info.fn)
            summary = clean(info.summary) + (f" [plugin: {source}]" if source else "")
            lines += textwrap.wrap(summary, WIDTH,
                                   initial_indent=f"  {info.name:<{width}}  ",
                                   subsequent_indent=indent) or [f"  {info.name}"]
            if info.params:
                names = ", ".join(p.name if p.required else f"[{p.name}]"
                                  for p in info.params.values())
                lines += textwrap.wrap(f"parameters: {names}", WIDTH, initial_indent=indent,
                                       subsequent_indent=indent + "  ")
    lines.append("\n'python -m pipeline ops OP' describes one op; [name]: optional")
    return "\n".join(lines)
